"""Maryland Polyvore ("Polyvore-T") importer: ``{set_id: {slot: {"index": n, "name": title}}}``.

Item id = ``"{set_id}_{index}"``, category = slot, title = name. Images are picked up from
``images/{set_id}/{index}.jpg`` beside the JSON file when they exist (the text release
ships none for most outfits).
"""

from __future__ import annotations

from pathlib import Path

from ..catalog import Item, Outfit
from ..errors import UserError
from ..fileio import read_json
from .tables import json_key_line


def import_polyvore(file: str | Path, notes: list[str] | None = None) -> tuple[list[Item], list[Outfit]]:
    """Read one Polyvore-T JSON file (e.g. ``valid_no_dup_with_category_3more_name.json``)."""
    path = Path(file)
    data = read_json(path)
    if not isinstance(data, dict) or not data:
        raise UserError("expected a non-empty JSON object {set_id: {slot: {index, name}}}", str(path))
    image_root = path.parent.resolve() / "images"
    items: list[Item] = []
    outfits: list[Outfit] = []
    for set_id, slots in data.items():
        if not isinstance(slots, dict) or not slots:
            raise UserError(f"outfit {set_id} must map slots to {{index, name}}", str(path), _line_of(path, set_id))
        set_images = image_root / set_id
        has_images = set_images.is_dir()  # one check per outfit, not per item
        ids: list[str] = []
        for slot, entry in slots.items():
            index = entry.get("index") if isinstance(entry, dict) else None
            if isinstance(index, bool) or not isinstance(index, (int, str)) or str(index) == "":
                raise UserError(f"outfit {set_id}, slot {slot}: needs an 'index'", str(path), _line_of(path, set_id))
            item_id = f"{set_id}_{index}"
            if item_id in ids:
                raise UserError(f"outfit {set_id} uses index {index} twice", str(path), _line_of(path, set_id))
            image = set_images / f"{index}.jpg"
            items.append(Item(id=item_id, category=str(slot), title=str(entry.get("name") or ""),
                              image=str(image) if has_images and image.is_file() else None))
            ids.append(item_id)
        outfits.append(Outfit(id=str(set_id), items=ids))
    if notes is not None:
        with_images = sum(item.image is not None for item in items)
        notes.append(f"{with_images} of {len(items)} items have an image (looked in {image_root})")
    return items, outfits



def _line_of(path: Path, key: str) -> int | None:
    return json_key_line(path.read_text(encoding="utf-8"), key)
