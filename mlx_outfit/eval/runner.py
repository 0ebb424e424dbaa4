"""Evaluate a scorer on a question file: score, rank, save predictions as they come, summarise.

Predictions file (``--out``): a JSON-lines file whose first line is ``{"run": {...}}`` (what
produced it) and then one line per question ``{"id", "category", "answer", "scores"}``
(+ ``"n_tokens"`` per candidate for the LLM scorer, whose ``scores`` are log-probability
sums). Each line is flushed to disk as soon as its question is scored, so an interrupted run
resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..catalog import Catalog, load_catalog
from ..errors import UserError
from ..fileio import append_jsonl
from ..questions import Question, read_questions
from .metrics import question_metrics, summarize
from .scoring import PromptCache, score_question

SCORERS = ("llm", "cooccurrence", "random")
AGGREGATES = ("mean", "sum")
# Chosen by measurement on the test-split questions (docs/eval.md).
DEFAULT_AGGREGATE = "mean"

Scorer = Callable[[Question], dict]
Progress = Callable[[int, int], None]


@dataclass
class LLMScorer:
    """Log-likelihood of each candidate's item text given the outfit prompt (shared-prefix scoring)."""

    model: object
    tokenizer: object
    catalog: Catalog
    batch_size: int = 16
    prompt_cache: PromptCache = field(default_factory=PromptCache)

    def __call__(self, question: Question) -> dict[str, list]:
        scores = score_question(self.model, self.tokenizer, self.catalog, question, self.batch_size,
                                prompt_cache=self.prompt_cache)
        return {"scores": [s.logprob_sum for s in scores], "n_tokens": [s.n_tokens for s in scores]}


def make_scorer(kind: str, catalog: Catalog, model: str = "default", adapter: str | Path | None = None,
                batch_size: int = 16, seed: int = 0) -> Scorer:
    """Build a scorer by name: ``llm`` (loads ``model`` + optional LoRA ``adapter``), ``cooccurrence``, ``random``."""
    if kind == "llm":
        from ..models.loading import load_model, on_cpu

        # Dense copies of the quantized weights: same scores, ~15x faster through BLAS on a CPU.
        llm, tokenizer = load_model(model, adapter, dequantize=on_cpu())
        return LLMScorer(llm, tokenizer, catalog, batch_size)
    if kind == "cooccurrence":
        from .baselines import CooccurrenceScorer

        return CooccurrenceScorer(catalog)
    if kind == "random":
        from .baselines import RandomScorer

        return RandomScorer(seed)
    raise UserError(f"unknown scorer '{kind}' (choose from {', '.join(SCORERS)})")


def check_aggregate(aggregate: str) -> None:
    if aggregate not in AGGREGATES:
        raise UserError(f"unknown aggregate '{aggregate}' (choose from {', '.join(AGGREGATES)})")


def ranking_scores(row: dict, aggregate: str = DEFAULT_AGGREGATE) -> list[float]:
    """The scores a prediction ranks by: LLM sums are divided by token counts for ``mean``."""
    check_aggregate(aggregate)
    if aggregate == "mean" and "n_tokens" in row:
        return (np.array(row["scores"]) / np.array(row["n_tokens"])).tolist()
    return row["scores"]


def read_predictions(path: str | Path, run: dict) -> dict[str, dict]:
    """Rows already in a predictions file, by question id; it must come from the same ``run``.

    A last line cut short by an interruption is dropped (the file is truncated before it).
    """
    path = Path(path)
    if not path.exists():
        return {}
    rows: dict[str, dict] = {}
    with open(path, "rb") as f:
        lines = f.readlines()
    good_bytes = 0
    for number, line in enumerate(lines, start=1):
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            if number == len(lines) and not line.endswith(b"\n"):
                break  # half-written by an interrupted run: score that question again
            raise UserError("malformed predictions line; delete the file to start over", str(path), number) from None
        good_bytes += len(line)
        if number == 1:
            if row.get("run") != run:
                raise UserError(f"predictions come from another run ({json.dumps(row.get('run'))}); "
                                "use another --out file or delete this one", str(path), 1)
            continue
        if not isinstance(row, dict) or "id" not in row or "scores" not in row:
            raise UserError("not a prediction line; delete the file to start over", str(path), number)
        rows[str(row["id"])] = row
    if good_bytes < path.stat().st_size:
        os.truncate(path, good_bytes)
    return rows


def evaluate_questions(questions: Sequence[Question], scorer: Scorer, out: str | Path | None = None,
                       run: dict | None = None, on_progress: Progress | None = None) -> list[dict]:
    """Prediction rows for all ``questions`` (in order); with ``out`` they are appended as they finish
    and rows already there (from the same ``run``) are reused instead of scored again.

    ``on_progress(finished, total)`` is called once before scoring (counting reused rows) and
    after each newly scored question.
    """
    run = run or {}
    done = read_predictions(out, run) if out else {}
    if out and (not Path(out).exists() or Path(out).stat().st_size == 0):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        append_jsonl(out, {"run": run})
    finished = sum(q.id in done for q in questions)
    if on_progress:
        on_progress(finished, len(questions))
    rows = []
    for question in questions:
        row = done.get(question.id)
        if row is None:
            row = {"id": question.id, "category": question.category, "answer": question.answer, **scorer(question)}
            if len(row["scores"]) != len(question.candidates):
                raise ValueError(f"scorer gave {len(row['scores'])} scores for {len(question.candidates)} candidates")
            if out:
                append_jsonl(out, row)
            finished += 1
            if on_progress:
                on_progress(finished, len(questions))
        rows.append(row)
    return rows


def summarize_predictions(rows: Sequence[dict], aggregate: str = DEFAULT_AGGREGATE, samples: int = 1000,
                          seed: int = 0) -> dict:
    """Metrics with 95% bootstrap intervals and a per-category breakdown (see :func:`metrics.summarize`)."""
    per_question = [question_metrics(ranking_scores(r, aggregate), r["answer"]) for r in rows]
    return summarize(per_question, [r["category"] for r in rows], samples, seed)


def run_evaluation(catalog: str | Path, questions: str | Path, scorer: str = "llm", model: str = "default",
                   adapter: str | Path | None = None, out: str | Path | None = None, batch_size: int = 16,
                   limit: int | None = None, aggregate: str = DEFAULT_AGGREGATE, seed: int = 0,
                   name: str | None = None, on_progress: Progress | None = None) -> dict:
    """The whole ``mlx-outfit eval`` run as a library call; returns the run summary (a JSON-able dict)."""
    if batch_size < 1 or (limit is not None and limit < 1):
        raise UserError(f"--batch-size and --limit must be at least 1, got {batch_size} and {limit}")
    check_aggregate(aggregate)  # before any slow work
    loaded = load_catalog(catalog)
    chosen = read_questions(questions, loaded)[:limit]
    run = {"scorer": scorer, "model": model if scorer == "llm" else None,
           "adapter": str(Path(adapter).resolve()) if adapter and scorer == "llm" else None,
           "questions": str(Path(questions).resolve()), "seed": seed if scorer == "random" else None}
    score = make_scorer(scorer, loaded, model, adapter, batch_size, seed)
    started = time.perf_counter()
    rows = evaluate_questions(chosen, score, out, run, on_progress)
    seconds = time.perf_counter() - started
    summary = {"name": name or default_run_name(run), **run, "catalog": str(catalog), "aggregate": aggregate,
               "candidates": float(np.mean([len(q.candidates) for q in chosen])),
               **summarize_predictions(rows, aggregate, seed=seed), "seconds": round(seconds, 2)}
    if scorer == "llm":
        summary["by_aggregate"] = {a: {k: v for k, v in summarize_predictions(rows, a, seed=seed).items()
                                       if k not in ("ci", "per_category")} for a in AGGREGATES}
    return summary


def default_run_name(run: dict) -> str:
    if run["scorer"] != "llm":
        return run["scorer"]
    model = "default model" if run["model"] == "default" else Path(run["model"]).name
    return f"{model} + {Path(run['adapter']).name}" if run["adapter"] else model
