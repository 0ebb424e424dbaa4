#!/usr/bin/env python
"""SFT throughput and memory: ``mlx-outfit train sft`` vs ``python -m mlx_lm lora``, same model/data/settings.

Both trainers run as child processes of this one (one process group), one after the other, on
the same model, the same prompt/completion examples (built from real Polyvore outfits with
``train.examples.outfit_examples``; mlx-lm gets them as ``{"prompt", "completion"}`` JSONL with
``--mask-prompt``), the same LoRA rank/scale/blocks, optimizer (Adam), learning rate, batch size
and number of steps, validation off. Reported per trainer: trained (completion) tokens per
second over all steps, mlx's peak memory, and the child's peak RSS; then ours/mlx-lm ratios.

mlx-lm runs through its own CLI ``main()``; the only addition is a reporting callback (its
``--report-to`` hook) that records the exact numbers it computes instead of its rounded
console line.

    python scripts/bench_sft.py                       # the default 4-bit model as stored
    python scripts/bench_sft.py --dense --iters 8     # both on a float32 dense copy (like for like)
    python scripts/bench_sft.py --model /path/to/mlx-model --train-dtype native

Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mlx_outfit.catalog import Catalog, save_catalog  # noqa: E402
from mlx_outfit.fileio import atomic_write_jsonl, read_jsonl  # noqa: E402
from mlx_outfit.importers.polyvore import import_polyvore  # noqa: E402
from mlx_outfit.models.blas import openblas_env  # noqa: E402
from mlx_outfit.train.examples import outfit_examples  # noqa: E402

POLYVORE_VALID = REPO.parent / "shared" / "data" / "polyvore" / "valid_no_dup_with_category_3more_name.json"

# Runs mlx-lm's own CLI entry point, with a reporting callback writing its exact numbers as JSON lines.
MLX_LM_RUNNER = """
import json, sys
import mlx_lm.lora as lora
from mlx_lm.tuner.callbacks import TrainingCallback

report = sys.argv[1]

class Record(TrainingCallback):
    def on_train_loss_report(self, info):
        with open(report, "a") as f:
            f.write(json.dumps({k: float(v) for k, v in info.items()}) + "\\n")

lora.get_reporting_callbacks = lambda *a, **k: Record()
sys.argv = ["mlx_lm.lora"] + sys.argv[2:]
lora.main()
"""


def dense_copy(model_path: Path, dest: Path) -> Path:
    """A float32, dequantized copy of the model folder (so both trainers run the same dense weights)."""
    import mlx.core as mx
    from mlx_lm.utils import dequantize_model, load, save

    model, tokenizer, config = load(str(model_path), return_config=True)
    model = dequantize_model(model)
    model.set_dtype(mx.float32)
    for key in ("quantization", "quantization_config"):
        config.pop(key, None)
    save(dest, model_path, model, tokenizer, config)
    return dest


def run_child(command: list[str], log_path: Path) -> tuple[float, int, str]:
    """Run a child; return its wall time, peak RSS (bytes) and output."""
    with open(log_path, "w") as log:
        tic = time.perf_counter()
        proc = subprocess.Popen(command, cwd=REPO, env=openblas_env(), stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - tic
    output = log_path.read_text()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{command[:4]} failed:\n{output[-3000:]}")
    return wall, usage.ru_maxrss * 1024, output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--model", default="default", help="'default' or an mlx-lm model folder")
    parser.add_argument("--outfits", type=int, default=200, help="Polyvore outfits to build examples from")
    parser.add_argument("--iters", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lora-layers", type=int, default=16)
    parser.add_argument("--lora-rank", type=int, default=8)
    parser.add_argument("--max-seq", type=int, default=512)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--train-dtype", default="auto", choices=["auto", "float32", "native"],
                        help="our trainer's --train-dtype (mlx-lm always trains the model as stored)")
    parser.add_argument("--dense", action="store_true",
                        help="give both trainers a float32 dequantized copy of the model (compares the loops "
                             "like for like; without it mlx-lm does QLoRA on the 4-bit model, which is very slow "
                             "on a CPU)")
    parser.add_argument("--grad-checkpoint", action="store_true", help="gradient checkpointing in both trainers")
    args = parser.parse_args()

    from mlx_outfit.models.loading import resolve_model

    model_path = resolve_model(args.model)
    work = Path(tempfile.mkdtemp(prefix="bench_sft."))
    if args.dense:
        model_path = dense_copy(model_path, work / "dense_model")
    items, outfits = import_polyvore(POLYVORE_VALID)
    outfits = outfits[: args.outfits]
    for outfit in outfits:
        outfit.split = "train"
    catalog = Catalog(root=work / "catalog")
    catalog.merge(items, outfits)
    save_catalog(catalog)

    # The same examples for both: ours builds them from the catalog with the same function and seed.
    examples = outfit_examples(catalog, "train", seed=0)
    data = work / "mlx_lm_data"
    rows = [{"prompt": e.prompt, "completion": e.completion} for e in examples]
    atomic_write_jsonl(data / "train.jsonl", rows)
    atomic_write_jsonl(data / "valid.jsonl", rows[: args.batch_size])

    common = ["--model", str(model_path), "--iters", str(args.iters), "--batch-size", str(args.batch_size)]
    ours_out = work / "ours"
    ours_cmd = [sys.executable, "-m", "mlx_outfit.cli.main", "train", "sft", str(catalog.root), "--out", str(ours_out),
                *common, "--lora-layers", str(args.lora_layers), "--lora-rank", str(args.lora_rank),
                "--max-seq", str(args.max_seq), "--lr", str(args.lr), "--optimizer", "adam", "--val-split", "",
                "--save-every", "0", "--report-every", str(args.iters), "--train-dtype", args.train_dtype]
    mlx_report = work / "mlx_lm_report.jsonl"
    mlx_cmd = [sys.executable, "-c", MLX_LM_RUNNER, str(mlx_report), "--train", "--data", str(data), *common,
               "--num-layers", str(args.lora_layers), "--mask-prompt", "--max-seq-length", str(args.max_seq),
               "--learning-rate", str(args.lr), "--optimizer", "adam", "--steps-per-report", str(args.iters),
               "--steps-per-eval", str(10 * args.iters + 1), "--save-every", str(10 * args.iters + 1),
               "--val-batches", "0", "--adapter-path", str(work / "mlx_lm_adapter")]
    config = {"lora_parameters": {"rank": args.lora_rank, "scale": 20.0, "dropout": 0.0}}
    (work / "mlx_lm_config.yaml").write_text(json.dumps(config))  # JSON is YAML
    mlx_cmd += ["--config", str(work / "mlx_lm_config.yaml")]
    if args.grad_checkpoint:
        ours_cmd.append("--grad-checkpoint")
        mlx_cmd.append("--grad-checkpoint")

    results = {}
    wall, rss, _ = run_child(ours_cmd, work / "ours.log")
    ours_row = [row for _, row in read_jsonl(ours_out / "train_log.jsonl") if "train_loss" in row][-1]
    results["mlx-outfit"] = {"tokens_per_second": ours_row["tokens_per_second"],
                             "trained_tokens": ours_row["trained_tokens"],
                             "peak_memory_gb": ours_row["peak_memory_gb"], "peak_rss_gb": rss / 1e9, "wall_s": wall}
    wall, rss, _ = run_child(mlx_cmd, work / "mlx_lm.log")
    mlx_row = [row for _, row in read_jsonl(mlx_report)][-1]
    results["mlx_lm lora"] = {"tokens_per_second": mlx_row["tokens_per_second"],
                              "trained_tokens": mlx_row["trained_tokens"],
                              "peak_memory_gb": mlx_row["peak_memory"], "peak_rss_gb": rss / 1e9, "wall_s": wall}

    ours, base = results["mlx-outfit"], results["mlx_lm lora"]
    ratios = {"throughput": ours["tokens_per_second"] / base["tokens_per_second"],
              "peak_memory": ours["peak_memory_gb"] / base["peak_memory_gb"],
              "peak_rss": ours["peak_rss_gb"] / base["peak_rss_gb"]}
    print(f"{'trainer':<12} {'trained tok/s':>14} {'tokens':>7} {'mlx peak GB':>12} {'peak RSS GB':>12} {'wall s':>7}")
    for name, r in results.items():
        print(f"{name:<12} {r['tokens_per_second']:>14.2f} {r['trained_tokens']:>7.0f} {r['peak_memory_gb']:>12.3f} "
              f"{r['peak_rss_gb']:>12.3f} {r['wall_s']:>7.1f}")
    print(f"{'ours/mlx-lm':<12} {ratios['throughput']:>13.2f}x {'':>7} {ratios['peak_memory']:>11.2f}x "
          f"{ratios['peak_rss']:>11.2f}x")
    print(json.dumps({"bench": "sft", "model": str(model_path), "dense": args.dense, "grad_checkpoint": args.grad_checkpoint, "iters": args.iters, "batch_size": args.batch_size,
                      "lora_layers": args.lora_layers, "lora_rank": args.lora_rank, "train_dtype": args.train_dtype,
                      "examples": len(examples), "results": results, "ratios": ratios}))


if __name__ == "__main__":
    main()
