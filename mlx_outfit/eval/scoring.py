"""Log-likelihood of candidate answers given one prompt, with the prompt computed once.

The prompt runs through the model a single time; its KV cache is broadcast across a batch
of right-padded candidates (right padding needs no extra mask: a causal model never lets a
real token look at the pads that follow it). The LM head (the 49k-vocab matmul that
dominates small models) runs only on the positions whose next token is a candidate token.
A :class:`PromptCache` passed from call to call also keeps the part of the prompt that
consecutive prompts share (chat template, system prompt), so it is computed once per run.

Assumes an mlx-lm model whose ``model.model`` returns the final normalised hidden states and
whose logits are ``lm_head(h)`` or, with tied embeddings, ``embed_tokens.as_linear(h)``
(llama, qwen, mistral, phi-3 ... families). :func:`score_continuations_naive` is the
reference that uses the model's own forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import mlx.core as mx
import numpy as np
from mlx_lm.models.cache import KVCache, make_prompt_cache

from ..catalog import Catalog
from ..errors import UserError
from ..itemtext import item_text
from ..prompts import chat_prompt, complete_message


@dataclass(frozen=True)
class CandidateScore:
    logprob_sum: float
    n_tokens: int

    @property
    def logprob_mean(self) -> float:
        return self.logprob_sum / self.n_tokens


def encode_prompt(tokenizer, prompt: str) -> list[int]:
    """Prompt token ids, adding the BOS token only when the text does not already start with it (as mlx-lm does)."""
    bos = getattr(tokenizer, "bos_token", None)
    return list(tokenizer.encode(prompt, add_special_tokens=bos is None or not prompt.startswith(bos)))


def encode_continuation(tokenizer, text: str, end_of_turn: bool = True) -> list[int]:
    """Answer token ids; with ``end_of_turn`` the model must also say the answer is complete."""
    ids = list(tokenizer.encode(text, add_special_tokens=False))
    if end_of_turn and tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    if not ids:
        raise ValueError(f"continuation {text!r} has no tokens")
    return ids


def body_and_head(model) -> tuple[Callable, Callable]:
    """The transformer body (tokens, cache -> hidden states) and the LM head (hidden -> logits)."""
    head = model.lm_head if hasattr(model, "lm_head") else model.model.embed_tokens.as_linear
    return model.model, head


def _log_softmax(logits: mx.array) -> mx.array:
    logits = logits.astype(mx.float32)
    return logits - mx.logsumexp(logits, axis=-1, keepdims=True)


def _broadcast_cache(prompt_cache: list[KVCache], batch: int) -> list[KVCache]:
    """Fresh caches holding the prompt's keys/values once per batch row (the prompt cache is not modified)."""
    caches = []
    for layer in prompt_cache:
        if type(layer) is not KVCache:
            raise UserError(f"this model keeps a {type(layer).__name__}; scoring shares prompt caches only for "
                            "models with a plain KV cache (llama, qwen, mistral, phi-3 families)")
        keys, values = layer.keys[..., : layer.offset, :], layer.values[..., : layer.offset, :]
        cache = KVCache()
        cache.state = (mx.broadcast_to(keys, (batch, *keys.shape[1:])),
                       mx.broadcast_to(values, (batch, *values.shape[1:])), layer.offset)
        caches.append(cache)
    return caches


@dataclass
class PromptCache:
    """The last prompt's tokens and KV cache (one model only); the next prompt recomputes only what differs."""

    tokens: list[int] = field(default_factory=list)
    layers: list[KVCache] | None = None


def _prefill(model, body: Callable, prompt_ids: Sequence[int], reuse: PromptCache | None) -> tuple[list, mx.array]:
    """The prompt's KV cache and last hidden state, reusing the common prefix with ``reuse``'s prompt."""
    reuse = PromptCache() if reuse is None else reuse
    if reuse.layers is None:
        reuse.layers, reuse.tokens = make_prompt_cache(model), []
    common = 0
    for old, new in zip(reuse.tokens, prompt_ids[:-1]):  # keep >= 1 new token: its hidden state is needed
        if old != new:
            break
        common += 1
    for layer in reuse.layers:
        layer.trim(layer.offset - common)
    reuse.tokens = []  # until the cache holds this prompt (an interrupted prefill must not be reused)
    hidden = body(mx.array(prompt_ids[common:])[None], cache=reuse.layers)
    reuse.tokens = list(prompt_ids)
    return reuse.layers, hidden[:, -1]


def score_token_continuations(model, prompt_ids: Sequence[int], continuations: Sequence[Sequence[int]],
                              batch_size: int = 16, prompt_cache: PromptCache | None = None) -> list[CandidateScore]:
    """Scores of token-id continuations after ``prompt_ids`` (see module docstring for how)."""
    body, head = body_and_head(model)
    prompt_layers, last_hidden = _prefill(model, body, list(prompt_ids), prompt_cache)
    first_logprobs = _log_softmax(head(last_hidden))[0]
    first_ids = mx.array([c[0] for c in continuations])
    sums = np.array(first_logprobs[first_ids], dtype=np.float64)

    # Similar lengths share a batch, so little compute goes to padding.
    order = sorted((i for i, c in enumerate(continuations) if len(c) > 1), key=lambda i: len(continuations[i]))
    for start in range(0, len(order), batch_size):
        rows = order[start: start + batch_size]
        width = max(len(continuations[i]) for i in rows)
        tokens = np.zeros((len(rows), width), dtype=np.int32)
        for r, i in enumerate(rows):
            tokens[r, : len(continuations[i])] = continuations[i]
        lengths = np.array([len(continuations[i]) for i in rows])
        # Position j predicts token j+1; only positions whose next token is real get the head.
        predicts_real = np.arange(width - 1)[None, :] + 1 < lengths[:, None]
        flat_positions = mx.array(np.flatnonzero(predicts_real).astype(np.int32))
        hidden = body(mx.array(tokens[:, :-1]), cache=_broadcast_cache(prompt_layers, len(rows)))
        hidden = hidden.reshape(-1, hidden.shape[-1])[flat_positions]
        targets = mx.array(tokens[:, 1:][predicts_real])
        token_logprobs = mx.take_along_axis(_log_softmax(head(hidden)), targets[:, None], axis=-1)[:, 0]
        row_of_token = np.nonzero(predicts_real)[0]
        np.add.at(sums, np.array(rows)[row_of_token], np.array(token_logprobs, dtype=np.float64))
    return [CandidateScore(float(s), len(c)) for s, c in zip(sums, continuations)]


def score_continuations(model, tokenizer, prompt: str, continuations: Sequence[str], batch_size: int = 16,
                        end_of_turn: bool = True, prompt_cache: PromptCache | None = None) -> list[CandidateScore]:
    """Log-likelihood of each continuation (as the assistant's answer) after ``prompt``.

    ``prompt`` is a full prompt string, e.g. from :func:`mlx_outfit.prompts.chat_prompt`.
    Identical continuations are scored once. Pass the same ``prompt_cache`` to consecutive
    calls to reuse the prompts' common prefix.
    """
    unique = list(dict.fromkeys(continuations))
    scores = score_token_continuations(model, encode_prompt(tokenizer, prompt),
                                       [encode_continuation(tokenizer, c, end_of_turn) for c in unique], batch_size,
                                       prompt_cache)
    by_text = dict(zip(unique, scores))
    return [by_text[c] for c in continuations]


def score_continuations_naive(model, tokenizer, prompt: str, continuations: Sequence[str],
                              end_of_turn: bool = True) -> list[CandidateScore]:
    """Reference: one full forward pass of the model per (prompt + continuation). Slow; for tests and benchmarks."""
    prompt_ids = encode_prompt(tokenizer, prompt)
    scores = []
    for text in continuations:
        ids = encode_continuation(tokenizer, text, end_of_turn)
        logprobs = _log_softmax(model(mx.array(prompt_ids + ids)[None])[0, len(prompt_ids) - 1: -1])
        picked = mx.take_along_axis(logprobs, mx.array(ids)[:, None], axis=-1)
        scores.append(CandidateScore(float(picked.astype(mx.float32).sum().item()), len(ids)))
    return scores


def question_prompt(tokenizer, catalog: Catalog, outfit: Sequence[str], category: str) -> str:
    """The chat prompt asking for the missing ``category`` item of an outfit (given as item ids)."""
    return chat_prompt(tokenizer, complete_message([catalog.items[i] for i in outfit], category))


def score_question(model, tokenizer, catalog: Catalog, question, batch_size: int = 16, end_of_turn: bool = True,
                   prompt_cache: PromptCache | None = None) -> list[CandidateScore]:
    """Score every candidate of a question (anything with ``outfit``, ``candidates``, ``category``)."""
    prompt = question_prompt(tokenizer, catalog, question.outfit, question.category)
    texts = [item_text(catalog.items[c]) for c in question.candidates]
    return score_continuations(model, tokenizer, prompt, texts, batch_size, end_of_turn, prompt_cache)
