"""One PNG with each outfit's item photos side by side (one row per outfit).

Every tile is ``tile`` pixels square (photo fitted inside, aspect kept, on white) with the
item's category written underneath; a row has one tile per item, rows are as wide as the
largest outfit. An item without a readable photo gets a grey tile with its category.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from PIL import Image, ImageDraw, UnidentifiedImageError

from ..catalog import Catalog, Item
from ..fileio import atomic_path

LABEL_HEIGHT = 18
BACKGROUND = (255, 255, 255)
MISSING = (210, 210, 210)


def collage_size(outfits: Sequence[Sequence[Item]], tile: int) -> tuple[int, int]:
    """(width, height) of the collage for these outfits."""
    return tile * max(len(o) for o in outfits), (tile + LABEL_HEIGHT) * len(outfits)


def _tile(catalog: Catalog, item: Item, tile: int) -> Image.Image:
    canvas = Image.new("RGB", (tile, tile + LABEL_HEIGHT), BACKGROUND)
    path = catalog.image_path(item)
    try:
        if path is None:
            raise FileNotFoundError(item.id)
        with Image.open(path) as photo:
            photo = photo.convert("RGB")
            photo.thumbnail((tile - 4, tile - 4))
            canvas.paste(photo, ((tile - photo.width) // 2, (tile - photo.height) // 2))
    except (OSError, UnidentifiedImageError, ValueError):
        ImageDraw.Draw(canvas).rectangle((2, 2, tile - 3, tile - 3), fill=MISSING)
    ImageDraw.Draw(canvas).text((4, tile + 3), item.category[: tile // 7], fill=(40, 40, 40))
    return canvas


def write_collage(catalog: Catalog, outfits: Sequence[Sequence[Item]], out: str | Path, tile: int = 160) -> Path:
    """Write the collage PNG atomically and return its path."""
    if not outfits or not any(outfits):
        raise ValueError("no outfits to draw")
    image = Image.new("RGB", collage_size(outfits, tile), BACKGROUND)
    for row, items in enumerate(outfits):
        for column, item in enumerate(items):
            image.paste(_tile(catalog, item, tile), (column * tile, row * (tile + LABEL_HEIGHT)))
    out = Path(out)
    with atomic_path(out) as tmp:
        image.save(tmp, format="PNG")
    return out
