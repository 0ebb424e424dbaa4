"""``mlx-outfit train dpo``: Direct Preference Optimization on preference pairs."""

from __future__ import annotations

import copy

import click
from rich.console import Console

from ..train.dpo import LOSS_TYPES
from .train_sft import load_config, sft

# ``train sft``'s options mean the same for DPO (one list, no drift); these two do not apply.
SFT_ONLY = ("kinds", "config_path")
DPO_DEFAULTS = {"learning_rate": 5e-5}


def training_params(exclude: tuple[str, ...] = ()) -> list[click.Parameter]:
    """``train sft``'s arguments and options, less the SFT-only ones, with DPO defaults."""
    params = []
    for param in sft.params:
        if param.name in SFT_ONLY + exclude:
            continue
        if param.name in DPO_DEFAULTS:
            param = copy.copy(param)
            param.default = DPO_DEFAULTS[param.name]
        params.append(param)
    return params


def options_from(ctx: click.Context, flags: dict, config_path: str | None):
    """DPOOptions from a YAML config, overridden by the flags given on the command line."""
    from ..train.dpo import DPOOptions

    values = load_config(config_path, DPOOptions)
    for name, value in flags.items():
        if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT or name not in values:
            values[name] = value
    values["val_split"] = values.get("val_split") or None
    return DPOOptions(**values)


@click.command()
@click.option("--init-adapter", type=click.Path(file_okay=False, exists=True),
              help="Start from this LoRA adapter (usually the SFT one); it is also the reference policy.")
@click.option("--pairs", type=click.Path(dir_okay=False, exists=True),
              help="Preference pairs JSONL [default: from the catalog's training FITB questions + feedback].")
@click.option("--beta", type=float, default=0.1, show_default=True,
              help="Strength of the pull toward the reference policy (smaller = freer).")
@click.option("--loss", type=click.Choice(LOSS_TYPES), default="sigmoid", show_default=True,
              help="sigmoid (DPO), ipo (per-token means), hinge (SLiC), robust (noisy labels).")
@click.option("--label-smoothing", type=float,
              help="Assumed share of wrongly labelled pairs, for sigmoid (cDPO) and robust [default: robust 0.1, "
                   "else 0].")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="YAML file of options (keys as the flags, e.g. beta: 0.2); flags on the command line win.")
@click.pass_context
def dpo(ctx: click.Context, catalog: str, out_dir: str, resume: bool, config_path: str | None, **flags) -> None:
    """Preference-tune the LLM on CATALOG: prefer the right item over a wrong one (DPO).

    Pairs come from --pairs, or from the training split's fill-in-the-blank questions (the
    true item over a wrong candidate of its category) plus your `recommend` feedback.
    Reference log-probs of the starting policy are computed once and cached in --out; no
    second model is held in memory. Ctrl-C saves a checkpoint (exit 130); --resume continues.

    \b
    Example:
      mlx-outfit train sft catalogs/polyvore --out adapters/sft --iters 600
      mlx-outfit train dpo catalogs/polyvore --out adapters/dpo --init-adapter adapters/sft --iters 200
    """
    from ..train.dpo import train_dpo

    console = Console(stderr=True)
    result = train_dpo(catalog, out_dir, options_from(ctx, flags, config_path), resume=resume, console=console)
    train = result.train
    summary = f"[green]adapter saved[/green] {train.adapter_dir}  step {train.step}  {result.pairs} pairs"
    if result.valid is not None:
        summary += (f"  validation pairs: accuracy {result.valid['accuracy']:.3f}, "
                    f"reward margin {result.valid['reward_margin']:.3f}")
    console.print(f"{summary}  {train.train_seconds / max(train.step, 1):.2f} s/step  "
                  f"peak {train.peak_memory_gb:.2f} GB", highlight=False)


dpo.params[:0] = training_params()
