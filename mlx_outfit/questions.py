"""Outfit-level train/valid/test split, and FITB / retrieval questions (the question file format).

A question file is JSON lines, one question per line::

    {"id": "1234", "outfit": [given item ids], "candidates": [item ids],
     "answer": index of the true item in candidates, "category": the blank's category}

Fill-in-the-blank (FITB) and retrieval questions share this format; they differ only in
the number of candidates (4 and 100 by default). Files written elsewhere are accepted
too: :func:`read_questions` checks every line against the catalog.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from .catalog import SPLITS, Catalog, Outfit
from .errors import UserError
from .fileio import atomic_write_jsonl, read_jsonl

TASK_CANDIDATES = {"fitb": 4, "retrieval": 100}
MIN_OUTFIT_ITEMS = 3  # the blank plus at least two given items


@dataclass
class Question:
    id: str
    outfit: list[str]
    candidates: list[str]
    answer: int
    category: str


def split_catalog(catalog: Catalog, valid: float = 0.1, test: float = 0.1, seed: int = 0) -> dict[str, int]:
    """Assign every outfit to train / valid / test; returns outfits per split.

    Outfits with the same item set always land in the same split, so no test outfit is
    also seen in training. Deterministic for a given catalog and seed.
    """
    for name, fraction in (("valid", valid), ("test", test)):
        if not 0 <= fraction < 1:
            raise UserError(f"--{name} must be a fraction in [0, 1), got {fraction}")
    if valid + test >= 1:
        raise UserError(f"--valid + --test must leave some outfits for training, got {valid + test:g}")
    if not catalog.outfits:
        raise UserError("catalog has no outfits to split (a photo-folder import has none)", str(catalog.root))
    groups: dict[frozenset[str], list[Outfit]] = {}
    for outfit in catalog.outfits:
        groups.setdefault(outfit.key, []).append(outfit)
    order = list(groups.values())
    random.Random(seed).shuffle(order)
    total = len(catalog.outfits)
    targets = {"test": round(test * total), "valid": round(valid * total)}
    counts = dict.fromkeys(SPLITS, 0)
    for group in order:
        split = next((s for s in ("test", "valid") if counts[s] < targets[s]), "train")
        for outfit in group:
            outfit.split = split
        counts[split] += len(group)
    return counts


def build_questions(catalog: Catalog, task: str = "fitb", split: str = "test", n_candidates: int | None = None,
                    seed: int = 0, notes: list[str] | None = None) -> list[Question]:
    """One question per outfit of ``split`` with at least three items.

    The blank is a seeded random item of the outfit; its negatives are random items of the
    same category from the whole catalog, never items of the outfit. A category with too
    few items gives fewer candidates (reported in ``notes``). Each question depends only on
    the seed, its outfit and the catalog's items, so adding outfits leaves the others as they were.
    """
    if task not in TASK_CANDIDATES:
        raise UserError(f"unknown task '{task}' (choose from {', '.join(TASK_CANDIDATES)})")
    n_candidates = TASK_CANDIDATES[task] if n_candidates is None else n_candidates
    if n_candidates < 2:
        raise UserError(f"--candidates must be at least 2, got {n_candidates}")
    by_category = catalog.categories()
    questions: list[Question] = []
    short, no_negatives = 0, 0
    for outfit in catalog.outfits_in(split):
        if len(outfit.items) < MIN_OUTFIT_ITEMS:
            continue
        rng = random.Random(f"{seed}:{outfit.id}")
        members = set(outfit.items)
        in_outfit = Counter(catalog.items[i].category for i in outfit.items)
        # Only an item whose category has items outside the outfit can be the blank.
        blanks = [i for i in outfit.items
                  if len(by_category[catalog.items[i].category]) > in_outfit[catalog.items[i].category]]
        if not blanks:
            no_negatives += 1
            continue
        blank = rng.choice(blanks)
        pool = [i for i in by_category[catalog.items[blank].category] if i not in members]
        negatives = rng.sample(pool, min(n_candidates - 1, len(pool)))
        short += len(negatives) < n_candidates - 1
        answer = rng.randrange(len(negatives) + 1)
        candidates = negatives[:answer] + [blank] + negatives[answer:]
        questions.append(Question(id=outfit.id, outfit=[i for i in outfit.items if i != blank],
                                  candidates=candidates, answer=answer, category=catalog.items[blank].category))
    if notes is not None:
        if short:
            notes.append(f"{short} of {len(questions)} questions have fewer than {n_candidates} candidates: "
                         "their category has too few items")
        if no_negatives:
            notes.append(f"skipped {no_negatives} outfits whose categories have no items outside the outfit")
    if not questions:
        raise UserError(f"no outfits with {MIN_OUTFIT_ITEMS}+ items in split '{split}'", str(catalog.root))
    return questions


def write_questions(path: str | Path, questions: list[Question]) -> None:
    atomic_write_jsonl(path, (asdict(q) for q in questions))


def read_questions(path: str | Path, catalog: Catalog) -> list[Question]:
    """Read and check a question file: ids known to the catalog, answer a valid index.

    ``category`` may be left out; it then defaults to the true item's category.
    """
    path = Path(path)
    questions: list[Question] = []
    first_line: dict[str, int] = {}
    for line, row in read_jsonl(path):
        where = (str(path), line)
        missing = [k for k in ("id", "outfit", "candidates", "answer") if k not in row]
        if missing:
            raise UserError(f"question needs {', '.join(missing)}", *where)
        qid = str(row["id"])
        if qid in first_line:
            raise UserError(f"question id {qid} repeats line {first_line[qid]}", *where)
        outfit, candidates, answer = row["outfit"], row["candidates"], row["answer"]
        if not isinstance(outfit, list) or not isinstance(candidates, list) or not candidates:
            raise UserError("'outfit' and 'candidates' must be lists of item ids (candidates non-empty)", *where)
        outfit, candidates = [str(i) for i in outfit], [str(i) for i in candidates]
        unknown = [i for i in outfit + candidates if i not in catalog.items]
        if unknown:
            raise UserError(f"unknown item id(s) {', '.join(unknown[:5])} (not in catalog {catalog.root})", *where)
        if len(set(candidates)) < len(candidates):
            raise UserError("a candidate is listed twice", *where)
        if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(candidates):
            raise UserError(f"'answer' must be an index into the {len(candidates)} candidates, got {answer!r}", *where)
        category = row.get("category") or catalog.items[candidates[answer]].category
        first_line[qid] = line
        questions.append(Question(id=qid, outfit=outfit, candidates=candidates, answer=answer,
                                  category=str(category)))
    if not questions:
        raise UserError("no questions in file", str(path))
    return questions
