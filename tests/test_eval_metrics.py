"""Ranking metrics against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from mlx_outfit.eval.metrics import bootstrap_interval, question_metrics, summarize


def test_fitb_answer_ranked_second():
    m = question_metrics([0.1, 0.5, 0.3, -2.0], answer=2)
    assert m == {"accuracy": 0.0, "hr@1": 0.0, "hr@5": 1.0, "hr@10": 1.0, "mrr": 0.5}


def test_fitb_answer_on_top():
    assert question_metrics([-1.0, -3.0, -0.5, -2.0], answer=2)["accuracy"] == 1.0


def test_retrieval_rank_seven():
    scores = np.linspace(1, 0, 20)  # candidate i has rank i + 1
    m = question_metrics(scores, answer=6)
    assert (m["hr@1"], m["hr@5"], m["hr@10"]) == (0.0, 0.0, 1.0)
    assert m["mrr"] == pytest.approx(1 / 7)


def test_ties_score_their_expectation():
    m = question_metrics([1.0, 1.0, 1.0, 1.0], answer=0)
    assert m["accuracy"] == pytest.approx(0.25)
    assert m["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 4) / 4)
    # One candidate better, answer tied with one other: rank 2 or 3.
    m = question_metrics([2.0, 1.0, 1.0, 0.0], answer=1)
    assert m["accuracy"] == 0.0
    assert m["mrr"] == pytest.approx((1 / 2 + 1 / 3) / 2)


def test_summarize_means_categories_and_intervals():
    per_question = [question_metrics(s, a) for s, a in
                    [([3, 2, 1, 0], 0), ([3, 2, 1, 0], 1), ([3, 2, 1, 0], 0), ([3, 2, 1, 0], 3)]]
    summary = summarize(per_question, ["shoe", "bag", "shoe", "bag"], samples=500, seed=1)
    assert summary["n"] == 4
    assert summary["accuracy"] == pytest.approx(0.5)
    assert summary["mrr"] == pytest.approx((1 + 1 / 2 + 1 + 1 / 4) / 4)
    assert summary["per_category"]["shoe"] == {"n": 2, "accuracy": 1.0, "hr@1": 1.0, "hr@5": 1.0, "hr@10": 1.0,
                                               "mrr": 1.0}
    assert summary["per_category"]["bag"]["mrr"] == pytest.approx((1 / 2 + 1 / 4) / 2)
    low, high = summary["ci"]["accuracy"]
    assert 0.0 <= low < 0.5 < high <= 1.0
    assert summary == summarize(per_question, ["shoe", "bag", "shoe", "bag"], samples=500, seed=1)


def test_bootstrap_interval():
    assert bootstrap_interval(np.full(50, 0.3)) == pytest.approx((0.3, 0.3))
    values = np.random.default_rng(0).random(400)
    low, high = bootstrap_interval(values, samples=2000, seed=0)
    # The mean of 400 uniforms has sd 0.289 / 20: the 95% interval is about +-0.028.
    assert low < values.mean() < high
    assert high - low == pytest.approx(2 * 1.96 * values.std() / 20, rel=0.15)
