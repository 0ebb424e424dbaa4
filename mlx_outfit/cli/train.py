"""``mlx-outfit train``: sft, dpo and loop, each in its own module."""

from __future__ import annotations

import click

from .lazy import LazyGroup

SUBCOMMANDS = {
    "sft": ("mlx_outfit.cli.train_sft:sft", "LoRA / QLoRA supervised fine-tuning on catalog outfits."),
    "dpo": ("mlx_outfit.cli.train_dpo:dpo", "Direct Preference Optimization on preference pairs."),
    "loop": ("mlx_outfit.cli.train_loop:loop", "Self-improving rounds: mine mistakes → DPO → validate."),
}


@click.group(cls=LazyGroup, lazy_commands=SUBCOMMANDS)
def train() -> None:
    """Fine-tune the LLM: sft (LoRA), dpo (preferences), loop (self-improving rounds)."""
