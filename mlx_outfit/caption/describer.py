"""The offline describer (``--model builtin``): garment colours from the photo, no model weights.

Product photos sit on a light, plain background. The background colour is estimated from
the image border; pixels far from it (in CIELAB, a perceptual space) are the garment. Each
garment pixel is named by its nearest colour in :data:`PALETTE`, and the names covering the
most pixels are the item's colours. The caption joins them with the item's title and key
attributes ("black and white striped ..." is beyond it: it names colours, not patterns).

Palette names are everyday colour words; each also belongs to one of MANGO's colour
groups (``des_agrup_color_eng``), which is how ``scripts/eval_describer.py`` measures it.
MANGO files gold, beige and camel under WHITE, black and silver under GREY, khaki and
olive under BROWN; the groups below follow that.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..catalog import Item
from .images import load_image

DESCRIBER_ID = "builtin"
DESCRIBER_VERSION = 1
THUMBNAIL = 96  # longest side analysed; colours do not need more pixels
MIN_SHARE = 0.2  # a second colour is named only if it covers this much of the garment
# Shading spreads a garment along the lightness axis; weighting chroma (a, b) twice as much
# as lightness keeps a shadowed pastel pink pink rather than grey (+1.6 points on MANGO).
LAB_WEIGHTS = np.array([1.0, 2.0, 2.0], dtype=np.float32)

# name -> (sRGB prototype, MANGO colour group). Several prototypes may share a name.
PALETTE: list[tuple[str, tuple[int, int, int], str]] = [
    ("black", (20, 20, 22), "GREY"),
    ("black", (45, 45, 50), "GREY"),
    ("charcoal", (70, 70, 74), "GREY"),
    ("grey", (128, 128, 130), "GREY"),
    ("light grey", (165, 165, 168), "GREY"),
    ("white", (245, 245, 245), "WHITE"),
    ("off-white", (236, 231, 220), "WHITE"),
    ("cream", (240, 230, 205), "WHITE"),
    ("beige", (215, 197, 170), "WHITE"),
    ("sand", (200, 180, 150), "WHITE"),
    ("camel", (190, 150, 105), "WHITE"),
    ("gold", (200, 165, 80), "WHITE"),
    ("brown", (110, 75, 50), "BROWN"),
    ("dark brown", (65, 45, 35), "BROWN"),
    ("tan", (160, 110, 70), "BROWN"),
    ("khaki", (120, 115, 80), "BROWN"),
    ("olive", (95, 95, 55), "BROWN"),
    ("taupe", (135, 120, 105), "BROWN"),
    ("navy", (30, 35, 65), "BLUE"),
    ("navy", (40, 45, 62), "BLUE"),
    ("blue", (45, 80, 160), "BLUE"),
    ("denim blue", (80, 105, 140), "BLUE"),
    ("light blue", (150, 180, 215), "BLUE"),
    ("turquoise", (40, 170, 180), "BLUE"),
    ("red", (190, 30, 40), "RED"),
    ("burgundy", (100, 25, 40), "RED"),
    ("pink", (235, 160, 180), "PINK"),
    ("fuchsia", (210, 40, 130), "PINK"),
    ("nude", (225, 185, 165), "PINK"),
    ("coral", (240, 120, 100), "PINK"),
    ("orange", (235, 120, 40), "ORANGE"),
    ("terracotta", (180, 85, 55), "ORANGE"),
    ("yellow", (240, 210, 60), "YELLOW"),
    ("mustard", (200, 155, 40), "YELLOW"),
    ("pastel yellow", (240, 225, 140), "YELLOW"),
    ("green", (50, 130, 70), "GREEN"),
    ("dark green", (30, 70, 45), "GREEN"),
    ("bottle green", (35, 60, 50), "GREEN"),
    ("mint", (170, 220, 190), "GREEN"),
    ("purple", (100, 50, 120), "PURPLE"),
    ("lilac", (190, 165, 210), "PURPLE"),
    ("mauve", (170, 120, 145), "PURPLE"),
]
COLOUR_GROUPS = {name: group for name, _, group in PALETTE}


@dataclass(frozen=True)
class ColourShare:
    name: str
    share: float  # fraction of garment pixels

    @property
    def group(self) -> str:
        return COLOUR_GROUPS[self.name]


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB (…, 3) uint8 → CIELAB (D65), float32."""
    c = rgb.astype(np.float32) / 255.0
    c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = c @ np.array([[0.4124, 0.2126, 0.0193], [0.3576, 0.7152, 0.1192], [0.1805, 0.0722, 0.9505]],
                       dtype=np.float32)
    xyz /= np.array([0.95047, 1.0, 1.08883], dtype=np.float32)
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


_PALETTE_LAB = srgb_to_lab(np.array([rgb for _, rgb, _ in PALETTE], dtype=np.uint8)) * LAB_WEIGHTS
_PALETTE_NAMES = [name for name, _, _ in PALETTE]


def garment_pixels(image: Image.Image, min_distance: float = 5.0) -> np.ndarray:
    """Lab values of the pixels that differ from the border-estimated background, shape (n, 3)."""
    thumb = image.convert("RGB")
    thumb.thumbnail((THUMBNAIL, THUMBNAIL))
    lab = srgb_to_lab(np.asarray(thumb))
    border = np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])
    background = np.median(border, axis=0)
    distance = np.linalg.norm(lab - background, axis=-1)
    # the border's own spread (JPEG noise, a soft gradient) sets how far counts as "different"
    border_spread = np.percentile(np.linalg.norm(border - background, axis=-1), 90)
    mask = distance > max(min_distance, border_spread + 2.0)
    if mask.mean() < 0.02:  # nothing stands out (a white item on white): use the centre
        h, w = distance.shape
        return lab[h // 4: 3 * h // 4, w // 4: 3 * w // 4].reshape(-1, 3)
    return lab[mask]


def dominant_colours(image: Image.Image, top: int = 3) -> list[ColourShare]:
    """The garment's colour names by pixel share, largest first."""
    pixels = garment_pixels(image) * LAB_WEIGHTS
    distances = ((pixels[:, None, :] - _PALETTE_LAB[None, :, :]) ** 2).sum(-1)
    nearest = distances.argmin(axis=1)
    counts: dict[str, int] = {}
    for index, count in zip(*np.unique(nearest, return_counts=True)):
        name = _PALETTE_NAMES[index]
        counts[name] = counts.get(name, 0) + int(count)
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
    return [ColourShare(name, count / len(pixels)) for name, count in ranked]


def colour_report(colours: list[ColourShare]) -> str:
    """The describer's raw output (stored as ``caption_raw``): ``black 71%, white 20%``."""
    return ", ".join(f"{c.name} {round(c.share * 100)}%" for c in colours if c.share >= 0.005)


def parse_colour_report(raw: str) -> list[ColourShare]:
    shares = []
    for part in raw.split(","):
        name, _, percent = part.strip().rpartition(" ")
        if name in COLOUR_GROUPS:
            shares.append(ColourShare(name, float(percent.rstrip("%")) / 100))
    return shares


def colour_phrase(colours: list[ColourShare]) -> str:
    """``black`` or ``black and white``: the main colour, plus a second one covering enough of the garment."""
    if not colours:
        return ""
    names = [colours[0].name]
    for c in colours[1:]:
        if c.share >= MIN_SHARE and c.group != colours[0].group:
            names.append(c.name)
            break
    return " and ".join(names)


def compose_caption(raw: str, item: Item) -> str:
    """One tidy phrase: colours seen in the photo + fabric + title or garment type; a part whose
    words another part already says is left out (``denim blue`` + ``denim`` + ``jeans`` → ``denim blue jeans``)."""
    noun = item.title or item.attributes.get("type") or item.category
    parts = [p.lower() for p in (colour_phrase(parse_colour_report(raw)), item.attributes.get("fabric", ""), noun) if p]
    kept = list(range(len(parts)))
    for i in range(len(parts)):
        others = [j for j in kept if j != i]
        if set(parts[i].split()) <= {w for j in others for w in parts[j].split()}:
            kept = others
    return " ".join(parts[i] for i in kept)


def analyse(image: Image.Image) -> str:
    """Raw describer output for one image (cached by image hash, like a VLM's raw text)."""
    return colour_report(dominant_colours(image))


def describe(image_path: str | Path, item: Item) -> str:
    """Caption one item photo offline, e.g. ``navy denim jeans``."""
    image, _ = load_image(image_path)
    return compose_caption(analyse(image), item)


@dataclass
class BuiltinDescriber:
    """The describer behind the same interface as :class:`~mlx_outfit.caption.vlm.VlmCaptioner`."""

    model_id: str = DESCRIBER_ID
    prompt_version: int = DESCRIBER_VERSION

    @property
    def source(self) -> str:
        return f"{DESCRIBER_ID} describer v{self.prompt_version}"

    def raw_captions(self, images: list[Image.Image]) -> list[str]:
        return [analyse(image) for image in images]

    def tidy(self, raw: str, item: Item) -> str:
        return compose_caption(raw, item)
