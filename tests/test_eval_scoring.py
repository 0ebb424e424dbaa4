"""Shared-prefix scoring equals naive full forward passes, on tiny random models and the real default model."""

from __future__ import annotations

import mlx_lm
import pytest

from mlx_outfit.eval import scoring
from mlx_outfit.eval.scoring import (PromptCache, encode_continuation, encode_prompt, score_continuations,
                                     score_continuations_naive, score_question)
from mlx_outfit.prompts import chat_prompt

PROMPT = "Outfit:\n- upper: white cotton shirt, relaxed fit\n- bottom: blue denim jeans\nName one shoe that completes it."
CONTINUATIONS = ["black leather ankle boots with a block heel", "red", "gold hoop earrings",
                 "beige linen trousers, a very long description of trousers with many words", "x", "red"]


@pytest.fixture(scope="module", params=["tiny_llama", "tiny_llama_4bit"])
def loaded(request):
    return mlx_lm.load(str(request.getfixturevalue(request.param)))


@pytest.mark.parametrize("batch_size", [1, 3, 16])
@pytest.mark.parametrize("end_of_turn", [True, False])
def test_shared_prefix_equals_naive(loaded, batch_size, end_of_turn):
    model, tokenizer = loaded
    prompt = chat_prompt(tokenizer, PROMPT)
    fast = score_continuations(model, tokenizer, prompt, CONTINUATIONS, batch_size, end_of_turn)
    naive = score_continuations_naive(model, tokenizer, prompt, CONTINUATIONS, end_of_turn)
    assert [s.n_tokens for s in fast] == [s.n_tokens for s in naive]
    for a, b in zip(fast, naive):
        assert a.logprob_sum == pytest.approx(b.logprob_sum, abs=1e-3)
        assert a.logprob_sum < 0
    assert fast[1] == fast[-1]  # identical texts, identical scores


def test_end_of_turn_adds_one_token(loaded):
    model, tokenizer = loaded
    prompt = chat_prompt(tokenizer, PROMPT)
    with_end = score_continuations(model, tokenizer, prompt, CONTINUATIONS[:3], end_of_turn=True)
    without = score_continuations(model, tokenizer, prompt, CONTINUATIONS[:3], end_of_turn=False)
    for a, b in zip(with_end, without):
        assert a.n_tokens == b.n_tokens + 1
        assert a.logprob_sum < b.logprob_sum
        assert a.logprob_mean == pytest.approx(a.logprob_sum / a.n_tokens)


def test_lm_head_runs_only_on_candidate_positions(loaded, monkeypatch):
    model, tokenizer = loaded
    rows_through_head = []
    body_and_head = scoring.body_and_head

    def counting_split(m):
        body, head = body_and_head(m)

        def counting_head(hidden):
            rows_through_head.append(hidden.reshape(-1, hidden.shape[-1]).shape[0])
            return head(hidden)
        return body, counting_head

    monkeypatch.setattr(scoring, "body_and_head", counting_split)
    texts = CONTINUATIONS[:5]
    score_continuations(model, tokenizer, chat_prompt(tokenizer, PROMPT), texts, batch_size=2)
    lengths = [len(encode_continuation(tokenizer, t)) for t in texts]
    # One row for the prompt's last position, then one per candidate token after the first.
    assert sum(rows_through_head) == 1 + sum(n - 1 for n in lengths)


def test_prompt_cache_recomputes_only_the_new_suffix(loaded, monkeypatch):
    model, tokenizer = loaded
    prompts = [chat_prompt(tokenizer, PROMPT), chat_prompt(tokenizer, PROMPT.replace("shoe", "bag")),
               chat_prompt(tokenizer, "Outfit:\n- shoe: red heels\nName one bag that completes it.")]
    widths = []  # tokens per body call; the first call of a scoring is the prompt's
    body_and_head = scoring.body_and_head

    def recording_split(m):
        body, head = body_and_head(m)

        def recording_body(tokens, cache):
            widths.append(tokens.shape[1])
            return body(tokens, cache=cache)
        return recording_body, head

    monkeypatch.setattr(scoring, "body_and_head", recording_split)
    cache, prompt_widths = PromptCache(), []
    for prompt in prompts + prompts[:1]:
        widths.clear()
        reused = score_continuations(model, tokenizer, prompt, CONTINUATIONS, batch_size=4, prompt_cache=cache)
        prompt_widths.append(widths[0])
        fresh = score_continuations(model, tokenizer, prompt, CONTINUATIONS, batch_size=4)
        for a, b in zip(reused, fresh):
            assert a.logprob_sum == pytest.approx(b.logprob_sum, abs=1e-4)
        assert cache.tokens == encode_prompt(tokenizer, prompt)
    ids = [encode_prompt(tokenizer, p) for p in prompts]
    assert prompt_widths[0] == len(ids[0])
    # The first prompt again after the third: only what follows their common prefix is computed.
    common = next(i for i, (a, b) in enumerate(zip(ids[2], ids[0])) if a != b)
    assert 0 < common and prompt_widths[3] == len(ids[0]) - common


@pytest.mark.slow
@pytest.mark.ci
def test_shared_prefix_equals_naive_on_default_model(shared_data, tmp_path):
    from mlx_outfit.catalog import Catalog
    from mlx_outfit.importers.polyvore import import_polyvore
    from mlx_outfit.itemtext import item_text
    from mlx_outfit.models.loading import load_model
    from mlx_outfit.questions import build_questions, split_catalog

    items, outfits = import_polyvore(shared_data / "polyvore" / "valid_no_dup_with_category_3more_name.json")
    catalog = Catalog(tmp_path)
    catalog.merge(items, outfits)
    split_catalog(catalog, seed=0)
    model, tokenizer = load_model("default", dequantize=True)
    for question in build_questions(catalog, "fitb", "test", seed=0)[:2]:
        fast = score_question(model, tokenizer, catalog, question, batch_size=3)
        prompt = scoring.question_prompt(tokenizer, catalog, question.outfit, question.category)
        naive = score_continuations_naive(model, tokenizer, prompt,
                                          [item_text(catalog.items[c]) for c in question.candidates])
        for a, b in zip(fast, naive):
            assert a.n_tokens == b.n_tokens
            assert a.logprob_sum == pytest.approx(b.logprob_sum, abs=1e-3)
