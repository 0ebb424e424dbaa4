"""Accept / reject feedback on recommended outfits, kept in SQLite beside the wardrobe, turned into DPO pairs.

The database is ``<wardrobe>/feedback.sqlite`` (for the packaged sample wardrobe, which is
never written to, it lives in the user cache instead). One row per verdict:

``feedback(id, created_at, wardrobe, anchor, context, items, verdict, rejected_item, model, adapter)``

``items`` is the outfit's item ids (JSON list, anchor first), ``verdict`` is ``accept`` or
``reject``, ``rejected_item`` names the single item the user rejected (null when the whole
outfit was judged).

Preference pairs (:func:`feedback_pairs`) compare answers to the same question, the way
recommend asks it: "name one <category> that completes this outfit".

* whole outfits: for an accepted and a rejected outfit around the same anchor and context,
  each category where they differ gives a pair — prompt: anchor (+ context) and the category;
  chosen: the accepted outfit's item; rejected: the rejected outfit's item.
* one rejected item: prompt: the rest of that outfit and the item's category; chosen: the
  item of that category in an accepted outfit around the same anchor and context; rejected:
  the rejected item.

Feedback with nothing to compare against (only rejections, or only acceptances) gives no pair.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from ..catalog import Catalog, Item
from ..errors import UserError
from ..itemtext import item_text
from ..models.default import cache_dir
from ..prompts import complete_message
from .sample import is_sample_wardrobe

FEEDBACK_FILE = "feedback.sqlite"
VERDICTS = ("accept", "reject")

SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    wardrobe TEXT NOT NULL,
    anchor TEXT,
    context TEXT,
    items TEXT NOT NULL,
    verdict TEXT NOT NULL CHECK (verdict IN ('accept', 'reject')),
    rejected_item TEXT,
    model TEXT,
    adapter TEXT
)
"""


@dataclass(frozen=True)
class Feedback:
    wardrobe: str
    anchor: str | None
    context: str | None
    items: tuple[str, ...]
    verdict: str
    rejected_item: str | None = None
    model: str | None = None
    adapter: str | None = None
    created_at: str = ""
    id: int | None = None


def feedback_path(wardrobe: str | Path) -> Path:
    """Where a wardrobe's feedback lives: beside its catalog (the sample wardrobe's: in the user cache)."""
    if is_sample_wardrobe(wardrobe):
        return cache_dir() / "sample-wardrobe-feedback.sqlite"
    return Path(wardrobe) / FEEDBACK_FILE


def _connect(db: str | Path) -> sqlite3.Connection:
    db = Path(db)
    db.parent.mkdir(parents=True, exist_ok=True)
    try:
        connection = sqlite3.connect(db)
        connection.execute(SCHEMA)
    except sqlite3.DatabaseError as e:
        raise UserError(f"cannot use feedback database ({e})", str(db)) from None
    return connection


def record_feedback(db: str | Path, feedback: Feedback) -> int:
    """Store one verdict (committed at once, so a Ctrl-C later loses nothing); returns its row id."""
    if feedback.verdict not in VERDICTS:
        raise UserError(f"verdict must be one of {', '.join(VERDICTS)}, not '{feedback.verdict}'")
    if feedback.rejected_item is not None and (feedback.verdict != "reject" or
                                               feedback.rejected_item not in feedback.items):
        raise UserError("a rejected item must be one of the rejected outfit's items")
    created = feedback.created_at or datetime.now(timezone.utc).isoformat(timespec="seconds")
    with _connect(db) as connection:
        cursor = connection.execute(
            "INSERT INTO feedback (created_at, wardrobe, anchor, context, items, verdict, rejected_item, model,"
            " adapter) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (created, feedback.wardrobe, feedback.anchor, feedback.context, json.dumps(list(feedback.items)),
             feedback.verdict, feedback.rejected_item, feedback.model, feedback.adapter))
        row_id = cursor.lastrowid
    connection.close()
    return row_id


def read_feedback(db: str | Path) -> list[Feedback]:
    """All stored verdicts, oldest first."""
    if not Path(db).is_file():
        raise UserError("no feedback yet (run `mlx-outfit recommend --feedback`)", str(db))
    connection = _connect(db)
    rows = connection.execute("SELECT id, created_at, wardrobe, anchor, context, items, verdict, rejected_item,"
                              " model, adapter FROM feedback ORDER BY id").fetchall()
    connection.close()
    return [Feedback(id=r[0], created_at=r[1], wardrobe=r[2], anchor=r[3], context=r[4],
                     items=tuple(json.loads(r[5])), verdict=r[6], rejected_item=r[7], model=r[8], adapter=r[9])
            for r in rows]


@dataclass(frozen=True)
class FeedbackPair:
    """One preference: the user message (not chat-templated), the preferred and the rejected answer."""

    prompt: str
    chosen: str
    rejected: str
    category: str


def _by_category(catalog: Catalog, ids: Sequence[str]) -> dict[str, Item]:
    return {catalog.items[i].category: catalog.items[i] for i in ids}


def feedback_pairs(db: str | Path, catalog: Catalog) -> list[FeedbackPair]:
    """Preference pairs from the stored feedback on ``catalog`` (rules in the module docstring), de-duplicated."""
    rows = [f for f in read_feedback(db) if all(i in catalog.items for i in f.items)]
    pairs: dict[tuple[str, str, str], FeedbackPair] = {}
    groups: dict[tuple[str | None, str | None], list[Feedback]] = {}
    for row in rows:
        groups.setdefault((row.anchor, row.context), []).append(row)
    for (anchor_id, context), group in groups.items():
        accepted = [f for f in group if f.verdict == "accept"]
        anchor = [catalog.items[anchor_id]] if anchor_id in catalog.items else []
        for rejected in (f for f in group if f.verdict == "reject"):
            for good in accepted:
                chosen_by_category = _by_category(catalog, good.items)
                if rejected.rejected_item is not None:
                    bad = catalog.items[rejected.rejected_item]
                    rest = [catalog.items[i] for i in rejected.items if i != bad.id]
                    comparisons = [(rest, bad)]
                else:
                    comparisons = [(anchor, bad) for bad in _by_category(catalog, rejected.items).values()
                                   if not anchor or bad.id != anchor[0].id]
                for given, bad in comparisons:
                    good_item = chosen_by_category.get(bad.category)
                    if good_item is None or good_item.id == bad.id:
                        continue
                    pair = FeedbackPair(complete_message(given, bad.category, context), item_text(good_item),
                                        item_text(bad), bad.category)
                    pairs.setdefault((pair.prompt, pair.chosen, pair.rejected), pair)
    return list(pairs.values())
