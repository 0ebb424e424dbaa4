"""Preference pairs: the JSONL format, FITB pairs from real outfits, mistakes as hard pairs, feedback pairs."""

from __future__ import annotations

import json

import pytest

from mlx_outfit.catalog import Catalog
from mlx_outfit.errors import UserError
from mlx_outfit.itemtext import item_text
from mlx_outfit.prompts import complete_message
from mlx_outfit.questions import Question, build_questions
from mlx_outfit.recommend.feedback import Feedback, feedback_path, record_feedback
from mlx_outfit.train.pairs import (Pair, mistake_pairs, question_pairs, read_pairs, stored_feedback_pairs,
                                    training_pairs, write_pairs)

from conftest import polyvore_catalog


@pytest.fixture()
def polyvore(tmp_path, shared_data) -> Catalog:
    """60 real Polyvore outfits: 50 train, 10 valid."""
    return polyvore_catalog(tmp_path / "polyvore", 50, 10)


def test_fitb_pairs_prefer_the_true_item_over_a_same_category_candidate(polyvore):
    questions = build_questions(polyvore, "fitb", "train", 4, seed=0)
    pairs = question_pairs(polyvore, questions, seed=0)
    assert len(pairs) == len(questions) > 40  # one per question (none here describe two items alike)
    by_id = {q.id: q for q in questions}
    texts = {}
    for item in polyvore.items.values():
        texts.setdefault(item_text(item), []).append(item)
    for pair in pairs:
        question_id, rejected_id = pair.id.split(":")
        q = by_id[question_id]
        truth = polyvore.items[q.candidates[q.answer]]
        rejected = polyvore.items[rejected_id]
        assert pair.source == "fitb"
        assert pair.chosen == item_text(truth) and pair.rejected == item_text(rejected)
        assert rejected_id in q.candidates and rejected_id != truth.id and rejected.category == truth.category
        assert pair.prompt == complete_message([polyvore.items[i] for i in q.outfit], q.category)
        assert truth.id not in q.outfit
    assert question_pairs(polyvore, questions, seed=0) == pairs  # seeded
    assert question_pairs(polyvore, questions, seed=1) != pairs


def test_training_pairs_use_the_training_split_only(polyvore):
    pairs = training_pairs(polyvore)
    train_ids = {o.id for o in polyvore.outfits_in("train")}
    assert pairs and all(p.id.split(":")[0] in train_ids for p in pairs)


def test_pairs_file_round_trip(tmp_path):
    pairs = [Pair("Outfit:\n- shoe: boots\nName one bag.", "black bag", "red bag", "fitb", "q1:i2"),
             Pair("p", "a", "b", "feedback")]
    write_pairs(tmp_path / "pairs.jsonl", pairs)
    assert read_pairs(tmp_path / "pairs.jsonl") == pairs
    first = json.loads((tmp_path / "pairs.jsonl").read_text().splitlines()[0])
    assert first == {"prompt": pairs[0].prompt, "chosen": "black bag", "rejected": "red bag", "source": "fitb",
                     "id": "q1:i2"}


@pytest.mark.parametrize("line,message", [
    ('{"prompt": "p", "chosen": "a"}', "non-empty string"),
    ('{"prompt": "p", "chosen": "a", "rejected": ""}', "non-empty string"),
    ('{"prompt": "p", "chosen": "a", "rejected": "a"}', "same text"),
    ('{"prompt": "p", "chosen": "a", "rejected": "b", "source": "web"}', "unknown source"),
    ('{"prompt": "p", "chosen": "a", ', "malformed JSON"),
])
def test_bad_pairs_file_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n' + line + "\n")
    with pytest.raises(UserError, match=message) as error:
        read_pairs(path)
    assert str(error.value).startswith(f"{path}:2:")


def test_empty_or_missing_pairs_file(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(UserError, match="no pairs"):
        read_pairs(tmp_path / "empty.jsonl")
    with pytest.raises(UserError, match="not found"):
        read_pairs(tmp_path / "missing.jsonl")


def _row(q: Question, truth: float, wrong: list[float], truth_tokens: int = 1, wrong_tokens: int = 1) -> dict:
    """A prediction row as evaluation writes it (log-prob sums and token counts per candidate)."""
    others = iter(wrong)
    scores = [truth if i == q.answer else next(others) for i in range(len(q.candidates))]
    tokens = [truth_tokens if i == q.answer else wrong_tokens for i in range(len(q.candidates))]
    return {"id": q.id, "answer": q.answer, "scores": scores, "n_tokens": tokens}


def test_mistakes_become_hard_pairs(polyvore):
    q0, q1, q2 = build_questions(polyvore, "fitb", "train", 4, seed=0)[:3]
    rows = [_row(q0, -1.0, [-5.0, -6.0, -7.0]),  # the truth wins: no pair
            _row(q1, -3.0, [-3.0, -2.0, -9.0]),  # one tie, one win: two pairs
            # by sum the truth wins; per token (-5 vs -1.2) every wrong candidate wins
            _row(q2, -10.0, [-12.0, -12.0, -12.0], truth_tokens=2, wrong_tokens=10)]
    wrong = {q.id: [c for i, c in enumerate(q.candidates) if i != q.answer] for q in (q1, q2)}
    by_mean = mistake_pairs(polyvore, [q0, q1, q2], rows, aggregate="mean")
    assert [p.id for p in by_mean] == [f"{q1.id}:{c}" for c in wrong[q1.id][:2]] + [f"{q2.id}:{c}" for c in wrong[q2.id]]
    for pair in by_mean:
        q = q1 if pair.id.startswith(f"{q1.id}:") else q2
        assert pair.source == "hard" and pair.chosen == item_text(polyvore.items[q.candidates[q.answer]])
    by_sum = mistake_pairs(polyvore, [q0, q1, q2], rows, aggregate="sum")
    assert [p.id for p in by_sum] == [p.id for p in by_mean[:2]]


def test_feedback_pairs_come_from_the_store_beside_the_catalog(polyvore):
    assert stored_feedback_pairs(polyvore) == []  # nobody gave feedback yet
    outfit = polyvore.outfits_in("train")[0].items
    by_category = {}
    for item in polyvore.items.values():
        by_category.setdefault(item.category, []).append(item.id)
    anchor, second = outfit[0], outfit[1]
    other = next(i for i in by_category[polyvore.items[second].category]
                 if i not in outfit and item_text(polyvore.items[i]) != item_text(polyvore.items[second]))
    db = feedback_path(polyvore.root)
    record_feedback(db, Feedback(str(polyvore.root), anchor, None, (anchor, second), "accept"))
    record_feedback(db, Feedback(str(polyvore.root), anchor, None, (anchor, other), "reject"))
    pairs = stored_feedback_pairs(polyvore)
    assert len(pairs) == 1
    pair = pairs[0]
    assert pair.source == "feedback"
    assert pair.chosen == item_text(polyvore.items[second]) and pair.rejected == item_text(polyvore.items[other])
    assert pair.prompt == complete_message([polyvore.items[anchor]], polyvore.items[second].category)
    assert pair in training_pairs(polyvore)


def test_questions_without_a_same_category_wrong_candidate_give_no_pair(polyvore):
    outfit = polyvore.outfits_in("train")[0].items
    q = Question("x", outfit[1:], [outfit[0], outfit[1]], 0, polyvore.items[outfit[0]].category)
    same = polyvore.items[outfit[0]].category == polyvore.items[outfit[1]].category
    assert len(question_pairs(polyvore, [q])) == int(same)
