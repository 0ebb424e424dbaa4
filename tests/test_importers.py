"""Importers on the real shared data (MANGO, Polyvore) and on real photos, plus bad input."""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections import Counter
from pathlib import Path

import pytest

from conftest import MANGO_DIR, POLYVORE_DIR, POLYVORE_VALID
from mlx_outfit.errors import UserError
from mlx_outfit.importers import import_folder, import_into, import_mango, import_polyvore
from mlx_outfit.importers.mango import OUTFITS_CSV, PRODUCTS_CSV, read_outfits
from mlx_outfit.itemtext import item_text


@pytest.fixture(scope="module")
def mango(shared_data):
    notes: list[str] = []
    items, outfits = import_mango(MANGO_DIR, notes=notes)
    return items, outfits, notes


def test_mango_items(mango):
    items, _, _ = mango
    assert len(items) == 9222
    assert all(isinstance(i.id, str) and i.id for i in items)
    assert len({i.id for i in items}) == len(items)
    assert all(Path(i.image).is_absolute() and Path(i.image).is_file() for i in items)
    assert all(i.title == "" and i.caption is None for i in items)
    # category = des_product_family
    assert len({i.category for i in items}) == 39
    by_id = {i.id: i for i in items}
    jeans = by_id["53000586-TO"]
    assert jeans.category == "Jeans"
    assert jeans.attributes == {"colour": "blue", "colour_name": "tejano oscuro", "type": "jeans", "family": "jeans",
                                "aggregated_family": "jeans", "product_category": "bottoms", "fabric": "denim",
                                "sex": "female", "age": "adult", "line": "she"}
    assert item_text(jeans) == "blue, jeans, denim"


def test_mango_attributes_are_readable(mango):
    items, _, _ = mango
    colours = Counter(i.attributes["colour"] for i in items)
    assert set(colours) == {"grey", "white", "blue", "brown", "pink", "red", "green", "yellow", "orange", "purple"}
    fabrics = Counter(i.attributes.get("fabric") for i in items)
    assert set(fabrics) == {"woven", "jersey", "knit", "denim", "faux leather", "leather", None}
    # the accessories line names no fabric: no fabric attribute rather than a code
    assert fabrics[None] == 2569
    assert all(k == k.lower() and v == v.lower() for i in items for k, v in i.attributes.items())


def test_mango_outfits_are_deduplicated(mango):
    items, outfits, notes = mango
    known = {i.id for i in items}
    raw = read_outfits(MANGO_DIR / OUTFITS_CSV, known={i.id: i for i in items})
    assert len(raw) == 7050
    assert len(outfits) == 6552
    assert len({o.key for o in outfits}) == len(outfits)
    assert {o.key for o in raw} == {o.key for o in outfits}
    assert all(isinstance(o.id, str) and set(o.items) <= known for o in outfits)
    assert notes == ["dropped 498 of 7050 outfits that repeat another's item set"]


@pytest.fixture
def mini_mango(tmp_path, shared_data) -> Path:
    """A 20-product MANGO folder (real rows, real images) to break in tests."""
    root = tmp_path / "mango"
    (root / PRODUCTS_CSV).parent.mkdir(parents=True)
    os.symlink(MANGO_DIR / "datathon" / "images", root / "datathon" / "images")
    with open(MANGO_DIR / PRODUCTS_CSV, newline="") as f:
        products = list(csv.reader(f))[:21]
    _write_csv(root / PRODUCTS_CSV, products)
    ids = [row[0] for row in products[1:]]
    _write_csv(root / OUTFITS_CSV, [["cod_outfit", "cod_modelo_color"]]
               + [[str(n // 4), item_id] for n, item_id in enumerate(ids)])
    return root


def _write_csv(path: Path, rows: list[list[str]]) -> None:
    with open(path, "w", newline="") as f:
        csv.writer(f, quoting=csv.QUOTE_NONNUMERIC).writerows(rows)


def _edit_line(path: Path, line: int, change) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[line - 1] = change(lines[line - 1])
    path.write_text("".join(lines))


def test_mini_mango_imports(mini_mango):
    items, outfits = import_mango(mini_mango)
    assert len(items) == 20 and [len(o.items) for o in outfits] == [4] * 5


@pytest.mark.parametrize("csv_name, line, change, message", [
    (PRODUCTS_CSV, 5, lambda s: s.rsplit(",", 1)[0] + "\n", "expected 13 comma-separated fields"),
    (PRODUCTS_CSV, 7, lambda s: s.replace(".jpg", "_gone.jpg"), "image not found"),
    (PRODUCTS_CSV, 1, lambda s: s.replace("des_product_family", "family"), r"missing column\(s\) des_product_family"),
    (OUTFITS_CSV, 9, lambda s: s.split(",")[0] + ',"99999999-99"\n', "unknown cod_modelo_color '99999999-99'"),
    (OUTFITS_CSV, 3, lambda s: s + "\n", None),  # a blank line is fine
])
def test_mango_bad_input_names_file_and_line(mini_mango, csv_name, line, change, message):
    _edit_line(mini_mango / csv_name, line, change)
    if message is None:
        import_mango(mini_mango)
        return
    with pytest.raises(UserError, match=message) as err:
        import_mango(mini_mango)
    assert err.value.path == str(mini_mango / csv_name) and err.value.line == line


def test_mango_duplicate_product_and_missing_files(mini_mango, tmp_path):
    products = mini_mango / PRODUCTS_CSV
    lines = products.read_text().splitlines(keepends=True)
    products.write_text("".join(lines + [lines[3]]))
    with pytest.raises(UserError, match=r"duplicate cod_modelo_color .* \(first on line 4\)") as err:
        import_mango(mini_mango)
    assert err.value.line == 22
    (mini_mango / OUTFITS_CSV).unlink()
    products.write_text("".join(lines))
    with pytest.raises(UserError, match="file not found") as err:
        import_mango(mini_mango)
    assert err.value.path == str(mini_mango / OUTFITS_CSV)
    with pytest.raises(UserError, match="MANGO folder not found"):
        import_mango(tmp_path / "nowhere")


def test_polyvore_valid(shared_data):
    notes: list[str] = []
    items, outfits = import_polyvore(POLYVORE_VALID, notes=notes)
    assert len(outfits) == 1196
    assert len(items) == 4909 == len({i.id for i in items})
    raw = json.loads(POLYVORE_VALID.read_text())
    set_id, slots = next(iter(raw.items()))
    first = {i.id: i for i in items}
    for slot, entry in slots.items():
        item = first[f"{set_id}_{entry['index']}"]
        assert item.category == slot and item.title == entry["name"] and item.image is None
    assert {i.category for i in items} == {"upper", "bottom", "shoe", "bag", "accessory"}
    assert all(3 <= len(o.items) <= 5 for o in outfits)
    assert notes == [f"0 of 4909 items have an image (looked in {POLYVORE_DIR / 'images'})"]


def test_polyvore_picks_up_images_beside_the_file(tmp_path, shared_data):
    os.symlink(POLYVORE_DIR / "images", tmp_path / "images")
    path = tmp_path / "outfits.json"
    path.write_text(json.dumps({"7850135": {"upper": {"index": 1, "name": "top"}, "shoe": {"index": 99, "name": "x"}}}))
    items, outfits = import_polyvore(path)
    assert items[0].image == str(tmp_path / "images" / "7850135" / "1.jpg") and Path(items[0].image).is_file()
    assert items[1].image is None
    assert outfits[0].items == ["7850135_1", "7850135_99"]


@pytest.mark.parametrize("text, message, line", [
    ('{"1": {"upper": {"index": 1, "name": "a"}},\n "2": {"upper": {"index": 1, "name": "a"}\n', "malformed JSON", 3),
    ('{"1": {"upper": {"index": 1, "name": "a"}},\n "2": {"upper": {"name": "b"}}}', "outfit 2, slot upper", 2),
    ('{"1": {"upper": {"index": 1}, "shoe": {"index": 1}}}', "uses index 1 twice", 1),
    ('[]', "expected a non-empty JSON object", None),
])
def test_polyvore_bad_input(tmp_path, text, message, line):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(UserError, match=message) as err:
        import_polyvore(path)
    assert err.value.path == str(path) and err.value.line == line


@pytest.fixture
def photos(tmp_path, shared_data) -> Path:
    """A wardrobe folder of real MANGO product photos: two in sub-folders, one loose, one hidden."""
    images = sorted((MANGO_DIR / "datathon" / "images").iterdir())[:4]
    root = tmp_path / "wardrobe"
    for target, image in zip(["tops/shirt.jpg", "shoes/boot.jpg", "scarf.jpg", ".trash/old.jpg"], images):
        (root / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(image, root / target)
    return root


def test_folder_defaults(photos):
    items, outfits = import_folder(photos)
    assert outfits == []
    assert [(i.id, i.category, i.title) for i in items] == [
        ("scarf.jpg", "item", ""), ("shoes/boot.jpg", "shoes", ""), ("tops/shirt.jpg", "tops", "")]
    assert all(Path(i.image) == photos.resolve() / i.id for i in items)


def test_folder_sidecar_csv(photos):
    (photos / "items.csv").write_text("file,category,title,colour,fabric\n"
                                      "shirt.jpg,top,linen shirt,white,linen\n"
                                      "scarf.jpg,,silk scarf,,\n")
    notes: list[str] = []
    items = {i.id: i for i in import_folder(photos, notes=notes)[0]}
    assert items["tops/shirt.jpg"].category == "top"
    assert items["tops/shirt.jpg"].attributes == {"colour": "white", "fabric": "linen"}
    assert item_text(items["tops/shirt.jpg"]) == "linen shirt, white"
    assert (items["scarf.jpg"].category, items["scarf.jpg"].title, items["scarf.jpg"].attributes) == \
        ("item", "silk scarf", {})
    assert items["shoes/boot.jpg"].category == "shoes"
    assert notes == ["2 of 3 images described in items.csv"]


def test_folder_sidecar_json(photos):
    (photos / "items.json").write_text(json.dumps(
        {"shoes/boot.jpg": {"category": "shoe", "title": "ankle boot", "attributes": {"colour": "black"}}}, indent=1))
    items = {i.id: i for i in import_folder(photos)[0]}
    assert (items["shoes/boot.jpg"].category, items["shoes/boot.jpg"].title) == ("shoe", "ankle boot")
    assert items["shoes/boot.jpg"].attributes == {"colour": "black"}


@pytest.mark.parametrize("name, text, message, line", [
    ("items.csv", "file,category\nshirt.jpg,top\nsocks.jpg,sock\n", "no image 'socks.jpg'", 3),
    ("items.csv", "file,category\nshirt.jpg,top\ntops/shirt.jpg,tee\n", "already described on line 2", 3),
    ("items.csv", "category,title\ntop,a\n", "missing column", 1),
    ("items.json", '{\n "scarf.jpg": {"category": "scarf"},\n "boot.jpg": "shoe"\n}', "'boot.jpg' must map", 3),
    ("items.json", '{\n "scarf.jpg": {"category": "scarf"}\n "boot.jpg": {}}', "malformed JSON", 3),
])
def test_folder_bad_sidecar(photos, name, text, message, line):
    (photos / name).write_text(text)
    with pytest.raises(UserError, match=message) as err:
        import_folder(photos)
    assert err.value.path == str(photos.resolve() / name) and err.value.line == line


def test_folder_bad_images(photos, tmp_path):
    (photos / "tops" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(UserError, match="not a readable image") as err:
        import_folder(photos)
    assert err.value.path == str(photos.resolve() / "tops" / "broken.jpg")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images"):
        import_folder(tmp_path / "empty")
    with pytest.raises(UserError, match="photo folder not found"):
        import_folder(tmp_path / "missing")


def test_import_into_merges_sources(photos, tmp_path, shared_data):
    catalog_dir = tmp_path / "catalog"
    import_into(catalog_dir, "polyvore", POLYVORE_VALID)
    notes: list[str] = []
    catalog = import_into(catalog_dir, "folder", photos, notes=notes)
    assert len(catalog.items) == 4909 + 3 and len(catalog.outfits) == 1196
    assert notes[-1] == "3 new and 0 updated items, 0 new and 0 updated outfits"
    with pytest.raises(UserError, match="unknown importer"):
        import_into(catalog_dir, "zara", photos)
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="catalog must be a folder"):
        import_into(tmp_path / "file", "folder", photos)
