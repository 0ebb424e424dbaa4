"""``mlx-outfit eval``: score FITB / retrieval questions (``eval CATALOG ...`` = ``eval run``) and compare runs."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text

from ..eval.runner import AGGREGATES, DEFAULT_AGGREGATE, SCORERS, run_evaluation


class _RunByDefault(click.Group):
    """A group whose first argument, when it is not a subcommand, goes to ``run`` (``eval CATALOG ...``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


class _QuestionsPerSecond(ProgressColumn):
    def render(self, task) -> Text:
        return Text(f"{task.speed:.2f} q/s" if task.speed else "-- q/s", style="progress.data.speed")


@click.group(cls=_RunByDefault)
def evaluate() -> None:
    """Score FITB / retrieval questions, or compare saved runs.

    \b
    mlx-outfit eval CATALOG --questions Q.jsonl [options]   (same as `eval run`)
    mlx-outfit eval compare RUN1.json RUN2.json ... --chart runs.png
    """


@evaluate.command()
@click.argument("catalog", type=click.Path(path_type=Path))
@click.option("--questions", "-q", required=True, type=click.Path(path_type=Path),
              help="Question file (JSON lines: id, outfit, candidates, answer, category).")
@click.option("--scorer", type=click.Choice(SCORERS), default="llm", show_default=True,
              help="llm: log-likelihood of each candidate's text; cooccurrence: PMI fitted on the train split; "
                   "random: chance level.")
@click.option("--model", "-m", default="default", show_default=True, help="'default', a model folder or a hub id.")
@click.option("--adapter", type=click.Path(path_type=Path), default=None, help="LoRA adapter folder to apply.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Predictions file (JSON lines); a rerun with the same file resumes where it stopped.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object (for `eval compare`).")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Candidates scored together.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Score only the first N questions.")
@click.option("--aggregate", type=click.Choice(AGGREGATES), default=DEFAULT_AGGREGATE, show_default=True,
              help="Rank LLM candidates by mean or summed token log-probability.")
@click.option("--seed", default=0, show_default=True, help="Seed for the random scorer and the bootstrap.")
@click.option("--name", default=None, help="Label of this run in tables and charts.")
def run(catalog: Path, questions: Path, scorer: str, model: str, adapter: Path | None, out: Path | None,
        as_json: bool, batch_size: int, limit: int | None, aggregate: str, seed: int, name: str | None) -> None:
    """Rank each question's candidates and report accuracy, HR@1/5/10 and MRR with 95% intervals."""
    from ..eval.report import summary_table

    columns = (TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), _QuestionsPerSecond(),
               TextColumn("ETA"), TimeRemainingColumn())
    progress = Progress(*columns, console=Console(stderr=True), transient=as_json)
    tasks = []

    def on_progress(finished: int, total: int) -> None:
        if not tasks:  # the first call: the model is loaded, scoring starts (resumed questions count as done)
            progress.start()
            tasks.append(progress.add_task("scoring", total=total, completed=finished))
        else:
            progress.update(tasks[0], completed=finished)

    try:
        summary = run_evaluation(catalog, questions, scorer=scorer, model=model, adapter=adapter, out=out,
                                 batch_size=batch_size, limit=limit, aggregate=aggregate, seed=seed, name=name,
                                 on_progress=on_progress)
    finally:
        progress.stop()
    if as_json:
        click.echo(json.dumps(summary))
    else:
        Console().print(summary_table(summary))


@evaluate.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--chart", type=click.Path(path_type=Path), default=None, help="Write a PNG bar chart with the intervals.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Also write the markdown table here.")
def compare(runs: tuple[Path, ...], chart: Path | None, out: Path | None) -> None:
    """Side-by-side markdown table (and chart) of runs saved with `eval ... --json > RUN.json`."""
    from ..eval.report import compare_chart, compare_table, read_run
    from ..fileio import atomic_write_text

    loaded = [read_run(path) for path in runs]
    table = compare_table(loaded)
    click.echo(table)
    if out:
        atomic_write_text(out, table + "\n")
    if chart:
        compare_chart(loaded, chart)
        click.echo(f"chart written to {chart}", err=True)
