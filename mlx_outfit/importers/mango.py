"""MANGO datathon importer (``datathon/dataset/*.csv`` + ``datathon/images/``).

Item id = ``cod_modelo_color``, category = ``des_product_family``; attributes are stored
under short readable keys (``colour``, ``type``, ``fabric``, ...). Outfits that repeat the
same item set under another ``cod_outfit`` are dropped (the first one is kept).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from ..catalog import Item, Outfit
from ..errors import UserError
from .tables import read_csv_rows

PRODUCTS_CSV = Path("datathon/dataset/product_data.csv")
OUTFITS_CSV = Path("datathon/dataset/outfit_data.csv")

# catalog attribute key -> product_data.csv column
ATTRIBUTE_COLUMNS = {
    "colour": "des_agrup_color_eng",
    "colour_name": "des_color_specification_esp",
    "type": "des_product_type",
    "family": "des_product_family",
    "aggregated_family": "des_product_aggregated_family",
    "product_category": "des_product_category",
    "fabric": "des_fabric",
    "sex": "des_sex",
    "age": "des_age",
    "line": "des_line",
}
# MANGO's internal fabric-line codes in plain words; "C-COMPLEMENTOS" (the accessories
# line) names no fabric, so it maps to nothing and the attribute is left out.
FABRIC_WORDS = {
    "P-PLANA": "woven",
    "K-CIRCULAR": "jersey",
    "T-TRICOT": "knit",
    "J-JEANS": "denim",
    "O-POLIPIEL": "faux leather",
    "L-PIEL": "leather",
    "C-COMPLEMENTOS": "",
}


def import_mango(directory: str | Path, notes: list[str] | None = None) -> tuple[list[Item], list[Outfit]]:
    """Read a MANGO datathon folder; every item must have an existing image.

    ``notes`` (if given) receives one-line remarks for the user, such as how many
    duplicate outfits were dropped.
    """
    root = Path(directory)
    if not root.is_dir():
        raise UserError("MANGO folder not found (expected the unzipped datathon.zip)", str(root))
    items = read_products(root / PRODUCTS_CSV, image_root=root.resolve())
    outfits = read_outfits(root / OUTFITS_CSV, known=items)
    unique = drop_duplicate_outfits(outfits)
    if notes is not None and len(unique) < len(outfits):
        notes.append(f"dropped {len(outfits) - len(unique)} of {len(outfits)} outfits that repeat another's item set")
    return list(items.values()), unique


def read_products(path: Path, image_root: Path) -> dict[str, Item]:
    items: dict[str, Item] = {}
    lines: dict[str, int] = {}
    required = ["cod_modelo_color", "des_filename", *ATTRIBUTE_COLUMNS.values()]
    for line, row in read_csv_rows(path, required):
        item_id = row["cod_modelo_color"]
        if not item_id or not row["des_product_family"]:
            raise UserError("empty cod_modelo_color or des_product_family", str(path), line)
        if item_id in items:
            raise UserError(f"duplicate cod_modelo_color {item_id} (first on line {lines[item_id]})", str(path), line)
        image = image_root / row["des_filename"]
        if not row["des_filename"] or not image.is_file():
            raise UserError(f"image not found: {image}", str(path), line)
        items[item_id] = Item(id=item_id, category=row["des_product_family"], attributes=_attributes(row),
                              image=str(image))
        lines[item_id] = line
    if not items:
        raise UserError("no products", str(path))
    return items


def _attributes(row: dict[str, str]) -> dict[str, str]:
    attributes = {key: row[column].lower() for key, column in ATTRIBUTE_COLUMNS.items()}
    code = row["des_fabric"].upper()
    attributes["fabric"] = FABRIC_WORDS.get(code, attributes["fabric"])
    return {key: value for key, value in attributes.items() if value}


def read_outfits(path: Path, known: dict[str, Item]) -> list[Outfit]:
    """Outfits in file order; an item listed twice in one outfit counts once."""
    members: dict[str, list[str]] = defaultdict(list)
    for line, row in read_csv_rows(path, ["cod_outfit", "cod_modelo_color"]):
        outfit_id, item_id = row["cod_outfit"], row["cod_modelo_color"]
        if not outfit_id:
            raise UserError("empty cod_outfit", str(path), line)
        if item_id not in known:
            raise UserError(f"unknown cod_modelo_color '{item_id}' (not in {PRODUCTS_CSV.name})", str(path), line)
        if item_id not in members[outfit_id]:
            members[outfit_id].append(item_id)
    return [Outfit(id=outfit_id, items=ids) for outfit_id, ids in members.items()]


def drop_duplicate_outfits(outfits: list[Outfit]) -> list[Outfit]:
    """Keep the first outfit of each distinct item set."""
    seen: set[frozenset[str]] = set()
    unique = []
    for outfit in outfits:
        if outfit.key not in seen:
            seen.add(outfit.key)
            unique.append(outfit)
    return unique
