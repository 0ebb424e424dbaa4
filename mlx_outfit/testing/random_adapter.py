"""A LoRA adapter with random (non-zero) weights in mlx-lm's format, for tests and benchmarks.

A freshly initialised LoRA layer has ``B = 0`` and changes nothing; randomising ``B`` makes
the adapter actually move the model's outputs, so fusing it is a real test.
"""

from __future__ import annotations

import json
from pathlib import Path


def make_random_adapter(model, out: str | Path, *, rank: int = 8, scale: float = 20.0, num_layers: int = -1,
                        b_std: float = 0.01, seed: int = 0) -> Path:
    """Add LoRA layers to ``model`` (in place), randomise them, save ``adapters.safetensors`` + config."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.tuner.utils import linear_to_lora_layers

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    layers = len(model.layers) if num_layers < 0 else num_layers
    lora_parameters = {"rank": rank, "scale": scale, "dropout": 0.0}
    mx.random.seed(seed)
    linear_to_lora_layers(model, layers, lora_parameters)
    for _, module in model.named_modules():
        if hasattr(module, "lora_b"):
            module.lora_b = b_std * mx.random.normal(module.lora_b.shape)
    adapters = {k: v for k, v in tree_flatten(model.parameters()) if k.rsplit(".", 1)[-1] in ("lora_a", "lora_b")}
    mx.save_safetensors(str(out / "adapters.safetensors"), adapters)
    (out / "adapter_config.json").write_text(json.dumps({
        "fine_tune_type": "lora", "num_layers": layers, "lora_parameters": lora_parameters,
    }, indent=2))
    return out
