"""``mlx-outfit train sft``: LoRA / QLoRA fine-tuning on a catalog's outfits."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import click
from rich.console import Console

from ..errors import UserError
from ..train.examples import KINDS
from ..train.trainer import OPTIMIZERS, TRAIN_DTYPES


def load_config(path: str | None, options_type: type | None = None) -> dict:
    """Options from a YAML file (keys are option names, ``-`` or ``_``); unknown keys are an error.

    ``options_type`` is the options dataclass whose fields are the known keys (default SFTOptions).
    """
    from ..train.sft import SFTOptions

    if path is None:
        return {}
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        raise UserError(f"cannot read the config ({e})", path) from None
    if not isinstance(data, dict):
        raise UserError("expected a YAML mapping of option: value", path)
    aliases = {"lr": "learning_rate"}
    names = {f.name for f in fields(options_type or SFTOptions)}
    config = {aliases.get(k.replace("-", "_"), k.replace("-", "_")): v for k, v in data.items()}
    unknown = sorted(set(config) - names)
    if unknown:
        raise UserError(f"unknown option(s) {', '.join(unknown)} (known: {', '.join(sorted(names))})", path)
    if "kinds" in config:
        config["kinds"] = tuple(config["kinds"])
    return config


@click.command()
@click.argument("catalog", type=click.Path(file_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Adapter folder (adapters.safetensors, adapter_config.json, train_log.jsonl, checkpoints/).")
@click.option("--model", default="default", show_default=True,
              help="'default' (SmolLM2-135M 4-bit), a local mlx-lm model folder, or a Hugging Face id.")
@click.option("--split", default="train", show_default=True, help="Outfits to train on.")
@click.option("--val-split", default="valid", show_default=True, help="Outfits for validation loss ('' = none).")
@click.option("--iters", type=int, help="Optimizer steps [default: one epoch].")
@click.option("--epochs", type=float, help="Train for this many passes over the examples instead of --iters.")
@click.option("--batch-size", type=int, default=4, show_default=True)
@click.option("--grad-accumulation", type=int, default=1, show_default=True,
              help="Batches per optimizer step (a larger effective batch without more memory).")
@click.option("--lr", "--learning-rate", "learning_rate", type=float, default=1e-4, show_default=True)
@click.option("--optimizer", type=click.Choice(sorted(OPTIMIZERS)), default="adamw", show_default=True)
@click.option("--lora-rank", type=int, default=8, show_default=True)
@click.option("--lora-layers", type=int, default=16, show_default=True,
              help="Adapt the last N transformer blocks (-1 = all).")
@click.option("--lora-scale", type=float, default=20.0, show_default=True, help="mlx-lm's LoRA scale.")
@click.option("--lora-dropout", type=float, default=0.0, show_default=True)
@click.option("--max-seq", type=int, default=512, show_default=True, help="Longer examples are skipped.")
@click.option("--val-every", type=int, default=50, show_default=True, help="Steps between validations (0 = end only).")
@click.option("--val-batches", type=int, default=8, show_default=True, help="Validation batches (-1 = all).")
@click.option("--save-every", type=int, default=50, show_default=True, help="Steps between checkpoints.")
@click.option("--report-every", type=int, default=10, show_default=True, help="Steps between log rows.")
@click.option("--train-dtype", type=click.Choice(TRAIN_DTYPES), default="auto", show_default=True,
              help="float32: train a float32 dequantized copy (fast on CPU); native: QLoRA on a 4-bit model; "
                   "auto: float32 on CPU, native on GPU. The adapter works with the 4-bit model either way.")
@click.option("--grad-checkpoint", is_flag=True, help="Recompute activations in the backward pass (less memory).")
@click.option("--kinds", default=",".join(KINDS), show_default=True,
              help="Example kinds: complete (generate the missing item), fitb (lettered multiple choice).")
@click.option("--n-candidates", type=int, default=4, show_default=True, help="Choices per FITB example.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue the run saved in --out (same final adapter as uninterrupted).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="YAML file of options (keys as above, e.g. lora_rank: 16; lr_schedule: mlx-lm schedule); "
                   "flags given on the command line win.")
@click.pass_context
def sft(ctx: click.Context, catalog: str, out_dir: str, resume: bool, config_path: str | None, **flags) -> None:
    """LoRA fine-tune the LLM on CATALOG's outfits (QLoRA on a 4-bit model with --train-dtype native).

    Each outfit gives a "complete the outfit" example and a lettered fill-in-the-blank example;
    only answer tokens carry loss. Ctrl-C saves a checkpoint (exit 130); --resume continues it.

    \b
    Example:
      mlx-outfit train sft catalogs/mango --out adapters/mango --iters 600 --batch-size 8
      mlx_lm.generate --model <model folder> --adapter-path adapters/mango --prompt "..."
    """
    from ..train.sft import SFTOptions, train_sft

    values = load_config(config_path)
    for name, value in flags.items():
        if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT or name not in values:
            values[name] = value
    if isinstance(values.get("kinds"), str):
        values["kinds"] = tuple(k.strip() for k in values["kinds"].split(",") if k.strip())
    unknown = set(values.get("kinds", ())) - set(KINDS)
    if unknown:
        raise UserError(f"unknown --kinds {', '.join(sorted(unknown))} (choose from {', '.join(KINDS)})")
    values["val_split"] = values.get("val_split") or None
    console = Console(stderr=True)
    result = train_sft(catalog, out_dir, SFTOptions(**values), resume=resume, console=console)
    val = f"{result.val_loss:.3f}" if result.val_loss is not None else "-"
    train_loss = f"{result.train_loss:.3f}" if result.train_loss is not None else "-"
    console.print(f"[green]adapter saved[/green] {result.adapter_dir}  step {result.step}  train loss {train_loss}  "
                  f"val loss {val}  {result.tokens_per_second:.1f} trained tok/s  "
                  f"peak {result.peak_memory_gb:.2f} GB", highlight=False)
