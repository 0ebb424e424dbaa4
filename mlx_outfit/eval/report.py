"""Tables and a chart of evaluation summaries (the dicts :func:`runner.run_evaluation` returns)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from rich.table import Table

from ..errors import UserError
from ..fileio import atomic_path, read_json
from .metrics import METRICS

REQUIRED = ("n", *METRICS, "ci")
# Question sets with at most this many candidates are FITB (report accuracy); larger ones are retrieval.
FITB_MAX_CANDIDATES = 10
LABELS = {"accuracy": "accuracy", "hr@1": "HR@1", "hr@5": "HR@5", "hr@10": "HR@10", "mrr": "MRR"}


def format_metric(summary: dict, metric: str) -> str:
    """``41.2 [38.0, 44.5]`` (percent) for rates, ``0.412 [0.380, 0.445]`` for MRR."""
    low, high = summary["ci"][metric]
    if metric == "mrr":
        return f"{summary[metric]:.3f} [{low:.3f}, {high:.3f}]"
    return f"{100 * summary[metric]:.1f} [{100 * low:.1f}, {100 * high:.1f}]"


def shown_metrics(candidates: float) -> tuple[str, ...]:
    """The metrics worth showing: accuracy for FITB; HR@1/HR@10/MRR for retrieval (HR@k is 1 once k >= candidates)."""
    return ("accuracy", "mrr") if candidates <= FITB_MAX_CANDIDATES else ("hr@1", "hr@5", "hr@10", "mrr")


def summary_table(summary: dict) -> Table:
    """A terminal table: overall metrics with 95% intervals, then one row per category."""
    metrics = shown_metrics(summary["candidates"])
    table = Table(title=f"{summary['name']}: {summary['n']} questions, {_candidates(summary)} candidates "
                        f"(95% bootstrap intervals; rates in %)")
    table.add_column("category")
    table.add_column("n", justify="right")
    for metric in metrics:
        table.add_column(LABELS[metric], justify="right", no_wrap=True)
    table.add_row("all", str(summary["n"]), *(format_metric(summary, m) for m in metrics), style="bold")
    for category, values in summary["per_category"].items():
        table.add_row(category, str(values["n"]),
                      *(f"{values[m]:.3f}" if m == "mrr" else f"{100 * values[m]:.1f}" for m in metrics))
    return table


def read_run(path: str | Path) -> dict:
    """A run summary saved with ``mlx-outfit eval ... --json > RUN.json``."""
    run = read_json(path)
    missing = [k for k in REQUIRED if not isinstance(run, dict) or k not in run]
    if missing:
        raise UserError(f"not an eval summary (missing {', '.join(missing)}); save one with "
                        "`mlx-outfit eval CATALOG --questions Q.jsonl --json > RUN.json`", str(path))
    run.setdefault("name", Path(path).stem)
    run.setdefault("questions", str(path))
    run.setdefault("candidates", 0)
    return run


def _question_sets(runs: Sequence[dict]) -> dict[str, tuple[str, ...]]:
    """Question file -> the metrics shown for it (accuracy for FITB, HR@10 and MRR for retrieval)."""
    sets: dict[str, tuple[str, ...]] = {}
    for run in runs:
        fitb = run["candidates"] <= FITB_MAX_CANDIDATES
        sets.setdefault(run["questions"], ("accuracy",) if fitb else ("hr@10", "mrr"))
    return sets


def _distinct(runs: Sequence[dict]) -> list[dict]:
    """Runs whose names are unique per question file (a repeated name gets " (2)", " (3)", ...)."""
    seen: dict[tuple[str, str], int] = {}
    distinct = []
    for run in runs:
        key = (run["name"], run["questions"])
        seen[key] = seen.get(key, 0) + 1
        distinct.append(run if seen[key] == 1 else {**run, "name": f"{run['name']} ({seen[key]})"})
    return distinct


def compare_table(runs: Sequence[dict]) -> str:
    """Markdown: one row per run name, columns per question file (rates in %, 95% intervals)."""
    runs = _distinct(runs)
    sets = _question_sets(runs)
    by_name: dict[str, dict[str, dict]] = {}
    for run in runs:
        by_name.setdefault(run["name"], {})[run["questions"]] = run
    header, full_n = ["run"], {}
    for questions, metrics in sets.items():
        on_set = [r for r in runs if r["questions"] == questions]
        full_n[questions] = max(r["n"] for r in on_set)
        header += [f"{Path(questions).stem} ({_candidates(on_set[0])} cand., n={full_n[questions]}) {LABELS[m]}"
                   for m in metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, results in by_name.items():
        cells = [name]
        for questions, metrics in sets.items():
            run = results.get(questions)
            # A run on fewer questions (--limit) says so in its cells.
            note = f" (n={run['n']})" if run and run["n"] != full_n[questions] else ""
            cells += [format_metric(run, m) + note if run else "–" for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _candidates(run: dict) -> str:
    """Mean candidates per question, rounded (a few questions may have fewer than asked for)."""
    return f"{run['candidates']:.0f}"


def compare_chart(runs: Sequence[dict], path: str | Path) -> None:
    """PNG bar chart: one panel per question file, one bar per run and metric, 95% intervals as error bars."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("charts need matplotlib: pip install 'mlx-outfit[charts]'") from None
    import numpy as np

    runs = _distinct(runs)
    sets = _question_sets(runs)
    names = list(dict.fromkeys(r["name"] for r in runs))
    fig, axes = plt.subplots(1, len(sets), figsize=(1.5 + 2.2 * sum(len(m) for m in sets.values()) + len(names) * 0.4,
                                                     4), squeeze=False)
    width = 0.8 / len(names)
    for ax, (questions, metrics) in zip(axes[0], sets.items()):
        x = np.arange(len(metrics))
        for i, name in enumerate(names):
            run = next((r for r in runs if r["name"] == name and r["questions"] == questions), None)
            if run is None:
                continue
            values = np.array([run[m] for m in metrics])
            errors = np.abs(np.array([run["ci"][m] for m in metrics]).T - values)
            ax.bar(x + (i - (len(names) - 1) / 2) * width, values, width, yerr=errors, capsize=3, label=name)
        ax.set_xticks(x, [LABELS[m] for m in metrics])
        ax.set_ylim(0, 1)
        candidates = _candidates(next(r for r in runs if r["questions"] == questions))
        ax.set_title(f"{Path(questions).stem} ({candidates} candidates)")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize="small")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
