"""Preference pairs for DPO: what to prefer, what to reject, and where each pair came from.

A pairs file is JSON lines, one pair per line::

    {"prompt": user message, "chosen": answer text, "rejected": answer text,
     "source": "fitb" | "hard" | "feedback", "id": where it came from}

``prompt`` is the plain user message; the chat template of whichever model trains on it is
applied at training time, so one pairs file serves every model. Three sources:

* ``fitb``: a training-split FITB question; chosen = the true item's text, rejected = a
  random wrong candidate of the same category.
* ``hard``: the current model's mistakes: every wrong candidate it ranks at or above the
  true item, by the ranking evaluation uses (:func:`mistake_pairs`).
* ``feedback``: likes / dislikes a user gave ``mlx-outfit recommend``, read from the local
  feedback store (:mod:`mlx_outfit.recommend.feedback`).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from ..catalog import Catalog
from ..errors import UserError
from ..eval.runner import DEFAULT_AGGREGATE, ranking_scores
from ..fileio import atomic_write_jsonl, read_jsonl
from ..itemtext import item_text
from ..prompts import complete_message
from ..questions import Question, build_questions

PAIR_SOURCES = ("fitb", "hard", "feedback")


@dataclass(frozen=True)
class Pair:
    prompt: str
    chosen: str
    rejected: str
    source: str = "fitb"
    id: str = ""


def write_pairs(path: str | Path, pairs: Sequence[Pair]) -> None:
    atomic_write_jsonl(path, (asdict(p) for p in pairs))


def read_pairs(path: str | Path) -> list[Pair]:
    """Read and check a pairs file (UserError naming file:line on a bad line)."""
    pairs = []
    for line, row in read_jsonl(path):
        texts = [row.get(k) for k in ("prompt", "chosen", "rejected")]
        if not all(isinstance(t, str) and t.strip() for t in texts):
            raise UserError("a pair needs non-empty string 'prompt', 'chosen' and 'rejected'", str(path), line)
        if texts[1] == texts[2]:
            raise UserError("'chosen' and 'rejected' are the same text", str(path), line)
        source = row.get("source", "fitb")
        if source not in PAIR_SOURCES:
            raise UserError(f"unknown source '{source}' (choose from {', '.join(PAIR_SOURCES)})", str(path), line)
        pairs.append(Pair(*texts, source=source, id=str(row.get("id", ""))))
    if not pairs:
        raise UserError("no pairs in file", str(path))
    return pairs


def question_message(catalog: Catalog, question: Question) -> str:
    """The user message of a question: the given items, asking for the blank's category."""
    return complete_message([catalog.items[i] for i in question.outfit], question.category)


def _pair(catalog: Catalog, question: Question, rejected_id: str, source: str) -> Pair | None:
    chosen = item_text(catalog.items[question.candidates[question.answer]])
    rejected = item_text(catalog.items[rejected_id])
    if chosen == rejected:  # two items described alike teach nothing
        return None
    return Pair(question_message(catalog, question), chosen, rejected, source, f"{question.id}:{rejected_id}")


def question_pairs(catalog: Catalog, questions: Sequence[Question], seed: int = 0) -> list[Pair]:
    """One pair per question: the true item over a random wrong candidate of its category."""
    rng = random.Random(seed)
    pairs = []
    for q in questions:
        wrong = [c for i, c in enumerate(q.candidates)
                 if i != q.answer and catalog.items[c].category == q.category]
        if wrong and (pair := _pair(catalog, q, rng.choice(wrong), "fitb")):
            pairs.append(pair)
    return pairs


def training_pairs(catalog: Catalog, n_candidates: int = 4, seed: int = 0) -> list[Pair]:
    """FITB pairs from the catalog's training split, plus the user's feedback pairs when there are any."""
    questions = build_questions(catalog, "fitb", "train", n_candidates, seed)
    return question_pairs(catalog, questions, seed) + stored_feedback_pairs(catalog)


def stored_feedback_pairs(catalog: Catalog) -> list[Pair]:
    """Pairs from the recommend feedback store of ``catalog`` (none when nobody gave feedback)."""
    from ..recommend.feedback import feedback_pairs, feedback_path

    db = feedback_path(catalog.root)
    if not db.is_file():
        return []
    return [Pair(p.prompt, p.chosen, p.rejected, "feedback", f"feedback:{p.category}")
            for p in feedback_pairs(db, catalog) if p.chosen != p.rejected]


def mistake_pairs(catalog: Catalog, questions: Sequence[Question], predictions: Sequence[dict],
                  aggregate: str = DEFAULT_AGGREGATE) -> list[Pair]:
    """Hard pairs: every wrong candidate ranked at or above the true item, ranked as evaluation ranks.

    ``predictions`` are the rows of :func:`mlx_outfit.eval.runner.evaluate_questions`, in question order.
    """
    pairs = []
    for q, row in zip(questions, predictions):
        scores = ranking_scores(row, aggregate)
        for i, candidate in enumerate(q.candidates):
            if i != q.answer and scores[i] >= scores[q.answer] and (pair := _pair(catalog, q, candidate, "hard")):
                pairs.append(pair)
    return pairs
