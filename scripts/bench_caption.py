"""Captioning throughput: items/s batched vs one at a time, on tiny random VLMs and the describer.

    python scripts/bench_caption.py [--images 32] [--batch-size 8] [--max-tokens 16] [--repeats 3] [--vlm ID]

Prints one JSON line, then a table. The baseline (batch size 1) runs in the same process
on the same MANGO photos, so the ratio is what batching buys on this machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from mlx_outfit.models.blas import ensure_openblas

ensure_openblas()

from mlx_outfit.caption.describer import BuiltinDescriber  # noqa: E402
from mlx_outfit.caption.images import load_image  # noqa: E402
from mlx_outfit.caption.vlm import load_vlm  # noqa: E402

MANGO_IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mango" / "datathon" / "images"


def items_per_second(captioner, images, batch_size: int) -> float:
    start = time.perf_counter()
    for i in range(0, len(images), batch_size):
        captioner.raw_captions(images[i:i + batch_size])
    return len(images) / (time.perf_counter() - start)


def best_rates(captioner, images, batch_size: int, repeats: int) -> tuple[float, float]:
    """Best of ``repeats`` interleaved runs (one at a time, batched): the CPU is shared, so take the least disturbed."""
    captioner.raw_captions(images[:batch_size])  # warm-up: compile kernels, allocate caches
    single, batched = 0.0, 0.0
    for _ in range(repeats):
        single = max(single, items_per_second(captioner, images, 1))
        batched = max(batched, items_per_second(captioner, images, batch_size))
    return single, batched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3, help="runs per setting; the best counts")
    parser.add_argument("--vlm", default=None, help="a VLM to time instead of the tiny random one")
    args = parser.parse_args()

    images = [load_image(p)[0] for p in sorted(MANGO_IMAGES.glob("*.jpg"))[: args.images]]
    if len(images) < args.images:
        sys.exit(f"need {args.images} MANGO images under {MANGO_IMAGES}")
    with tempfile.TemporaryDirectory() as tmp:
        if args.vlm is None:
            from mlx_outfit.testing.tiny_vlm import FAMILIES, make_tiny_vlm

            vlms = {f"tiny random {family}": str(make_tiny_vlm(Path(tmp) / family, family=family))
                    for family in FAMILIES}
        else:
            vlms = {args.vlm: args.vlm}
        captioners = {name: load_vlm(path, max_tokens=args.max_tokens) for name, path in vlms.items()}
        captioners["builtin describer"] = BuiltinDescriber()
        rows = []
        for name, captioner in captioners.items():
            single, batched = best_rates(captioner, images, args.batch_size, args.repeats)
            rows.append({"captioner": name, "one_at_a_time_items_s": round(single, 2),
                         "batched_items_s": round(batched, 2), "speedup": round(batched / single, 2)})
    print(json.dumps({"bench": "caption", "images": len(images), "batch_size": args.batch_size,
                      "repeats": args.repeats,
                      "max_tokens": args.max_tokens, "results": rows}))
    print(f"\n{'captioner':34} {'1 at a time':>12} {f'batch {args.batch_size}':>12} {'speedup':>8}")
    for r in rows:
        print(f"{r['captioner']:34} {r['one_at_a_time_items_s']:>10.2f}/s {r['batched_items_s']:>10.2f}/s "
              f"{r['speedup']:>7.2f}x")


if __name__ == "__main__":
    main()
