"""Build outfits from a wardrobe around an anchor item: retrieve, re-rank with the model, explain.

For each needed category the wardrobe's items of that category are the candidates (a large
category is first cut to ``max_candidates`` by the model's score given the anchor alone);
the model then scores each candidate as the answer to "name one <category> that completes
this outfit", with everything picked so far in the prompt (shared-prefix scoring, so the
prompt is computed once per question). Outfits are built one after another, greedily over
categories; an item already used by an earlier outfit is penalised by ``diversity`` so the
``n`` outfits differ, and an item set already produced is never produced twice. Scores are
mean log-probabilities per answer token (higher is better; 0 would be certain).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from ..catalog import Catalog, Item
from ..errors import UserError
from ..itemtext import item_text
from ..prompts import chat_prompt, complete_message, outfit_lines

DEFAULT_ADAPTER = Path(__file__).resolve().parents[2] / "weights" / "default-adapter"
REASON_TOKENS = 48
SENTENCE_END = re.compile(r"[.!?](\s|$)|\n")


@dataclass
class Pick:
    item: Item
    score: float  # mean log-probability per token of the item's text as the answer


@dataclass
class Recommendation:
    anchor: Item | None
    picks: list[Pick]
    reason: str = ""

    @property
    def items(self) -> list[Item]:
        return ([self.anchor] if self.anchor else []) + [p.item for p in self.picks]

    @property
    def score(self) -> float:
        """Mean of the picks' scores (the anchor is given, not scored)."""
        return sum(p.score for p in self.picks) / max(len(self.picks), 1)


@dataclass
class Recommender:
    """A loaded model (loaded once per process) plus scoring settings."""

    model: object
    tokenizer: object
    model_name: str
    adapter: Path | None
    batch_size: int = 16
    score_cache: dict = field(default_factory=dict, repr=False)  # question -> scores, for this process

    def score(self, given: Sequence[Item], category: str, candidates: Sequence[Item],
              context: str | None) -> list[float]:
        """Mean log-probability of each candidate completing ``given``; memoised per question."""
        from ..eval.scoring import score_continuations

        key = (tuple(i.id for i in given), category, context, tuple(c.id for c in candidates))
        if key not in self.score_cache:
            prompt = chat_prompt(self.tokenizer, complete_message(given, category, context))
            scores = score_continuations(self.model, self.tokenizer, prompt, [item_text(c) for c in candidates],
                                         batch_size=self.batch_size)
            self.score_cache[key] = [s.logprob_mean for s in scores]
        return self.score_cache[key]


def is_local_model(model: str) -> bool:
    return model == "default" or Path(model).expanduser().is_dir()


def go_offline() -> None:
    """Put the Hugging Face hub (and transformers) in offline mode: nothing below may reach the network."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import huggingface_hub.constants as hub_constants

    hub_constants.HF_HUB_OFFLINE = True  # read at call time by snapshot_download; the env var only at import


def resolve_adapter(model: str, adapter: str | Path | None) -> Path | None:
    """``"auto"``: the shipped adapter when the model is the default one and it exists; ``"none"``: no adapter."""
    if adapter is None or str(adapter).lower() == "none":
        return None
    if str(adapter) == "auto":
        shipped = DEFAULT_ADAPTER / "adapter_config.json"
        return DEFAULT_ADAPTER if model == "default" and shipped.is_file() else None
    path = Path(adapter).expanduser()
    if not (path / "adapter_config.json").is_file():
        raise UserError("not an adapter folder (missing adapter_config.json)", str(path))
    return path


def load_recommender(model: str = "default", adapter: str | Path | None = "auto", batch_size: int = 16,
                     dense_on_cpu: bool = True) -> Recommender:
    """Load the model once; a local model (the default one or a folder) is loaded with the hub offline.

    On the CPU backend the weights are dequantized for speed (``dense_on_cpu``); on a GPU they stay 4-bit.
    """
    from ..models.loading import load_model, on_cpu, resolve_model

    adapter_path = resolve_adapter(model, adapter)
    local = is_local_model(model)
    path = resolve_model(model)  # "default" is fetched here on first use (the public base model, no user data)
    if local:
        go_offline()
    # MLX's CPU quantized matmul is ~15x slower than a dense fp32 one (OpenBLAS) on the
    # many-token prompts scoring runs; the dense copy gives the same scores.
    loaded, tokenizer = load_model(path, adapter_path=adapter_path, dequantize=dense_on_cpu and on_cpu())
    return Recommender(loaded, tokenizer, model, adapter_path, batch_size)


def context_text(occasion: str | None = None, season: str | None = None) -> str | None:
    """The prompt's "Outfit for ..." context, e.g. ``"a job interview, winter"``."""
    parts = [p.strip() for p in (occasion, season) if p and p.strip()]
    return ", ".join(parts) or None


def needed_categories(catalog: Catalog, anchor: Item | None, categories: Sequence[str] | None = None,
                      max_categories: int = 6, min_share: float = 0.25) -> list[str]:
    """The categories to fill, never the anchor's.

    Explicit ``categories`` win. Otherwise, when the wardrobe has outfits, categories are added
    greedily by how many outfits contain all categories chosen so far plus the new one (so
    "jeans" and "trousers" are not both chosen) until fewer than ``min_share`` of those outfits
    would keep it; without outfits, every category of the wardrobe is needed.
    """
    own = anchor.category if anchor else None
    present = catalog.categories()
    if categories:
        unknown = [c for c in categories if c not in present]
        if unknown:
            raise UserError(f"no items of category {', '.join(unknown)} in the wardrobe "
                            f"(it has: {', '.join(sorted(present))})")
        return [c for c in dict.fromkeys(categories) if c != own]
    outfit_categories = [{catalog.items[i].category for i in o.items} for o in catalog.outfits]
    if not outfit_categories:
        return [c for c in present if c != own]
    chosen: set[str] = {own} if own else set()
    ordered: list[str] = []
    while len(ordered) < max_categories:
        containing = [cats for cats in outfit_categories if chosen <= cats]
        counts = Counter(c for cats in containing for c in cats if c not in chosen and c in present)
        if not counts:
            break
        best, count = counts.most_common(1)[0]
        if ordered and count < min_share * len(containing):
            break
        chosen.add(best)
        ordered.append(best)
    return ordered or [c for c in present if c != own]  # the anchor's category is in no outfit


def candidates_for(recommender: Recommender, catalog: Catalog, category: str, anchor: Item | None,
                   context: str | None, max_candidates: int) -> list[Item]:
    """All items of ``category``; a large category is cut to the best ``max_candidates`` given the anchor alone."""
    pool = [catalog.items[i] for i in catalog.categories().get(category, [])]
    if anchor is not None:
        pool = [i for i in pool if i.id != anchor.id]
    if len(pool) <= max_candidates:
        return pool
    scores = recommender.score([anchor] if anchor else [], category, pool, context)
    ranked = sorted(range(len(pool)), key=lambda k: -scores[k])
    return [pool[k] for k in ranked[:max_candidates]]


def build_outfits(recommender: Recommender, catalog: Catalog, anchor: Item | None, categories: Sequence[str],
                  context: str | None, n: int = 3, max_candidates: int = 24,
                  diversity: float = 1.0) -> list[Recommendation]:
    """Up to ``n`` distinct outfits, one item per category (fewer when the greedy search finds no new item set)."""
    if not categories:
        raise UserError("nothing to recommend: the wardrobe has no category besides the anchor's")
    pools = {c: candidates_for(recommender, catalog, c, anchor, context, max_candidates) for c in categories}
    empty = [c for c, pool in pools.items() if not pool]
    if empty:
        raise UserError(f"no candidates of category {', '.join(empty)} in the wardrobe")
    used: Counter[str] = Counter()
    seen: set[frozenset[str]] = set()
    outfits: list[Recommendation] = []
    for _ in range(n):
        given: list[Item] = [anchor] if anchor else []
        picks: list[Pick] = []
        for position, category in enumerate(categories):
            pool = pools[category]
            scores = recommender.score(given, category, pool, context)
            order = sorted(range(len(pool)), key=lambda k: -(scores[k] - diversity * used[pool[k].id]))
            last = position == len(categories) - 1
            chosen = next((k for k in order if not last or
                           frozenset([*(i.id for i in given), pool[k].id]) not in seen), None)
            if chosen is None:
                break
            picks.append(Pick(pool[chosen], scores[chosen]))
            given.append(pool[chosen])
        if len(picks) < len(categories):
            break  # every combination left would repeat an earlier outfit
        outfit = Recommendation(anchor, picks)
        seen.add(frozenset(i.id for i in outfit.items))
        used.update(p.item.id for p in picks)
        outfits.append(outfit)
    return outfits


def reason_message(outfit: Recommendation, context: str | None) -> str:
    return "\n".join([f"Outfit{f' for {context}' if context else ''}:", outfit_lines(outfit.items),
                      "In one short sentence, why do these items go well together?"])


@contextlib.contextmanager
def lora_disabled(model) -> Iterator[None]:
    """Run the base model inside the block: every LoRA layer's scale is 0, then restored.

    The outfit adapter is trained to name items, not to explain; the base model writes the reason.
    """
    layers = [m for _, m in model.named_modules() if hasattr(m, "lora_a") and hasattr(m, "scale")]
    scales = [m.scale for m in layers]
    for layer in layers:
        layer.scale = 0.0
    try:
        yield
    finally:
        for layer, scale in zip(layers, scales):
            layer.scale = scale


def write_reason(recommender: Recommender, outfit: Recommendation, context: str | None,
                 max_tokens: int = REASON_TOKENS) -> str:
    """A short model-written reason: the first sentence (or line) of the base model's greedy answer."""
    from ..models.generation import stream_text

    text = ""
    with lora_disabled(recommender.model):
        for piece in stream_text(recommender.model, recommender.tokenizer, reason_message(outfit, context),
                                 max_tokens=max_tokens, temperature=0.0):
            text += piece
            if SENTENCE_END.search(text.lstrip()):
                break  # one sentence is all we show: stop generating (each token costs time on a laptop)
    text = text.lstrip()
    end = SENTENCE_END.search(text)
    return " ".join((text[: end.start() + 1] if end else text).split())


def recommend(recommender: Recommender, catalog: Catalog, anchor_id: str | None = None,
              occasion: str | None = None, season: str | None = None, n: int = 3,
              categories: Sequence[str] | None = None, max_candidates: int = 24, diversity: float = 1.0,
              reasons: bool = True) -> list[Recommendation]:
    """Recommend ``n`` outfits from ``catalog`` around ``anchor_id`` (or from the occasion alone)."""
    if n < 1:
        raise UserError("-n must be at least 1")
    if anchor_id is not None and anchor_id not in catalog.items:
        raise UserError(f"no item with id '{anchor_id}' in the wardrobe", str(catalog.root))
    if not catalog.items:
        raise UserError("the wardrobe is empty", str(catalog.root))
    anchor = catalog.items[anchor_id] if anchor_id is not None else None
    context = context_text(occasion, season)
    outfits = build_outfits(recommender, catalog, anchor, needed_categories(catalog, anchor, categories),
                            context, n, max_candidates, diversity)
    if reasons:
        for outfit in outfits:
            outfit.reason = write_reason(recommender, outfit, context)
    return outfits


def recommendations_dict(catalog: Catalog, recommender: Recommender, outfits: Sequence[Recommendation],
                         context: str | None) -> dict:
    """The ``recommend --json`` document (schema in docs/recommend.md)."""

    def item_row(item, score, is_anchor):
        image = catalog.image_path(item)
        return {"id": item.id, "category": item.category, "description": item_text(item), "score": score,
                "anchor": is_anchor, "image": str(image) if image else None}

    anchor = outfits[0].anchor if outfits else None
    return {
        "wardrobe": str(catalog.root), "model": recommender.model_name,
        "adapter": str(recommender.adapter) if recommender.adapter else None,
        "anchor": anchor.id if anchor else None, "context": context,
        "outfits": [{"rank": rank, "score": round(o.score, 4), "reason": o.reason,
                     "items": ([item_row(anchor, None, True)] if anchor else [])
                     + [item_row(p.item, round(p.score, 4), False) for p in o.picks]}
                    for rank, o in enumerate(outfits, start=1)],
    }
