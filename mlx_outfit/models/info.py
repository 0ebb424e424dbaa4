"""What a model is: architecture, size, quantization, memory, chat template (``mlx-outfit model info``)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .loading import DEFAULT_MODEL, apply_cpu_dtype_policy, load_folder, on_cpu, resolve_model


@dataclass
class ModelInfo:
    path: str
    architecture: str
    parameters: int
    layers: int
    hidden_size: int
    vocab_size: int
    quantization: str
    bits_per_weight: float
    disk_bytes: int
    memory_bytes: int  # parameters as loaded on this machine's backend (fp32 scales on CPU)
    backend: str
    chat_template: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def describe_quantization(config: dict[str, Any]) -> str:
    """e.g. ``"4-bit affine, group 32 (8-bit: model.embed_tokens)"`` or ``"none"``."""
    block = config.get("quantization")
    if not block:
        return "none"
    text = f"{block['bits']}-bit {block.get('mode', 'affine')}, group {block['group_size']}"
    others: dict[int, list[str]] = {}
    for name, value in block.items():
        if isinstance(value, dict):
            others.setdefault(value["bits"], []).append(name)
    extra = "; ".join(f"{bits}-bit: {', '.join(names)}" for bits, names in sorted(others.items()))
    return f"{text} ({extra})" if extra else text


def model_info(model: str | os.PathLike = DEFAULT_MODEL) -> ModelInfo:
    """Inspect ``model`` without reading its weights into memory (lazy load)."""
    from mlx.utils import tree_flatten
    from mlx_lm.utils import compute_bits_per_weight, get_total_parameters

    path = resolve_model(model)
    loaded, tokenizer, config = load_folder(path, lazy=True, return_config=True)
    bits_per_weight = compute_bits_per_weight(loaded)
    apply_cpu_dtype_policy(loaded)
    text_config = config.get("text_config", config)
    return ModelInfo(
        path=str(path),
        architecture=config.get("model_type", "unknown"),
        parameters=int(get_total_parameters(loaded)),
        layers=int(text_config.get("num_hidden_layers", 0)),
        hidden_size=int(text_config.get("hidden_size", 0)),
        vocab_size=int(text_config.get("vocab_size", 0)),
        quantization=describe_quantization(config),
        bits_per_weight=round(float(bits_per_weight), 2),
        disk_bytes=sum(f.stat().st_size for f in Path(path).glob("*.safetensors")),
        memory_bytes=sum(v.nbytes for _, v in tree_flatten(loaded.parameters())),
        backend="cpu" if on_cpu() else "gpu",
        chat_template=bool(getattr(tokenizer, "chat_template", None)),
    )
