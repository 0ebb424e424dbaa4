"""Reference log-probs for DPO: computed once with the starting policy, cached in the run folder.

DPO measures the policy against a frozen reference, here the starting policy (the base
model, or base + the SFT adapter training starts from). Holding a second copy of the model
would double weight memory and add two forward passes per pair at every step. Instead the
starting policy scores every pair once before training (no gradients, a single pass), and
the resulting (pairs, 2) array of summed log-probs — 8 bytes per pair — is saved under a key
of model + adapter + token ids. A resumed run, or a new run on the same pairs, reuses it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import mlx.core as mx
import numpy as np

from ..fileio import atomic_path, file_sha256

if TYPE_CHECKING:
    from .dpo import EncodedPair

REFERENCE_FILE = "reference_logps.safetensors"


def reference_key(model_dir: str | Path, adapter_dir: str | Path | None, encoded: Sequence["EncodedPair"],
                  *extra: str) -> str:
    """A digest of what decides the reference log-probs: model files, adapter weights, pair tokens
    (and ``extra`` settings such as the training dtype).

    The model is identified by its config and weight file names and sizes (hashing gigabytes of
    weights would cost more than recomputing); adapters are small and hashed in full.
    """
    digest = hashlib.sha256()
    model_dir = Path(model_dir)
    digest.update((model_dir / "config.json").read_bytes())
    for weights in sorted(model_dir.glob("*.safetensors")):
        digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
    if adapter_dir is not None:
        for name in ("adapter_config.json", "adapters.safetensors"):
            digest.update(file_sha256(Path(adapter_dir) / name).encode())
    digest.update(json.dumps([[p.prompt, p.chosen, p.rejected] for p in encoded]).encode())
    digest.update(json.dumps(extra).encode())
    return digest.hexdigest()


def cached_reference(path: str | Path, key: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """The log-probs saved at ``path`` when their key matches, else ``compute()``d now and saved there."""
    path = Path(path)
    if path.is_file():
        arrays, metadata = mx.load(str(path), format="safetensors", return_metadata=True)
        if metadata.get("key") == key:
            return np.array(arrays["logps"])
    logps = compute()
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        mx.save_safetensors(f, {"logps": mx.array(logps)}, metadata={"key": key})
    return logps
