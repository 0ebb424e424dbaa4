"""Captioning: item photos → short style/colour descriptions (mlx-vlm, or the offline describer).

Notebook use::

    from mlx_outfit.caption import caption_catalog
    summary = caption_catalog("catalogs/mango", model="builtin")
"""

from .describer import describe
from .runner import CaptionFailure, CaptionSummary, caption_catalog, choose_captioner
from .vlm import DEFAULT_PROMPT_VERSION, DEFAULT_VLM, PROMPTS, load_vlm, tidy_caption

__all__ = ["caption_catalog", "choose_captioner", "CaptionSummary", "CaptionFailure", "describe", "load_vlm",
           "tidy_caption", "DEFAULT_VLM", "DEFAULT_PROMPT_VERSION", "PROMPTS"]
