"""Prompt texts shared by training, evaluation, DPO and recommend.

Kept compact on purpose: every prompt token costs time on a laptop CPU. Item descriptions
always come from :func:`mlx_outfit.itemtext.item_text`.
"""

from __future__ import annotations

import string
from typing import Sequence

from .catalog import Item
from .itemtext import item_text

LETTERS = string.ascii_uppercase


def outfit_lines(items: Sequence[Item]) -> str:
    return "\n".join(f"- {item.category}: {item_text(item)}" for item in items)


def complete_message(given: Sequence[Item], category: str, context: str | None = None) -> str:
    """User message asking for the missing item; the answer is the item's text."""
    lines = [f"Outfit{f' for {context}' if context else ''}:", outfit_lines(given),
             f"Name one {category} that completes it."]
    return "\n".join(lines)


def fitb_message(given: Sequence[Item], category: str, candidates: Sequence[Item]) -> str:
    """User message for lettered multiple choice; the answer is ``fitb_answer``."""
    if len(candidates) > len(LETTERS):
        raise ValueError(f"at most {len(LETTERS)} lettered candidates")
    options = "\n".join(f"{LETTERS[i]}. {item_text(c)}" for i, c in enumerate(candidates))
    return "\n".join([f"Outfit:\n{outfit_lines(given)}", f"Which {category} completes it?", options,
                      "Answer with the letter."])


def fitb_answer(index: int, item: Item) -> str:
    return f"{LETTERS[index]}. {item_text(item)}"


def chat_prompt(tokenizer, user_message: str) -> str:
    """The full prompt string the model sees before its answer (chat template when it has one)."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([{"role": "user", "content": user_message}],
                                             add_generation_prompt=True, tokenize=False)
    return user_message + "\n"
