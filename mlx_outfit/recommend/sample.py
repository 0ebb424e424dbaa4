"""The sample wardrobe that ships with the package (drawn by ``scripts/make_sample_wardrobe.py``)."""

from __future__ import annotations

from pathlib import Path

SAMPLE_WARDROBE = Path(__file__).resolve().parent / "sample_wardrobe"


def sample_wardrobe_path() -> Path:
    """The packaged sample catalog folder: 26 hand-described items in six categories, with drawings."""
    return SAMPLE_WARDROBE


def is_sample_wardrobe(root: str | Path) -> bool:
    """True for the packaged sample (read-only by convention: nothing is written into it)."""
    return Path(root).resolve() == SAMPLE_WARDROBE
