"""The caption cache: the durable record of caption work, one fsync'd JSON line per image.

Keyed by (image content hash, model id, prompt version), so a re-run skips done work, a
new prompt version or model re-captions, and a crash loses at most the image in flight.
It lives beside the catalog (``caption_cache.jsonl``); the catalog is rebuilt from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..fileio import append_jsonl

CACHE_FILE = "caption_cache.jsonl"


@dataclass
class CaptionCache:
    path: Path
    raw: dict[tuple[str, str, int], str] = field(default_factory=dict)

    def get(self, image_sha256: str, model: str, prompt_version: int) -> str | None:
        return self.raw.get((image_sha256, model, prompt_version))

    def put(self, image_sha256: str, model: str, prompt_version: int, caption_raw: str) -> None:
        """Record one result durably (appended and fsync'd before returning)."""
        append_jsonl(self.path, {"image_sha256": image_sha256, "model": model,
                                 "prompt_version": prompt_version, "caption_raw": caption_raw})
        self.raw[(image_sha256, model, prompt_version)] = caption_raw


def open_cache(path: str | Path) -> CaptionCache:
    """Read the cache file (missing → empty). A torn last line from a crash is dropped."""
    cache = CaptionCache(Path(path))
    if not cache.path.is_file():
        return cache
    lines = cache.path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        try:
            row = json.loads(line)
            key = (row["image_sha256"], row["model"], int(row["prompt_version"]))
            cache.raw[key] = str(row["caption_raw"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            if number < len(lines):  # only the last line can be torn by an interrupted append
                raise UserError("malformed caption cache line (delete the file to start over)",
                                str(cache.path), number) from None
    if lines and not cache.path.read_bytes().endswith(b"\n"):
        with open(cache.path, "a", encoding="utf-8") as f:
            f.write("\n")  # so the next append starts on a fresh line
    return cache
