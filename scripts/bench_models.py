"""Benchmark the default model: load time, prompt / generation tokens per second, peak memory.

Variants: the native 4-bit import (the default; Q4_1 blocks, Q8_0 embeddings) as
``load_model`` gives it, the same dequantized at load (``dequantize=True``), the fp32
dequantized import of the GGUF, and optionally the native import with its stored fp16 scales,
i.e. without the CPU dtype policy. Ratios are against the native 4-bit row.
Also measures the fp32 matmul speed-up of OpenBLAS over MLX's bundled BLAS (Linux), each in a
fresh subprocess of this run. Prints one JSON line, then a table.

    python scripts/bench_models.py [--max-tokens 64] [--with-fp16-scales]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from mlx_outfit.models.blas import ensure_openblas, openblas_active, openblas_env, openblas_path

ensure_openblas()  # before mlx is imported: the model variants run with the fast BLAS where available

PROMPT = ("Outfit:\n- top: white cotton shirt, relaxed fit\n- bottom: blue denim jeans, straight leg\n"
          "- shoes: brown leather loafers\nName one bag that completes it, and say why in two sentences.")

MATMUL_CODE = """
import sys, time
import mlx.core as mx
import numpy as np
n = {n}
a = mx.random.normal((n, n), key=mx.random.key(0)); b = mx.random.normal((n, n), key=mx.random.key(1))
mx.eval(a @ b)
times = []
for _ in range({repeats}):
    start = time.perf_counter(); c = a @ b; mx.eval(c); times.append(time.perf_counter() - start)
np.save(sys.argv[1], np.array(c))
print(sorted(times)[len(times) // 2] * 1000)
"""


def matmul_ms(env: dict[str, str], out_file: str, n: int = 1024, repeats: int = 5) -> float:
    result = subprocess.run([sys.executable, "-c", MATMUL_CODE.format(n=n, repeats=repeats), out_file],
                            env=env, capture_output=True, text=True, check=True)
    return float(result.stdout.strip().splitlines()[-1])


def blas_speedup() -> dict:
    """fp32 1024³ matmul with the bundled BLAS vs OpenBLAS, same inputs, in fresh processes."""
    import numpy as np

    if openblas_path() is None:
        return {"openblas": None}
    bundled_env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    bundled_env["MLX_OUTFIT_NO_OPENBLAS"] = "1"
    fast_env = openblas_env(bundled_env | {"MLX_OUTFIT_NO_OPENBLAS": ""})
    with tempfile.TemporaryDirectory() as tmp:
        bundled = matmul_ms(bundled_env, f"{tmp}/bundled.npy")
        fast = matmul_ms(fast_env, f"{tmp}/openblas.npy")
        diff = float(np.abs(np.load(f"{tmp}/bundled.npy") - np.load(f"{tmp}/openblas.npy")).max())
    return {"openblas": openblas_path(), "matmul_1024_fp32_ms_bundled": round(bundled, 1),
            "matmul_1024_fp32_ms_openblas": round(fast, 1), "openblas_speedup": round(bundled / fast, 1),
            "matmul_max_abs_diff": diff}


def quantized_matmul_ms(rows: int = 16) -> dict:
    """One default-model MLP projection (576 -> 1536, 4-bit, group 32) for ``rows`` tokens, this process."""
    import mlx.core as mx

    def ms(f, repeats: int = 5) -> float:
        mx.eval(f())
        start = time.perf_counter()
        for _ in range(repeats):
            mx.eval(f())
        return round((time.perf_counter() - start) / repeats * 1000, 2)

    w = mx.random.normal((1536, 576), key=mx.random.key(0))
    x = mx.random.normal((rows, 576), key=mx.random.key(1))
    q, scales, biases = mx.quantize(w, group_size=32, bits=4)
    result = {"rows": rows, "dense_fp32_ms": ms(lambda: x @ w.T)}
    for dtype in (mx.float32, mx.float16):
        xs, s, b = x.astype(dtype), scales.astype(dtype), biases.astype(dtype)
        result[f"quantized_{dtype}_ms".replace("mlx.core.", "")] = ms(
            lambda: mx.quantized_matmul(xs, q, s, b, transpose=True, group_size=32, bits=4))
    return result


def bench_variant(name: str, load, max_tokens: int) -> dict:
    """Time ``load()`` -> (model, tokenizer), then greedy generation on a fixed outfit prompt."""
    import mlx.core as mx
    import mlx_lm
    from mlx_lm.sample_utils import make_sampler

    from mlx_outfit.prompts import chat_prompt

    mx.clear_cache()
    mx.reset_peak_memory()
    start = time.perf_counter()
    model, tokenizer = load()
    mx.eval(model.parameters())
    load_s = time.perf_counter() - start
    prompt = chat_prompt(tokenizer, PROMPT)
    for response in mlx_lm.stream_generate(model, tokenizer, prompt, max_tokens=max_tokens,
                                           sampler=make_sampler(temp=0.0)):
        pass
    del model
    return {"variant": name, "load_s": round(load_s, 2), "prompt_tokens": response.prompt_tokens,
            "prompt_tps": round(response.prompt_tps, 1), "generation_tokens": response.generation_tokens,
            "generation_tps": round(response.generation_tps, 1), "peak_memory_mb": round(response.peak_memory * 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--with-fp16-scales", action="store_true",
                        help="also time the native import without the CPU dtype policy (slow on CPU)")
    args = parser.parse_args()

    import mlx.core as mx
    import mlx_lm

    from mlx_outfit.models.default import default_gguf_path, default_model_path
    from mlx_outfit.models.gguf_import import import_gguf
    from mlx_outfit.models.loading import load_model

    native = default_model_path()
    rows = [bench_variant("native 4-bit", lambda: load_model(native), args.max_tokens),
            bench_variant("4-bit, dequantize=True", lambda: load_model(native, dequantize=True), args.max_tokens)]
    with tempfile.TemporaryDirectory() as tmp:
        dense = import_gguf(default_gguf_path(), f"{tmp}/fp32", dequantize=True).out
        rows.append(bench_variant("fp32 dequantized import", lambda: load_model(dense), args.max_tokens))
    if args.with_fp16_scales:
        rows.append(bench_variant("4-bit, fp16 scales", lambda: mlx_lm.load(str(native)), args.max_tokens))
    base = rows[0]
    for row in rows:
        for key in ("prompt_tps", "generation_tps"):
            row[f"{key}_vs_native"] = round(row[key] / base[key], 2)
    report = {"bench": "models", "device": str(mx.default_device()), "openblas_active": openblas_active(),
              "max_tokens": args.max_tokens, "variants": rows, "matmul_576x1536": quantized_matmul_ms(),
              "blas": blas_speedup()}
    print(json.dumps(report))

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Default model on {report['device']} (OpenBLAS active: {report['openblas_active']})")
    for column in ("variant", "load s", "prompt tok/s", "gen tok/s", "peak MB"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for row in rows:
        table.add_row(row["variant"], f"{row['load_s']:.2f}",
                      f"{row['prompt_tps']:.1f} ({row['prompt_tps_vs_native']:.1f}×)",
                      f"{row['generation_tps']:.1f} ({row['generation_tps_vs_native']:.1f}×)",
                      f"{row['peak_memory_mb']:.0f}")
    console = Console()
    console.print(table)
    mm = report["matmul_576x1536"]
    console.print(f"{mm['rows']}×576 · 576×1536: dense fp32 {mm['dense_fp32_ms']} ms, 4-bit with fp32 scales "
                  f"{mm['quantized_float32_ms']} ms, 4-bit with fp16 activations+scales {mm['quantized_float16_ms']} ms")
    blas = report["blas"]
    if blas["openblas"]:
        console.print(f"fp32 1024³ matmul: bundled BLAS {blas['matmul_1024_fp32_ms_bundled']} ms, OpenBLAS "
                      f"{blas['matmul_1024_fp32_ms_openblas']} ms → {blas['openblas_speedup']}× "
                      f"(max abs diff {blas['matmul_max_abs_diff']:.2e})")
    else:
        console.print("OpenBLAS: not applicable here (not Linux, or not installed)")


if __name__ == "__main__":
    main()
