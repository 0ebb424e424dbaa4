"""DPO losses against a NumPy reference, gradients against finite differences, shared-prompt log-probs."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten, tree_unflatten

from mlx_outfit.errors import UserError
from mlx_outfit.eval.scoring import score_continuations_naive
from mlx_outfit.prompts import chat_prompt
from mlx_outfit.train.dpo import (LOSS_TYPES, DPOConfig, answer_logprobs, collate_pairs, dpo_loss, encode_pairs,
                                  preference_losses, preference_metrics)
from mlx_outfit.train.pairs import Pair


def _log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def numpy_losses(pc, pr, rc, rr, loss, beta, eps):
    """The published formulas, written independently of the MLX code."""
    h = (pc - rc) - (pr - rr)
    if loss == "sigmoid":
        return -(1 - eps) * _log_sigmoid(beta * h) - eps * _log_sigmoid(-beta * h)
    if loss == "robust":
        return ((1 - eps) * -_log_sigmoid(beta * h) - eps * -_log_sigmoid(-beta * h)) / (1 - 2 * eps)
    if loss == "ipo":
        return (h - 1 / (2 * beta)) ** 2
    return np.maximum(0.0, 1 - beta * h)


CASES = [("sigmoid", 0.1, 0.0), ("sigmoid", 0.5, 0.2), ("ipo", 0.1, 0.0), ("ipo", 1.0, 0.0),
         ("hinge", 0.1, 0.0), ("hinge", 2.0, 0.0), ("robust", 0.1, 0.1), ("robust", 0.3, 0.3)]


def _random_logps(seed: int, n: int = 64, scale: float = 20.0):
    rng = np.random.default_rng(seed)
    return [rng.normal(-30, scale, n) for _ in range(4)]


@pytest.mark.parametrize("loss,beta,eps", CASES)
def test_loss_variants_match_numpy(loss, beta, eps):
    values = _random_logps(seed=len(loss) + int(beta * 10))
    config = DPOConfig(beta=beta, loss=loss, label_smoothing=eps)
    got = preference_losses(*(mx.array(v, dtype=mx.float32) for v in values), config)
    np.testing.assert_allclose(np.array(got), numpy_losses(*values, loss, beta, eps), rtol=1e-4, atol=1e-4)


def test_every_loss_variant_is_tested():
    assert {case[0] for case in CASES} == set(LOSS_TYPES)


@pytest.mark.parametrize("loss,beta,eps", CASES)
def test_loss_gradient_matches_finite_differences(loss, beta, eps):
    values = [v[:8] for v in _random_logps(seed=7, scale=5.0)]
    config = DPOConfig(beta=beta, loss=loss, label_smoothing=eps)
    with mx.stream(mx.cpu):  # float64 is a CPU-only dtype
        args = [mx.array(v, dtype=mx.float64) for v in values]
        grads = mx.grad(lambda *a: preference_losses(*a, config).sum(), argnums=(0, 1, 2, 3))(*args)
    step = 1e-6
    for which in range(4):
        for i in range(len(values[0])):
            up = [v.copy() for v in values]
            down = [v.copy() for v in values]
            up[which][i] += step
            down[which][i] -= step
            numeric = (numpy_losses(*up, loss, beta, eps).sum() - numpy_losses(*down, loss, beta, eps).sum()) / (2 * step)
            assert float(grads[which][i]) == pytest.approx(numeric, rel=1e-5, abs=1e-6)


def test_metrics_per_example_accuracy_and_margin():
    pc, pr = mx.array([-10.0, -20.0, -5.0, -7.0]), mx.array([-12.0, -15.0, -5.0, -9.0])
    rc, rr = mx.array([-11.0, -18.0, -5.0, -7.0]), mx.array([-11.0, -18.0, -5.0, -7.0])
    m = preference_metrics(pc, pr, rc, rr, DPOConfig(beta=0.5))
    # margins = 0.5 * ((pc - rc) - (pr - rr)) = 0.5 * [2, -5, 0, 2]: two of four strictly positive
    assert m["accuracy"].item() == pytest.approx(0.5)
    assert m["reward_margin"].item() == pytest.approx(-0.125)
    assert m["chosen_reward"].item() == pytest.approx(0.5 * np.mean([1, -2, 0, 0]))
    assert m["chosen_logp"].item() == pytest.approx(-10.5)
    assert m["rejected_logp"].item() == pytest.approx(-10.25)
    assert m["loss"].item() == pytest.approx(np.mean(-_log_sigmoid(np.array([1, -2.5, 0, 1]))), rel=1e-5)


@pytest.mark.parametrize("kwargs", [dict(loss="kto"), dict(beta=0), dict(label_smoothing=0.5),
                                    dict(loss="ipo", label_smoothing=0.1)])
def test_bad_config_is_a_user_error(kwargs):
    with pytest.raises(UserError):
        DPOConfig(**kwargs)


PAIRS = [
    Pair("Outfit:\n- shoe: black leather ankle boots\nName one bag that completes it.",
         "brown leather shoulder bag", "red floral midi dress"),
    Pair("Outfit:\n- upper: white cotton shirt, relaxed fit\n- bottom: blue denim jeans, straight leg\n"
         "- accessory: gold hoop earrings\nName one shoe that completes it.",
         "black boots", "grey wool coat, long and warm for winter evenings"),
    Pair("Outfit:\n- bottom: beige linen trousers\nName one upper that completes it.", "a", "white cotton shirt"),
]


@pytest.fixture(scope="module")
def tiny(tiny_llama):
    from mlx_lm import load

    return load(str(tiny_llama))


def test_shared_prompt_logprobs_equal_full_forward_passes(tiny):
    """Left-padded prompts, one cache for both answers, head on answers only == naive scoring."""
    model, tokenizer = tiny
    encoded, dropped = encode_pairs(tokenizer, PAIRS, max_seq=1024)
    assert dropped == 0
    sums, lengths = answer_logprobs(model, collate_pairs(encoded, [0, 1, 2]))
    for i, pair in enumerate(PAIRS):
        naive = score_continuations_naive(model, tokenizer, chat_prompt(tokenizer, pair.prompt),
                                          [pair.chosen, pair.rejected])
        assert float(sums[i]) == pytest.approx(naive[0].logprob_sum, rel=1e-4)
        assert float(sums[i + 3]) == pytest.approx(naive[1].logprob_sum, rel=1e-4)
        assert (int(lengths[i]), int(lengths[i + 3])) == (naive[0].n_tokens, naive[1].n_tokens)


def test_long_pairs_are_dropped(tiny):
    _, tokenizer = tiny
    encoded, dropped = encode_pairs(tokenizer, PAIRS, max_seq=60)
    assert dropped >= 1 and len(encoded) == 3 - dropped and all(e.length <= 60 for e in encoded)


@pytest.mark.parametrize("loss", LOSS_TYPES)
def test_model_gradient_matches_finite_differences(tiny_llama, loss):
    """d(loss)/d(LoRA weights) along a random direction equals the central difference of the loss."""
    from mlx_lm import load
    from mlx_lm.tuner.utils import linear_to_lora_layers

    model, tokenizer = load(str(tiny_llama))
    model.freeze()
    mx.random.seed(3)
    linear_to_lora_layers(model, 1, {"rank": 4, "scale": 10.0, "dropout": 0.0})
    # non-zero B so that the gradient w.r.t. A is non-trivial too
    for _, module in model.named_modules():
        if hasattr(module, "lora_b"):
            module.lora_b = 0.05 * mx.random.normal(module.lora_b.shape)
    config = DPOConfig(beta=0.5, loss=loss, label_smoothing=0.1 if loss == "robust" else 0.0)
    encoded, _ = encode_pairs(tokenizer, PAIRS, max_seq=1024)
    reference = np.array([[-40.0, -80.0], [-30.0, -200.0], [-5.0, -30.0]], np.float32)
    batch = collate_pairs(encoded, [0, 1, 2], reference)
    params = model.trainable_parameters()
    flat = tree_flatten(params)
    direction = [(k, mx.random.normal(v.shape)) for k, v in flat]

    def loss_at(t: float) -> float:
        model.update(dict_unflatten([(k, v + t * d) for (k, v), (_, d) in zip(flat, direction)]))
        value = dpo_loss(model, batch, config)[0].item()
        model.update(dict_unflatten(flat))
        return value

    grads = mx.grad(lambda p: (model.update(p), dpo_loss(model, batch, config)[0])[1])(params)
    analytic = sum((g * d).sum().item() for (_, g), (_, d) in zip(tree_flatten(grads), direction))
    t = 1e-3  # small enough for the loss to be locally linear, large enough for float32
    numeric = (loss_at(t) - loss_at(-t)) / (2 * t)
    assert analytic == pytest.approx(numeric, rel=1e-2, abs=1e-3)
    assert abs(analytic) > 1e-3  # a real signal, not two zeros agreeing


def dict_unflatten(items):
    return tree_unflatten(list(items))
