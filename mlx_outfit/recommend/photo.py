"""Add a new photo to the wardrobe on the fly: caption it and make it an item (the recommend anchor)."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..caption.describer import DESCRIBER_ID
from ..caption.images import load_image
from ..caption.runner import choose_captioner
from ..catalog import Catalog, Item, save_catalog
from ..errors import UserError
from ..fileio import atomic_path
from .sample import is_sample_wardrobe

ADDED_DIR = "images/added"


def add_photo(catalog: Catalog, image_path: str | Path, category: str, title: str = "",
              captioner: str = DESCRIBER_ID, persist: bool = True) -> Item:
    """Caption ``image_path`` and add it to ``catalog`` as a new item of ``category``.

    ``captioner`` is ``builtin`` (the offline colour describer, instant) or a vision model
    (mlx-vlm folder or hub id, see ``mlx-outfit caption``). The item id comes from the photo's
    content, so adding the same photo twice gives the same item. With ``persist`` (and unless
    the catalog is the packaged sample wardrobe) the photo is copied into
    ``<wardrobe>/images/added/`` and the catalog is saved.
    """
    if not category:
        raise UserError("--image needs --category (e.g. --category top): the new photo's category decides "
                        "which categories the outfit still needs")
    image, digest = load_image(image_path)  # validates the file before anything is written
    item_id = f"photo-{digest[:12]}"
    source = Path(image_path).resolve()
    item = Item(id=item_id, category=category, title=title, image=str(source))
    model = choose_captioner(captioner)
    item.caption_raw = model.raw_captions([image])[0]
    item.caption = model.tidy(item.caption_raw, item)
    item.caption_source = model.source
    if persist and not is_sample_wardrobe(catalog.root):
        relative = Path(ADDED_DIR) / f"{item_id}{source.suffix.lower()}"
        with atomic_path(catalog.root / relative) as tmp:
            shutil.copyfile(source, tmp)
        item.image = relative.as_posix()
        catalog.merge([item], [])
        save_catalog(catalog)
    else:
        catalog.items[item.id] = item
    return item
