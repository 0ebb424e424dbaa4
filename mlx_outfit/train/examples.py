"""Supervised training examples made from catalog outfits.

Two kinds, both written with the shared prompt texts of :mod:`mlx_outfit.prompts` (so the model
is trained on exactly what evaluation and recommend show it):

* ``complete`` — complementary generation: the rest of the outfit and the blank's category are
  given; the completion is the missing item's text.
* ``fitb`` — fill-in-the-blank multiple choice: lettered candidates of the blank's category (the
  right item among random other items of that category); the completion is the right letter
  and item (``prompts.fitb_answer``).

Only completion tokens carry loss: :func:`encode_example` returns the token ids and the number
of prompt tokens, and the loss in :mod:`mlx_outfit.train.completion` skips those.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterable, Sequence

from ..catalog import Catalog, Item
from ..eval.scoring import encode_continuation, encode_prompt
from ..itemtext import item_text
from ..prompts import chat_prompt, complete_message, fitb_answer, fitb_message

KINDS = ("complete", "fitb")


@dataclass(frozen=True)
class Example:
    """One prompt/completion pair; ``prompt`` is the user message (not yet chat-templated)."""

    prompt: str
    completion: str
    kind: str
    outfit_id: str


@dataclass(frozen=True)
class EncodedExample:
    """Token ids of chat prompt + completion + end-of-turn; loss only on ``tokens[prompt_length:]``."""

    tokens: list[int]
    prompt_length: int

    @property
    def completion_length(self) -> int:
        return len(self.tokens) - self.prompt_length


def outfit_examples(catalog: Catalog, split: str | None = "train", kinds: Sequence[str] = KINDS,
                    n_candidates: int = 4, seed: int = 0) -> list[Example]:
    """One example of each kind per outfit of ``split``, each with its own random blank.

    FITB distractors are drawn from the items of the same category that appear in the split's
    outfits (falling back to the whole catalog), never from the outfit itself.
    """
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown example kind(s) {sorted(unknown)}; choose from {KINDS}")
    rng = random.Random(seed)
    outfits = [o for o in catalog.outfits_in(split) if len(o.items) >= 2]
    split_pool = _category_pool(catalog, dict.fromkeys(i for o in outfits for i in o.items))
    catalog_pool = _category_pool(catalog, catalog.items)
    examples: list[Example] = []
    for outfit in outfits:
        items = [catalog.items[i] for i in outfit.items]
        for kind in kinds:
            blank = rng.randrange(len(items))
            given, missing = items[:blank] + items[blank + 1:], items[blank]
            if kind == "complete":
                examples.append(Example(complete_message(given, missing.category), item_text(missing),
                                        kind, outfit.id))
                continue
            candidates = _distractors(split_pool[missing.category], outfit.items, n_candidates - 1, rng) or \
                _distractors(catalog_pool[missing.category], outfit.items, n_candidates - 1, rng)
            if not candidates:
                continue
            answer = rng.randrange(len(candidates) + 1)
            candidates.insert(answer, missing)
            examples.append(Example(fitb_message(given, missing.category, candidates),
                                    fitb_answer(answer, missing), kind, outfit.id))
    return examples


def encode_example(tokenizer, example: Example) -> EncodedExample:
    """Tokenize exactly as evaluation scores answers: ``chat_prompt``, then the answer and the end-of-turn token."""
    prompt = encode_prompt(tokenizer, chat_prompt(tokenizer, example.prompt))
    return EncodedExample(prompt + encode_continuation(tokenizer, example.completion), len(prompt))


def encode_examples(tokenizer, examples: Sequence[Example], max_seq: int) -> tuple[list[EncodedExample], int]:
    """Encode all examples; those longer than ``max_seq`` tokens are dropped (returns how many)."""
    encoded = [encode_example(tokenizer, e) for e in examples]
    kept = [e for e in encoded if len(e.tokens) <= max_seq]
    return kept, len(encoded) - len(kept)


def _distractors(pool: list[Item], outfit: list[str], k: int, rng: random.Random) -> list[Item]:
    """Up to ``k`` random items of ``pool`` not in the outfit (samples a few spare, no full scan of big pools)."""
    drawn = rng.sample(pool, min(len(pool), k + len(outfit)))
    return [item for item in drawn if item.id not in outfit][:k]


def _category_pool(catalog: Catalog, item_ids: Iterable[str]) -> dict[str, list[Item]]:
    pool: dict[str, list[Item]] = {}
    for item_id in item_ids:
        item = catalog.items[item_id]
        pool.setdefault(item.category, []).append(item)
    return pool
