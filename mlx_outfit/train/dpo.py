"""Direct Preference Optimization, written by hand in MLX (mlx-lm has no DPO).

One pair = one user prompt, a chosen answer and a rejected answer. A batch runs the
left-padded prompts through the model once, copies their key/value cache for the two
answers, and applies the LM head only on answer positions, so a pair costs about one
prompt plus two short answers, not two full sequences. Reference log-probs are computed
once before training (``train/reference.py``), so no second model is resident.

Loss variants (``h`` = policy-minus-reference log-ratio of chosen minus rejected):

* ``sigmoid`` (default, Rafailov et al. 2023): ``-log σ(βh)``; with ``label_smoothing``
  ε > 0 it is conservative DPO: ``-(1-ε) log σ(βh) - ε log σ(-βh)``.
* ``ipo`` (Azar et al. 2023): ``(h - 1/(2β))²`` on per-token mean log-probs.
* ``hinge`` (SLiC): ``max(0, 1 - βh)``.
* ``robust`` (Chowdhury et al. 2024, label noise ε = ``label_smoothing``):
  ``(-(1-ε) log σ(βh) + ε log σ(-βh)) / (1-2ε)``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx_lm.models.base import create_causal_mask
from mlx_lm.tuner.utils import load_adapters
from rich.console import Console
from rich.progress import Progress

from ..catalog import Catalog, load_catalog
from ..errors import UserError
from ..eval.scoring import body_and_head, encode_continuation, encode_prompt
from ..fileio import read_json
from ..prompts import chat_prompt
from ..questions import build_questions
from .batches import Batches
from .pairs import Pair, question_pairs, read_pairs, training_pairs, write_pairs
from .progress import log_row
from .reference import REFERENCE_FILE, cached_reference, reference_key
from .sft import SFTOptions
from .checkpoints import latest_checkpoint
from .trainer import ADAPTER_CONFIG, ADAPTER_FILE, LoraSettings, TrainResult, TrainSettings, add_lora, adapter_config, \
    prepare_training_model, steps_for_epochs, train

LOSS_TYPES = ("sigmoid", "ipo", "hinge", "robust")
PAIRS_FILE = "pairs.jsonl"
ROBUST_LABEL_NOISE = 0.1  # the robust loss's default share of flipped labels
METRIC_NAMES = ("loss", "reward_margin", "accuracy", "chosen_logp", "rejected_logp",
                "chosen_reward", "rejected_reward")


@dataclass(frozen=True)
class DPOConfig:
    beta: float = 0.1
    loss: str = "sigmoid"
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        if self.loss not in LOSS_TYPES:
            raise UserError(f"unknown DPO loss '{self.loss}' (choose from {', '.join(LOSS_TYPES)})")
        if self.beta <= 0:
            raise UserError(f"--beta must be positive, got {self.beta}")
        if not 0 <= self.label_smoothing < 0.5:
            raise UserError(f"--label-smoothing must be in [0, 0.5), got {self.label_smoothing}")
        if self.loss in ("ipo", "hinge") and self.label_smoothing:
            raise UserError(f"--label-smoothing applies to the sigmoid and robust losses, not {self.loss}")

    @property
    def per_token_mean(self) -> bool:
        """IPO compares per-token mean log-probs; the others compare sums."""
        return self.loss == "ipo"


def preference_losses(policy_chosen: mx.array, policy_rejected: mx.array, ref_chosen: mx.array,
                      ref_rejected: mx.array, config: DPOConfig) -> mx.array:
    """Per-example loss from policy and reference log-probs (sums, or means for IPO)."""
    h = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    beta, eps = config.beta, config.label_smoothing
    if config.loss == "sigmoid":
        return -(1 - eps) * nn.log_sigmoid(beta * h) - eps * nn.log_sigmoid(-beta * h)
    if config.loss == "robust":
        return (-(1 - eps) * nn.log_sigmoid(beta * h) + eps * nn.log_sigmoid(-beta * h)) / (1 - 2 * eps)
    if config.loss == "ipo":
        return mx.square(h - 1 / (2 * beta))
    return mx.maximum(1 - beta * h, 0)  # hinge


def preference_metrics(policy_chosen: mx.array, policy_rejected: mx.array, ref_chosen: mx.array,
                       ref_rejected: mx.array, config: DPOConfig) -> dict[str, mx.array]:
    """Batch means: loss, reward margin, preference accuracy, rewards (β·log-ratio) and log-probs."""
    losses = preference_losses(policy_chosen, policy_rejected, ref_chosen, ref_rejected, config)
    chosen_reward = config.beta * (policy_chosen - ref_chosen)
    rejected_reward = config.beta * (policy_rejected - ref_rejected)
    margin = chosen_reward - rejected_reward
    return {
        "loss": losses.mean(),
        "reward_margin": margin.mean(),
        "accuracy": (margin > 0).astype(mx.float32).mean(),
        "chosen_logp": policy_chosen.mean(),
        "rejected_logp": policy_rejected.mean(),
        "chosen_reward": chosen_reward.mean(),
        "rejected_reward": rejected_reward.mean(),
    }


class PairBatch(NamedTuple):
    """The arrays of B pairs: each prompt once, then both answers of every pair."""

    prompts: mx.array          # (B, P) token ids, left-padded
    prompt_padding: mx.array   # (B,) pad tokens before each prompt
    answers: mx.array          # (2B, C) chosen rows, then rejected rows, right-padded
    answer_lengths: mx.array   # (2B,)
    reference: mx.array        # (2B,) reference log-prob sums (zeros while computing them)


class PairCache:
    """One layer's keys/values: left-padded prompts, then the answers that attend to them.

    Plays the part of mlx-lm's ``BatchKVCache`` for a model's forward pass (per-row RoPE
    offsets, a mask hiding the left padding), but grows by concatenation instead of writing
    into preallocated 256-step buffers: under autograd each such write keeps a full copy, so
    this holds only what attention needs.
    """

    def __init__(self, padding: mx.array):
        self.padding = padding
        self.keys = self.values = None
        self.length = 0

    @property
    def offset(self) -> mx.array:
        """Each row's position of the next token (its padding does not count)."""
        return self.length - self.padding

    def update_and_fetch(self, keys: mx.array, values: mx.array) -> tuple[mx.array, mx.array]:
        if self.keys is not None:
            keys = mx.concatenate([self.keys, keys], axis=2)
            values = mx.concatenate([self.values, values], axis=2)
        self.keys, self.values, self.length = keys, values, keys.shape[2]
        return keys, values

    def make_mask(self, n: int, window_size: int | None = None, **_) -> mx.array:
        return create_causal_mask(n, offset=self.length, window_size=window_size, left_padding=self.padding)

    def repeat(self) -> None:
        """Each prompt twice over: rows [chosen..., rejected...] share the prompt's keys/values."""
        self.keys, self.values = (mx.concatenate([a, a]) for a in (self.keys, self.values))
        self.padding = mx.concatenate([self.padding, self.padding])


def answer_logprobs(model: nn.Module, batch: PairBatch) -> tuple[mx.array, mx.array]:
    """Summed log-probs of each answer row given its prompt, and the answers' token counts.

    The prompt is encoded once; both answers of a pair attend to its cached keys/values
    (left padding is masked by the cache), and only answer positions reach the LM head.
    """
    body, head = body_and_head(model)
    caches = [PairCache(batch.prompt_padding) for _ in model.layers]
    last_prompt = body(batch.prompts, cache=caches)[:, -1:]   # predicts each answer's first token
    for cache in caches:
        cache.repeat()
    answer_hidden = body(batch.answers[:, :-1], cache=caches)  # the last answer token predicts nothing
    hidden = mx.concatenate([mx.concatenate([last_prompt, last_prompt]), answer_hidden], axis=1)
    token_logps = -nn.losses.cross_entropy(head(hidden).astype(mx.float32), batch.answers)
    mask = mx.arange(batch.answers.shape[1])[None] < batch.answer_lengths[:, None]
    return (token_logps * mask).sum(axis=-1), batch.answer_lengths


def dpo_loss(model: nn.Module, batch: PairBatch, config: DPOConfig) -> tuple[mx.array, dict[str, mx.array]]:
    """Mean preference loss over the batch and its metrics (see :func:`preference_metrics`)."""
    policy, lengths = answer_logprobs(model, batch)
    reference = batch.reference
    if config.per_token_mean:
        policy, reference = policy / lengths, reference / lengths
    n = policy.shape[0] // 2
    metrics = preference_metrics(policy[:n], policy[n:], reference[:n], reference[n:], config)
    return metrics["loss"], metrics


@dataclass(frozen=True)
class EncodedPair:
    """Token ids of a pair: the chat prompt once, each answer with its end-of-turn token."""

    prompt: list[int]
    chosen: list[int]
    rejected: list[int]

    @property
    def length(self) -> int:
        return len(self.prompt) + max(len(self.chosen), len(self.rejected))


def encode_pair(tokenizer, pair: Pair) -> EncodedPair:
    """Tokenize exactly as evaluation scores answers (:mod:`mlx_outfit.eval.scoring`)."""
    return EncodedPair(encode_prompt(tokenizer, chat_prompt(tokenizer, pair.prompt)),
                       encode_continuation(tokenizer, pair.chosen), encode_continuation(tokenizer, pair.rejected))


def encode_pairs(tokenizer, pairs: Sequence[Pair], max_seq: int) -> tuple[list[EncodedPair], int]:
    """Encode all pairs; those longer than ``max_seq`` tokens are dropped (returns how many)."""
    encoded = [encode_pair(tokenizer, p) for p in pairs]
    kept = [e for e in encoded if e.length <= max_seq]
    return kept, len(encoded) - len(kept)


def collate_pairs(encoded: Sequence[EncodedPair], indices: Sequence[int],
                  reference: np.ndarray | None = None) -> PairBatch:
    """Pad the chosen pairs into a :class:`PairBatch`; ``reference`` is (pairs, 2) log-prob sums."""
    rows = [encoded[i] for i in indices]
    width = max(len(r.prompt) for r in rows)
    prompts = np.zeros((len(rows), width), np.int32)
    for r, row in enumerate(rows):
        prompts[r, width - len(row.prompt):] = row.prompt
    answers = [r.chosen for r in rows] + [r.rejected for r in rows]
    answer_width = max(2, max(len(a) for a in answers))  # the answer pass needs at least one input token
    answer_ids = np.zeros((len(answers), answer_width), np.int32)
    for r, answer in enumerate(answers):
        answer_ids[r, :len(answer)] = answer
    ref = np.zeros(len(answers), np.float32) if reference is None else \
        np.concatenate([reference[indices, 0], reference[indices, 1]]).astype(np.float32)
    return PairBatch(mx.array(prompts), mx.array([width - len(r.prompt) for r in rows], dtype=mx.int32),
                     mx.array(answer_ids), mx.array([len(a) for a in answers], dtype=mx.int32), mx.array(ref))


def reference_logprobs(model: nn.Module, encoded: Sequence[EncodedPair], batch_size: int = 8,
                       advance: Callable[[int], None] | None = None) -> np.ndarray:
    """(pairs, 2) summed log-probs of [chosen, rejected] under ``model`` as it is now (eval mode)."""
    was_training = model.training
    model.eval()
    order = sorted(range(len(encoded)), key=lambda i: encoded[i].length)  # similar lengths, little padding
    logps = np.zeros((len(encoded), 2), np.float32)
    try:
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            sums = np.array(answer_logprobs(model, collate_pairs(encoded, rows))[0])
            logps[rows, 0], logps[rows, 1] = sums[:len(rows)], sums[len(rows):]
            if advance is not None:
                advance(len(rows))
    finally:
        model.train(was_training)
    return logps


def pair_loss_fn(config: DPOConfig) -> Callable[[nn.Module, PairBatch], tuple]:
    """``loss_fn(model, batch) -> (loss, tokens processed, metrics)`` as the shared trainer expects."""

    def loss_fn(model: nn.Module, batch: PairBatch) -> tuple[mx.array, mx.array, dict[str, mx.array]]:
        loss, metrics = dpo_loss(model, batch, config)
        tokens = batch.prompts.size - batch.prompt_padding.sum() + batch.answer_lengths.sum()
        return loss, tokens, {k: v for k, v in metrics.items() if k != "loss"}

    return loss_fn


def pair_batches(encoded: Sequence[EncodedPair], reference: np.ndarray, batch_size: int, seed: int,
                 shuffle: bool = True) -> Batches:
    return Batches([e.length for e in encoded], batch_size,
                   lambda indices: collate_pairs(encoded, indices, reference), seed, shuffle)


def evaluate_pairs(model: nn.Module, encoded: Sequence[EncodedPair], reference: np.ndarray, config: DPOConfig,
                   batch_size: int = 8) -> dict[str, float]:
    """Pair-weighted means of every metric (loss, reward margin, preference accuracy, ...) over all pairs."""
    was_training = model.training
    model.eval()
    totals = dict.fromkeys(METRIC_NAMES, 0.0)
    try:
        for start in range(0, len(encoded), batch_size):
            rows = list(range(start, min(start + batch_size, len(encoded))))
            _, metrics = dpo_loss(model, collate_pairs(encoded, rows, reference), config)
            for name, value in metrics.items():
                totals[name] += value.item() * len(rows)
    finally:
        model.train(was_training)
    return {name: total / len(encoded) for name, total in totals.items()}


@dataclass
class DPOOptions(SFTOptions):
    """Every ``train dpo`` option: the SFT training options plus the preference ones.

    ``init_adapter`` is the starting policy's adapter (usually the SFT one): training continues
    its LoRA weights (its LoRA settings replace ``lora_*``), and the reference is that policy.
    ``pairs`` is a pairs file; without it, pairs come from the catalog (:func:`training_pairs`).
    """

    learning_rate: float = 5e-5
    beta: float = 0.1
    loss: str = "sigmoid"
    label_smoothing: float | None = None  # None: 0.1 for the robust loss, else 0
    init_adapter: str | None = None
    pairs: str | None = None

    def dpo_config(self) -> DPOConfig:
        smoothing = self.label_smoothing
        if smoothing is None:
            smoothing = ROBUST_LABEL_NOISE if self.loss == "robust" else 0.0
        return DPOConfig(beta=self.beta, loss=self.loss, label_smoothing=smoothing)


@dataclass
class DPOResult:
    train: TrainResult
    pairs: int
    valid_pairs: int
    valid: dict[str, float] | None  # validation-pair metrics of the trained policy (see METRIC_NAMES)


def _start_policy(model: nn.Module, options: DPOOptions) -> LoraSettings:
    """Add LoRA layers: the init adapter's (with its weights), or fresh ones from the options."""
    if options.init_adapter is None:
        lora = options.lora()
        add_lora(model, lora, seed=options.seed)
        return lora
    config = read_json(Path(options.init_adapter) / ADAPTER_CONFIG)
    if config.get("fine_tune_type", "lora") != "lora":
        raise UserError("DPO continues LoRA adapters only", options.init_adapter)
    params = config["lora_parameters"]
    model.freeze()
    try:
        load_adapters(model, options.init_adapter)
    except (FileNotFoundError, ValueError) as e:
        raise UserError(f"adapter does not fit this model ({e})", options.init_adapter) from None
    return LoraSettings(rank=params["rank"], scale=params["scale"], dropout=params.get("dropout", 0.0),
                        num_layers=config["num_layers"], keys=params.get("keys"))


def _sample(pairs: list[Pair], n: int | None, seed: int) -> list[Pair]:
    """A seeded random subset of ``n`` pairs in their original order (all of them when ``n`` is None or larger)."""
    if n is None or n >= len(pairs):
        return pairs
    keep = sorted(random.Random(seed).sample(range(len(pairs)), n))
    return [pairs[i] for i in keep]


def train_dpo(catalog: str | Path | Catalog, out_dir: str | Path, options: DPOOptions | None = None, *,
              pairs: Sequence[Pair] | None = None, resume: bool = False,
              console: Console | None = None) -> DPOResult:
    """DPO-train ``options.model`` (+ ``options.init_adapter``) on preference pairs; see :class:`DPOOptions`.

    Pairs come from ``pairs``, else ``options.pairs``, else the catalog's training split (plus
    feedback); with ``iters`` set, only as many as training will see (a seeded random subset).
    Validation pairs come from the ``val_split`` FITB questions (``val_batches`` batches of them).
    The out folder gets the adapter, ``pairs.jsonl`` (the pairs trained on), the reference
    log-probs, and ``train_log.jsonl`` ending with the validation metrics of the trained policy.
    """
    from ..models.loading import load_model, resolve_model

    options = options or DPOOptions()
    config = options.dpo_config()
    console = console or Console(stderr=True)
    out_dir = Path(out_dir)
    if not resume and ((out_dir / ADAPTER_FILE).exists() or latest_checkpoint(out_dir) is not None):
        # checked before pairs.jsonl and the reference are written over the existing run's
        raise UserError("already holds a training run; pass --resume to continue it, or choose another --out",
                        str(out_dir))
    catalog = catalog if isinstance(catalog, Catalog) else load_catalog(catalog)
    if pairs is None:
        pairs = read_pairs(options.pairs) if options.pairs else training_pairs(catalog, options.n_candidates,
                                                                              options.seed)
    seen = None if options.iters is None else options.iters * options.batch_size * options.grad_accumulation
    pairs = _sample(list(pairs), seen, options.seed)
    valid_pairs: list[Pair] = []
    if options.val_split and any(o.split == options.val_split for o in catalog.outfits):
        questions = build_questions(catalog, "fitb", options.val_split, options.n_candidates, options.seed)
        valid_pairs = _sample(question_pairs(catalog, questions, options.seed + 1),
                              None if options.val_batches < 0 else options.val_batches * options.batch_size,
                              options.seed + 1)

    model, tokenizer = load_model(options.model)
    train_encoded, dropped = encode_pairs(tokenizer, pairs, options.max_seq)
    valid_encoded, _ = encode_pairs(tokenizer, valid_pairs, options.max_seq)
    if dropped:
        console.print(f"[yellow]skipped {dropped} pairs longer than --max-seq {options.max_seq}[/yellow]")
    if len(train_encoded) < options.batch_size:
        raise UserError(f"only {len(train_encoded)} preference pairs (need at least --batch-size "
                        f"{options.batch_size})", options.pairs or str(catalog.root))
    out_dir.mkdir(parents=True, exist_ok=True)
    write_pairs(out_dir / PAIRS_FILE, pairs)

    model = prepare_training_model(model, options.train_dtype)
    lora = _start_policy(model, options)
    encoded = train_encoded + valid_encoded
    key = reference_key(resolve_model(options.model), options.init_adapter, encoded, options.train_dtype)
    with Progress(*Progress.get_default_columns(), console=console, transient=True) as progress:
        task = progress.add_task("reference log-probs", total=len(encoded))
        reference = cached_reference(out_dir / REFERENCE_FILE, key, lambda: reference_logprobs(
            model, encoded, options.batch_size, lambda n: progress.advance(task, n)))
    train_reference, valid_reference = reference[:len(train_encoded)], reference[len(train_encoded):]

    train_batches = pair_batches(train_encoded, train_reference, options.batch_size, options.seed)
    val_batches = (pair_batches(valid_encoded, valid_reference, options.batch_size, options.seed, shuffle=False)
                   if len(valid_encoded) >= options.batch_size else None)
    iters = options.iters if options.iters is not None else \
        steps_for_epochs(options.epochs or 1.0, len(train_batches), options.grad_accumulation)
    console.print(f"{len(train_encoded)} training / {len(valid_encoded)} validation pairs, "
                  f"{len(train_batches)} batches per epoch, {iters} steps, {config.loss} loss, β={config.beta}")
    settings = TrainSettings(iters=iters, learning_rate=options.learning_rate, lr_schedule=options.lr_schedule,
                             optimizer=options.optimizer, grad_accumulation=options.grad_accumulation,
                             grad_checkpoint=options.grad_checkpoint, val_every=options.val_every,
                             val_batches=options.val_batches, save_every=options.save_every,
                             report_every=options.report_every, seed=options.seed)
    init_adapter = options.init_adapter and str(Path(options.init_adapter).resolve())  # same run from any cwd
    signature = {"model": options.model, "init_adapter": init_adapter, "reference": key,
                 "beta": config.beta, "loss": config.loss, "label_smoothing": config.label_smoothing,
                 "max_seq": options.max_seq, "train_dtype": options.train_dtype}
    adapter = adapter_config(lora, model=options.model, task="dpo", init_adapter=options.init_adapter,
                             dpo={"beta": config.beta, "loss": config.loss,
                                  "label_smoothing": config.label_smoothing})
    result = train(model, pair_loss_fn(config), train_batches, out_dir, settings, adapter_config=adapter,
                   val_batches=val_batches, resume=resume, signature=signature, console=console)
    valid = evaluate_pairs(model, valid_encoded, valid_reference, config, options.batch_size) \
        if valid_encoded else None
    if valid is not None:
        log_row(out_dir, {"step": result.step, "valid_pairs": valid})
    return DPOResult(result, len(train_encoded), len(valid_encoded), valid)
