"""Text generation for the later stages: chat template applied, greedy or sampled, streamed.

A thin layer over ``mlx_lm.stream_generate``; the prompt for a single user message is
:func:`mlx_outfit.prompts.chat_prompt`, the same text training and evaluation use.
"""

from __future__ import annotations

from typing import Iterator, Sequence

from ..errors import UserError
from ..prompts import chat_prompt


def stream_prompt(model, tokenizer, prompt: str, max_tokens: int = 64, temperature: float = 0.0,
                  seed: int | None = None) -> Iterator[str]:
    """Yield text pieces continuing the already-templated ``prompt`` (greedy at temperature 0)."""
    import mlx.core as mx
    from mlx_lm import stream_generate
    from mlx_lm.sample_utils import make_sampler

    if seed is not None:
        mx.random.seed(seed)
    for response in stream_generate(model, tokenizer, prompt, max_tokens=max_tokens,
                                    sampler=make_sampler(temp=temperature)):
        yield response.text


def stream_text(model, tokenizer, user_message: str, max_tokens: int = 64, temperature: float = 0.0,
                seed: int | None = None) -> Iterator[str]:
    """Yield the assistant's answer to ``user_message`` piece by piece."""
    yield from stream_prompt(model, tokenizer, chat_prompt(tokenizer, user_message), max_tokens, temperature, seed)


def generate_text(model, tokenizer, user_message: str, max_tokens: int = 64, temperature: float = 0.0,
                  seed: int | None = None) -> str:
    """The assistant's answer to ``user_message`` (chat template applied; greedy at temperature 0)."""
    return "".join(stream_text(model, tokenizer, user_message, max_tokens, temperature, seed))


def conversation_prompt(tokenizer, messages: Sequence[dict[str, str]]) -> str:
    """The prompt for a multi-turn conversation (``[{"role": ..., "content": ...}, ...]``)."""
    if not getattr(tokenizer, "chat_template", None):
        raise UserError("this model has no chat template; use `mlx-outfit model generate` instead")
    return tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
