"""Caption photos with a vision-language model through mlx-vlm (load, chat template, batch generation).

The prompt asks for a short structured description; :func:`tidy_caption` turns the
model's answer into one phrase (the raw answer is kept as ``caption_raw``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from ..errors import UserError

# Qwen2-VL 2B, 4-bit: ~1.3 GB of weights, so it runs on an 8 GB Mac with room to spare, and
# its dynamic resolution turns a 239×334 product photo into ~100 visual tokens (SmolVLM's
# 384-px tiles make ~1,000), which keeps prefill short. See docs/caption.md.
DEFAULT_VLM = "mlx-community/Qwen2-VL-2B-Instruct-4bit"

FIELDS = ("colour", "pattern", "material", "style", "type")
PROMPTS = {
    1: "Describe the clothing item in this product photo in one short phrase: colour(s), pattern, "
       "material, style and garment type. Example: navy striped cotton casual shirt.",
    2: "Describe the clothing item in this product photo. Answer in exactly five short lines:\n"
       "colour: <main colour(s)>\npattern: <e.g. plain, striped, floral>\nmaterial: <e.g. cotton, denim, leather>\n"
       "style: <e.g. casual, formal, sporty>\ntype: <garment type>",
}
DEFAULT_PROMPT_VERSION = 2
MAX_CAPTION_WORDS = 16
_PREAMBLE = re.compile(r"^(the|this)\s+(image|photo|picture|item)\s+(shows|is|features|depicts)\s+(an?\s+)?", re.I)
_FIELD_LINE = re.compile(
    r"^\s*[-*•]?\s*(colou?rs?|pattern|material|fabric|style|type|garment(?: type)?)\s*[:=]\s*(.+)$", re.I)
_EMPTY_VALUES = {"", "none", "n/a", "unknown", "plain", "solid", "-"}


def prompt_text(prompt_version: int) -> str:
    if prompt_version not in PROMPTS:
        raise UserError(f"unknown prompt version {prompt_version} (choose from {', '.join(map(str, PROMPTS))})")
    return PROMPTS[prompt_version]


def _field_name(label: str) -> str:
    """``Colors`` → ``colour``, ``fabric`` → ``material``, ``garment type`` → ``type``."""
    label = label.lower()
    if label.startswith("colo"):
        return "colour"
    return {"fabric": "material", "garment": "type", "garment type": "type"}.get(label, label)


def tidy_caption(raw: str, max_words: int = MAX_CAPTION_WORDS) -> str:
    """One lower-case phrase from a model answer: ``field: value`` lines are joined in order,
    free text loses preambles like "The image shows a" and is cut to its first sentence."""
    values = {}
    for line in raw.splitlines():
        match = _FIELD_LINE.match(line)
        if match:
            values.setdefault(_field_name(match.group(1)), match.group(2).strip().strip(".").lower())
    if values:
        text = " ".join(v for k in FIELDS if (v := values.get(k, "")) not in _EMPTY_VALUES)
    else:
        first = " ".join(raw.split())
        first = re.split(r"(?<=[.!?])\s", first, maxsplit=1)[0]
        text = _PREAMBLE.sub("", first).strip().rstrip(".!?").lower()
    text = re.sub(r"[^\w\s,&/'-]", " ", text)
    return " ".join(text.split()[:max_words])


def resolve_vlm_path(model: str) -> Path:
    """A local model folder, or a hub id downloaded (or found in the cache) by mlx-vlm."""
    from mlx_vlm.utils import get_model_path

    local = Path(model).expanduser()
    if local.exists():
        if not (local / "config.json").is_file():
            raise UserError("not a model folder (no config.json)", str(local))
        return local
    try:
        return get_model_path(model)
    except Exception as e:  # hub errors come in many types; all mean "not available here"
        raise UserError(f"cannot fetch vision model '{model}' ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:160]})") from None


@dataclass
class VlmCaptioner:
    """Captions batches of images with one loaded mlx-vlm model."""

    model_id: str
    model: Any
    processor: Any
    prompt_version: int = DEFAULT_PROMPT_VERSION
    max_tokens: int = 48

    @property
    def source(self) -> str:
        return f"{self.model_id} prompt v{self.prompt_version}"

    def raw_captions(self, images: list[Image.Image]) -> list[str]:
        """Raw model answers, one per image, greedy decoded in one batch."""
        from mlx_vlm import batch_generate

        prompt = prompt_text(self.prompt_version)
        try:
            response = batch_generate(self.model, self.processor, images=images, prompts=[prompt] * len(images),
                                      max_tokens=self.max_tokens)
        except ValueError as e:  # mlx-vlm's way of saying a processor cannot batch these images
            if len(images) == 1:
                raise
            raise UserError(f"{self.model_id} cannot caption {len(images)} images in one batch with mlx-vlm "
                            f"({str(e).splitlines()[0][:120]}): use --batch-size 1") from None
        return [text.strip() for text in response.texts]

    def tidy(self, raw: str, item) -> str:
        return tidy_caption(raw)


def load_vlm(model: str, prompt_version: int = DEFAULT_PROMPT_VERSION, max_tokens: int = 48) -> VlmCaptioner:
    """Load any mlx-vlm model (hub id or folder); UserError if it cannot be fetched or loaded."""
    prompt_text(prompt_version)  # fail on a bad version before a slow load
    path = resolve_vlm_path(model)
    from mlx_vlm import load

    try:
        vlm, processor = load(str(path))
    except MemoryError:
        raise
    except Exception as e:
        raise UserError(f"cannot load vision model '{model}' with mlx-vlm ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:160] if str(e) else ''})") from None
    # a folder is identified by its absolute path, so two local models never share cache entries
    model_id = str(path.resolve()) if path == Path(model).expanduser() else model
    return VlmCaptioner(model_id=model_id, model=vlm, processor=processor, prompt_version=prompt_version,
                        max_tokens=max_tokens)
