"""Supervised LoRA fine-tuning on catalog outfits (``mlx-outfit train sft``).

Builds prompt/completion examples from the catalog's outfits (:mod:`.examples`), trains LoRA
layers with the completion-only loss (:mod:`.completion`) in the shared loop (:mod:`.trainer`),
and leaves an mlx-lm adapter folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mlx.nn as nn
from rich.console import Console

from ..catalog import Catalog, load_catalog
from ..errors import UserError
from .batches import Batches
from .completion import collate_completions, completion_loss_fn
from .examples import KINDS, EncodedExample, encode_examples, outfit_examples
from .trainer import LoraSettings, TrainResult, TrainSettings, add_lora, adapter_config, \
    prepare_training_model, steps_for_epochs, train


@dataclass
class SFTOptions:
    """Every ``train sft`` option (the CLI flags and ``--config`` YAML keys use these names)."""

    model: str = "default"
    split: str = "train"
    val_split: str | None = "valid"  # None or an empty split: no validation
    iters: int | None = None  # optimizer steps; default: one epoch
    epochs: float | None = None
    batch_size: int = 4
    grad_accumulation: int = 1
    learning_rate: float = 1e-4
    lr_schedule: dict | None = None  # mlx-lm build_schedule config
    optimizer: str = "adamw"
    lora_rank: int = 8
    lora_layers: int = 16
    lora_scale: float = 20.0
    lora_dropout: float = 0.0
    max_seq: int = 512
    val_every: int = 50
    val_batches: int = 8
    save_every: int = 50
    report_every: int = 10
    seed: int = 0
    train_dtype: str = "auto"
    grad_checkpoint: bool = False
    kinds: tuple[str, ...] = KINDS
    n_candidates: int = 4

    def lora(self) -> LoraSettings:
        return LoraSettings(rank=self.lora_rank, scale=self.lora_scale, dropout=self.lora_dropout,
                            num_layers=self.lora_layers)


@dataclass
class SFTData:
    train: list[EncodedExample]
    valid: list[EncodedExample]
    dropped: int  # examples longer than max_seq


def sft_data(catalog: Catalog, tokenizer, options: SFTOptions) -> SFTData:
    """Encoded training (and validation) examples from the catalog's outfits."""
    train_examples = outfit_examples(catalog, options.split, options.kinds, options.n_candidates, options.seed)
    train_encoded, dropped = encode_examples(tokenizer, train_examples, options.max_seq)
    valid_encoded: list[EncodedExample] = []
    if options.val_split and any(o.split == options.val_split for o in catalog.outfits):
        valid_examples = outfit_examples(catalog, options.val_split, options.kinds, options.n_candidates,
                                         options.seed + 1)
        valid_encoded, _ = encode_examples(tokenizer, valid_examples, options.max_seq)
    if len(train_encoded) < options.batch_size:
        raise UserError(f"only {len(train_encoded)} training examples of at most {options.max_seq} tokens in split "
                        f"'{options.split}' (need at least --batch-size {options.batch_size})", str(catalog.root))
    return SFTData(train_encoded, valid_encoded, dropped)


def example_batches(examples: list[EncodedExample], batch_size: int, seed: int) -> Batches:
    return Batches([len(e.tokens) for e in examples], batch_size,
                   lambda indices: collate_completions([examples[i] for i in indices]), seed)


def train_sft(catalog: str | Path | Catalog, out_dir: str | Path, options: SFTOptions | None = None, *,
              model: nn.Module | None = None, tokenizer=None, resume: bool = False,
              console: Console | None = None) -> TrainResult:
    """LoRA-fine-tune ``options.model`` (or the given, already loaded ``model``) on the catalog's outfits.

    QLoRA when the model is quantized and ``train_dtype`` is ``native``; on the CPU the default
    ``auto`` trains a float32 dequantized copy instead (much faster) — the adapter fits either.
    The model object passed in is modified (dequantized, LoRA layers added).
    """
    options = options or SFTOptions()
    if options.iters is not None and options.epochs is not None:
        raise UserError("give --iters or --epochs, not both")
    console = console or Console(stderr=True)
    catalog = catalog if isinstance(catalog, Catalog) else load_catalog(catalog)
    if model is None:
        from ..models.loading import load_model

        model, tokenizer = load_model(options.model)
    with console.status(f"building training examples from {len(catalog.outfits)} outfits…"):
        data = sft_data(catalog, tokenizer, options)
    if data.dropped:
        console.print(f"[yellow]skipped {data.dropped} examples longer than --max-seq {options.max_seq}[/yellow]")
    train_batches = example_batches(data.train, options.batch_size, options.seed)
    # Validation uses a fixed random sample of batches (sorted-by-length batches would all be short ones).
    val_batches = (example_batches(data.valid, options.batch_size, options.seed)
                   if len(data.valid) >= options.batch_size else None)
    if options.iters is not None:
        iters = options.iters
    else:
        iters = steps_for_epochs(options.epochs or 1.0, len(train_batches), options.grad_accumulation)
    console.print(f"{len(data.train)} training / {len(data.valid)} validation examples, "
                  f"{len(train_batches)} batches per epoch, {iters} steps")

    model = prepare_training_model(model, options.train_dtype)
    lora = options.lora()
    add_lora(model, lora, seed=options.seed)
    settings = TrainSettings(iters=iters, learning_rate=options.learning_rate, lr_schedule=options.lr_schedule,
                             optimizer=options.optimizer, grad_accumulation=options.grad_accumulation,
                             grad_checkpoint=options.grad_checkpoint, val_every=options.val_every,
                             val_batches=options.val_batches, save_every=options.save_every,
                             report_every=options.report_every, seed=options.seed)
    signature = {"model": options.model, "catalog": str(Path(catalog.root).resolve()), "split": options.split,
                 "kinds": list(options.kinds), "n_candidates": options.n_candidates, "max_seq": options.max_seq,
                 "train_dtype": options.train_dtype}
    config = adapter_config(lora, model=options.model, task="sft", catalog=signature["catalog"])
    return train(model, completion_loss_fn(model), train_batches, out_dir, settings, adapter_config=config,
                 val_batches=val_batches, resume=resume, signature=signature, console=console)
