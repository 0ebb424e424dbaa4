"""Length-grouped, deterministic, resumable batch order.

Examples of similar length are batched together (less padding, fewer wasted FLOPs on a CPU),
and the order of an epoch depends only on ``(seed, epoch)``: a resumed run rebuilds the same
order and skips to the saved position, so it sees exactly the batches an uninterrupted run
would have seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

# Examples are shuffled, then sorted by length within windows of this many batches: batches
# stay tight in length but differ from epoch to epoch.
SORT_WINDOW_BATCHES = 64


@dataclass
class Batches:
    """Batches of example indices; ``collate(indices)`` turns one into what the loss function takes."""

    lengths: Sequence[int]
    batch_size: int
    collate: Callable[[list[int]], Any]
    seed: int = 0
    shuffle: bool = True  # False: sorted by length, the same every epoch

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("batch size must be at least 1")
        if len(self.lengths) < self.batch_size:
            raise ValueError(f"need at least batch_size={self.batch_size} examples, got {len(self.lengths)}")

    def __len__(self) -> int:
        """Full batches per epoch (the last, partial batch is dropped)."""
        return len(self.lengths) // self.batch_size

    def order(self, epoch: int) -> list[list[int]]:
        """The batches of one epoch, as lists of example indices."""
        lengths = np.asarray(self.lengths)
        if not self.shuffle:
            index = np.argsort(lengths, kind="stable")[: len(self) * self.batch_size]
            return index.reshape(len(self), self.batch_size).tolist()
        rng = np.random.default_rng([self.seed, epoch])
        index = rng.permutation(len(lengths))[: len(self) * self.batch_size]
        window = self.batch_size * SORT_WINDOW_BATCHES
        for start in range(0, len(index), window):
            chunk = index[start:start + window]
            index[start:start + window] = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches = index.reshape(len(self), self.batch_size)
        return batches[rng.permutation(len(batches))].tolist()
