"""The live training view (rich) and the JSONL training log beside the adapter."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
    TimeRemainingColumn

from ..fileio import append_jsonl, atomic_write_jsonl, read_jsonl

LOG_FILE = "train_log.jsonl"


class TrainView:
    """One progress line: step/total, train loss, val loss, trained tok/s, peak memory, elapsed, ETA."""

    def __init__(self, total_steps: int, start_step: int = 0, console: Console | None = None,
                 description: str = "train"):
        self.stats = {"loss": "-", "val": "-", "tok/s": "-", "peak": "-"}
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(bar_width=24), MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=console, transient=False)
        self.task = self.progress.add_task(description, total=total_steps, completed=start_step,
                                           stats=self._stats_text())

    def __enter__(self) -> "TrainView":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def update(self, step: int, *, train_loss: float | None = None, val_loss: float | None = None,
               tokens_per_second: float | None = None, peak_memory_gb: float | None = None) -> None:
        for key, value, fmt in (("loss", train_loss, "{:.3f}"), ("val", val_loss, "{:.3f}"),
                                ("tok/s", tokens_per_second, "{:.0f}"), ("peak", peak_memory_gb, "{:.2f} GB")):
            if value is not None:
                self.stats[key] = fmt.format(value)
        self.progress.update(self.task, completed=step, stats=self._stats_text())

    def note(self, message: str) -> None:
        self.progress.console.print(message)

    def _stats_text(self) -> str:
        return "  ".join(f"{k} [cyan]{v}[/cyan]" for k, v in self.stats.items())


def log_row(out_dir: Path, row: dict) -> None:
    append_jsonl(Path(out_dir) / LOG_FILE, row)


def truncate_log(out_dir: Path, last_step: int) -> None:
    """Drop log rows after ``last_step`` (written after the checkpoint a resumed run restarts from)."""
    path = Path(out_dir) / LOG_FILE
    if path.is_file():
        rows = [row for _, row in read_jsonl(path) if row.get("step", 0) <= last_step]
        atomic_write_jsonl(path, rows)
