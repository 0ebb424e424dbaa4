"""Fusing a LoRA adapter: the folder loads with mlx_lm.load, keeps 4-bit, answers like base+adapter."""

from __future__ import annotations

import json

import mlx.core as mx
import mlx_lm
import pytest
from click.testing import CliRunner
from mlx.utils import tree_flatten

from mlx_outfit.errors import UserError
from mlx_outfit.fuse import CHECK_MESSAGE, fuse_adapter, greedy_tokens
from mlx_outfit.models.loading import load_model
from mlx_outfit.prompts import chat_prompt
from mlx_outfit.testing.random_adapter import make_random_adapter


@pytest.fixture(scope="module")
def adapter_fp32(tiny_llama, tmp_path_factory):
    model, _ = load_model(tiny_llama)
    return make_random_adapter(model, tmp_path_factory.mktemp("adapter_fp32"), seed=1)


@pytest.fixture(scope="module")
def adapter_4bit(tiny_llama_4bit, tmp_path_factory):
    model, _ = load_model(tiny_llama_4bit)
    return make_random_adapter(model, tmp_path_factory.mktemp("adapter_4bit"), seed=1)


def _check_logits(model_path, adapter=None):
    model, tokenizer = load_model(model_path, adapter_path=adapter)
    ids = mx.array(tokenizer.encode(chat_prompt(tokenizer, CHECK_MESSAGE), add_special_tokens=False))[None]
    return model(ids)[0]


def test_fused_fp32_equals_base_plus_adapter(tiny_llama, adapter_fp32, tmp_path):
    report = fuse_adapter(str(tiny_llama), adapter_fp32, tmp_path / "fused")
    assert report.fused_layers == 14  # 2 layers x (q, k, v, o, gate, up, down)
    assert not report.quantized
    assert report.greedy_equal and report.first_difference is None
    assert len(report.adapter_tokens) > 0

    base, tokenizer = load_model(tiny_llama)
    base_tokens = greedy_tokens(base, tokenizer, chat_prompt(tokenizer, CHECK_MESSAGE), 32)
    assert base_tokens != report.adapter_tokens, "the random adapter must change the model's answer"

    fused, _ = mlx_lm.load(str(tmp_path / "fused"))  # the plain mlx-lm loader accepts the folder
    names = [k for k, _ in tree_flatten(fused.parameters())]
    assert not any("lora" in k for k in names)
    fused_logits = _check_logits(tmp_path / "fused")
    assert mx.allclose(fused_logits, _check_logits(tiny_llama, adapter_fp32), atol=1e-4).item()


def test_fused_4bit_stays_quantized_and_close(tiny_llama_4bit, adapter_4bit, tmp_path):
    report = fuse_adapter(str(tiny_llama_4bit), adapter_4bit, tmp_path / "fused")
    assert report.quantized
    config = json.loads((tmp_path / "fused" / "config.json").read_text())
    assert config["quantization"] == {"group_size": 32, "bits": 4}
    fused, _ = mlx_lm.load(str(tmp_path / "fused"))
    assert fused.model.layers[0].self_attn.q_proj.weight.dtype == mx.uint32

    with_adapter = _check_logits(tiny_llama_4bit, adapter_4bit)
    base = _check_logits(tiny_llama_4bit)
    fused_logits = _check_logits(tmp_path / "fused")
    # Re-quantizing moves logits far less than the adapter itself does.
    assert mx.abs(fused_logits - with_adapter).mean().item() < 0.2 * mx.abs(with_adapter - base).mean().item()
    assert report.greedy_equal == (report.adapter_tokens == report.fused_tokens)


def test_dequantize_is_exact(tiny_llama_4bit, adapter_4bit, tmp_path):
    report = fuse_adapter(str(tiny_llama_4bit), adapter_4bit, tmp_path / "fused", dequantize=True)
    assert not report.quantized and report.greedy_equal
    config = json.loads((tmp_path / "fused" / "config.json").read_text())
    assert "quantization" not in config
    assert mx.allclose(_check_logits(tmp_path / "fused"), _check_logits(tiny_llama_4bit, adapter_4bit),
                       atol=1e-4).item()


def test_fuse_refuses_bad_inputs(tiny_llama, adapter_fp32, tmp_path):
    with pytest.raises(UserError, match="adapter_config.json"):
        fuse_adapter(str(tiny_llama), tmp_path, tmp_path / "out")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="--force"):
        fuse_adapter(str(tiny_llama), adapter_fp32, tmp_path / "taken")
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"


def test_fuse_cli(tiny_llama, adapter_fp32, tmp_path):
    from mlx_outfit.cli.main import cli

    out = tmp_path / "fused"
    result = CliRunner().invoke(cli, ["fuse", "--model", str(tiny_llama), "--adapter", str(adapter_fp32),
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "check passed" in result.output and (out / "config.json").is_file()
    again = CliRunner().invoke(cli, ["fuse", "--model", str(tiny_llama), "--adapter", str(adapter_fp32),
                                     "--out", str(out), "--force"])
    assert again.exit_code == 0, again.output
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left behind


def test_fused_4bit_keeps_the_base_grid(tiny_llama_4bit, tmp_path):
    """An adapter too small to move any weight by half a step leaves the fused model exactly the base."""
    model, _ = load_model(tiny_llama_4bit)
    tiny = make_random_adapter(model, tmp_path / "tiny_adapter", b_std=1e-6, seed=2)
    fuse_adapter(str(tiny_llama_4bit), tiny, tmp_path / "fused")
    fused, _ = mlx_lm.load(str(tmp_path / "fused"))
    base, _ = mlx_lm.load(str(tiny_llama_4bit))
    for name in ("q_proj", "o_proj"):
        new, old = getattr(fused.model.layers[1].self_attn, name), getattr(base.model.layers[1].self_attn, name)
        assert mx.array_equal(new.weight, old.weight).item() and mx.array_equal(new.scales, old.scales).item()


def test_fuse_at_8_bits_keeps_more_of_the_adapter(tiny_llama_4bit, adapter_4bit, tmp_path):
    fuse_adapter(str(tiny_llama_4bit), adapter_4bit, tmp_path / "fused4")
    report = fuse_adapter(str(tiny_llama_4bit), adapter_4bit, tmp_path / "fused8", bits=8)
    assert report.quantized
    fused, _ = mlx_lm.load(str(tmp_path / "fused8"))
    assert fused.model.layers[0].mlp.up_proj.bits == 8
    assert fused.model.layers[0].mlp.up_proj.group_size == 32
    with_adapter = _check_logits(tiny_llama_4bit, adapter_4bit)
    error8 = mx.abs(_check_logits(tmp_path / "fused8") - with_adapter).mean().item()
    error4 = mx.abs(_check_logits(tmp_path / "fused4") - with_adapter).mean().item()
    assert error8 < 0.5 * error4
