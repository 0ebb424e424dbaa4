"""How often the offline describer's main colour matches MANGO's colour group (``des_agrup_color_eng``)."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..importers.mango import PRODUCTS_CSV, read_products
from .describer import dominant_colours
from .images import load_image


@dataclass
class DescriberReport:
    n: int
    agreement: float  # share of items whose main colour is in the product's group
    per_group: dict[str, tuple[int, float]]  # group -> (items, agreement)
    confusion: Counter = field(default_factory=Counter)  # (true group, predicted group) -> count

    def worst_groups(self, k: int = 3) -> list[str]:
        return sorted(self.per_group, key=lambda g: self.per_group[g][1])[:k]


def evaluate_describer(mango_dir: str | Path, n: int = 500, seed: int = 0) -> DescriberReport:
    """Describe ``n`` randomly chosen MANGO products (seeded) and compare main colours with their groups."""
    root = Path(mango_dir)
    items = list(read_products(root / PRODUCTS_CSV, image_root=root).values())
    random.Random(seed).shuffle(items)
    totals, hits, confusion = Counter(), Counter(), Counter()
    for item in items[:n]:
        truth = item.attributes["colour"].upper()
        predicted = dominant_colours(load_image(item.image)[0])[0].group
        totals[truth] += 1
        hits[truth] += predicted == truth
        confusion[(truth, predicted)] += 1
    count = sum(totals.values())
    per_group = {g: (totals[g], hits[g] / totals[g]) for g in sorted(totals, key=lambda g: -totals[g])}
    return DescriberReport(n=count, agreement=sum(hits.values()) / count, per_group=per_group, confusion=confusion)
