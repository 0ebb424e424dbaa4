#!/usr/bin/env python3
"""Inference benchmark: fused vs unfused generation speed, and recommend wall time.

1. Generation tokens/s of base + LoRA adapter (unfused) vs the same adapter fused into the
   4-bit base (``mlx-outfit fuse``; also ``--bits 8``, and both dequantized, which is what
   recommend runs on a CPU), greedy, same prompt, runs interleaved so machine load hits all
   alike; the best run of each counts. Goal: fused >= 1.15x. Also whether each fused
   model's greedy answer equals base + adapter.
2. ``mlx-outfit recommend`` wall time on a 200-item wardrobe built from real MANGO products
   (captions by the offline describer): cold = a fresh process (imports, model load,
   recommend, JSON out); warm = another ``recommend`` call in a process whose model is
   already loaded (score cache cleared).

The adapter is the shipped ``weights/default-adapter`` when present, else a random LoRA
adapter (rank 8, all layers) on the default model. Prints one JSON line, then a table.

    python scripts/bench_infer.py [--tokens 32] [--repeats 3] [--items 200]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MANGO = REPO.parent / "shared" / "data" / "mango"
PROMPT = "Outfit:\n- top: white cotton t-shirt\n- bottom: blue straight-leg jeans\nName one shoes that completes it."


def generation_tps(model, tokenizer, max_tokens: int) -> float:
    """Decode speed: greedy tokens per second after the prompt, exactly ``max_tokens`` (no stop at EOS)."""
    import mlx.core as mx
    from mlx_lm.generate import generate_step

    from mlx_outfit.prompts import chat_prompt

    prompt = mx.array(tokenizer.encode(chat_prompt(tokenizer, PROMPT), add_special_tokens=False))
    started = None
    for count, _ in enumerate(generate_step(prompt, model, max_tokens=max_tokens + 1)):
        if count == 0:
            started = time.perf_counter()  # the first token comes with the prompt's prefill; time the rest
    return max_tokens / (time.perf_counter() - started)


def bench_fuse(adapter: Path, work: Path, tokens: int, repeats: int) -> dict:
    from mlx_lm.utils import dequantize_model

    from mlx_outfit.fuse import fuse_adapter
    from mlx_outfit.models.loading import load_model

    started = time.perf_counter()
    report = fuse_adapter("default", adapter, work / "fused", overwrite=True)
    fuse_seconds = time.perf_counter() - started
    report8 = fuse_adapter("default", adapter, work / "fused8", bits=8, overwrite=True)
    sources = {"unfused": ("default", adapter), "fused": (str(work / "fused"), None),
               "fused8": (str(work / "fused8"), None)}
    variants = {f"{name}_4bit" if name != "fused8" else "fused_8bit": load_model(model, adapter_path=a)
                for name, (model, a) in sources.items()}
    for name, (model, a) in list(sources.items())[:2]:  # dense: what recommend runs on a CPU (it dequantizes)
        loaded, tokenizer = load_model(model, adapter_path=a)
        variants[f"{name}_dense"] = (dequantize_model(loaded), tokenizer)
    for model, tokenizer in variants.values():  # warm-up: first calls compile and page weights in
        generation_tps(model, tokenizer, 4)
    runs: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):  # interleaved, so a busy moment on the machine hits every variant
        for name, (model, tokenizer) in variants.items():
            runs[name].append(generation_tps(model, tokenizer, tokens))
    best = {k: max(v) for k, v in runs.items()}
    return {"fuse_seconds": round(fuse_seconds, 2), "greedy_equal": report.greedy_equal,
            "greedy_first_difference": report.first_difference, "check_tokens": len(report.adapter_tokens),
            "greedy_equal_8bit": report8.greedy_equal, "greedy_first_difference_8bit": report8.first_difference,
            "tokens": tokens, **{f"{k}_tps": round(v, 2) for k, v in best.items()},
            "fused_speedup_4bit": round(best["fused_4bit"] / best["unfused_4bit"], 3),
            "fused_speedup_8bit": round(best["fused_8bit"] / best["unfused_4bit"], 3),
            "fused_speedup_dense": round(best["fused_dense"] / best["unfused_dense"], 3),
            "runs": {k: [round(x, 2) for x in v] for k, v in runs.items()}}


def mango_wardrobe(root: Path, n_items: int) -> tuple[Path, str]:
    """A wardrobe of the first ``n_items`` products of MANGO outfits (+ those outfits); returns (folder, anchor)."""
    from mlx_outfit.caption.describer import describe
    from mlx_outfit.catalog import Catalog, save_catalog
    from mlx_outfit.importers.mango import import_mango

    items, outfits = import_mango(MANGO)
    by_id = {i.id: i for i in items}
    catalog = Catalog(root=root)
    for outfit in outfits:
        if len(catalog.items) + len(outfit.items) > n_items:
            break
        for item_id in outfit.items:
            item = by_id[item_id]
            item.caption = describe(item.image, item)
            catalog.items[item_id] = item
        catalog.outfits.append(outfit)
    save_catalog(catalog)
    return root, catalog.outfits[0].items[0]


def bench_recommend(wardrobe: Path, anchor: str, adapter: Path, n: int) -> dict:
    from mlx_outfit.catalog import load_catalog
    from mlx_outfit.models.blas import openblas_env
    from mlx_outfit.recommend.recommender import load_recommender, recommend

    command = [sys.executable, "-m", "mlx_outfit.cli.main", "recommend", "-w", str(wardrobe), "--item", anchor,
               "-n", str(n), "--adapter", str(adapter), "--json"]
    started = time.perf_counter()
    done = subprocess.run(command, env=openblas_env(), capture_output=True, text=True)
    cold = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"recommend failed: {done.stderr.strip()}")
    outfits = json.loads(done.stdout)["outfits"]

    catalog = load_catalog(wardrobe)
    recommender = load_recommender("default", adapter)
    recommend(recommender, catalog, anchor, n=1, reasons=False)  # warm the process (first-call compilation)
    recommender.score_cache.clear()
    started = time.perf_counter()
    recommend(recommender, catalog, anchor, n=n)
    warm = time.perf_counter() - started
    return {"items": len(catalog.items), "categories": len(outfits[0]["items"]) - 1, "outfits": len(outfits),
            "cold_seconds": round(cold, 2), "warm_seconds": round(warm, 2)}


def main() -> None:
    from mlx_outfit.models.blas import ensure_openblas

    ensure_openblas()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("-n", type=int, default=3)
    args = parser.parse_args()

    import mlx.core as mx

    from mlx_outfit.models.loading import load_model
    from mlx_outfit.recommend.recommender import DEFAULT_ADAPTER
    from mlx_outfit.testing.random_adapter import make_random_adapter

    with tempfile.TemporaryDirectory(prefix="bench_infer_") as tmp:
        work = Path(tmp)
        if (DEFAULT_ADAPTER / "adapter_config.json").is_file():
            adapter, adapter_kind = DEFAULT_ADAPTER, "shipped"
        else:
            model, _ = load_model("default")
            adapter, adapter_kind = make_random_adapter(model, work / "adapter", seed=0), "random rank-8"
            del model
        generation = bench_fuse(adapter, work, args.tokens, args.repeats)
        wardrobe, anchor = mango_wardrobe(work / "wardrobe", args.items)
        recommending = bench_recommend(wardrobe, anchor, adapter, args.n)

    result = {"bench": "infer", "device": str(mx.default_device()), "adapter": adapter_kind,
              "generation": generation, "recommend": recommending}
    print(json.dumps(result))

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"inference ({result['device']}, adapter: {adapter_kind})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    g, r = generation, recommending
    rows = [("generation tok/s, 4-bit: base + adapter (unfused)", f"{g['unfused_4bit_tps']:.1f}"),
            ("generation tok/s, 4-bit: fused", f"{g['fused_4bit_tps']:.1f}"),
            ("fused speed-up, 4-bit (goal >= 1.15x)", f"{g['fused_speedup_4bit']:.2f}x"),
            ("generation tok/s, fused --bits 8", f"{g['fused_8bit_tps']:.1f}"),
            ("fused --bits 8 speed-up vs 4-bit unfused", f"{g['fused_speedup_8bit']:.2f}x"),
            ("generation tok/s, dense: base + adapter (unfused)", f"{g['unfused_dense_tps']:.1f}"),
            ("generation tok/s, dense: fused", f"{g['fused_dense_tps']:.1f}"),
            ("fused speed-up, dense (recommend's CPU path)", f"{g['fused_speedup_dense']:.2f}x"),
            ("fused greedy output == base + adapter",
             "yes" if g["greedy_equal"] else f"no, from token {g['greedy_first_difference']} of {g['check_tokens']}"),
            ("fused --bits 8 greedy output == base + adapter",
             "yes" if g["greedy_equal_8bit"] else f"no, from token {g['greedy_first_difference_8bit']}"),
            ("fuse time (load, fuse, save, check)", f"{g['fuse_seconds']:.1f} s"),
            (f"recommend cold, {r['items']} items, n={r['outfits']} (new process)", f"{r['cold_seconds']:.1f} s"),
            (f"recommend warm, {r['items']} items, n={r['outfits']} (model loaded)", f"{r['warm_seconds']:.1f} s")]
    for row in rows:
        table.add_row(*row)
    Console(stderr=True).print(table)


if __name__ == "__main__":
    main()
