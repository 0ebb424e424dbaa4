"""The self-improving loop (``mlx-outfit train loop``): mine mistakes → DPO → validate, round after round.

Each round starts from the previous round's policy. It scores a fresh sample of training
FITB questions, turns every wrong candidate ranked at or above the true item into a hard
pair (plus the user's feedback pairs), runs a DPO round whose reference is that starting
policy, and measures FITB accuracy on the same validation questions every round. It stops
when ``patience`` rounds in a row bring no gain, or when no mistakes are left.

The out folder::

    loop.jsonl      one row per round (round 0 = the starting policy): accuracies, pairs, adapter
    round-N/        each round's DPO run (adapter, pairs.jsonl, train_log.jsonl, checkpoints/)
    best/           a copy of the best round's adapter (absent when no round beat the start)
    best.json       which round was best, its validation accuracy and adapter folder

An interrupted loop continues with ``resume=True``: finished rounds are read back from
``loop.jsonl`` and an unfinished DPO round resumes from its checkpoint.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from ..catalog import Catalog, load_catalog
from ..errors import UserError
from ..eval.runner import LLMScorer, evaluate_questions, summarize_predictions
from ..fileio import append_jsonl, atomic_write_json, read_jsonl
from ..questions import Question, build_questions
from .dpo import DPOOptions, train_dpo
from .pairs import mistake_pairs, stored_feedback_pairs
from .trainer import ADAPTER_CONFIG, ADAPTER_FILE

LOOP_LOG = "loop.jsonl"
BEST_DIR = "best"
BEST_FILE = "best.json"


@dataclass
class LoopOptions:
    rounds: int = 3
    patience: int = 1  # rounds without a validation gain before stopping
    train_questions: int = 100  # training questions scored per round (a fresh sample each round)
    valid_questions: int = 100  # validation questions, the same every round (-1 = all)
    score_batch_size: int = 16
    feedback: bool = True  # add the user's recommend feedback pairs to every round


@dataclass
class LoopResult:
    rounds: list[dict]  # the loop.jsonl rows
    best_round: int
    best_accuracy: float
    best_adapter: str | None  # None: the starting policy is the base model and stayed best


def _sample(questions: list[Question], n: int, seed: int) -> list[Question]:
    return questions if n < 0 or n >= len(questions) else random.Random(seed).sample(questions, n)


def _score(model: str, adapter: str | None, catalog: Catalog, questions: list[Question], batch_size: int,
           label: str, console: Console) -> list[dict]:
    """Prediction rows of the policy ``model`` + ``adapter`` on ``questions`` (evaluation's scorer)."""
    from ..models.loading import load_model, on_cpu

    # Scoring is prompt-heavy: dense weights are ~20x faster than 4-bit on a CPU.
    llm, tokenizer = load_model(model, adapter, dequantize=on_cpu())
    with Progress(*Progress.get_default_columns(), console=console, transient=True) as progress:
        task = progress.add_task(label, total=len(questions))
        return evaluate_questions(questions, LLMScorer(llm, tokenizer, catalog, batch_size),
                                  on_progress=lambda done, _: progress.update(task, completed=done))


def _keep_best(out_dir: Path, row: dict) -> None:
    """Copy the round's adapter to ``best/`` (swapped in whole) and record it in ``best.json``."""
    best = out_dir / BEST_DIR
    tmp = Path(tempfile.mkdtemp(prefix=".best.", dir=out_dir))
    for name in (ADAPTER_FILE, ADAPTER_CONFIG):
        shutil.copy2(Path(row["adapter"]) / name, tmp / name)
    if best.exists():
        shutil.rmtree(best)
    tmp.rename(best)
    atomic_write_json(out_dir / BEST_FILE, {k: row[k] for k in ("round", "valid_accuracy", "adapter")})


def _finished_rounds(out_dir: Path, resume: bool) -> list[dict]:
    log = out_dir / LOOP_LOG
    if not log.is_file():
        return []
    if not resume:
        raise UserError("already holds a loop run; pass --resume to continue it, or choose another --out",
                        str(out_dir))
    return [row for _, row in read_jsonl(log)]


def run_loop(catalog: str | Path | Catalog, out_dir: str | Path, options: LoopOptions | None = None,
             dpo: DPOOptions | None = None, *, resume: bool = False, console: Console | None = None) -> LoopResult:
    """Run up to ``options.rounds`` self-improving rounds; see the module docstring."""
    options = options or LoopOptions()
    dpo = dpo or DPOOptions()
    console = console or Console(stderr=True)
    if options.rounds < 1 or options.patience < 1:
        raise UserError("--rounds and --patience must be at least 1")
    catalog = catalog if isinstance(catalog, Catalog) else load_catalog(catalog)
    out_dir = Path(out_dir)
    rows = _finished_rounds(out_dir, resume)
    out_dir.mkdir(parents=True, exist_ok=True)
    train_pool = build_questions(catalog, "fitb", dpo.split, dpo.n_candidates, dpo.seed)
    valid = _sample(build_questions(catalog, "fitb", dpo.val_split or "valid", dpo.n_candidates, dpo.seed),
                    options.valid_questions, dpo.seed)
    feedback = stored_feedback_pairs(catalog) if options.feedback else []

    def finish(row: dict) -> None:
        rows.append(row)
        append_jsonl(out_dir / LOOP_LOG, row)
        console.print(f"round {row['round']}: validation accuracy {row['valid_accuracy']:.3f}"
                      + (f" (trained on {row['pairs']} pairs)" if row.get("pairs") else ""), highlight=False)

    if not rows:
        predictions = _score(dpo.model, dpo.init_adapter, catalog, valid, options.score_batch_size,
                             "validating the starting policy", console)
        finish({"round": 0, "adapter": dpo.init_adapter,
                "valid_accuracy": summarize_predictions(predictions)["accuracy"]})
    while True:
        best = max(rows, key=lambda r: (r["valid_accuracy"], -r["round"]))
        last = rows[-1]
        if last["round"] - best["round"] >= options.patience or last["round"] >= options.rounds:
            break
        number = last["round"] + 1
        questions = _sample(train_pool, options.train_questions, dpo.seed + number)
        predictions = _score(dpo.model, last["adapter"], catalog, questions, options.score_batch_size,
                             f"round {number}: finding mistakes", console)
        pairs = mistake_pairs(catalog, questions, predictions) + feedback
        row = {"round": number, "train_accuracy": summarize_predictions(predictions)["accuracy"],
               "hard_pairs": len(pairs) - len(feedback), "pairs": len(pairs)}
        if len(pairs) < dpo.batch_size:
            console.print(f"round {number}: only {len(pairs)} mistakes left (fewer than --batch-size); stopping")
            break
        round_dir = out_dir / f"round-{number}"
        result = train_dpo(catalog, round_dir, replace(dpo, init_adapter=last["adapter"], pairs=None, val_split=None),
                           pairs=pairs, resume=resume, console=console)
        predictions = _score(dpo.model, str(round_dir), catalog, valid, options.score_batch_size,
                             f"round {number}: validating", console)
        row.update(adapter=str(round_dir), valid_accuracy=summarize_predictions(predictions)["accuracy"],
                   train_loss=result.train.train_loss)
        finish(row)
        if row["valid_accuracy"] > best["valid_accuracy"]:
            _keep_best(out_dir, row)
    best = max(rows, key=lambda r: (r["valid_accuracy"], -r["round"]))
    return LoopResult(rows, best["round"], best["valid_accuracy"],
                      str(out_dir / BEST_DIR) if best["round"] > 0 else best["adapter"])
