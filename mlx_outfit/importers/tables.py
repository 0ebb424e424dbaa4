"""Reading importer input with file:line errors: CSV rows, and lines of keys in JSON files."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Iterator, Sequence

from ..errors import UserError


def read_csv_rows(path: Path, required: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line_number, row)`` with stripped values; a missing column or a short row raises UserError."""
    if not path.is_file():
        raise UserError("file not found", str(path))
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        try:
            header = reader.fieldnames or []
            missing = [c for c in required if c not in header]
            if missing:
                raise UserError(f"missing column(s) {', '.join(missing)} in the header", str(path), 1)
            for row in reader:
                if None in row or any(v is None for v in row.values()):
                    raise UserError(f"expected {len(header)} comma-separated fields", str(path), reader.line_num)
                yield reader.line_num, {k: v.strip() for k, v in row.items()}
        except UnicodeDecodeError:
            raise UserError("not a UTF-8 text file", str(path), reader.line_num + 1) from None
        except csv.Error as e:
            raise UserError(f"malformed CSV ({e})", str(path), reader.line_num) from None


def json_key_line(text: str, key: str) -> int | None:
    """The line where ``"key"`` first appears in a JSON text, so errors can point at it."""
    at = text.find(json.dumps(key, ensure_ascii=False))
    return text.count("\n", 0, at) + 1 if at >= 0 else None
