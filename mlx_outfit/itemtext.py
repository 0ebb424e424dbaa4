"""The one place that decides what the LLM sees about an item.

Every prompt (training examples, evaluation scoring, DPO pairs, recommend) describes an
item through :func:`item_text`, so a model is always trained and judged on the same view.
"""

from __future__ import annotations

from .catalog import Item

# Attributes worth a few tokens when the caption/title does not already say them.
KEY_ATTRIBUTES = ("colour", "type", "fabric")
# A caption names the colours it sees; catalog colour groups are coarser and can contradict
# it (MANGO files black under "grey"), so they are left out once an item is captioned.
CAPTION_SUPERSEDES = ("colour",)
MAX_WORDS = 20


def item_text(item: Item, max_words: int = MAX_WORDS) -> str:
    """A compact lower-case description: title, then caption, then key attributes not yet mentioned."""
    pieces: list[str] = []
    for text in (item.title, item.caption):
        text = " ".join((text or "").split())
        if text and text.lower() not in " ".join(pieces).lower():
            pieces.append(text)
    said = " ".join(pieces).lower()
    for key in KEY_ATTRIBUTES:
        if item.caption and key in CAPTION_SUPERSEDES:
            continue
        value = (item.attributes.get(key) or "").strip()
        if value and value.lower() not in said:
            pieces.append(value)
            said += " " + value.lower()
    if not pieces:
        pieces.append(item.category)
    words = ", ".join(pieces).lower().split()
    return " ".join(words[:max_words])
