"""DPO training on real Polyvore outfits: it learns its pairs, uses the starting policy as reference, stays lean."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

from mlx_outfit.catalog import Catalog
from mlx_outfit.models.blas import openblas_env
from mlx_outfit.models.loading import load_model
from mlx_outfit.questions import build_questions
from mlx_outfit.testing.random_adapter import make_random_adapter
from mlx_outfit.train.dpo import (PAIRS_FILE, DPOConfig, DPOOptions, answer_logprobs, collate_pairs,
                                  encode_pairs, evaluate_pairs, train_dpo)
from mlx_outfit.train.pairs import question_pairs, read_pairs
from mlx_outfit.train.reference import REFERENCE_FILE, cached_reference, reference_key
from mlx_outfit.train.sft import SFTOptions, train_sft

from conftest import REPO, polyvore_catalog

TINY = dict(lora_layers=-1, val_every=0, save_every=100, report_every=5)


@pytest.fixture(scope="module")
def polyvore(tmp_path_factory, shared_data) -> Catalog:
    """160 real Polyvore outfits: 120 train, 40 valid, saved as a catalog folder."""
    return polyvore_catalog(tmp_path_factory.mktemp("polyvore"), 120, 40)


def _pairs(catalog: Catalog, n: int, split: str = "train"):
    return question_pairs(catalog, build_questions(catalog, "fitb", split, 4, seed=0), seed=0)[:n]


def _pair_metrics(model_path, adapter, pairs, reference, config=DPOConfig()):
    model, tokenizer = load_model(model_path, adapter)
    encoded, _ = encode_pairs(tokenizer, pairs, 1024)
    return evaluate_pairs(model, encoded, reference, config)


def test_short_dpo_run_learns_its_pairs(tiny_llama, polyvore, tmp_path):
    """On real outfits, preference accuracy and reward margin on the trained pairs go up from zero."""
    pairs = _pairs(polyvore, 16)
    out = tmp_path / "dpo"
    result = train_dpo(polyvore, out, DPOOptions(model=str(tiny_llama), iters=24, batch_size=4, learning_rate=2e-3,
                                                 **TINY), pairs=pairs)
    reference = mx.load(str(out / REFERENCE_FILE))["logps"]
    reference = np.array(reference)
    before = _pair_metrics(tiny_llama, None, pairs, reference)
    after = _pair_metrics(tiny_llama, out, pairs, reference)
    # the starting policy is the reference: zero margin, no pair strictly preferred
    assert before["reward_margin"] == pytest.approx(0.0, abs=1e-4) and before["accuracy"] == 0.0
    assert before["loss"] == pytest.approx(np.log(2), abs=1e-4)
    assert after["accuracy"] >= 0.75
    assert after["reward_margin"] > 0.5
    assert after["loss"] < 0.6
    assert after["chosen_logp"] - after["rejected_logp"] > before["chosen_logp"] - before["rejected_logp"]
    # the run's files: the pairs trained on, the log with DPO metrics, validation on held-out pairs
    assert read_pairs(out / PAIRS_FILE) == pairs
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert {"reward_margin", "accuracy", "chosen_logp", "rejected_logp"} <= set(log[0])
    assert result.valid is not None and set(result.valid) >= {"accuracy", "reward_margin", "loss"}
    assert log[-1]["valid_pairs"] == result.valid


def test_reference_is_the_starting_policy(tiny_llama, polyvore, tmp_path):
    """With --init-adapter, reference log-probs are base + that adapter's, computed before training."""
    model, _ = load_model(tiny_llama)
    sft_adapter = make_random_adapter(model, tmp_path / "sft", rank=4, num_layers=2, b_std=0.05)
    pairs = _pairs(polyvore, 8)
    out = tmp_path / "dpo"
    train_dpo(polyvore, out, DPOOptions(model=str(tiny_llama), init_adapter=str(sft_adapter), iters=2, batch_size=4,
                                        learning_rate=1e-3, **TINY), pairs=pairs)
    cached = np.array(mx.load(str(out / REFERENCE_FILE))["logps"])[:len(pairs)]
    policy, tokenizer = load_model(tiny_llama, sft_adapter)
    encoded, _ = encode_pairs(tokenizer, pairs, 1024)
    sums, _ = answer_logprobs(policy, collate_pairs(encoded, list(range(len(pairs)))))
    sums = np.array(sums)
    np.testing.assert_allclose(cached[:, 0], sums[:len(pairs)], rtol=1e-4)
    np.testing.assert_allclose(cached[:, 1], sums[len(pairs):], rtol=1e-4)
    base, _ = load_model(tiny_llama)
    base_sums = np.array(answer_logprobs(base, collate_pairs(encoded, list(range(len(pairs)))))[0])
    assert np.abs(base_sums[:len(pairs)] - cached[:, 0]).max() > 1e-2  # the adapter really is in the reference
    # training continued the SFT adapter's LoRA layers: same shapes, changed values
    trained = mx.load(str(out / "adapters.safetensors"))
    start = mx.load(str(sft_adapter / "adapters.safetensors"))
    assert trained.keys() == start.keys()
    assert any(not mx.array_equal(trained[k], start[k]) for k in start)


def test_qlora_on_the_4bit_model(tiny_llama_4bit, polyvore, tmp_path):
    """--train-dtype native: DPO straight on quantized weights; the adapter moves the 4-bit model's preferences."""
    pairs = _pairs(polyvore, 8)
    out = tmp_path / "dpo"
    train_dpo(polyvore, out, DPOOptions(model=str(tiny_llama_4bit), train_dtype="native", iters=6, batch_size=4,
                                        learning_rate=3e-3, val_split=None, **TINY), pairs=pairs)
    reference = np.array(mx.load(str(out / REFERENCE_FILE))["logps"])
    after = _pair_metrics(tiny_llama_4bit, out, pairs, reference)
    assert after["reward_margin"] > 0 and after["accuracy"] > 0.5


def test_reference_cache_is_keyed(tmp_path, tiny_llama):
    calls = []

    def compute():
        calls.append(1)
        return np.full((3, 2), -float(len(calls)), np.float32)

    path = tmp_path / REFERENCE_FILE
    first = cached_reference(path, "key-a", compute)
    again = cached_reference(path, "key-a", compute)
    np.testing.assert_array_equal(first, again)
    assert len(calls) == 1
    other = cached_reference(path, "key-b", compute)
    assert len(calls) == 2 and other[0, 0] == -2.0

    from mlx_outfit.train.dpo import EncodedPair

    encoded = [EncodedPair([1, 2, 3], [4, 5], [6])]
    adapter = make_random_adapter(load_model(tiny_llama)[0], tmp_path / "adapter", rank=2, num_layers=1)
    keys = {reference_key(tiny_llama, None, encoded), reference_key(tiny_llama, adapter, encoded),
            reference_key(tiny_llama, None, [EncodedPair([1, 2, 3], [4, 5], [7])]),
            reference_key(tiny_llama, None, encoded, "float32")}
    assert len(keys) == 4
    assert reference_key(tiny_llama, None, encoded) == reference_key(Path(str(tiny_llama)), None, list(encoded))


def _peak_gb(run) -> float:
    mx.clear_cache()
    mx.reset_peak_memory()
    run()
    return mx.get_peak_memory() / 1e9


def test_dpo_peak_memory_below_1_3x_sft(tiny_llama, polyvore, tmp_path):
    """Same model, prompts, batch size and steps: DPO (reference included) holds no second model."""
    settings = dict(model=str(tiny_llama), epochs=1, batch_size=4, val_split=None, **TINY)  # every outfit once
    sft_peak = _peak_gb(lambda: train_sft(polyvore, tmp_path / "sft", SFTOptions(kinds=("complete",), **settings)))
    dpo_peak = _peak_gb(lambda: train_dpo(polyvore, tmp_path / "dpo", DPOOptions(**settings)))
    print(f"peak memory: DPO {dpo_peak:.4f} GB, SFT {sft_peak:.4f} GB")
    assert dpo_peak < 1.3 * sft_peak, (dpo_peak, sft_peak)


def test_cli_trains_and_reports_bad_pairs(tiny_llama, polyvore, tmp_path):
    good = tmp_path / "pairs.jsonl"
    good.write_text("\n".join(json.dumps(p) for p in [
        {"prompt": "Outfit:\n- shoe: black boots\nName one bag that completes it.", "chosen": "brown leather bag",
         "rejected": "red dress", "source": "fitb"}] * 4) + "\n")
    command = [sys.executable, "-m", "mlx_outfit.cli.main", "train", "dpo", str(polyvore.root), "--model",
               str(tiny_llama), "--lora-layers", "-1", "--iters", "2", "--val-batches", "1"]
    done = subprocess.run(command + ["--out", str(tmp_path / "a"), "--pairs", str(good)], env=openblas_env(),
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "adapter saved" in done.stderr and "validation pairs: accuracy" in done.stderr
    assert (tmp_path / "a" / "adapters.safetensors").is_file()

    bad = tmp_path / "bad.jsonl"
    bad.write_text(good.read_text().splitlines()[0] + "\n" + '{"prompt": "x", "chosen": "a"}\n')
    done = subprocess.run(command + ["--out", str(tmp_path / "b"), "--pairs", str(bad)], env=openblas_env(),
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert f"{bad}:2:" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
@pytest.mark.ci
def test_dpo_on_the_default_model(polyvore, tmp_path):
    """The real default model: two epochs over 12 pairs raise their margin; memory stays < 1.3x SFT."""
    settings = dict(iters=6, batch_size=4, val_split=None, val_every=0, save_every=100, report_every=2)
    pairs = _pairs(polyvore, 12)
    sft_peak = _peak_gb(lambda: train_sft(polyvore, tmp_path / "sft", SFTOptions(kinds=("complete",), **settings)))
    dpo_peak = _peak_gb(lambda: train_dpo(polyvore, tmp_path / "dpo", DPOOptions(learning_rate=2e-4, **settings),
                                          pairs=pairs))
    print(f"peak memory, default model: DPO {dpo_peak:.3f} GB, SFT {sft_peak:.3f} GB")
    assert dpo_peak < 1.3 * sft_peak, (dpo_peak, sft_peak)
    reference = np.array(mx.load(str(tmp_path / "dpo" / REFERENCE_FILE))["logps"])
    after = _pair_metrics("default", tmp_path / "dpo", pairs, reference)
    assert after["reward_margin"] > 0 and after["accuracy"] > 0.5
