#!/usr/bin/env python
"""Questions/s of shared-prefix scoring vs naive per-candidate forward passes (same model, same questions).

Builds FITB and retrieval questions from the test split of the real Polyvore outfits
(``../shared/data``), scores them both ways in one process and prints one JSON line and a table.

    python scripts/bench_eval.py --fitb 8 --retrieval 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--polyvore", type=Path,
                        default=REPO.parent / "shared/data/polyvore/valid_no_dup_with_category_3more_name.json")
    parser.add_argument("--fitb", type=int, default=8, help="FITB questions (4 candidates).")
    parser.add_argument("--retrieval", type=int, default=2, help="Retrieval questions (100 candidates).")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--quantized", action="store_true", help="Score with the 4-bit weights (no dense copy).")
    args = parser.parse_args()

    from mlx_outfit.models.blas import ensure_openblas

    ensure_openblas()
    from mlx_outfit.catalog import Catalog
    from mlx_outfit.eval.scoring import PromptCache, question_prompt, score_continuations_naive, score_question
    from mlx_outfit.importers.polyvore import import_polyvore
    from mlx_outfit.itemtext import item_text
    from mlx_outfit.models.loading import load_model, on_cpu
    from mlx_outfit.questions import build_questions, split_catalog

    catalog = Catalog(Path(tempfile.mkdtemp()))
    catalog.merge(*import_polyvore(args.polyvore))
    split_catalog(catalog, seed=0)
    model, tokenizer = load_model(args.model, dequantize=on_cpu() and not args.quantized)

    prompt_cache = PromptCache()  # as `mlx-outfit eval` does: the chat template's prefix is computed once

    def fast(question):
        return score_question(model, tokenizer, catalog, question, args.batch_size, prompt_cache=prompt_cache)

    def naive(question):
        prompt = question_prompt(tokenizer, catalog, question.outfit, question.category)
        return score_continuations_naive(model, tokenizer, prompt,
                                         [item_text(catalog.items[c]) for c in question.candidates])

    results = {"model": args.model, "dense_on_cpu": on_cpu() and not args.quantized, "batch_size": args.batch_size,
               "cpus": os.cpu_count(), "openblas": "openblas" in os.environ.get("LD_PRELOAD", "")}
    fast(build_questions(catalog, "fitb", "valid", seed=0)[0])  # warm-up
    for task, count in (("fitb", args.fitb), ("retrieval", args.retrieval)):
        questions = build_questions(catalog, task, "test", seed=0)[:count]
        if not questions:
            continue
        timings, scores = {}, {}
        for name, scorer in (("shared_prefix", fast), ("naive", naive)):
            start = time.perf_counter()
            scores[name] = [scorer(q) for q in questions]
            timings[name] = len(questions) / (time.perf_counter() - start)
        diff = max(abs(a.logprob_sum - b.logprob_sum) for qa, qb in zip(scores["shared_prefix"], scores["naive"])
                   for a, b in zip(qa, qb))
        results[task] = {"questions": len(questions), "candidates": len(questions[0].candidates),
                         "shared_prefix_qps": round(timings["shared_prefix"], 4), "naive_qps": round(timings["naive"], 4),
                         "speedup": round(timings["shared_prefix"] / timings["naive"], 2),
                         "max_abs_logprob_diff": diff}
    print(json.dumps(results))
    print("\n| task | questions | candidates | shared-prefix q/s | naive q/s | speed-up | max |Δ log p| |")
    print("|---|---|---|---|---|---|---|")
    for task in ("fitb", "retrieval"):
        if task in results:
            r = results[task]
            print(f"| {task} | {r['questions']} | {r['candidates']} | {r['shared_prefix_qps']:.3f} | "
                  f"{r['naive_qps']:.3f} | {r['speedup']:.1f}x | {r['max_abs_logprob_diff']:.1e} |")


if __name__ == "__main__":
    sys.exit(main())
