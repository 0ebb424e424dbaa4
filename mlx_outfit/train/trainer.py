"""A reusable LoRA training loop on mlx-lm's tuner pieces (used by SFT and DPO).

How to use it (SFT in :mod:`mlx_outfit.train.sft` is the worked example)::

    model = prepare_training_model(model, "auto")       # float32 copy of a 4-bit model on CPU
    add_lora(model, LoraSettings(rank=8, num_layers=16), seed=0)
    batches = Batches(lengths, batch_size=4, collate=my_collate, seed=0)
    result = train(model, loss_fn, batches, out_dir, TrainSettings(iters=200),
                   adapter_config=adapter_config(lora, model="default"))

* ``loss_fn(model, batch) -> (loss, ntoks)`` or ``(loss, ntoks, metrics)``: ``loss`` is the scalar to
  minimise, ``ntoks`` the number of trained tokens (for tok/s and token-weighted averages), and
  ``metrics`` an optional dict of scalar arrays, averaged per report and written to the log.
* ``batch`` is whatever ``batches.collate(indices)`` returns.
* One *step* is one optimizer update; it consumes ``grad_accumulation`` batches.
* Every ``save_every`` steps, at the end, and on Ctrl-C, a checkpoint (adapter, optimizer state,
  step, RNG key, data position) is written atomically; ``resume=True`` continues from it and
  reaches the same adapter as an uninterrupted run. Ctrl-C finishes the current batch, saves,
  and raises :class:`TrainingInterrupted` (a ``KeyboardInterrupt``; the CLI exits 130).
* The adapter folder gets mlx-lm's ``adapters.safetensors`` + ``adapter_config.json`` (loadable by
  ``mlx_lm.load(..., adapter_path=...)``) and a ``train_log.jsonl``.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
from mlx.utils import tree_flatten, tree_map
from mlx_lm.tuner.trainer import grad_checkpoint
from mlx_lm.tuner.utils import build_schedule, linear_to_lora_layers
from mlx_lm.utils import dequantize_model
from rich.console import Console

from ..errors import UserError
from ..fileio import atomic_write_json
from ..models.loading import on_cpu
from .batches import Batches
from .checkpoints import latest_checkpoint, save_checkpoint
from .progress import TrainView, log_row, truncate_log

ADAPTER_FILE = "adapters.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
OPTIMIZERS = {"adam": optim.Adam, "adamw": optim.AdamW, "sgd": optim.SGD, "adafactor": optim.Adafactor}
TRAIN_DTYPES = ("auto", "float32", "native")

LossFn = Callable[[nn.Module, Any], tuple]


@dataclass
class LoraSettings:
    """mlx-lm LoRA parameters: rank, scale (mlx-lm's multiplier, not alpha), dropout, blocks adapted."""

    rank: int = 8
    scale: float = 20.0
    dropout: float = 0.0
    num_layers: int = 16  # the last N transformer blocks; -1 = all
    keys: list[str] | None = None  # module paths inside a block (None = every linear layer)

    def parameters(self) -> dict:
        params = {"rank": self.rank, "scale": self.scale, "dropout": self.dropout}
        if self.keys:
            params["keys"] = list(self.keys)
        return params


@dataclass
class TrainSettings:
    iters: int  # optimizer steps
    learning_rate: float = 1e-4
    lr_schedule: dict | None = None  # mlx-lm's build_schedule config, e.g. {"name": "cosine_decay", ...}
    optimizer: str = "adamw"
    optimizer_config: dict = field(default_factory=dict)
    grad_accumulation: int = 1
    grad_checkpoint: bool = False
    val_every: int = 50  # 0 = never (besides the end when validation batches are given)
    val_batches: int = 8  # -1 = all
    save_every: int = 50
    report_every: int = 10
    seed: int = 0


@dataclass
class TrainResult:
    step: int
    train_loss: float | None
    val_loss: float | None
    trained_tokens: int
    train_seconds: float
    peak_memory_gb: float
    adapter_dir: Path

    @property
    def tokens_per_second(self) -> float:
        return self.trained_tokens / self.train_seconds if self.train_seconds else 0.0


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training: a checkpoint was written to ``checkpoint``; resume with ``resume=True``."""

    def __init__(self, checkpoint: Path, step: int):
        super().__init__(f"interrupted at step {step}; checkpoint saved to {checkpoint}")
        self.checkpoint = checkpoint
        self.step = step


def is_quantized(model: nn.Module) -> bool:
    return any(isinstance(m, (nn.QuantizedLinear, nn.QuantizedEmbedding)) for _, m in model.named_modules())


def prepare_training_model(model: nn.Module, train_dtype: str = "auto") -> nn.Module:
    """Choose the weights training runs on.

    ``float32`` dequantizes a quantized model and casts everything to float32 (the CPU's fast path:
    QLoRA's quantized matmuls are ~9x slower there); ``native`` keeps the loaded weights (QLoRA on a
    4-bit model); ``auto`` is ``float32`` on the CPU backend and ``native`` on a GPU. The LoRA layers
    have the same names and shapes either way, so the adapter stays valid for the quantized model.
    """
    if train_dtype not in TRAIN_DTYPES:
        raise UserError(f"unknown train dtype '{train_dtype}' (choose from {', '.join(TRAIN_DTYPES)})")
    if train_dtype == "native" or (train_dtype == "auto" and not on_cpu()):
        return model
    if is_quantized(model):
        model = dequantize_model(model)
    model.set_dtype(mx.float32)
    return model


def add_lora(model: nn.Module, lora: LoraSettings, seed: int = 0) -> None:
    """Freeze the model and put LoRA layers into its last ``lora.num_layers`` blocks (mlx-lm's own layers)."""
    n_blocks = len(model.layers)
    if lora.num_layers > n_blocks:
        raise UserError(f"--lora-layers {lora.num_layers} exceeds the model's {n_blocks} blocks (use -1 for all)")
    mx.random.seed(seed)  # LoRA A matrices are random: same seed, same start
    model.freeze()
    linear_to_lora_layers(model, lora.num_layers, lora.parameters())


def adapter_config(lora: LoraSettings, **extra: Any) -> dict:
    """An ``adapter_config.json`` that mlx-lm's ``load_adapters`` (and so ``--adapter-path``) reads."""
    return {"fine_tune_type": "lora", "num_layers": lora.num_layers, "lora_parameters": lora.parameters(),
            **extra}


def trainable_weights(model: nn.Module) -> dict[str, mx.array]:
    return dict(tree_flatten(model.trainable_parameters()))


def save_adapter(model: nn.Module, out_dir: str | Path) -> Path:
    """Write ``adapters.safetensors`` atomically (the config is written once when training starts)."""
    path = Path(out_dir) / ADAPTER_FILE
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.safetensors")  # mlx appends .safetensors otherwise
    mx.save_safetensors(str(tmp), trainable_weights(model), metadata={"format": "mlx"})
    os.replace(tmp, path)
    return path


def make_optimizer(settings: TrainSettings) -> optim.Optimizer:
    name = settings.optimizer.lower()
    if name not in OPTIMIZERS:
        raise UserError(f"unknown optimizer '{settings.optimizer}' (choose from {', '.join(OPTIMIZERS)})")
    lr = build_schedule(settings.lr_schedule) if settings.lr_schedule else settings.learning_rate
    return OPTIMIZERS[name](learning_rate=lr, **settings.optimizer_config)


def evaluate(model: nn.Module, loss_fn: LossFn, batches: Batches, num_batches: int = -1) -> float:
    """Token-weighted mean loss over the first ``num_batches`` batches of epoch 0 (-1 = all)."""
    order = batches.order(0)
    order = order if num_batches < 0 else order[:num_batches]
    was_training = model.training
    model.eval()
    total, tokens = mx.array(0.0), mx.array(0)
    for indices in order:
        loss, ntoks, *_ = loss_fn(model, batches.collate(indices))
        total, tokens = total + loss * ntoks, tokens + ntoks
        mx.eval(total, tokens)
    model.train(was_training)
    return (total / tokens).item()


def train(model: nn.Module, loss_fn: LossFn, train_batches: Batches, out_dir: str | Path,
          settings: TrainSettings, *, adapter_config: dict, val_batches: Batches | None = None,
          resume: bool = False, signature: dict | None = None, console: Console | None = None,
          on_step: Callable[[int], None] | None = None) -> TrainResult:
    """Train the model's trainable (LoRA) parameters; see the module docstring for the contract.

    ``signature`` names what must not change between a run and its resumption (model, data,
    batch size, ...); the trainer adds its own settings. ``on_step(step)`` runs after each update.
    """
    out_dir = Path(out_dir)
    if settings.grad_accumulation < 1 or settings.iters < 0:
        raise UserError("--grad-accumulation must be at least 1 and --iters at least 0")
    signature = {**(signature or {}), "batch_size": train_batches.batch_size, "examples": len(train_batches.lengths),
                 "grad_accumulation": settings.grad_accumulation, "seed": settings.seed,
                 "lora": {k: adapter_config.get(k) for k in ("num_layers", "lora_parameters")}}
    checkpoint = _start(model, out_dir, resume, signature)
    optimizer = make_optimizer(settings)
    run = _Run(step=0, epoch=0, batch=0, trained_tokens=0, train_seconds=0.0, val_loss=None)
    mx.random.seed(settings.seed)
    if checkpoint is not None:
        model.load_weights(list(checkpoint.adapter_weights.items()), strict=False)
        optimizer.state = checkpoint.optimizer_state
        _restore_rng(checkpoint.rng)
        run = _Run(step=checkpoint.step, **{k: checkpoint.state[k] for k in _Run.RESUMED})
        truncate_log(out_dir, run.step)
    atomic_write_json(out_dir / ADAPTER_CONFIG, {**adapter_config, "training": asdict(settings)})
    loss_and_grad = nn.value_and_grad(model, loss_fn)
    model.train()
    view = TrainView(settings.iters, run.step, console)
    window = _Window()
    boundary = run.snapshot()
    accumulated, micro = None, 0
    result_loss = None
    with view, _StopOnCtrlC(view) as stop, _grad_checkpointing(model, settings.grad_checkpoint):
        if val_batches is not None and settings.val_every > 0 and run.step == 0 and settings.iters > 0:
            _validate(run, model, loss_fn, val_batches, settings, view, out_dir)
        order = train_batches.order(run.epoch)
        while run.step < settings.iters:
            if run.batch >= len(order):
                run.epoch, run.batch = run.epoch + 1, 0
                order = train_batches.order(run.epoch)
            tic = time.perf_counter()
            (loss, ntoks, *metrics), grads = loss_and_grad(model, train_batches.collate(order[run.batch]))
            run.batch += 1
            accumulated = grads if accumulated is None else tree_map(mx.add, accumulated, grads)
            micro += 1
            if micro == settings.grad_accumulation:
                if micro > 1:
                    accumulated = tree_map(lambda g: g / micro, accumulated)
                optimizer.update(model, accumulated)
                accumulated, micro = None, 0
                run.step += 1
            mx.eval(model.trainable_parameters(), optimizer.state, accumulated, loss, ntoks, metrics)
            seconds = time.perf_counter() - tic
            window.add(loss.item(), ntoks.item(), seconds, metrics[0] if metrics else {})
            run.trained_tokens += ntoks.item()
            run.train_seconds += seconds
            if micro == 0:
                boundary = run.snapshot()
                result_loss = _after_update(run, settings, view, window, out_dir, model, optimizer, loss_fn,
                                            val_batches, signature) or result_loss
                if on_step is not None:
                    on_step(run.step)
            if stop.requested:
                path = _checkpoint(out_dir, model, optimizer, boundary, signature)
                save_adapter(model, out_dir)
                view.note(f"[yellow]stopped at step {boundary.step}[/yellow]; resume with --resume ({path})")
                raise TrainingInterrupted(path, boundary.step)
        if val_batches is not None and settings.iters > 0 and run.val_step != run.step:
            _validate(run, model, loss_fn, val_batches, settings, view, out_dir)
    _checkpoint(out_dir, model, optimizer, run.snapshot(), signature)
    save_adapter(model, out_dir)
    return TrainResult(step=run.step, train_loss=result_loss, val_loss=run.val_loss,
                       trained_tokens=run.trained_tokens, train_seconds=run.train_seconds,
                       peak_memory_gb=mx.get_peak_memory() / 1e9, adapter_dir=out_dir)


@dataclass
class _Run:
    """Where training stands; a snapshot at an update boundary is what a checkpoint records."""

    RESUMED = ("epoch", "batch", "trained_tokens", "train_seconds", "val_loss")
    step: int
    epoch: int
    batch: int
    trained_tokens: int
    train_seconds: float
    val_loss: float | None
    val_step: int = -1
    rng: mx.array | None = None

    def snapshot(self) -> "_Run":
        return _Run(self.step, self.epoch, self.batch, self.trained_tokens, self.train_seconds, self.val_loss,
                    self.val_step, mx.random.state[0])


@dataclass
class _Window:
    """Token-weighted running averages between two reports."""

    loss: float = 0.0
    tokens: int = 0
    seconds: float = 0.0
    batches: int = 0
    metrics: dict[str, float] = field(default_factory=dict)

    def add(self, loss: float, tokens: int, seconds: float, metrics: dict) -> None:
        self.loss += loss * tokens
        self.tokens += tokens
        self.seconds += seconds
        self.batches += 1
        for key, value in metrics.items():
            self.metrics[key] = self.metrics.get(key, 0.0) + value.item()

    def row(self) -> dict:
        row = {"train_loss": self.loss / max(self.tokens, 1), "tokens_per_second": self.tokens / self.seconds}
        row.update({k: v / self.batches for k, v in self.metrics.items()})
        self.__init__()
        return row


def _after_update(run: _Run, settings: TrainSettings, view: TrainView, window: _Window, out_dir: Path,
                  model: nn.Module, optimizer: optim.Optimizer, loss_fn: LossFn, val_batches: Batches | None,
                  signature: dict) -> float | None:
    """Report, validate and checkpoint after an optimizer step; returns the reported train loss, if any."""
    peak = mx.get_peak_memory() / 1e9
    remaining = settings.iters - run.step
    train_loss = None
    if run.step % settings.report_every == 0 or remaining == 0:
        row = window.row()
        train_loss = row["train_loss"]
        log_row(out_dir, {"step": run.step, **row, "learning_rate": optimizer.learning_rate.item(),
                          "trained_tokens": run.trained_tokens, "peak_memory_gb": peak,
                          "eta_seconds": remaining * run.train_seconds / max(run.step, 1)})
        view.update(run.step, train_loss=train_loss, tokens_per_second=row["tokens_per_second"],
                    peak_memory_gb=peak)
    else:
        view.update(run.step, peak_memory_gb=peak)
    if val_batches is not None and settings.val_every > 0 and run.step % settings.val_every == 0:
        _validate(run, model, loss_fn, val_batches, settings, view, out_dir)
    if settings.save_every > 0 and run.step % settings.save_every == 0 and remaining > 0:
        _checkpoint(out_dir, model, optimizer, run.snapshot(), signature)
        save_adapter(model, out_dir)
    return train_loss


def _validate(run: _Run, model: nn.Module, loss_fn: LossFn, val_batches: Batches, settings: TrainSettings,
              view: TrainView, out_dir: Path) -> None:
    run.val_loss = evaluate(model, loss_fn, val_batches, settings.val_batches)
    run.val_step = run.step
    view.update(run.step, val_loss=run.val_loss)
    log_row(out_dir, {"step": run.step, "val_loss": run.val_loss})


def _checkpoint(out_dir: Path, model: nn.Module, optimizer: optim.Optimizer, at: _Run, signature: dict) -> Path:
    state = {k: getattr(at, k) for k in _Run.RESUMED}
    return save_checkpoint(out_dir, at.step, trainable_weights(model), optimizer.state, at.rng,
                           {**state, "signature": signature})


def _start(model: nn.Module, out_dir: Path, resume: bool, signature: dict):
    """The checkpoint to resume from (None for a fresh start); refuses to mix two different runs."""
    checkpoint = latest_checkpoint(out_dir)
    if checkpoint is None:
        if not resume and (out_dir / ADAPTER_FILE).exists():
            raise UserError("already holds an adapter; choose another --out folder or delete it", str(out_dir))
        out_dir.mkdir(parents=True, exist_ok=True)
        return None
    if not resume:
        raise UserError("already holds a training run; pass --resume to continue it, or choose another --out",
                        str(out_dir))
    saved = checkpoint.state.get("signature", {})
    changed = sorted(k for k in set(saved) | set(signature) if saved.get(k) != _jsonish(signature.get(k)))
    if changed:
        raise UserError(f"cannot resume: {', '.join(changed)} differ from the saved run "
                        f"(saved {', '.join(f'{k}={saved.get(k)!r}' for k in changed)})", str(out_dir))
    return checkpoint


def _restore_rng(key: mx.array) -> None:
    """Make ``key`` the global RNG key (``mx.random.seed(s)`` sets the key ``[s >> 32, s & 0xffffffff]``)."""
    high, low = key.tolist()
    mx.random.seed((high << 32) | low)


def _jsonish(value: Any) -> Any:
    """Values as they come back from state.json (tuples become lists)."""
    import json

    return json.loads(json.dumps(value))


@contextlib.contextmanager
def _grad_checkpointing(model: nn.Module, enabled: bool):
    """mlx-lm's gradient checkpointing (it patches the block class), undone after training."""
    if not enabled:
        yield
        return
    block = type(model.layers[0])
    original = block.__call__
    grad_checkpoint(model.layers[0])
    try:
        yield
    finally:
        block.__call__ = original


class _StopOnCtrlC:
    """First Ctrl-C asks the loop to save and stop after the current batch; a second one aborts at once."""

    def __init__(self, view: TrainView):
        self.view = view
        self.requested = False
        self.previous = None

    def __enter__(self) -> "_StopOnCtrlC":
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.view.note("[yellow]Ctrl-C: saving a checkpoint after this batch (press again to abort)…[/yellow]")


def steps_for_epochs(epochs: float, batches_per_epoch: int, grad_accumulation: int) -> int:
    """Optimizer steps that cover ``epochs`` passes over the data."""
    return max(1, math.ceil(epochs * batches_per_epoch / grad_accumulation))
