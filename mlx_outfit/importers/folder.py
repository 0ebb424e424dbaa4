"""Your own photos: one item per image file in a folder (sub-folders allowed).

Item id = the image path relative to the folder (``tops/blue-shirt.jpg``). Category comes
from the sidecar, else the first sub-folder's name (``tops/``), else ``item``. An optional
sidecar ``items.csv`` (columns ``file``, ``category``, ``title``, any others become
attributes) or ``items.json`` (``{file: {"category", "title", "attributes"}}``) in the
folder adds details; ``file`` is the relative path or just the file name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ..catalog import Item, Outfit
from ..errors import UserError
from ..fileio import read_json
from .tables import json_key_line, read_csv_rows

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
SIDECARS = ("items.csv", "items.json")
DEFAULT_CATEGORY = "item"


@dataclass
class SidecarEntry:
    line: int | None
    category: str = ""
    title: str = ""
    attributes: dict[str, str] = field(default_factory=dict)


def import_folder(directory: str | Path, notes: list[str] | None = None) -> tuple[list[Item], list[Outfit]]:
    """One item per readable image under ``directory``; no outfits."""
    root = Path(directory)
    if not root.is_dir():
        raise UserError("photo folder not found", str(root))
    root = root.resolve()
    images = find_images(root)
    if not images:
        raise UserError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found", str(root))
    sidecar_path, sidecar = read_sidecar(root)
    entries = _match_sidecar(sidecar, images, root, sidecar_path)
    items = []
    for image in images:
        relative = image.relative_to(root)
        _check_image(image)
        entry = entries.get(image, SidecarEntry(line=None))
        folder_category = relative.parts[0] if len(relative.parts) > 1 else DEFAULT_CATEGORY
        items.append(Item(id=relative.as_posix(), category=entry.category or folder_category, title=entry.title,
                          attributes=entry.attributes, image=str(image)))
    if notes is not None and sidecar_path is not None:
        notes.append(f"{len(entries)} of {len(items)} images described in {sidecar_path.name}")
    return items, []


def find_images(root: Path) -> list[Path]:
    """Image files under ``root`` in a stable order, skipping hidden files and folders."""
    return sorted(p for p in root.rglob("*")
                  if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def read_sidecar(root: Path) -> tuple[Path | None, dict[str, SidecarEntry]]:
    """The sidecar's entries keyed by the file name as written there (none if there is no sidecar)."""
    present = [root / name for name in SIDECARS if (root / name).is_file()]
    if len(present) > 1:
        raise UserError(f"found both {SIDECARS[0]} and {SIDECARS[1]}: keep one", str(root))
    if not present:
        return None, {}
    path = present[0]
    return path, (_read_sidecar_csv(path) if path.suffix == ".csv" else _read_sidecar_json(path))


def _read_sidecar_csv(path: Path) -> dict[str, SidecarEntry]:
    entries: dict[str, SidecarEntry] = {}
    for line, row in read_csv_rows(path, ["file"]):
        key = row.pop("file")
        if not key:
            raise UserError("empty 'file'", str(path), line)
        if key in entries:
            raise UserError(f"'{key}' listed twice (first on line {entries[key].line})", str(path), line)
        category, title = row.pop("category", ""), row.pop("title", "")
        entries[key] = SidecarEntry(line=line, category=category, title=title,
                                    attributes={k: v for k, v in row.items() if k and v})
    return entries


def _read_sidecar_json(path: Path) -> dict[str, SidecarEntry]:
    data = read_json(path)
    if not isinstance(data, dict):
        raise UserError('expected an object {"file name": {"category", "title", "attributes"}}', str(path), 1)
    text = path.read_text(encoding="utf-8")
    entries: dict[str, SidecarEntry] = {}
    for key, value in data.items():
        line = json_key_line(text, key)
        attributes = value.get("attributes", {}) if isinstance(value, dict) else None
        if not isinstance(value, dict) or not isinstance(attributes, dict):
            raise UserError(f"'{key}' must map to an object with optional category, title, attributes (object)",
                            str(path), line)
        entries[key] = SidecarEntry(line=line, category=str(value.get("category") or "").strip(),
                                    title=str(value.get("title") or "").strip(),
                                    attributes={str(k): str(v) for k, v in attributes.items() if v not in (None, "")})
    return entries


def _match_sidecar(sidecar: dict[str, SidecarEntry], images: list[Path], root: Path,
                   path: Path | None) -> dict[Path, SidecarEntry]:
    """Sidecar entries by image; a key is a relative path or a file name that is unique in the folder."""
    by_relative = {image.relative_to(root).as_posix(): image for image in images}
    by_name: dict[str, list[Path]] = {}
    for image in images:
        by_name.setdefault(image.name, []).append(image)
    matched: dict[Path, SidecarEntry] = {}
    for key, entry in sidecar.items():
        if key in by_relative:
            image = by_relative[key]
        elif len(by_name.get(key, [])) == 1:
            image = by_name[key][0]
        elif key in by_name:
            raise UserError(f"'{key}' matches {len(by_name[key])} images: write the path relative to {root}",
                            str(path), entry.line)
        else:
            raise UserError(f"no image '{key}' in {root}", str(path), entry.line)
        if image in matched:
            raise UserError(f"'{key}' describes an image already described on line {matched[image].line}",
                            str(path), entry.line)
        matched[image] = entry
    return matched


def _check_image(path: Path) -> None:
    """Open the header only: catches corrupt or unsupported files without decoding pixels."""
    try:
        with Image.open(path):
            pass
    except (UnidentifiedImageError, OSError) as e:
        raise UserError(f"not a readable image ({e.__class__.__name__})", str(path)) from None
