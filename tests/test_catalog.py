"""The catalog format: round trips, merging (captions kept), load errors, atomic imports via the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import MANGO_DIR, POLYVORE_VALID
from mlx_outfit.catalog import ITEMS_FILE, OUTFITS_FILE, Catalog, Item, load_catalog, save_catalog
from mlx_outfit.errors import UserError
from mlx_outfit.importers import import_into
from mlx_outfit.importers.mango import PRODUCTS_CSV


@pytest.fixture(scope="module")
def mango_catalog_dir(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("catalog") / "mango"
    import_into(root, "mango", MANGO_DIR)
    return root


def test_round_trip(mango_catalog_dir, tmp_path):
    catalog = load_catalog(mango_catalog_dir)
    assert len(catalog.items) == 9222 and len(catalog.outfits) == 6552
    catalog.root = tmp_path / "copy"
    save_catalog(catalog)
    again = load_catalog(tmp_path / "copy")
    assert again.items == catalog.items and again.outfits == catalog.outfits
    assert (tmp_path / "copy" / ITEMS_FILE).read_bytes() == (mango_catalog_dir / ITEMS_FILE).read_bytes()


def test_reimport_keeps_captions_and_splits(mango_catalog_dir, tmp_path):
    root = tmp_path / "mango"
    shutil.copytree(mango_catalog_dir, root)
    catalog = load_catalog(root)
    captioned = list(catalog.items)[:3]
    for item_id in captioned:
        item = catalog.items[item_id]
        item.caption, item.caption_raw, item.caption_source = f"caption of {item_id}", "raw", "test-captioner"
    catalog.outfits[0].split = "test"
    save_catalog(catalog)
    import_into(root, "mango", MANGO_DIR)
    merged = load_catalog(root)
    assert len(merged.items) == 9222 and len(merged.outfits) == 6552
    for item_id in captioned:
        item = merged.items[item_id]
        assert (item.caption, item.caption_raw, item.caption_source) == (f"caption of {item_id}", "raw",
                                                                         "test-captioner")
    assert merged.outfits[0].split == "test"
    assert sum(i.caption is not None for i in merged.items.values()) == 3


def test_merge_updates_fields_but_new_captions_win():
    catalog = Catalog(root=None, items={"a": Item(id="a", category="top", caption="old", caption_source="v1")})
    catalog.merge([Item(id="a", category="shirt", title="tee")], [])
    assert (catalog.items["a"].category, catalog.items["a"].title, catalog.items["a"].caption) == ("shirt", "tee", "old")
    catalog.merge([Item(id="a", category="shirt", caption="new", caption_source="v2")], [])
    assert (catalog.items["a"].caption, catalog.items["a"].caption_source) == ("new", "v2")


def test_load_errors_name_file_and_line(tmp_path):
    root = tmp_path / "catalog"
    root.mkdir()
    with pytest.raises(UserError, match="no catalog here"):
        load_catalog(root)
    (root / ITEMS_FILE).write_text('{"id": 1, "category": "top"}\n{"id": "b", "category": "shoe"}\n')
    (root / OUTFITS_FILE).write_text('{"id": 7, "items": [1, "b"]}\n\n{"id": "8", "items": ["b", "zz"]}\n')
    with pytest.raises(UserError, match="unknown item id") as err:
        load_catalog(root)
    assert (err.value.path, err.value.line) == (str(root / OUTFITS_FILE), 3)
    (root / OUTFITS_FILE).write_text('{"id": 7, "items": [1, "b"]}\n')
    catalog = load_catalog(root)
    assert list(catalog.items) == ["1", "b"] and catalog.outfits[0].id == "7" and catalog.outfits[0].items == ["1", "b"]
    (root / ITEMS_FILE).write_text('{"id": "a", "category": "top"}\n{"id": "b", "category": "shoe"\n')
    with pytest.raises(UserError, match="malformed JSON line") as err:
        load_catalog(root)
    assert err.value.line == 2


def test_failed_import_leaves_nothing_behind(run_cli, tmp_path, shared_data):
    bad = tmp_path / "mango"
    (bad / PRODUCTS_CSV).parent.mkdir(parents=True)
    os.symlink(MANGO_DIR / "datathon" / "images", bad / "datathon" / "images")
    lines = (MANGO_DIR / PRODUCTS_CSV).read_text().splitlines(keepends=True)
    lines[500] = lines[500].replace(".jpg", ".png")
    (bad / PRODUCTS_CSV).write_text("".join(lines))
    shutil.copy(MANGO_DIR / "datathon/dataset/outfit_data.csv", bad / "datathon/dataset/outfit_data.csv")

    code, _, err = run_cli("data", "import", "mango", bad, "--out", tmp_path / "new")
    assert code == 1 and f"{bad / PRODUCTS_CSV}:501: image not found" in err
    assert not (tmp_path / "new").exists()

    existing = tmp_path / "existing"
    assert run_cli("data", "import", "polyvore", POLYVORE_VALID, "--out", existing)[0] == 0
    before = {p.name: p.read_bytes() for p in existing.iterdir()}
    code, _, err = run_cli("data", "import", "mango", bad, "--out", existing)
    assert code == 1
    assert {p.name: p.read_bytes() for p in existing.iterdir()} == before  # no temp files either


def test_cli_import_and_info(run_cli, tmp_path, shared_data):
    code, out, _ = run_cli("data", "import", "polyvore", POLYVORE_VALID, "--out", tmp_path / "pv")
    assert code == 0 and "4909 items, 1196 outfits" in out
    code, out, _ = run_cli("data", "info", tmp_path / "pv")
    assert code == 0
    assert "│ outfits      │ 1196" in out and "│ unsplit │" not in out
    assert "│ shoe      │ 1124  │ 0" in out


def test_cli_bad_input_exits_cleanly_without_traceback(tmp_path):
    """The real entry point: one line on stderr, exit code 1."""
    bad = tmp_path / "bad.json"
    bad.write_text('{"1": {"upper": {"index": 1, "name": "a"}}\n "2": {}}')
    result = subprocess.run([sys.executable, "-m", "mlx_outfit.cli.main", "data", "import", "polyvore", str(bad),
                             "--out", str(tmp_path / "c")], capture_output=True, text=True,
                            env={**os.environ, "MLX_OUTFIT_NO_OPENBLAS": "1", "COLUMNS": "200"})
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: {bad}:2: malformed JSON (Expecting ',' delimiter)"
    assert "Traceback" not in result.stderr and not (tmp_path / "c").exists()


def test_catalog_lines_are_plain_json(mango_catalog_dir):
    first = json.loads((mango_catalog_dir / ITEMS_FILE).read_text().splitlines()[0])
    assert set(first) == {"id", "category", "title", "attributes", "image", "caption", "caption_raw", "caption_source"}
    outfit = json.loads((mango_catalog_dir / OUTFITS_FILE).read_text().splitlines()[0])
    assert set(outfit) == {"id", "items", "split"} and outfit["split"] is None
