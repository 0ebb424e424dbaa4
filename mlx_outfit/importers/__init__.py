"""Importers: turn a dataset or a folder of photos into catalog items and outfits.

Each importer is a plain function returning ``(items, outfits)``; the caller merges them
into a catalog (:meth:`mlx_outfit.catalog.Catalog.merge`) and saves it. Importers check
their input fully before returning, so a bad file never leaves a half-imported catalog.
"""

from __future__ import annotations

from pathlib import Path

from ..catalog import Catalog, load_catalog, save_catalog
from ..errors import UserError
from .folder import import_folder
from .mango import import_mango
from .polyvore import import_polyvore

IMPORTERS = {"mango": import_mango, "polyvore": import_polyvore, "folder": import_folder}

__all__ = ["IMPORTERS", "import_folder", "import_into", "import_mango", "import_polyvore"]


def import_into(catalog_root: str | Path, kind: str, source: str | Path, notes: list[str] | None = None) -> Catalog:
    """Import ``source`` with the ``kind`` importer and merge it into the catalog at ``catalog_root``.

    The catalog is created if missing; items and outfits are merged by id and captions
    already computed are kept. Nothing is written unless the whole import succeeds.
    """
    if kind not in IMPORTERS:
        raise UserError(f"unknown importer '{kind}' (choose from {', '.join(IMPORTERS)})")
    if Path(catalog_root).exists() and not Path(catalog_root).is_dir():
        raise UserError("catalog must be a folder, found a file", str(catalog_root))
    catalog = load_catalog(catalog_root, must_exist=False)
    items, outfits = IMPORTERS[kind](source, notes=notes)
    new_items = sum(item.id not in catalog.items for item in items)
    known_outfits = {outfit.id for outfit in catalog.outfits}
    new_outfits = sum(outfit.id not in known_outfits for outfit in outfits)
    catalog.merge(items, outfits)
    save_catalog(catalog)
    if notes is not None:
        notes.append(f"{new_items} new and {len(items) - new_items} updated items, "
                     f"{new_outfits} new and {len(outfits) - new_outfits} updated outfits")
    return catalog
