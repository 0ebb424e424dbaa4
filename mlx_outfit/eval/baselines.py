"""Non-LLM scorers: the bars an LLM has to clear.

* :class:`RandomScorer`: uniform random scores, seeded per question (chance level).
* :class:`CooccurrenceScorer`: pointwise mutual information between the features of items
  that appear together in the catalog's training outfits. Features are the words of an
  item's text (what the LLM sees), its category, and its ``key=value`` attributes.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
import numpy as np

from ..catalog import Catalog, Item
from ..errors import UserError
from ..itemtext import item_text
from ..questions import Question

_WORD = re.compile(r"[a-z0-9]+")


@dataclass
class RandomScorer:
    seed: int = 0

    def __call__(self, question: Question) -> dict[str, list]:
        # Seeded by the question id, so a resumed or re-ordered run draws the same scores.
        rng = np.random.default_rng([self.seed, zlib.crc32(question.id.encode())])
        return {"scores": rng.random(len(question.candidates)).tolist()}


def item_features(item: Item) -> set[str]:
    words = {w for w in _WORD.findall(item_text(item)) if len(w) > 1}
    attributes = {f"{k}={v}".lower() for k, v in item.attributes.items() if v}
    return words | attributes | {f"category={item.category}".lower()}


class CooccurrenceScorer:
    """Candidate score: mean smoothed PMI over (given-item feature, candidate feature) pairs.

    PMI is ``log((observed + 1) / (expected + 1))`` with counts over ordered pairs of distinct
    items in the same training outfit; the +1 keeps rare pairs from dominating.
    """

    # Feature ids are packed pairwise into one int64 code; 2**31 ids is far beyond any vocabulary.
    _base = 2**31

    def __init__(self, catalog: Catalog, split: str = "train"):
        outfits = catalog.outfits_in(split)
        if not outfits:
            raise UserError(f"catalog {catalog.root} has no {split} outfits to fit the co-occurrence scorer on")
        self.vocabulary: dict[str, int] = {}
        self._features: dict[str, np.ndarray] = {}
        pair_codes = []
        for outfit in outfits:
            feats = [self.features(catalog.items[i]) for i in outfit.items]
            ids = np.concatenate(feats)
            owner = np.repeat(np.arange(len(feats)), [len(f) for f in feats])
            other_item = owner[:, None] != owner[None, :]
            pair_codes.append((ids[:, None] * self._base + ids[None, :])[other_item])
        codes, counts = np.unique(np.concatenate(pair_codes), return_counts=True)
        if not len(codes):
            raise UserError(f"no {split} outfit of catalog {catalog.root} has two items to learn co-occurrence from")
        self._marginal = np.bincount(codes // self._base, weights=counts, minlength=len(self.vocabulary))
        self._total = counts.sum()
        self._codes, self._pmi = codes, np.log((counts + 1.0) / (self._expected(codes) + 1.0))
        self._catalog = catalog

    def features(self, item: Item) -> np.ndarray:
        if item.id not in self._features:
            ids = [self.vocabulary.setdefault(f, len(self.vocabulary)) for f in sorted(item_features(item))]
            self._features[item.id] = np.array(ids, dtype=np.int64)
        return self._features[item.id]

    def _expected(self, codes: np.ndarray) -> np.ndarray:
        """Pair counts expected if features were independent (features never seen in training count 0)."""
        def marginal(ids: np.ndarray) -> np.ndarray:
            return np.where(ids < len(self._marginal), self._marginal[ids.clip(max=len(self._marginal) - 1)], 0.0)
        return marginal(codes // self._base) * marginal(codes % self._base) / self._total

    def _pair_pmi(self, given: np.ndarray, candidate: np.ndarray) -> float:
        codes = (given[:, None] * self._base + candidate[None, :]).ravel()
        found = np.searchsorted(self._codes, codes).clip(max=len(self._codes) - 1)
        seen = self._codes[found] == codes
        # An unseen pair: observed 0 against what the marginals predict.
        pmi = np.where(seen, self._pmi[found], np.log(1.0 / (self._expected(codes) + 1.0)))
        return float(pmi.mean())

    def __call__(self, question: Question) -> dict[str, list]:
        given = np.concatenate([self.features(self._catalog.items[i]) for i in question.outfit])
        return {"scores": [self._pair_pmi(given, self.features(self._catalog.items[c])) for c in question.candidates]}
