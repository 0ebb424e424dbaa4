"""The catalog: the one interchange format between pipeline stages.

A catalog is a folder with two JSON-lines files:

* ``items.jsonl``: one item per line: ``id``, ``category`` (the slot used for FITB
  negatives), ``title`` (may be empty), ``attributes`` (object of strings), ``image``
  (path, absolute or relative to the catalog folder, or null), ``caption`` (null until
  captioned), ``caption_raw`` (the captioner's untouched output) and ``caption_source``
  (which model / prompt version wrote the caption).
* ``outfits.jsonl``: one outfit per line: ``id``, ``items`` (list of item ids) and
  ``split`` (``train`` / ``valid`` / ``test``, or null before ``data split``).

Both files are rewritten atomically, so an interrupted import or caption run never leaves
a half-written catalog.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from .errors import UserError
from .fileio import atomic_write_jsonl, read_jsonl

ITEMS_FILE = "items.jsonl"
OUTFITS_FILE = "outfits.jsonl"
SPLITS = ("train", "valid", "test")


@dataclass
class Item:
    id: str
    category: str
    title: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    image: str | None = None
    caption: str | None = None
    caption_raw: str | None = None
    caption_source: str | None = None

    @classmethod
    def from_dict(cls, row: dict, path: str, line: int) -> "Item":
        for key in ("id", "category"):
            if not isinstance(row.get(key), (str, int)) or str(row.get(key)) == "":
                raise UserError(f"item needs a non-empty '{key}'", path, line)
        attributes = row.get("attributes") or {}
        if not isinstance(attributes, dict):
            raise UserError("'attributes' must be a JSON object", path, line)
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in row.items() if k in known}
        values.update(id=str(row["id"]), category=str(row["category"]), title=str(row.get("title") or ""),
                      attributes={str(k): str(v) for k, v in attributes.items()})
        return cls(**values)


@dataclass
class Outfit:
    id: str
    items: list[str]
    split: str | None = None

    @property
    def key(self) -> frozenset[str]:
        """The item set: outfits with the same key are duplicates."""
        return frozenset(self.items)


@dataclass
class Catalog:
    root: Path
    items: dict[str, Item] = field(default_factory=dict)
    outfits: list[Outfit] = field(default_factory=list)

    def image_path(self, item: Item) -> Path | None:
        """The item's image as an absolute path (relative paths are relative to the catalog)."""
        if not item.image:
            return None
        p = Path(item.image)
        return p if p.is_absolute() else (self.root / p)

    def outfits_in(self, split: str | None) -> list[Outfit]:
        """Outfits of one split; ``None`` or ``"all"`` means every outfit."""
        if split in (None, "all"):
            return list(self.outfits)
        if split not in SPLITS:
            raise UserError(f"unknown split '{split}' (choose from {', '.join(SPLITS)} or all)")
        chosen = [o for o in self.outfits if o.split == split]
        if not chosen and all(o.split is None for o in self.outfits):
            raise UserError(f"catalog {self.root} has no split yet: run `mlx-outfit data split {self.root}` first")
        return chosen

    def categories(self) -> dict[str, list[str]]:
        """Item ids grouped by category, in catalog order."""
        groups: dict[str, list[str]] = {}
        for item in self.items.values():
            groups.setdefault(item.category, []).append(item.id)
        return groups

    def merge(self, items: Iterable[Item], outfits: Iterable[Outfit]) -> None:
        """Add or update items and outfits by id; captions already computed are never lost."""
        for new in items:
            old = self.items.get(new.id)
            if old is not None and new.caption is None and old.caption is not None:
                new.caption, new.caption_raw, new.caption_source = old.caption, old.caption_raw, old.caption_source
            self.items[new.id] = new
        by_id = {o.id: i for i, o in enumerate(self.outfits)}
        for new in outfits:
            if new.id in by_id:
                old = self.outfits[by_id[new.id]]
                if new.split is None:
                    new.split = old.split
                self.outfits[by_id[new.id]] = new
            else:
                by_id[new.id] = len(self.outfits)
                self.outfits.append(new)


def load_catalog(root: str | Path, must_exist: bool = True) -> Catalog:
    """Read a catalog folder; checks that outfits only name known items."""
    root = Path(root)
    items_path = root / ITEMS_FILE
    if not items_path.is_file():
        if must_exist:
            raise UserError(f"no catalog here (missing {ITEMS_FILE}); create one with `mlx-outfit data import`", str(root))
        return Catalog(root=root)
    catalog = Catalog(root=root)
    for line, row in read_jsonl(items_path):
        item = Item.from_dict(row, str(items_path), line)
        catalog.items[item.id] = item
    outfits_path = root / OUTFITS_FILE
    if outfits_path.is_file():
        for line, row in read_jsonl(outfits_path):
            ids = row.get("items")
            if "id" not in row or not isinstance(ids, list):
                raise UserError("outfit needs 'id' and a list 'items'", str(outfits_path), line)
            ids = [str(i) for i in ids]
            unknown = [i for i in ids if i not in catalog.items]
            if unknown:
                raise UserError(f"outfit {row['id']} names unknown item id(s): {', '.join(unknown[:5])}",
                                str(outfits_path), line)
            split = row.get("split")
            if split is not None and split not in SPLITS:
                raise UserError(f"unknown split '{split}'", str(outfits_path), line)
            catalog.outfits.append(Outfit(id=str(row["id"]), items=ids, split=split))
    return catalog


def save_catalog(catalog: Catalog) -> None:
    """Write both files atomically (items first, so outfits never reference missing items)."""
    # vars(), not asdict(): asdict deep-copies every item (5x slower on a 9k-item catalog)
    atomic_write_jsonl(catalog.root / ITEMS_FILE, (vars(i) for i in catalog.items.values()))
    atomic_write_jsonl(catalog.root / OUTFITS_FILE, (vars(o) for o in catalog.outfits))
