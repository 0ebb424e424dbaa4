"""Feedback on recommended outfits: rows persisted in SQLite beside the wardrobe, turned into DPO pairs."""

from __future__ import annotations

import shutil
import sqlite3

import pytest
from click.testing import CliRunner

from mlx_outfit.catalog import load_catalog
from mlx_outfit.errors import UserError
from mlx_outfit.itemtext import item_text
from mlx_outfit.prompts import complete_message
from mlx_outfit.recommend.feedback import (FEEDBACK_FILE, Feedback, feedback_pairs, feedback_path, read_feedback,
                                           record_feedback)
from mlx_outfit.recommend.sample import sample_wardrobe_path


@pytest.fixture
def wardrobe(tmp_path):
    return load_catalog(shutil.copytree(sample_wardrobe_path(), tmp_path / "wardrobe"))


def _verdict(wardrobe, items, verdict, rejected_item=None, context="office"):
    return Feedback(wardrobe=str(wardrobe.root), anchor=items[0], context=context, items=tuple(items),
                    verdict=verdict, rejected_item=rejected_item, model="default")


def test_rows_persist_beside_the_wardrobe(wardrobe):
    db = feedback_path(wardrobe.root)
    assert db == wardrobe.root / FEEDBACK_FILE
    first = record_feedback(db, _verdict(wardrobe, ["top-01", "bottom-01", "shoes-01"], "accept"))
    second = record_feedback(db, _verdict(wardrobe, ["top-01", "bottom-02", "shoes-02"], "reject", "shoes-02"))
    assert second > first

    rows = read_feedback(db)  # a fresh connection: the rows are on disk
    assert [(r.verdict, r.rejected_item, r.items) for r in rows] == [
        ("accept", None, ("top-01", "bottom-01", "shoes-01")),
        ("reject", "shoes-02", ("top-01", "bottom-02", "shoes-02"))]
    assert rows[0].anchor == "top-01" and rows[0].context == "office" and rows[0].created_at
    columns = [r[1] for r in sqlite3.connect(db).execute("PRAGMA table_info(feedback)")]
    assert columns == ["id", "created_at", "wardrobe", "anchor", "context", "items", "verdict", "rejected_item",
                       "model", "adapter"]
    # The packaged sample wardrobe is never written to.
    assert feedback_path(sample_wardrobe_path()).parent != sample_wardrobe_path()


def test_bad_verdicts_are_refused(wardrobe):
    db = feedback_path(wardrobe.root)
    with pytest.raises(UserError, match="verdict"):
        record_feedback(db, _verdict(wardrobe, ["top-01", "bottom-01"], "maybe"))
    with pytest.raises(UserError, match="rejected item"):
        record_feedback(db, _verdict(wardrobe, ["top-01", "bottom-01"], "reject", "shoes-01"))
    with pytest.raises(UserError, match="no feedback yet"):
        read_feedback(wardrobe.root / "none.sqlite")


def test_feedback_becomes_preference_pairs(wardrobe):
    db = feedback_path(wardrobe.root)
    items = wardrobe.items
    record_feedback(db, _verdict(wardrobe, ["top-01", "bottom-01", "shoes-01"], "accept"))
    record_feedback(db, _verdict(wardrobe, ["top-01", "bottom-02", "shoes-01"], "reject"))           # whole outfit
    record_feedback(db, _verdict(wardrobe, ["top-01", "bottom-03", "shoes-02"], "reject", "shoes-02"))  # one item
    record_feedback(db, _verdict(wardrobe, ["top-02", "bottom-04", "shoes-03"], "reject"))  # nothing to compare to
    pairs = feedback_pairs(db, wardrobe)
    got = {(p.category, p.prompt, p.chosen, p.rejected) for p in pairs}
    assert got == {
        # whole-outfit rejection: only the category where the outfits differ (shoes-01 is in both)
        ("bottom", complete_message([items["top-01"]], "bottom", "office"),
         item_text(items["bottom-01"]), item_text(items["bottom-02"])),
        # single-item rejection: the rest of that outfit is the prompt
        ("shoes", complete_message([items["top-01"], items["bottom-03"]], "shoes", "office"),
         item_text(items["shoes-01"]), item_text(items["shoes-02"])),
    }


def test_dpo_pairs_read_the_store(wardrobe):
    """engineer P's pair builder picks the feedback up from beside the wardrobe."""
    from mlx_outfit.train.pairs import stored_feedback_pairs

    db = feedback_path(wardrobe.root)
    record_feedback(db, _verdict(wardrobe, ["bag-01", "top-01"], "accept"))
    record_feedback(db, _verdict(wardrobe, ["bag-01", "top-02"], "reject"))
    [pair] = stored_feedback_pairs(wardrobe)
    assert pair.source == "feedback"
    assert (pair.chosen, pair.rejected) == (item_text(wardrobe.items["top-01"]), item_text(wardrobe.items["top-02"]))


def test_cli_feedback_prompts_and_stores(wardrobe, tiny_llama_4bit, monkeypatch):
    import huggingface_hub.constants as hub_constants

    from mlx_outfit.cli.main import cli

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", hub_constants.HF_HUB_OFFLINE)
    result = CliRunner().invoke(cli, ["recommend", "-w", str(wardrobe.root), "--model", str(tiny_llama_4bit),
                                      "--adapter", "none", "--item", "top-03", "--season", "winter", "-n", "3",
                                      "--no-reasons", "--feedback"], input="a\n3\ns\n")
    assert result.exit_code == 0, result.output
    rows = read_feedback(feedback_path(wardrobe.root))
    assert [r.verdict for r in rows] == ["accept", "reject"]
    assert rows[1].rejected_item == rows[1].items[2]  # item number 3 of outfit 2
    assert all(r.anchor == "top-03" and r.context == "winter" and len(r.items) == 6 for r in rows)
