"""The offline describer's main colour vs MANGO's colour group, on real products.

    python scripts/eval_describer.py [--n 1000] [--seed 0] [--mango ../shared/data/mango]

Prints one JSON line, then per-group agreement and the confusion of the worst groups.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from mlx_outfit.caption.describer_eval import evaluate_describer

MANGO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mango"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="products to describe (seeded random sample)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mango", type=Path, default=MANGO)
    args = parser.parse_args()

    start = time.perf_counter()
    report = evaluate_describer(args.mango, n=args.n, seed=args.seed)
    seconds = time.perf_counter() - start
    worst = report.worst_groups(3)
    confusion = {g: {p: c for (t, p), c in report.confusion.most_common() if t == g} for g in worst}
    print(json.dumps({"eval": "describer_colour_group", "n": report.n, "seed": args.seed,
                      "agreement": round(report.agreement, 4), "seconds": round(seconds, 1),
                      "per_group": {g: {"items": n, "agreement": round(a, 3)}
                                    for g, (n, a) in report.per_group.items()},
                      "worst_group_confusion": confusion}))
    print(f"\nmain-colour agreement: {report.agreement:.1%} on {report.n} MANGO products ({seconds:.1f} s)\n")
    print(f"{'group':8} {'items':>6} {'agreement':>10}")
    for group, (n, agreement) in report.per_group.items():
        print(f"{group:8} {n:>6} {agreement:>10.1%}")
    print("\nworst groups, predicted as:")
    for group in worst:
        print(f"  {group:8} " + ", ".join(f"{p} {c}" for p, c in confusion[group].items()))


if __name__ == "__main__":
    main()
