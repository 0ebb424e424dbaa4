"""Completion-only language-model loss, with the LM head computed only where it counts.

On a CPU the vocabulary projection (49k columns for SmolLM2) is a large share of every step,
yet only completion tokens carry loss. So the model body runs on the whole padded batch, the
hidden states of completion positions are gathered, and only those go through the head and the
cross-entropy. Models whose ``model(x)`` is not ``head(model.model(x))`` fall back to full
logits (same result, slower).
"""

from __future__ import annotations

from typing import Callable, Sequence

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from ..eval.scoring import body_and_head
from .examples import EncodedExample

# (inputs [B, T], positions [N] flat indices into B*T, targets [N])
CompletionBatch = tuple[mx.array, mx.array, mx.array]
LossFn = Callable[[nn.Module, CompletionBatch], tuple[mx.array, mx.array]]


def collate_completions(examples: Sequence[EncodedExample], pad_to: int = 8) -> CompletionBatch:
    """Pad a batch (to a multiple of ``pad_to``) and list the positions whose next token is a completion token."""
    width = max(len(e.tokens) for e in examples) - 1
    width = -(-width // pad_to) * pad_to
    inputs = np.zeros((len(examples), width), np.int32)
    positions, targets = [], []
    for row, example in enumerate(examples):
        tokens = np.asarray(example.tokens, np.int32)
        inputs[row, : len(tokens) - 1] = tokens[:-1]
        # The prediction at input position p is token p + 1: completion tokens start at prompt_length.
        first = example.prompt_length - 1
        positions.append(row * width + np.arange(first, len(tokens) - 1))
        targets.append(tokens[example.prompt_length:])
    return mx.array(inputs), mx.array(np.concatenate(positions)), mx.array(np.concatenate(targets))


def head_splits_cleanly(model: nn.Module) -> bool:
    """True when ``model(x) == head(body(x))`` (``eval.scoring.body_and_head``), so the head can run on a subset."""
    if not hasattr(model, "model") or not hasattr(getattr(model, "model"), "embed_tokens"):
        return False
    was_training = model.training
    model.eval()
    try:
        probe = mx.array([[1, 2, 3, 4]])
        full = model(probe).astype(mx.float32)
        body, head = body_and_head(model)
        split = head(body(probe)).astype(mx.float32)
        return full.shape == split.shape and mx.allclose(full, split, atol=1e-4, rtol=1e-3).item()
    except (AttributeError, TypeError, ValueError):
        return False
    finally:
        model.train(was_training)


def completion_logits(model: nn.Module, inputs: mx.array, positions: mx.array, split_head: bool) -> mx.array:
    """Logits [N, vocab] at the flat ``positions`` of ``inputs`` [B, T]."""
    if split_head:
        body, head = body_and_head(model)
        hidden = body(inputs)
        return head(hidden.reshape(-1, hidden.shape[-1])[positions])
    logits = model(inputs)
    return logits.reshape(-1, logits.shape[-1])[positions]


def completion_loss_fn(model: nn.Module) -> LossFn:
    """``loss_fn(model, batch) -> (mean cross-entropy over completion tokens, completion token count)``."""
    split_head = head_splits_cleanly(model)

    def loss_fn(model: nn.Module, batch: CompletionBatch) -> tuple[mx.array, mx.array]:
        inputs, positions, targets = batch
        logits = completion_logits(model, inputs, positions, split_head).astype(mx.float32)
        ntoks = positions.size
        return nn.losses.cross_entropy(logits, targets, reduction="sum") / ntoks, mx.array(ntoks)

    return loss_fn
