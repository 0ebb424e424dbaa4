"""Lossless GGUF → MLX import for llama-architecture models.

MLX reads Q4_0 / Q4_1 / Q8_0 blocks directly as its own affine quantization (group size 32), so
those tensors are copied bit for bit: the imported 4-bit model computes exactly what llama.cpp
computes. (Dequantizing and re-quantizing to MLX's usual 4-bit/group-64 raised the default
model's perplexity on the test paragraph from 31.9 to 49.1.) Tensors of other types (K-quants,
Q5_x, ...) are dequantized with the ``gguf`` package, as is everything with ``dequantize``.
The output folder is a plain mlx-lm model folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError
from .gguf_tokenizer import write_tokenizer

NATIVE_TYPES = ("Q4_0", "Q4_1", "Q8_0", "F16", "F32")
GROUP_SIZE = 32  # the block size of every native GGUF quantization type
DTYPES = ("float32", "float16", "bfloat16")

_GLOBAL_NAMES = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
_LAYER_NAMES = {
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
}
_TENSOR_NAME = re.compile(r"^(?:blk\.(\d+)\.)?(\w+)\.(weight|bias|scales|biases)$")


def mlx_name(gguf_name: str) -> str | None:
    """The mlx-lm llama parameter name for a GGUF tensor name (None when it has no counterpart)."""
    match = _TENSOR_NAME.match(gguf_name)
    if not match:
        return None
    layer, module, suffix = match.groups()
    if layer is None:
        return f"{_GLOBAL_NAMES[module]}.{suffix}" if module in _GLOBAL_NAMES else None
    return f"model.layers.{layer}.{_LAYER_NAMES[module]}.{suffix}" if module in _LAYER_NAMES else None


def read_gguf(path: Path):
    """``(reader, metadata)`` for a GGUF file; UserError when it is missing or not a GGUF file."""
    import gguf

    if not path.is_file():
        raise UserError("file not found", str(path))
    try:
        reader = gguf.GGUFReader(str(path))
    except (ValueError, OSError, IndexError) as e:
        raise UserError(f"not a readable GGUF file ({e})", str(path)) from None
    return reader, {key: field.contents() for key, field in reader.fields.items()}


def unpermute_rows(x, n_heads: int):
    """Undo llama.cpp's Q/K row permutation (its rope pairs adjacent rows; mlx-lm pairs halves).

    Works on any array whose first axis is the output rows: weight, scales, biases, bias.
    """
    rows = x.shape[0]
    return x.reshape(n_heads, rows // n_heads // 2, 2, *x.shape[1:]).swapaxes(1, 2).reshape(x.shape)


def _float32_value(x: float) -> float:
    """GGUF stores floats as float32: 1e-5 reads as 9.99999974e-06; write the shortest equal decimal."""
    import numpy as np

    return float(str(np.float32(x)))


def llama_config(metadata: dict[str, Any], tensor_names: set[str], source: str) -> dict[str, Any]:
    """An mlx-lm / Hugging Face style ``config.json`` for a llama GGUF."""
    arch = metadata.get("general.architecture")
    if arch != "llama":
        raise UserError(f"architecture {arch!r} is not supported (only llama-architecture GGUF files)", source)

    def get(key: str, default: Any = None) -> Any:
        value = metadata.get(f"llama.{key}", default)
        if value is None:
            raise UserError(f"metadata key llama.{key} is missing", source)
        return value

    heads = int(get("attention.head_count"))
    hidden = int(get("embedding_length"))
    config: dict[str, Any] = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": hidden,
        "num_hidden_layers": int(get("block_count")),
        "intermediate_size": int(get("feed_forward_length")),
        "num_attention_heads": heads,
        "num_key_value_heads": int(get("attention.head_count_kv", heads)),
        "rms_norm_eps": _float32_value(get("attention.layer_norm_rms_epsilon")),
        "rope_theta": _float32_value(get("rope.freq_base", 10000.0)),
        "max_position_embeddings": int(get("context_length", 2048)),
        "vocab_size": int(metadata.get("llama.vocab_size", len(metadata.get("tokenizer.ggml.tokens", ())))),
        "tie_word_embeddings": "output.weight" not in tensor_names,
        "attention_bias": "blk.0.attn_q.bias" in tensor_names,
        "mlp_bias": "blk.0.ffn_gate.bias" in tensor_names,
    }
    head_dim = metadata.get("llama.attention.key_length")
    if head_dim is not None and int(head_dim) != hidden // heads:
        config["head_dim"] = int(head_dim)
    scaling = metadata.get("llama.rope.scaling.type", "none")
    if scaling == "linear":
        config["rope_scaling"] = {"type": "linear", "factor": float(get("rope.scaling.factor"))}
    elif scaling != "none" or "rope_freqs.weight" in tensor_names:
        raise UserError("rope scaling of this model (llama 3 style or yarn) is not supported", source)
    for name, key in (("bos_token_id", "bos_token_id"), ("eos_token_id", "eos_token_id")):
        if f"tokenizer.ggml.{key}" in metadata:
            config[name] = int(metadata[f"tokenizer.ggml.{key}"])
    return config


def _native_weights(path: Path, reader, skip: set[str], scratch: Path) -> dict:
    """Tensors of native types as MLX arrays, quantized ones as (weight, scales, biases) exactly as stored.

    MLX refuses a whole file with any other tensor type in it, so those files are first copied
    to ``scratch`` without the ``skip`` tensors.
    """
    import gguf
    import mlx.core as mx

    if not skip:
        return mx.load(str(path))
    subset = scratch / "native.gguf"
    writer = gguf.GGUFWriter(str(subset), "llama")
    for t in reader.tensors:
        if t.name not in skip:
            writer.add_tensor(t.name, t.data, raw_dtype=t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return mx.load(str(subset))


def _dequantized_weights(tensors, dtype: str) -> dict:
    """Tensors dequantized to dense ``dtype`` with the ``gguf`` package (any GGUF type)."""
    import mlx.core as mx
    from gguf.quants import dequantize

    return {t.name: mx.array(dequantize(t.data, t.tensor_type)).astype(getattr(mx, dtype)) for t in tensors}


def quantization_block(weights: dict) -> dict[str, Any] | None:
    """``config.json``'s quantization entry: the most common bit width, per-layer entries for others."""
    bits = {}  # packed uint32 words per group of 32 values = bits per value
    for name, scales in weights.items():
        if name.endswith(".scales"):
            module = name.removesuffix(".scales")
            bits[module] = weights[f"{module}.weight"].shape[-1] // scales.shape[-1]
    if not bits:
        return None
    widths = list(bits.values())
    common = max(set(widths), key=widths.count)
    block: dict[str, Any] = {"group_size": GROUP_SIZE, "bits": common, "mode": "affine"}
    block.update({module: {"group_size": GROUP_SIZE, "bits": b, "mode": "affine"}
                  for module, b in sorted(bits.items()) if b != common})
    return block


@dataclass
class GGUFImport:
    """What an import did: the folder, and which tensors had to become dense (non-native types)."""

    out: Path
    quantization: dict[str, Any] | None
    dequantized: dict[str, str]  # GGUF tensor name -> its GGUF type


def convert_gguf(gguf_path: str | os.PathLike, scratch: Path, dequantize: bool = False,
                 dtype: str = "float32") -> tuple[dict, dict[str, Any], dict[str, Any], dict[str, str]]:
    """``(mlx weights, config, gguf metadata, dequantized tensors)`` for a llama GGUF.

    Native tensors (Q4_0/Q4_1/Q8_0/F16/F32) are kept as stored unless ``dequantize``; others are
    always dequantized to ``dtype``. ``scratch`` is a folder for a temporary file.
    """
    path = Path(gguf_path)
    source = str(path)
    if dtype not in DTYPES:
        raise UserError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    reader, metadata = read_gguf(path)
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    config = llama_config(metadata, set(types), source)
    unknown = sorted(name for name in types if mlx_name(name) is None)
    if unknown:
        raise UserError(f"tensors with no llama counterpart: {', '.join(unknown[:5])}", source)

    dense = set(types) if dequantize else {name for name, kind in types.items() if kind not in NATIVE_TYPES}
    raw = {} if dequantize else _native_weights(path, reader, dense, scratch)
    raw.update(_dequantized_weights([t for t in reader.tensors if t.name in dense], dtype))
    heads = {"attn_q": config["num_attention_heads"], "attn_k": config["num_key_value_heads"]}
    weights = {}
    for name, value in raw.items():
        module = name.split(".")[-2]
        if module in heads:
            value = unpermute_rows(value, heads[module])
        weights[mlx_name(name)] = value
    quantization = quantization_block(weights)
    if quantization:
        config["quantization"] = quantization
    foreign = {name: kind for name, kind in types.items() if kind not in NATIVE_TYPES}
    return weights, config, metadata, foreign


def import_gguf(gguf_path: str | os.PathLike, out_dir: str | os.PathLike, dequantize: bool = False,
                dtype: str = "float32") -> GGUFImport:
    """Write an mlx-lm model folder for a llama GGUF file.

    Q4_0/Q4_1/Q8_0/F16/F32 tensors are kept as stored (lossless) unless ``dequantize``; tensors
    of other types (K-quants, Q5_x, ...) have no MLX equivalent and are dequantized to ``dtype``
    (float32 keeps their values exactly). The folder appears complete or not at all.
    """
    import mlx.core as mx

    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError("output folder already exists and is not empty", str(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model_dir = tmp / "model"
        model_dir.mkdir()  # mkdtemp's folder is private; this one gets the user's normal permissions
        weights, config, metadata, foreign = convert_gguf(gguf_path, tmp, dequantize=dequantize, dtype=dtype)
        mx.save_safetensors(str(model_dir / "model.safetensors"), weights, metadata={"format": "mlx"})
        (model_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        write_tokenizer(metadata, model_dir, source=str(gguf_path))
        if out.exists():
            out.rmdir()  # empty (checked above); rename needs the name free
        os.replace(model_dir, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return GGUFImport(out=out, quantization=config.get("quantization"), dequantized=foreign)
