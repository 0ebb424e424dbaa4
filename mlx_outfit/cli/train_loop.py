"""``mlx-outfit train loop``: self-improving rounds of mistake mining, DPO and validation."""

from __future__ import annotations

import click
from rich.console import Console

from .train_dpo import dpo, options_from

# Each round's pairs are its mistakes, and it is judged by validation accuracy, not pair loss.
NOT_IN_LOOP = ("pairs", "val_every", "val_batches")


@click.command()
@click.option("--rounds", type=int, default=3, show_default=True, help="At most this many DPO rounds.")
@click.option("--patience", type=int, default=1, show_default=True,
              help="Stop after this many rounds in a row without a validation gain.")
@click.option("--train-questions", type=int, default=100, show_default=True,
              help="Training FITB questions scored per round to find mistakes (a fresh sample each round).")
@click.option("--valid-questions", type=int, default=100, show_default=True,
              help="Validation FITB questions, the same every round (-1 = all).")
@click.option("--score-batch-size", type=int, default=16, show_default=True, help="Candidates scored per batch.")
@click.option("--feedback/--no-feedback", default=True, show_default=True,
              help="Add your `recommend` feedback pairs to every round.")
@click.pass_context
def loop(ctx: click.Context, catalog: str, out_dir: str, resume: bool, config_path: str | None, rounds: int,
         patience: int, train_questions: int, valid_questions: int, score_batch_size: int, feedback: bool,
         **flags) -> None:
    """Self-improve on CATALOG: find the model's mistakes, DPO on them, keep the best round.

    Each round scores training fill-in-the-blank questions with the current policy, turns every
    wrong candidate ranked at or above the true item into a preference pair, runs a DPO round
    (--iters steps per round, default one epoch over its pairs) starting from, and referenced
    to, the current policy, then measures validation accuracy. --out gets loop.jsonl (one row
    per round), round-N/ adapters, and best/ (the best round's adapter). --resume continues.

    \b
    Example:
      mlx-outfit train loop catalogs/polyvore --out adapters/loop --init-adapter adapters/sft --rounds 3
      mlx-outfit eval catalogs/polyvore questions/test.jsonl --adapter adapters/loop/best
    """
    from ..train.loop import LoopOptions, run_loop

    console = Console(stderr=True)
    options = LoopOptions(rounds=rounds, patience=patience, train_questions=train_questions,
                          valid_questions=valid_questions, score_batch_size=score_batch_size, feedback=feedback)
    result = run_loop(catalog, out_dir, options, options_from(ctx, flags, config_path), resume=resume,
                      console=console)
    start = result.rounds[0]["valid_accuracy"]
    best = result.best_adapter or "the base model (no adapter)"
    console.print(f"[green]best: round {result.best_round}[/green], validation accuracy "
                  f"{result.best_accuracy:.3f} (start {start:.3f}) → {best}", highlight=False)


loop.params[:0] = [p for p in dpo.params if p.name not in NOT_IN_LOOP]
