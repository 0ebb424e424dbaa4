"""SFT on real Polyvore outfits with the tiny random llama: examples, completion-only loss, adapters, CLI."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import mlx.core as mx
import mlx_lm
import pytest
from mlx.utils import tree_flatten

from mlx_outfit.catalog import Catalog
from mlx_outfit.eval.scoring import encode_prompt
from mlx_outfit.itemtext import item_text
from mlx_outfit.models.blas import openblas_env
from mlx_outfit.prompts import LETTERS, chat_prompt
from mlx_outfit.train.completion import collate_completions, completion_loss_fn, head_splits_cleanly
from mlx_outfit.train.examples import encode_example, outfit_examples
from mlx_outfit.train.sft import SFTOptions, sft_data, train_sft

from conftest import REPO, polyvore_catalog


@pytest.fixture(scope="module")
def polyvore(tmp_path_factory, shared_data) -> Catalog:
    """120 real Polyvore outfits: 90 train, 30 valid, saved as a catalog folder."""
    return polyvore_catalog(tmp_path_factory.mktemp("polyvore"), 90, 30)


def test_examples_from_real_outfits(polyvore):
    examples = outfit_examples(polyvore, "train", n_candidates=4, seed=0)
    train_outfits = {o.id: o for o in polyvore.outfits_in("train")}
    categories_by_text: dict[str, set[str]] = {}
    for item in polyvore.items.values():
        categories_by_text.setdefault(item_text(item), set()).add(item.category)
    assert [e.kind for e in examples] == ["complete", "fitb"] * 90
    for example in examples:
        outfit = [polyvore.items[i] for i in train_outfits[example.outfit_id].items]
        if example.kind == "complete":
            missing = next(i for i in outfit if item_text(i) == example.completion)
            assert example.prompt.endswith(f"Name one {missing.category} that completes it.")
        else:
            letter, text = example.completion.split(". ", 1)
            missing = next(i for i in outfit if item_text(i) == text)
            options = [line for line in example.prompt.splitlines() if line[:2] in {f"{c}." for c in LETTERS[:4]}]
            assert len(options) == 4 and f"{letter}. {text}" in options
            for option in options:  # every candidate is an item of the blank's category
                assert missing.category in categories_by_text[option[3:]]
        assert f"{missing.category}: {item_text(missing)}" not in example.prompt.split("?")[0]
    assert outfit_examples(polyvore, "train", seed=0) == examples
    assert outfit_examples(polyvore, "train", seed=1) != examples


def test_only_completion_tokens_carry_loss(tiny_llama, polyvore):
    import mlx.nn as nn

    model, tokenizer = mlx_lm.load(str(tiny_llama))
    examples = outfit_examples(polyvore, "train", seed=0)[:4]
    encoded = [encode_example(tokenizer, e) for e in examples]
    for e, enc in zip(examples, encoded):
        assert enc.tokens[:enc.prompt_length] == encode_prompt(tokenizer, chat_prompt(tokenizer, e.prompt))
        assert tokenizer.decode(enc.tokens[enc.prompt_length:-1]) == e.completion
        assert enc.tokens[-1] == tokenizer.eos_token_id
    inputs, positions, targets = batch = collate_completions(encoded)
    assert positions.size == sum(e.completion_length for e in encoded) == targets.size

    # Reference: full logits, cross-entropy masked to the completion tokens of each row.
    logits = model(inputs).astype(mx.float32)
    total, count = 0.0, 0
    for row, enc in enumerate(encoded):
        n = len(enc.tokens)
        ce = nn.losses.cross_entropy(logits[row, enc.prompt_length - 1:n - 1], mx.array(enc.tokens[enc.prompt_length:]))
        total, count = total + ce.sum().item(), count + n - enc.prompt_length
    assert head_splits_cleanly(model)
    loss, ntoks = completion_loss_fn(model)(model, batch)
    assert ntoks.item() == count
    assert loss.item() == pytest.approx(total / count, rel=1e-4)


def test_loss_falls_on_real_outfits_and_adapter_fits_the_4bit_model(tiny_llama_4bit, polyvore, tmp_path):
    """CPU default: train a float32 dequantized copy of the 4-bit model; mlx-lm loads the adapter on the 4-bit one."""
    import mlx.nn as nn

    model, tokenizer = mlx_lm.load(str(tiny_llama_4bit))
    options = SFTOptions(model=str(tiny_llama_4bit), iters=30, batch_size=4, learning_rate=2e-3, lora_layers=-1,
                         val_every=15, val_batches=4, save_every=10, report_every=5)
    result = train_sft(polyvore, tmp_path, options, model=model, tokenizer=tokenizer)
    assert not any(isinstance(m, nn.QuantizedLinear) for _, m in model.named_modules())  # trained in float32
    rows = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    val = [r["val_loss"] for r in rows if "val_loss" in r]
    assert [r["step"] for r in rows if "val_loss" in r] == [0, 15, 30]
    assert val[-1] < val[0] - 0.3, val
    assert result.val_loss == val[-1] and result.tokens_per_second > 0

    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["fine_tune_type"] == "lora" and config["lora_parameters"]["rank"] == 8
    loaded, _ = mlx_lm.load(str(tiny_llama_4bit), adapter_path=str(tmp_path))
    base, _ = mlx_lm.load(str(tiny_llama_4bit))
    probe = mx.array([tokenizer.encode(chat_prompt(tokenizer, "Outfit:\n- shoe: black boots"))])
    model.eval()
    trained, quantized, untouched = model(probe), loaded(probe), base(probe)
    assert mx.allclose(trained, quantized, atol=2e-3, rtol=1e-3).item()
    assert not mx.allclose(untouched, quantized, atol=1e-2).item()
    generated = subprocess.run([sys.executable, "-m", "mlx_lm", "generate", "--model", str(tiny_llama_4bit),
                                "--adapter-path", str(tmp_path), "--prompt", "Name one shoe.", "--max-tokens", "4"],
                               capture_output=True, text=True, env=openblas_env(), timeout=120)
    assert generated.returncode == 0 and "Generation:" in generated.stdout, generated.stderr[-2000:]


def test_qlora_native_trains_on_quantized_weights(tiny_llama_4bit, polyvore, tmp_path):
    import mlx.nn as nn

    model, tokenizer = mlx_lm.load(str(tiny_llama_4bit))
    train_sft(polyvore, tmp_path, SFTOptions(iters=2, lora_layers=1, train_dtype="native", val_split=None),
              model=model, tokenizer=tokenizer)
    assert any(isinstance(m, nn.QuantizedLinear) for _, m in model.named_modules())
    loaded, _ = mlx_lm.load(str(tiny_llama_4bit), adapter_path=str(tmp_path))
    assert set(mx.load(str(tmp_path / "adapters.safetensors"))) == {
        k for k, _ in tree_flatten(loaded.parameters()) if k.endswith(("lora_a", "lora_b"))}


def test_sft_data_drops_long_examples_and_needs_enough(tiny_llama, polyvore):
    _, tokenizer = mlx_lm.load(str(tiny_llama))
    everything = sft_data(polyvore, tokenizer, SFTOptions(max_seq=100_000))
    assert everything.dropped == 0 and len(everything.train) == 180 and len(everything.valid) == 60
    median = sorted(len(e.tokens) for e in everything.train)[90]
    data = sft_data(polyvore, tokenizer, SFTOptions(max_seq=median))
    assert 0 < data.dropped < 180 and all(len(e.tokens) <= median for e in data.train + data.valid)
    from mlx_outfit.errors import UserError

    with pytest.raises(UserError, match="training examples"):
        sft_data(polyvore, tokenizer, SFTOptions(max_seq=20))


def _cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mlx_outfit.cli.main", "train", "sft", *args], cwd=REPO,
                            env=openblas_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_cli_ctrl_c_exits_130_and_resume_finishes(tiny_llama, polyvore, tmp_path):
    config = tmp_path / "sft.yaml"
    config.write_text("lora_layers: 2\nlr: 0.001\nsave-every: 1000\nval_every: 0\nreport_every: 1\n")
    out = tmp_path / "adapter"
    args = [str(polyvore.root), "--out", str(out), "--model", str(tiny_llama), "--config", str(config),
            "--iters", "3000"]
    proc = _cli(*args)
    log = out / "train_log.jsonl"
    deadline = time.time() + 120
    while not (log.is_file() and len(log.read_text().splitlines()) >= 3) and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, output
    state = json.loads((out / "checkpoints" / "latest.json").read_text())
    assert 3 <= state["step"] < 3000
    assert (out / "adapters.safetensors").is_file()

    proc = _cli(*args[:-1], str(state["step"] + 2), "--resume")
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, output
    assert json.loads((out / "checkpoints" / "latest.json").read_text())["step"] == state["step"] + 2
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in rows if "train_loss" in r] == list(range(1, state["step"] + 3))  # none lost/repeated
    assert [r["step"] for r in rows if "val_loss" in r] == [state["step"] + 2]  # --val-every 0: at the end only

    proc = _cli(*args[:-1], "4", "--batch-size", "2", "--resume")
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "batch_size" in output, output


@pytest.mark.slow
@pytest.mark.ci
def test_sft_on_the_default_model(polyvore, tmp_path):
    """Three steps on the real SmolLM2-135M 4-bit: finite loss, adapter loads with the 4-bit model."""
    from mlx_outfit.models.loading import load_model

    result = train_sft(polyvore, tmp_path, SFTOptions(iters=3, batch_size=2, val_batches=1, report_every=1))
    assert result.step == 3 and 0 < result.train_loss < 20 and result.val_loss is not None
    model, tokenizer = load_model("default", adapter_path=tmp_path)
    probe = mx.array([tokenizer.encode(chat_prompt(tokenizer, "Name one shoe."))])
    assert mx.isfinite(model(probe)).all().item()
