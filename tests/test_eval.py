"""``mlx-outfit eval``: runs on real catalogs, resumes, rejects bad question files, baselines, compare."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner
from PIL import Image

from mlx_outfit.catalog import Catalog, Item, Outfit, save_catalog
from mlx_outfit.cli.evaluate import evaluate
from mlx_outfit.errors import UserError
from mlx_outfit.eval.baselines import CooccurrenceScorer, RandomScorer
from mlx_outfit.eval.runner import evaluate_questions, read_predictions, run_evaluation, summarize_predictions
from mlx_outfit.models.blas import openblas_env
from mlx_outfit.questions import Question, build_questions, split_catalog, write_questions

from conftest import POLYVORE_VALID


@pytest.fixture(scope="module")
def polyvore(tmp_path_factory, shared_data):
    """The real Polyvore valid outfits as a split catalog, with FITB and retrieval question files."""
    from mlx_outfit.importers.polyvore import import_polyvore

    root = tmp_path_factory.mktemp("polyvore")
    catalog = Catalog(root / "catalog")
    catalog.merge(*import_polyvore(POLYVORE_VALID))
    split_catalog(catalog, valid=0.1, test=0.1, seed=0)
    save_catalog(catalog)
    for task in ("fitb", "retrieval"):
        write_questions(root / f"{task}.jsonl", build_questions(catalog, task, "test", seed=0))
    return catalog, root


def _run(args: list[str]):
    return CliRunner().invoke(evaluate, [str(a) for a in args], catch_exceptions=True)


def test_cli_json_summary_with_tiny_model(polyvore, tiny_llama):
    catalog, root = polyvore
    result = _run([catalog.root, "--questions", root / "fitb.jsonl", "--model", tiny_llama, "--limit", "6", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"n", "accuracy", "hr@1", "hr@5", "hr@10", "mrr", "ci", "per_category"} <= set(summary)
    assert summary["n"] == 6 and summary["candidates"] == 4
    assert summary["ci"]["accuracy"][0] <= summary["accuracy"] <= summary["ci"]["accuracy"][1]
    assert sum(c["n"] for c in summary["per_category"].values()) == 6
    assert set(summary["by_aggregate"]) == {"sum", "mean"}


def test_retrieval_table_with_random_scorer(polyvore):
    catalog, root = polyvore
    result = _run(["run", catalog.root, "-q", root / "retrieval.jsonl", "--scorer", "random"])
    assert result.exit_code == 0, result.output
    assert "HR@10" in result.stdout and "random" in result.stdout


def test_random_scorer_is_chance_level_and_seeded(polyvore):
    catalog, root = polyvore
    first = run_evaluation(catalog.root, root / "retrieval.jsonl", scorer="random", seed=3)
    assert first == run_evaluation(catalog.root, root / "retrieval.jsonl", scorer="random", seed=3) | \
        {"seconds": first["seconds"]}
    # 100 candidates: HR@10 ~ 0.10 by chance, within its bootstrap interval.
    assert first["ci"]["hr@10"][0] <= 0.10 <= first["ci"]["hr@10"][1]
    assert first["hr@1"] < first["hr@5"] < first["hr@10"]


def test_cooccurrence_beats_chance_on_real_outfits(polyvore):
    catalog, root = polyvore
    summary = run_evaluation(catalog.root, root / "fitb.jsonl", scorer="cooccurrence")
    assert summary["ci"]["accuracy"][0] > 0.25, summary["accuracy"]


def test_cooccurrence_prefers_words_seen_together(tmp_path):
    items = [Item("shirt", "upper", "white linen shirt"), Item("shorts", "bottom", "linen shorts"),
             Item("coat", "upper", "wool coat"), Item("trousers", "bottom", "wool trousers"),
             Item("blouse", "upper", "linen blouse"), Item("jumper", "upper", "wool jumper"),
             Item("skirt", "bottom", "linen skirt"), Item("flannels", "bottom", "wool flannels")]
    catalog = Catalog(tmp_path, {i.id: i for i in items},
                      [Outfit("a", ["shirt", "shorts"], "train"), Outfit("b", ["coat", "trousers"], "train"),
                       Outfit("c", ["blouse", "skirt"], "test"), Outfit("d", ["jumper", "flannels"], "test")])
    scorer = CooccurrenceScorer(catalog)
    linen = scorer(Question("c", ["blouse"], ["flannels", "skirt"], 1, "bottom"))["scores"]
    wool = scorer(Question("d", ["jumper"], ["flannels", "skirt"], 0, "bottom"))["scores"]
    assert linen[1] > linen[0] and wool[0] > wool[1]


def test_predictions_resume_without_rescoring(polyvore, tmp_path):
    catalog, root = polyvore
    questions = build_questions(catalog, "fitb", "test", seed=0)[:8]
    scored = []

    def counting(question):
        scored.append(question.id)
        return RandomScorer(0)(question)

    out, run = tmp_path / "pred.jsonl", {"scorer": "random"}
    first = evaluate_questions(questions[:5], counting, out, run)
    # An interruption in the middle of writing a line leaves half a line: it is dropped and rescored.
    with open(out, "a") as f:
        f.write('{"id": "' + questions[5].id + '", "scor')
    rows = evaluate_questions(questions, counting, out, run)
    assert scored == [q.id for q in questions[:5]] + [q.id for q in questions[5:]]
    assert rows[:5] == first
    assert list(read_predictions(out, run)) == [q.id for q in questions]
    assert summarize_predictions(rows) == summarize_predictions(evaluate_questions(questions, RandomScorer(0)))
    with pytest.raises(UserError, match="another run"):
        evaluate_questions(questions, counting, out, {"scorer": "llm"})


@pytest.mark.parametrize("line, message", [
    ({"id": "q", "outfit": ["no-such-item"], "candidates": [], "answer": 0}, "candidates"),
    ("UNKNOWN", "unknown item id"),
    ("OUT_OF_RANGE", "'answer' must be an index"),
    ("not json at all", "malformed JSON"),
])
def test_bad_question_files_name_file_and_line(polyvore, tmp_path, line, message):
    catalog, root = polyvore
    good = (root / "fitb.jsonl").read_text().splitlines()[:2]
    row = json.loads(good[0])
    if line == "UNKNOWN":
        line = {**row, "id": "other", "candidates": row["candidates"][:-1] + ["no-such-item"]}
    elif line == "OUT_OF_RANGE":
        line = {**row, "id": "other", "answer": len(row["candidates"])}
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(good + [line if isinstance(line, str) else json.dumps(line)]) + "\n")
    with pytest.raises(UserError, match=message) as error:
        run_evaluation(catalog.root, bad, scorer="random")
    assert f"{bad}:3:" in str(error.value)


def test_cli_bad_file_is_one_line_error(polyvore, tmp_path):
    catalog, _ = polyvore
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "outfit": [], "candidates": ["nope"], "answer": 0}\n')
    proc = subprocess.run([sys.executable, "-m", "mlx_outfit.cli.main", "eval", str(catalog.root), "--questions",
                           str(bad), "--scorer", "random"], capture_output=True, text=True, env=openblas_env(),
                          timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert f"{bad}:1:" in proc.stderr and "unknown item id" in proc.stderr


def test_compare_table_and_chart(polyvore, tmp_path):
    catalog, root = polyvore
    paths = []
    for scorer in ("random", "cooccurrence"):
        for task in ("fitb", "retrieval"):
            result = _run([catalog.root, "-q", root / f"{task}.jsonl", "--scorer", scorer, "--json"])
            assert result.exit_code == 0, result.output
            paths.append(tmp_path / f"{scorer}_{task}.json")
            paths[-1].write_text(result.stdout)
    chart = tmp_path / "runs.png"
    result = _run(["compare", *paths, "--chart", chart, "--out", tmp_path / "table.md"])
    assert result.exit_code == 0, result.output
    table = (tmp_path / "table.md").read_text().splitlines()
    assert table[0].startswith("| run | fitb (4 cand.") and "retrieval (100 cand." in table[0]
    assert [row.split(" | ")[0] for row in table[2:]] == ["| random", "| cooccurrence"]
    assert len(table[2].split(" | ")) == 4  # run, FITB accuracy, retrieval HR@10, MRR
    with Image.open(chart) as image:
        assert image.format == "PNG" and image.width > 300


def test_compare_rejects_files_that_are_not_runs(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"n": 3}')
    result = _run(["compare", path])
    assert isinstance(result.exception, UserError) and "not an eval summary" in str(result.exception)
