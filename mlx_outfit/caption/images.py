"""Read an item photo: its content hash (the cache key) first, the decoded RGB image only when needed."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ..errors import UserError


def read_image_bytes(path: str | Path) -> tuple[bytes, str]:
    """``(file bytes, their sha256)``; UserError if the file is missing or unreadable."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise UserError("image not found", str(p)) from None
    except OSError as e:
        raise UserError(f"image unreadable ({e.strerror or e})", str(p)) from None
    return data, hashlib.sha256(data).hexdigest()


def decode_image(data: bytes, path: str | Path) -> Image.Image:
    """Decode fully into RGB; UserError naming ``path`` if it is not an image or is truncated/corrupt."""
    try:
        with Image.open(io.BytesIO(data)) as opened:
            return opened.convert("RGB")  # forces a full decode: truncated files fail here
    except UnidentifiedImageError:
        raise UserError("not an image Pillow can read", str(path)) from None
    except (OSError, SyntaxError, ValueError) as e:
        raise UserError(f"corrupt image ({e})", str(path)) from None


def load_image(path: str | Path) -> tuple[Image.Image, str]:
    """``(RGB image, sha256 of the file bytes)``."""
    data, sha = read_image_bytes(path)
    return decode_image(data, path), sha
