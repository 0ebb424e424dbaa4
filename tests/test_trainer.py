"""The shared training loop: batching, checkpoints, resume, Ctrl-C, the loss-function contract."""

from __future__ import annotations

import json
import os
import signal

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten

from mlx_outfit.errors import UserError
from mlx_outfit.train.batches import Batches
from mlx_outfit.train.checkpoints import latest_checkpoint, save_checkpoint
from mlx_outfit.train.trainer import LoraSettings, TrainSettings, TrainingInterrupted, add_lora, adapter_config, \
    steps_for_epochs, train


def test_batches_are_length_grouped_deterministic_and_cover_every_example():
    rng = np.random.default_rng(0)
    lengths = rng.integers(20, 300, size=1000).tolist()
    batches = Batches(lengths, 8, collate=list, seed=3)
    first, again, other_epoch = batches.order(0), batches.order(0), batches.order(1)
    assert first == again and first != other_epoch
    assert sorted(i for b in first for i in b) == list(range(1000))  # 125 full batches, nothing dropped
    grouped_padding = sum(8 * max(lengths[i] for i in b) - sum(lengths[i] for i in b) for b in first)
    random_order = rng.permutation(1000).reshape(125, 8)
    random_padding = sum(8 * max(lengths[i] for i in b) - sum(lengths[i] for i in b) for b in random_order)
    assert grouped_padding < 0.2 * random_padding
    assert Batches(lengths, 8, collate=list, seed=4).order(0) != first


def test_steps_for_epochs():
    assert steps_for_epochs(1, 100, 1) == 100
    assert steps_for_epochs(2.5, 100, 4) == 63


def test_checkpoint_is_atomic_and_keeps_the_newest(tmp_path):
    weights = {"a.lora_a": mx.ones((2, 2))}
    for step in (10, 20, 30):
        save_checkpoint(tmp_path, step, weights, {"step": mx.array(step, mx.uint64), "m": {"x": mx.zeros(3)}},
                        mx.array([1, 2], mx.uint32), {"epoch": 0, "batch": step})
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["latest.json", "step-0000020", "step-0000030"]
    checkpoint = latest_checkpoint(tmp_path)
    assert checkpoint.step == 30 and checkpoint.state["batch"] == 30
    assert checkpoint.optimizer_state["step"].item() == 30 and checkpoint.optimizer_state["m"]["x"].shape == (3,)
    (checkpoint.path / "trainer.safetensors").unlink()
    with pytest.raises(UserError, match="incomplete"):
        latest_checkpoint(tmp_path)


def _regression_setup(tiny_llama, dropout: float = 0.0):
    """The tiny llama with LoRA, a loss with metrics (the DPO-style 3-tuple), and fixed random token batches."""
    import mlx.nn as nn
    import mlx_lm

    model, _ = mlx_lm.load(str(tiny_llama))
    lora = LoraSettings(rank=4, dropout=dropout, num_layers=2)
    add_lora(model, lora, seed=0)
    data = np.random.default_rng(0).integers(3, 400, size=(64, 17))
    calls = []

    def collate(indices):
        calls.append(indices)
        return mx.array(data[indices])

    def loss_fn(model, batch):
        logits = model(batch[:, :-1]).astype(mx.float32)
        loss = nn.losses.cross_entropy(logits, batch[:, 1:], reduction="mean")
        return loss, mx.array(batch[:, 1:].size), {"mean_logit": logits.mean()}

    return model, loss_fn, Batches([17] * 64, 4, collate, seed=1), adapter_config(lora, model="tiny"), calls


def test_loss_with_metrics_falls_and_is_logged(tiny_llama, tmp_path):
    model, loss_fn, batches, config, _ = _regression_setup(tiny_llama)
    settings = TrainSettings(iters=12, learning_rate=3e-3, report_every=4, save_every=0, val_every=6)
    result = train(model, loss_fn, batches, tmp_path, settings, adapter_config=config, val_batches=batches)
    rows = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if "train_loss" in r]
    val_rows = [r for r in rows if "val_loss" in r]
    assert [r["step"] for r in train_rows] == [4, 8, 12]
    assert [r["step"] for r in val_rows] == [0, 6, 12]
    assert all("mean_logit" in r and r["tokens_per_second"] > 0 and r["peak_memory_gb"] > 0 for r in train_rows)
    assert val_rows[-1]["val_loss"] < val_rows[0]["val_loss"] - 0.05
    assert result.step == 12 and result.trained_tokens == 12 * 4 * 16
    saved = mx.load(str(tmp_path / "adapters.safetensors"))
    assert set(saved) == {k for k, _ in tree_flatten(model.trainable_parameters())}


def test_ctrl_c_mid_accumulation_then_resume_equals_uninterrupted(tiny_llama, tmp_path):
    settings = TrainSettings(iters=6, learning_rate=3e-3, grad_accumulation=2, save_every=0, val_every=0,
                             report_every=1, seed=5)
    model, loss_fn, batches, config, _ = _regression_setup(tiny_llama, dropout=0.2)  # dropout: RNG must resume
    train(model, loss_fn, batches, tmp_path / "straight", settings, adapter_config=config)

    model, loss_fn, batches, config, calls = _regression_setup(tiny_llama, dropout=0.2)
    original_collate = batches.collate

    def interrupting_collate(indices):
        if len(calls) == 6:  # the 7th batch: first half of step 4
            os.kill(os.getpid(), signal.SIGINT)
        return original_collate(indices)

    batches.collate = interrupting_collate
    with pytest.raises(TrainingInterrupted) as stopped:
        train(model, loss_fn, batches, tmp_path / "resumed", settings, adapter_config=config)
    assert stopped.value.step == 3 and latest_checkpoint(tmp_path / "resumed").state["batch"] == 6

    model, loss_fn, batches, config, calls = _regression_setup(tiny_llama, dropout=0.2)
    with pytest.raises(UserError, match="--resume"):
        train(model, loss_fn, batches, tmp_path / "resumed", settings, adapter_config=config)
    result = train(model, loss_fn, batches, tmp_path / "resumed", settings, adapter_config=config, resume=True)
    assert result.step == 6 and len(calls) == 6  # resumed at batch 6 of epoch 0
    straight = mx.load(str(tmp_path / "straight" / "adapters.safetensors"))
    resumed = mx.load(str(tmp_path / "resumed" / "adapters.safetensors"))
    assert set(straight) == set(resumed)
    assert all(mx.abs(straight[k]).max().item() > 0 for k in straight if k.endswith("lora_b"))
    for key in straight:
        assert mx.allclose(straight[key], resumed[key], atol=1e-6, rtol=1e-5).item(), key


def test_resume_refuses_a_different_run(tiny_llama, tmp_path):
    settings = TrainSettings(iters=2, save_every=1, val_every=0)
    model, loss_fn, batches, config, _ = _regression_setup(tiny_llama)
    train(model, loss_fn, batches, tmp_path, settings, adapter_config=config, signature={"data": "a"})
    with pytest.raises(UserError, match="data"):
        train(model, loss_fn, batches, tmp_path, settings, adapter_config=config, signature={"data": "b"},
              resume=True)


def test_grad_checkpoint_gives_the_same_training(tiny_llama, tmp_path):
    """mlx-lm's gradient checkpointing recomputes activations: same adapter, only memory/time change."""
    settings = TrainSettings(iters=3, learning_rate=3e-3, save_every=0, val_every=0)
    results = []
    for name, checkpointing in (("plain", False), ("checkpointed", True)):
        model, loss_fn, batches, config, _ = _regression_setup(tiny_llama)
        block_call = type(model.layers[0]).__call__
        settings.grad_checkpoint = checkpointing
        train(model, loss_fn, batches, tmp_path / name, settings, adapter_config=config)
        assert type(model.layers[0]).__call__ is block_call  # the class patch is undone after training
        results.append(mx.load(str(tmp_path / name / "adapters.safetensors")))
    for key in results[0]:
        assert mx.allclose(results[0][key], results[1][key], atol=1e-5).item(), key
