"""GGUF → MLX import checked against an independent NumPy forward pass over the GGUF's own tensors.

The reference reads tensors with the ``gguf`` package (its own dequantizer), keeps llama.cpp's
Q/K row layout and applies rope the way llama.cpp does (adjacent pairs), so a wrong
un-permutation, name mapping, quantization or config value in the importer shows up as
different logits. Fast tests use a tiny GGUF written here; slow ones the real default model.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mlx_outfit.errors import UserError
from mlx_outfit.models.gguf_import import import_gguf


# ---------------------------------------------------------------- NumPy reference (llama.cpp semantics)

def _rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def _rope_adjacent_pairs(x: np.ndarray, base: float) -> np.ndarray:
    """llama.cpp's rope on its stored layout: rotate dims (2i, 2i+1) by pos * base^(-2i/d)."""
    _, _, d = x.shape  # (T, heads, head_dim)
    positions = np.arange(x.shape[0])[:, None]
    angles = positions * base ** (-np.arange(0, d, 2) / d)
    cos, sin = np.cos(angles)[:, None, :], np.sin(angles)[:, None, :]
    even, odd = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = even * cos - odd * sin
    out[..., 1::2] = even * sin + odd * cos
    return out


def reference_logits(gguf_path, token_ids: list[int]) -> np.ndarray:
    """Logits (T, vocab) of a llama GGUF for ``token_ids``, in float64 NumPy."""
    import gguf
    from gguf.quants import dequantize

    reader = gguf.GGUFReader(str(gguf_path))
    meta = {k: f.contents() for k, f in reader.fields.items()}
    t = {x.name: dequantize(x.data, x.tensor_type).astype(np.float64) for x in reader.tensors}
    heads, kv_heads = meta["llama.attention.head_count"], meta["llama.attention.head_count_kv"]
    eps, base = meta["llama.attention.layer_norm_rms_epsilon"], meta.get("llama.rope.freq_base", 10000.0)
    n = len(token_ids)
    x = t["token_embd.weight"][token_ids]
    head_dim = x.shape[-1] // heads
    causal = np.triu(np.full((n, n), -np.inf), k=1)
    for layer in range(meta["llama.block_count"]):
        w = {name.split(".")[2]: value for name, value in t.items() if name.startswith(f"blk.{layer}.")}
        h = _rms_norm(x, w["attn_norm"], eps)
        q = _rope_adjacent_pairs((h @ w["attn_q"].T).reshape(n, heads, head_dim), base)
        k = _rope_adjacent_pairs((h @ w["attn_k"].T).reshape(n, kv_heads, head_dim), base)
        v = (h @ w["attn_v"].T).reshape(n, kv_heads, head_dim)
        k, v = np.repeat(k, heads // kv_heads, axis=1), np.repeat(v, heads // kv_heads, axis=1)
        scores = np.einsum("qhd,khd->hqk", q, k) / math.sqrt(head_dim) + causal
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        x = x + np.einsum("hqk,khd->qhd", probs, v).reshape(n, -1) @ w["attn_output"].T
        h = _rms_norm(x, w["ffn_norm"], eps)
        gate = h @ w["ffn_gate"].T
        x = x + (gate / (1 + np.exp(-gate)) * (h @ w["ffn_up"].T)) @ w["ffn_down"].T
    x = _rms_norm(x, t["output_norm.weight"], eps)
    return x @ t.get("output.weight", t["token_embd.weight"]).T


def mlx_logits(model_dir, token_ids: list[int]) -> np.ndarray:
    import mlx.core as mx

    from mlx_outfit.models.loading import load_model

    model, _ = load_model(str(model_dir))
    return np.array(model(mx.array([token_ids]))[0].astype(mx.float32))


# ---------------------------------------------------------------- a tiny GGUF, written like llama.cpp's converter

def _llama_cpp_permute(w: np.ndarray, n_heads: int) -> np.ndarray:
    """convert_hf_to_gguf.py's Q/K row permutation (the importer must undo it)."""
    return w.reshape(n_heads, 2, w.shape[0] // n_heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_tiny_gguf(path, tokenizer_dir, types: dict[str, str], hidden=64, layers=2, heads=4, kv_heads=2,
                    ffn=128, tied=True, seed=0):
    """A random tiny llama GGUF whose tensor ``types`` are given per GGUF module name (default Q4_1)."""
    import gguf
    from gguf.quants import quantize

    tokenizer = json.loads((tokenizer_dir / "tokenizer.json").read_text())
    tok_config = json.loads((tokenizer_dir / "tokenizer_config.json").read_text())
    vocab = tokenizer["model"]["vocab"] | {t["content"]: t["id"] for t in tokenizer["added_tokens"]}
    tokens = [token for token, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    special = {t["content"] for t in tokenizer["added_tokens"]}
    merges = [m if isinstance(m, str) else " ".join(m) for m in tokenizer["model"]["merges"]]

    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(256)
    writer.add_embedding_length(hidden)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_freq_base(10000.0)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if t in special else 1 for t in tokens])
    writer.add_token_merges(merges)
    writer.add_bos_token_id(vocab["<|im_start|>"])
    writer.add_eos_token_id(vocab["<|im_end|>"])
    writer.add_chat_template(tok_config["chat_template"])

    def add(name: str, array: np.ndarray) -> None:
        kind = types.get(name.split(".")[-2], "Q4_1") if array.ndim == 2 else "F32"
        qtype = gguf.GGMLQuantizationType[kind]
        if kind == "F32":
            writer.add_tensor(name, array.astype(np.float32))
        elif kind == "F16":
            writer.add_tensor(name, array.astype(np.float16))
        else:
            writer.add_tensor(name, quantize(array.astype(np.float32), qtype), raw_dtype=qtype)

    head_dim = hidden // heads
    add("token_embd.weight", rng.normal(0, 1, (len(tokens), hidden)))
    for i in range(layers):
        scale = 1 / math.sqrt(hidden)
        add(f"blk.{i}.attn_norm.weight", 1 + 0.1 * rng.normal(size=hidden))
        add(f"blk.{i}.attn_q.weight", _llama_cpp_permute(rng.normal(0, scale, (heads * head_dim, hidden)), heads))
        add(f"blk.{i}.attn_k.weight",
            _llama_cpp_permute(rng.normal(0, scale, (kv_heads * head_dim, hidden)), kv_heads))
        add(f"blk.{i}.attn_v.weight", rng.normal(0, scale, (kv_heads * head_dim, hidden)))
        add(f"blk.{i}.attn_output.weight", rng.normal(0, scale, (hidden, heads * head_dim)))
        add(f"blk.{i}.ffn_norm.weight", 1 + 0.1 * rng.normal(size=hidden))
        add(f"blk.{i}.ffn_gate.weight", rng.normal(0, scale, (ffn, hidden)))
        add(f"blk.{i}.ffn_up.weight", rng.normal(0, scale, (ffn, hidden)))
        add(f"blk.{i}.ffn_down.weight", rng.normal(0, 1 / math.sqrt(ffn), (hidden, ffn)))
    add("output_norm.weight", 1 + 0.1 * rng.normal(size=hidden))
    if not tied:
        add("output.weight", rng.normal(0, 1 / math.sqrt(hidden), (len(tokens), hidden)))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def tiny_tokenizer_dir(tmp_path_factory):
    from mlx_outfit.testing.tiny_llm import build_tokenizer

    path = tmp_path_factory.mktemp("tiny_tokenizer")
    build_tokenizer(path)
    return path


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory, tiny_tokenizer_dir):
    """Mixed native types, like real files: Q8_0 embeddings, Q4_0 attention, Q4_1 MLP, F16 output proj."""
    types = {"token_embd": "Q8_0", "attn_q": "Q4_0", "attn_k": "Q4_0", "attn_v": "Q4_0", "attn_output": "F16"}
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf", tiny_tokenizer_dir, types)


TOKENS = [5, 17, 42, 99, 3, 250, 7, 64, 128, 11, 300, 2]


# ---------------------------------------------------------------- fast tests on the tiny GGUF

def test_native_import_matches_reference_forward_pass(tiny_gguf, tmp_path):
    out = import_gguf(tiny_gguf, tmp_path / "model").out
    config = json.loads((out / "config.json").read_text())
    assert config["quantization"]["bits"] == 4
    assert config["quantization"]["model.embed_tokens"]["bits"] == 8
    assert "model.layers.0.self_attn.o_proj" not in config["quantization"]  # F16 stays dense
    assert config["tie_word_embeddings"] is True and config["num_key_value_heads"] == 2
    expected = reference_logits(tiny_gguf, TOKENS)
    got = mlx_logits(out, TOKENS)
    assert np.abs(got - expected).max() < 1e-3 * np.abs(expected).max()


def test_dequantized_import_matches_reference(tiny_gguf, tmp_path):
    out = import_gguf(tiny_gguf, tmp_path / "model", dequantize=True).out
    assert "quantization" not in json.loads((out / "config.json").read_text())
    expected = reference_logits(tiny_gguf, TOKENS)
    assert np.abs(mlx_logits(out, TOKENS) - expected).max() < 1e-3 * np.abs(expected).max()


def test_undoing_the_rope_permutation_matters(tiny_gguf, tmp_path, monkeypatch):
    """Guards the reference itself: skipping the un-permutation must change the logits a lot."""
    from mlx_outfit.models import gguf_import

    monkeypatch.setattr(gguf_import, "unpermute_rows", lambda x, n_heads: x)
    out = import_gguf(tiny_gguf, tmp_path / "model").out
    expected = reference_logits(tiny_gguf, TOKENS)
    assert np.abs(mlx_logits(out, TOKENS) - expected).max() > 1e-2 * np.abs(expected).max()


def test_other_gguf_types_become_dense_and_the_rest_stays_native(tmp_path, tiny_tokenizer_dir):
    import mlx.core as mx

    path = write_tiny_gguf(tmp_path / "q5.gguf", tiny_tokenizer_dir, {"ffn_down": "Q5_0"}, tied=False)
    result = import_gguf(path, tmp_path / "model")
    assert result.dequantized == {"blk.0.ffn_down.weight": "Q5_0", "blk.1.ffn_down.weight": "Q5_0"}
    config = json.loads((result.out / "config.json").read_text())
    assert config["tie_word_embeddings"] is False
    assert config["quantization"]["bits"] == 4  # the Q4_1 tensors stayed quantized ...
    weights = mx.load(str(result.out / "model.safetensors"))
    assert "model.layers.0.mlp.down_proj.scales" not in weights  # ... the Q5_0 ones are dense fp32
    assert weights["model.layers.0.mlp.down_proj.weight"].dtype == mx.float32
    assert "lm_head.scales" in weights
    expected = reference_logits(path, TOKENS)
    assert np.abs(mlx_logits(result.out, TOKENS) - expected).max() < 1e-3 * np.abs(expected).max()


def test_imported_tokenizer_matches_the_original(tiny_gguf, tiny_tokenizer_dir, tmp_path):
    from transformers import AutoTokenizer

    out = import_gguf(tiny_gguf, tmp_path / "model").out
    config = json.loads((out / "tokenizer_config.json").read_text())
    assert config["eos_token"] == "<|im_end|>" and "<|im_start|>" in config["chat_template"]
    ours, original = AutoTokenizer.from_pretrained(str(out)), AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    text = "black leather ankle boots, size 38 <|im_end|> white shirt"
    assert ours.encode(text) == original.encode(text)
    assert ours.decode(ours.encode(text)) == text


def test_import_refuses_bad_inputs(tmp_path, tiny_gguf):
    with pytest.raises(UserError, match="file not found"):
        import_gguf(tmp_path / "missing.gguf", tmp_path / "out")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf file at all" * 10)
    with pytest.raises(UserError, match="not a readable GGUF"):
        import_gguf(junk, tmp_path / "out")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        import_gguf(tiny_gguf, tmp_path / "taken")
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"


def test_cli_import_gguf_prints_the_folder(tiny_gguf, tmp_path):
    from click.testing import CliRunner

    from mlx_outfit.cli.model import model

    out = tmp_path / "cli-model"
    result = CliRunner().invoke(model, ["import-gguf", str(tiny_gguf), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith(str(out))
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors", "tokenizer.json",
                                                     "tokenizer_config.json"]


# ---------------------------------------------------------------- slow tests on the real default model

@pytest.fixture(scope="module")
def default_gguf():
    from mlx_outfit.models.default import default_gguf_path

    return default_gguf_path()


@pytest.mark.slow
@pytest.mark.ci
def test_default_model_logits_match_reference(default_gguf):
    from transformers import AutoTokenizer

    from mlx_outfit.models.default import default_model_path

    tokenizer = AutoTokenizer.from_pretrained(str(default_model_path()))
    ids = tokenizer.encode("The capital of France is Paris. A navy blazer goes well with")
    expected = reference_logits(default_gguf, ids)
    got = mlx_logits(default_model_path(), ids)
    assert np.abs(got - expected).max() < 0.05  # logits span ~±30; fp32 vs fp64 accumulation
    assert (got.argmax(-1) == expected.argmax(-1)).all()


PERPLEXITY_TEXT = (
    "A capsule wardrobe is a small collection of clothes that can be combined in many ways. "
    "It usually starts with neutral basics: a white shirt, a pair of dark jeans, a navy blazer, "
    "a grey sweater and comfortable leather shoes. Colourful accessories such as scarves, bags "
    "and jewellery add variety without buying more clothes. When choosing an outfit, people often "
    "match the formality of each piece, balance loose and fitted shapes, and repeat one colour "
    "between the top and the shoes so that the look feels intentional."
)


def perplexity(model_dir, texts: list[str]) -> list[float]:
    import mlx.core as mx
    import mlx.nn as nn

    from mlx_outfit.models.loading import load_model

    model, tokenizer = load_model(str(model_dir))
    result = []
    for text in texts:
        ids = mx.array([tokenizer.encode(text)])
        logits = model(ids[:, :-1]).astype(mx.float32)
        result.append(math.exp(nn.losses.cross_entropy(logits, ids[:, 1:], reduction="mean").item()))
    return result


@pytest.mark.slow
def test_native_4bit_perplexity_equals_fp32_dequantized(default_gguf, tmp_path):
    from mlx_outfit.models.default import default_model_path

    words = PERPLEXITY_TEXT.split()
    shuffled = " ".join(words[i] for i in np.random.default_rng(0).permutation(len(words)))
    (native,) = perplexity(default_model_path(), [PERPLEXITY_TEXT])  # the slow one on CPU: 4-bit matmuls
    dense, dense_shuffled = perplexity(import_gguf(default_gguf, tmp_path / "fp32", dequantize=True).out,
                                       [PERPLEXITY_TEXT, shuffled])
    print(f"perplexity: native 4-bit {native:.3f}, fp32 dequantized {dense:.3f}, shuffled {dense_shuffled:.1f}")
    assert dense_shuffled > 3 * dense  # it models English, not just token frequencies
    assert abs(native - dense) / dense < 0.01
