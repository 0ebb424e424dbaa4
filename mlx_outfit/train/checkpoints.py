"""Training checkpoints: everything a resumed run needs to continue exactly where it stopped.

Layout inside the adapter folder::

    checkpoints/step-0000100/adapters.safetensors   trainable (LoRA) weights
    checkpoints/step-0000100/trainer.safetensors    optimizer state ("optimizer.*") + RNG key ("rng")
    checkpoints/step-0000100/state.json             step, data position, counters, run signature
    checkpoints/latest.json                         {"dir": "step-0000100", "step": 100}

A checkpoint folder is written under a temporary name and renamed into place, then
``latest.json`` is replaced atomically: a crash at any moment leaves the previous checkpoint
intact and pointed to.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlx.core as mx
from mlx.utils import tree_flatten, tree_unflatten

from ..errors import UserError
from ..fileio import atomic_directory, atomic_write_json, read_json

CHECKPOINTS_DIR = "checkpoints"
LATEST = "latest.json"
KEEP = 2


@dataclass
class Checkpoint:
    step: int
    adapter_weights: dict[str, mx.array]
    optimizer_state: dict  # nested, as ``optimizer.state``
    rng: mx.array
    state: dict[str, Any]  # data position, counters, run signature
    path: Path


def save_checkpoint(out_dir: Path, step: int, adapter_weights: dict[str, mx.array], optimizer_state: dict,
                    rng: mx.array, state: dict[str, Any], keep: int = KEEP) -> Path:
    """Write a complete checkpoint atomically and point ``latest.json`` at it; keeps the newest ``keep``."""
    root = Path(out_dir) / CHECKPOINTS_DIR
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:07d}"
    with atomic_directory(root / name) as tmp:
        mx.save_safetensors(str(tmp / "adapters.safetensors"), adapter_weights)
        trainer_arrays = {f"optimizer.{k}": v for k, v in tree_flatten(optimizer_state)}
        trainer_arrays["rng"] = rng
        mx.save_safetensors(str(tmp / "trainer.safetensors"), trainer_arrays)
        atomic_write_json(tmp / "state.json", {"step": step, **state})
    atomic_write_json(root / LATEST, {"dir": name, "step": step})
    for old in sorted(p for p in root.glob("step-*") if p.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return root / name


def latest_checkpoint(out_dir: Path) -> Checkpoint | None:
    """The checkpoint ``latest.json`` points to, or None when training never saved one."""
    root = Path(out_dir) / CHECKPOINTS_DIR
    if not (root / LATEST).is_file():
        return None
    pointer = read_json(root / LATEST)
    path = root / str(pointer.get("dir", ""))
    files = [path / "adapters.safetensors", path / "trainer.safetensors", path / "state.json"]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise UserError(f"checkpoint is incomplete (missing {', '.join(missing)}); start again without --resume",
                        str(path))
    trainer_arrays = mx.load(str(files[1]))
    optimizer_flat = [(k.removeprefix("optimizer."), v) for k, v in trainer_arrays.items() if k != "rng"]
    state = read_json(files[2])
    return Checkpoint(step=int(state.pop("step")), adapter_weights=mx.load(str(files[0])),
                      optimizer_state=tree_unflatten(optimizer_flat), rng=trainer_arrays["rng"], state=state,
                      path=path)
