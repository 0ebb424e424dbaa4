"""Ranking metrics over scored questions: top-1 accuracy, HR@k, MRR, bootstrap intervals, per category.

Ties are scored by their expectation under a random tie-break, so a scorer that cannot tell
candidates apart gets chance level, not a lucky or unlucky fixed order.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

HIT_KS = (1, 5, 10)
METRICS = ("accuracy", "hr@1", "hr@5", "hr@10", "mrr")


def question_metrics(scores: Sequence[float], answer: int) -> dict[str, float]:
    """Metrics of one question: the answer's rank is uniform over the candidates tied with it."""
    scores = np.asarray(scores, dtype=np.float64)
    better = int(np.sum(scores > scores[answer]))
    tied = int(np.sum(scores == scores[answer])) - 1
    ranks = np.arange(better + 1, better + tied + 2)
    values = {f"hr@{k}": float(np.mean(ranks <= k)) for k in HIT_KS}
    values["accuracy"] = values["hr@1"]
    values["mrr"] = float(np.mean(1.0 / ranks))
    return {name: values[name] for name in METRICS}


def bootstrap_interval(values: np.ndarray, samples: int = 1000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (questions resampled with replacement)."""
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(samples, len(values)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def summarize(per_question: Sequence[dict[str, float]], categories: Sequence[str], samples: int = 1000,
              seed: int = 0) -> dict:
    """``n``, each metric's mean, ``ci`` (95% bootstrap) and ``per_category`` (n + means)."""
    if not per_question:
        raise ValueError("no questions to summarize")
    table = {m: np.array([q[m] for q in per_question]) for m in METRICS}
    summary: dict = {"n": len(per_question)}
    summary.update({m: float(table[m].mean()) for m in METRICS})
    summary["ci"] = {m: list(bootstrap_interval(table[m], samples, seed)) for m in METRICS}
    cats = np.array(categories)
    summary["per_category"] = {
        c: {"n": int(np.sum(cats == c)), **{m: float(table[m][cats == c].mean()) for m in METRICS}}
        for c in sorted(set(categories))
    }
    return summary
