"""Outfit-level splits and FITB / retrieval questions on the real MANGO and Polyvore catalogs."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, replace

import pytest

from conftest import MANGO_DIR, POLYVORE_VALID
from mlx_outfit.catalog import Catalog, Item, Outfit, load_catalog, save_catalog
from mlx_outfit.errors import UserError
from mlx_outfit.importers import import_mango, import_polyvore
from mlx_outfit.questions import build_questions, read_questions, split_catalog, write_questions


@pytest.fixture(scope="module")
def mango(shared_data) -> Catalog:
    items, outfits = import_mango(MANGO_DIR)
    catalog = Catalog(root=None, items={i.id: i for i in items}, outfits=outfits)
    split_catalog(catalog, valid=0.1, test=0.1, seed=0)
    return catalog


@pytest.fixture(scope="module")
def polyvore(shared_data) -> Catalog:
    items, outfits = import_polyvore(POLYVORE_VALID)
    catalog = Catalog(root=None, items={i.id: i for i in items}, outfits=outfits)
    split_catalog(catalog, valid=0.2, test=0.2, seed=1)
    return catalog


def test_split_sizes_and_disjointness(mango):
    counts = Counter(o.split for o in mango.outfits)
    assert counts == {"train": 5242, "valid": 655, "test": 655}
    keys = {s: {o.key for o in mango.outfits if o.split == s} for s in counts}
    assert not keys["train"] & keys["test"] and not keys["train"] & keys["valid"] and not keys["valid"] & keys["test"]


def test_split_keeps_duplicate_item_sets_together(mango):
    """Re-add MANGO's repeated outfits (dropped at import) under new ids: each copy joins its original."""
    copies = [Outfit(id=f"copy-{o.id}", items=list(reversed(o.items))) for o in mango.outfits[::7]]
    catalog = Catalog(root=None, items=mango.items, outfits=[replace(o) for o in mango.outfits] + copies)
    for seed in (0, 1, 2):
        split_catalog(catalog, valid=0.1, test=0.1, seed=seed)
        by_key: dict[frozenset, set[str]] = {}
        for outfit in catalog.outfits:
            by_key.setdefault(outfit.key, set()).add(outfit.split)
        assert all(len(splits) == 1 for splits in by_key.values())


def test_split_is_deterministic_per_seed(mango):
    def assignment(seed):
        catalog = Catalog(root=None, items=mango.items, outfits=[replace(o) for o in mango.outfits])
        split_catalog(catalog, seed=seed)
        return [o.split for o in catalog.outfits]

    assert assignment(0) == [o.split for o in mango.outfits]
    assert assignment(5) != assignment(0)


@pytest.mark.parametrize("valid, test, message", [(0.5, 0.5, "must leave some"), (-0.1, 0.1, "--valid must be"),
                                                  (0.1, 1.0, "--test must be")])
def test_split_rejects_bad_fractions(mango, valid, test, message):
    with pytest.raises(UserError, match=message):
        split_catalog(mango, valid=valid, test=test)


def _check_invariants(catalog: Catalog, questions, split: str, n_candidates: int) -> None:
    outfits = {o.id: o for o in catalog.outfits_in(split)}
    assert len({q.id for q in questions}) == len(questions)
    for q in questions:
        outfit = outfits[q.id]
        true_item = q.candidates[q.answer]
        assert sorted(q.outfit + [true_item]) == sorted(outfit.items)  # the blank is one item of the outfit
        assert len(q.outfit) >= 2 and 2 <= len(q.candidates) <= n_candidates
        assert len(set(q.candidates)) == len(q.candidates)
        assert q.category == catalog.items[true_item].category
        assert all(catalog.items[c].category == q.category for c in q.candidates)  # same category
        assert not set(q.candidates) & set(q.outfit)  # no negative from the outfit
    # one question per outfit with 3+ items, except outfits whose categories have no other items
    assert {q.id for q in questions} <= {o.id for o in outfits.values() if len(o.items) >= 3}


def test_fitb_questions(mango):
    notes: list[str] = []
    questions = build_questions(mango, "fitb", "test", seed=0, notes=notes)
    _check_invariants(mango, questions, "test", 4)
    assert len(questions) == sum(len(o.items) >= 3 for o in mango.outfits_in("test")) == 653
    assert all(len(q.candidates) == 4 for q in questions) and notes == []
    # answers land in every position about equally often
    assert all(120 < n < 210 for n in Counter(q.answer for q in questions).values())


def test_retrieval_questions_use_what_exists(mango):
    notes: list[str] = []
    questions = build_questions(mango, "retrieval", "test", seed=0, notes=notes)
    _check_invariants(mango, questions, "test", 100)
    sizes = mango.categories()
    short = [q for q in questions if len(q.candidates) < 100]
    assert short and all(len(q.candidates) < 100 and len(sizes[q.category]) < 100 + 7 for q in short)
    assert notes == [f"{len(short)} of {len(questions)} questions have fewer than 100 candidates: "
                     "their category has too few items"]


def test_polyvore_questions(polyvore):
    questions = build_questions(polyvore, "fitb", "valid", n_candidates=6, seed=3)
    _check_invariants(polyvore, questions, "valid", 6)
    assert len(questions) == sum(1 for o in polyvore.outfits if o.split == "valid")


def test_same_seed_same_file(mango, tmp_path):
    paths = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        paths.append(tmp_path / f"{name}.jsonl")
        write_questions(paths[-1], build_questions(mango, "fitb", "test", seed=seed))
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert paths[0].read_bytes() != paths[2].read_bytes()


def test_questions_do_not_depend_on_other_outfits(mango):
    full = {q.id: q for q in build_questions(mango, "fitb", "test", seed=0)}
    part = Catalog(root=None, items=mango.items, outfits=mango.outfits_in("test")[::2])
    questions = build_questions(part, "fitb", "test", seed=0)
    assert len(questions) > 300 and all(q == full[q.id] for q in questions)


def test_category_without_negatives_is_never_blank():
    items = {i: Item(id=i, category=c) for i, c in [("a", "top"), ("b", "shoe"), ("c", "bag"), ("d", "bag"),
                                                     ("e", "top")]}
    catalog = Catalog(root=None, items=items, outfits=[Outfit("o1", ["a", "b", "c"], "test"),
                                                       Outfit("o2", ["b", "c", "d"], "test")])
    notes: list[str] = []
    questions = build_questions(catalog, "fitb", "test", seed=0, notes=notes)
    # o1: only "top" and "bag" have items elsewhere; o2: shoe is alone and both bags are in it
    assert [q.id for q in questions] == ["o1"] and questions[0].category in {"top", "bag"}
    assert len(questions[0].candidates) == 2
    assert notes == ["1 of 1 questions have fewer than 4 candidates: their category has too few items",
                     "skipped 1 outfits whose categories have no items outside the outfit"]


def test_unsplit_catalog_and_bad_options(shared_data):
    items, outfits = import_polyvore(POLYVORE_VALID)
    catalog = Catalog(root="pv", items={i.id: i for i in items}, outfits=outfits)
    with pytest.raises(UserError, match="no split yet"):
        build_questions(catalog, "fitb", "test")
    assert len(build_questions(catalog, "fitb", "all")) == 1196
    with pytest.raises(UserError, match="unknown task"):
        build_questions(catalog, "rank", "all")
    with pytest.raises(UserError, match="at least 2"):
        build_questions(catalog, "fitb", "all", n_candidates=1)


def test_read_questions_round_trip(mango, tmp_path):
    questions = build_questions(mango, "retrieval", "valid", seed=2)
    path = tmp_path / "q.jsonl"
    write_questions(path, questions)
    assert read_questions(path, mango) == questions


@pytest.mark.parametrize("change, message", [
    (lambda q: q.update(candidates=q["candidates"] + ["no-such-item"]), "unknown item id.* no-such-item"),
    (lambda q: q.update(outfit=["41085800-XX"]), "unknown item id.* 41085800-XX"),
    (lambda q: q.update(answer=4), "'answer' must be an index into the 4 candidates, got 4"),
    (lambda q: q.update(answer=True), "'answer' must be an index"),
    (lambda q: q.pop("candidates"), "question needs candidates"),
    (lambda q: q.update(candidates=q["candidates"][:1] * 2, answer=0), "listed twice"),
    (lambda q: q.update(id="x"), "question id x repeats line 2"),
])
def test_read_questions_rejects_bad_lines(mango, tmp_path, change, message):
    rows = [{"id": "x", "outfit": [], "candidates": ["53000586-TO"], "answer": 0, "category": "Jeans"}]
    rows += [asdict(q) for q in build_questions(mango, "fitb", "test", seed=0)[:3]]
    change(rows[2])
    path = tmp_path / "q.jsonl"
    path.write_text("\n" + "\n".join(json.dumps(r) for r in rows) + "\n")  # a leading blank line is fine
    with pytest.raises(UserError, match=message) as err:
        read_questions(path, mango)
    assert (err.value.path, err.value.line) == (str(path), 4)


def test_read_questions_accepts_outside_files(mango, tmp_path):
    """Category may be left out (taken from the true item); ids may be numbers."""
    path = tmp_path / "outside.jsonl"
    path.write_text(json.dumps({"id": 7, "outfit": ["53000586-TO"], "candidates": ["41085800-02", "53000586-TO"],
                                "answer": 0}) + "\n")
    [q] = read_questions(path, mango)
    assert (q.id, q.category) == ("7", "Trousers")
    path.write_text("")
    with pytest.raises(UserError, match="no questions"):
        read_questions(path, mango)


def test_cli_split_and_questions(mango, tmp_path, run_cli):
    root = tmp_path / "catalog"
    save_catalog(Catalog(root=root, items=mango.items, outfits=[replace(o, split=None) for o in mango.outfits]))
    code, _, err = run_cli("data", "questions", root, "--out", tmp_path / "q.jsonl")
    assert code == 1 and "no split yet" in err and not (tmp_path / "q.jsonl").exists()
    assert run_cli("data", "split", root, "--valid", "0.1", "--test", "0.1", "--seed", "0") == (
        0, f"split {root}: train 5242, valid 655, test 655\n", "")
    assert [o.split for o in load_catalog(root).outfits] == [o.split for o in mango.outfits]
    code, out, _ = run_cli("data", "questions", root, "--task", "retrieval", "--candidates", "50", "--seed", "4",
                           "--out", tmp_path / "q.jsonl")
    assert code == 0 and out.startswith("wrote 653 retrieval questions (50 candidates, split test, seed 4)")
    assert read_questions(tmp_path / "q.jsonl", mango) == build_questions(mango, "retrieval", "test", 50, seed=4)
    code, _, err = run_cli("data", "split", root, "--test", "0.95")
    assert code == 1 and "must leave some outfits for training" in err
