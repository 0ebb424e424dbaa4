#!/usr/bin/env python
"""DPO speed and memory: ``mlx-outfit train dpo`` vs the ``mlx-lm-lora`` package's DPO (``--train-mode dpo``).

mlx-lm-lora is not a dependency of this project: the benchmark installs it with ``pip install
--no-deps`` into its own virtual environment (``runs/bench-venv``), which sees this project's
environment through a ``.pth`` file (everything mlx-lm-lora needs — mlx, mlx-lm, transformers,
datasets, tqdm, pyyaml — is already there).

Both trainers run as child processes, one after the other, on the same model, the same pairs
(real Polyvore FITB pairs from ``train.pairs.training_pairs``; one JSONL file both read:
``{"prompt", "chosen", "rejected"}`` is mlx-lm-lora's DPO format too), the same LoRA rank /
scale / blocks, AdamW, learning rate, β, sigmoid loss, batch size and steps, validation off.
mlx-lm-lora runs through its own ``main()``; the runner only records the exact numbers its
trainer reports (a training callback) and, off Apple silicon, supplies the Metal-only
``max_recommended_working_set_size`` that its trainer reads (``set_wired_limit`` is a no-op there).

By default both get a float32 dequantized copy of the default model (``--dense``): on a CPU,
QLoRA on 4-bit weights with float16 scales is dominated by slow quantized kernels, so the dense
copy compares the DPO loops like for like. Reported per trainer: seconds per pair (median step
time after ``--warmup`` steps, divided by the batch size), mlx's peak memory over the whole run
(model(s), reference log-probs, training) and peak RSS; then the ratios.

    python scripts/bench_dpo.py                      # dense float32 default model, 10 steps of 4 pairs
    python scripts/bench_dpo.py --no-dense --train-dtype native   # both QLoRA on the 4-bit model

Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from bench_sft import POLYVORE_VALID, dense_copy, run_child  # noqa: E402

from mlx_outfit.catalog import Catalog, save_catalog  # noqa: E402
from mlx_outfit.fileio import atomic_write_jsonl, read_jsonl  # noqa: E402
from mlx_outfit.importers.polyvore import import_polyvore  # noqa: E402
from mlx_outfit.train.pairs import training_pairs, write_pairs  # noqa: E402

BENCH_VENV = REPO / "runs" / "bench-venv"
MLX_LM_LORA = "mlx-lm-lora==5.10.2"

# mlx-lm-lora's own CLI entry point, with a callback writing the numbers its trainer computes.
MLX_LM_LORA_RUNNER = """
import json, sys
import mlx.core as mx
import mlx_lm_lora.train as cli
from mlx_lm.tuner.callbacks import TrainingCallback

report = sys.argv[1]
device_info = mx.device_info
if "max_recommended_working_set_size" not in device_info():  # Metal-only key, read by its trainer
    mx.device_info = lambda: {"max_recommended_working_set_size": 0, **device_info()}

class Record(TrainingCallback):
    def on_train_loss_report(self, info):
        with open(report, "a") as f:
            f.write(json.dumps({k: float(v) for k, v in info.items()}) + "\\n")

run = cli.run
cli.run = lambda args, training_callback=None: run(args, Record())
sys.argv = ["mlx_lm_lora.train"] + sys.argv[2:]
cli.main()
"""


def bench_python() -> Path:
    """The benchmark venv's python, creating the venv and installing mlx-lm-lora (no deps) on first use."""
    python = BENCH_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(BENCH_VENV)], check=True)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    site.mkdir(parents=True, exist_ok=True)
    (site / "mlx_outfit_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    if subprocess.run([str(python), "-c", "import mlx_lm_lora.train"], capture_output=True).returncode != 0:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
                        MLX_LM_LORA], check=True)
    return python


def step_seconds_ours(log: Path) -> tuple[list[float], float]:
    """Per-step seconds (report rows every step: tokens / tokens-per-second) and the peak memory logged."""
    rows = [row for _, row in read_jsonl(log) if "train_loss" in row]
    seconds, previous = [], 0
    for row in rows:
        seconds.append((row["trained_tokens"] - previous) / row["tokens_per_second"])
        previous = row["trained_tokens"]
    return seconds, max(row["peak_memory_gb"] for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--model", default="default", help="'default' or an mlx-lm model folder")
    parser.add_argument("--dense", action=argparse.BooleanOptionalAction, default=True,
                        help="give both a float32 dequantized copy of the model [default: on]")
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2, help="first steps left out of the timing")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lora-layers", type=int, default=16)
    parser.add_argument("--lora-rank", type=int, default=8)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--max-seq", type=int, default=512)
    parser.add_argument("--train-dtype", default="auto", choices=["auto", "float32", "native"],
                        help="our trainer's --train-dtype (mlx-lm-lora trains the model as stored)")
    args = parser.parse_args()
    if args.iters <= args.warmup:
        raise SystemExit("--iters must exceed --warmup")

    from mlx_outfit.models.loading import resolve_model

    lora_python = bench_python()
    model_path = resolve_model(args.model)
    work = Path(tempfile.mkdtemp(prefix="bench_dpo.", dir=REPO / "runs"))
    if args.dense:
        model_path = dense_copy(model_path, work / "dense_model")
    items, outfits = import_polyvore(POLYVORE_VALID)
    for outfit in outfits:
        outfit.split = "train"
    catalog = Catalog(root=work / "catalog")
    catalog.merge(items, outfits)
    save_catalog(catalog)
    pairs = training_pairs(catalog)[: args.iters * args.batch_size]  # every pair seen once by both
    write_pairs(work / "pairs.jsonl", pairs)
    data = work / "lora_data"
    atomic_write_jsonl(data / "train.jsonl", ({"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}
                                              for p in pairs))

    common = ["--model", str(model_path), "--iters", str(args.iters), "--batch-size", str(args.batch_size)]
    ours_out = work / "ours"
    ours_cmd = [sys.executable, "-m", "mlx_outfit.cli.main", "train", "dpo", str(catalog.root), "--out",
                str(ours_out), "--pairs", str(work / "pairs.jsonl"), *common, "--lora-layers", str(args.lora_layers),
                "--lora-rank", str(args.lora_rank), "--lora-scale", "20", "--lr", str(args.lr), "--optimizer", "adamw",
                "--beta", str(args.beta), "--loss", "sigmoid", "--max-seq", str(args.max_seq), "--val-split", "",
                "--save-every", "0", "--report-every", "1", "--train-dtype", args.train_dtype]
    config = {"lora_parameters": {"rank": args.lora_rank, "scale": 20.0, "dropout": 0.0}, "fuse": False,
              "train_type": "lora", "train_mode": "dpo", "dpo_cpo_loss_type": "sigmoid", "optimizer": "adamw"}
    (work / "lora_config.yaml").write_text(json.dumps(config))  # JSON is YAML
    lora_report = work / "lora_report.jsonl"
    lora_cmd = [str(lora_python), "-c", MLX_LM_LORA_RUNNER, str(lora_report), "--train", "--data", str(data),
                *common, "--num-layers", str(args.lora_layers), "--learning-rate", str(args.lr),
                "--beta", str(args.beta), "--max-seq-length", str(args.max_seq), "--steps-per-report", "1",
                "--steps-per-eval", str(10 * args.iters + 1), "--save-every", str(10 * args.iters + 1),
                "--val-batches", "0", "--adapter-path", str(work / "lora_adapter"), "--config",
                str(work / "lora_config.yaml")]

    results = {}
    wall, rss, _ = run_child(ours_cmd, work / "ours.log")
    seconds, peak = step_seconds_ours(ours_out / "train_log.jsonl")
    results["mlx-outfit"] = {"step_seconds": seconds, "peak_memory_gb": peak, "peak_rss_gb": rss / 1e9,
                             "wall_s": wall}
    wall, rss, _ = run_child(lora_cmd, work / "mlx_lm_lora.log")
    rows = [row for _, row in read_jsonl(lora_report)]
    results["mlx-lm-lora"] = {"step_seconds": [1 / row["iterations_per_second"] for row in rows],
                              "peak_memory_gb": max(row["peak_memory"] for row in rows), "peak_rss_gb": rss / 1e9,
                              "wall_s": wall}
    for r in results.values():
        r["seconds_per_pair"] = statistics.median(r["step_seconds"][args.warmup:]) / args.batch_size

    ours, base = results["mlx-outfit"], results["mlx-lm-lora"]
    ratios = {"speedup_per_pair": base["seconds_per_pair"] / ours["seconds_per_pair"],
              "peak_memory": ours["peak_memory_gb"] / base["peak_memory_gb"],
              "peak_rss": ours["peak_rss_gb"] / base["peak_rss_gb"]}
    print(f"{'trainer':<13} {'s/pair':>8} {'mlx peak GB':>12} {'peak RSS GB':>12} {'wall s':>7}")
    for name, r in results.items():
        print(f"{name:<13} {r['seconds_per_pair']:>8.3f} {r['peak_memory_gb']:>12.3f} {r['peak_rss_gb']:>12.3f} "
              f"{r['wall_s']:>7.1f}")
    print(f"{'ours vs them':<13} {ratios['speedup_per_pair']:>7.2f}x {ratios['peak_memory']:>11.2f}x "
          f"{ratios['peak_rss']:>11.2f}x   (speed: times faster; memory: ours / theirs)")
    print(json.dumps({"bench": "dpo", "model": str(model_path), "dense": args.dense, "iters": args.iters,
                      "warmup": args.warmup, "batch_size": args.batch_size, "pairs": len(pairs),
                      "lora_layers": args.lora_layers, "lora_rank": args.lora_rank, "train_dtype": args.train_dtype,
                      "baseline": MLX_LM_LORA, "results": results, "ratios": ratios}))


if __name__ == "__main__":
    main()
