"""Resolve ``--model`` and load it with mlx-lm, applying the CPU dtype policy.

``--model`` is ``"default"`` (the embedded SmolLM2, pulled on first use), a local mlx-lm model
folder, or a Hugging Face id such as ``mlx-community/Qwen2.5-0.5B-Instruct-4bit`` (downloaded
by ``huggingface_hub`` where the hub is reachable).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import UserError
from .default import default_model_path

DEFAULT_MODEL = "default"
_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")


def resolve_model(model: str | os.PathLike = DEFAULT_MODEL) -> Path:
    """The local folder for ``model``: the default, an existing folder, or a downloaded hub id."""
    name = str(model)
    if name == DEFAULT_MODEL:
        return default_model_path()
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise UserError("not a model folder (no config.json)", str(path))
        return path
    if not _HUB_ID.fullmatch(name) or name.startswith("."):
        raise UserError(f"model {name!r} not found: expected 'default', a model folder, "
                        "or a Hugging Face id like mlx-community/SmolLM2-135M-Instruct-4bit")
    return _download_from_hub(name)


def _download_from_hub(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download
    from mlx_lm.utils import DEFAULT_ALLOW_PATTERNS

    try:
        return Path(snapshot_download(repo_id, allow_patterns=DEFAULT_ALLOW_PATTERNS))
    except Exception as e:  # offline, unknown repo, gated repo, bad id: all the same to the user
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"model {repo_id!r} is not a local folder and could not be fetched from the Hugging Face "
                        f"hub (unreachable, or no such model: {reason}); use --model default or a local "
                        "model folder") from None


def on_cpu() -> bool:
    import mlx.core as mx

    return mx.default_device().type == mx.DeviceType.cpu


def apply_cpu_dtype_policy(model) -> None:
    """On the CPU backend make every floating parameter float32 (quantization scales/biases too).

    fp16/bf16 scales make quantized matmuls ~50x slower on CPU, and fp32 dense weights are what
    CPU training wants; on a GPU the model keeps its stored dtypes.
    """
    import mlx.core as mx

    if on_cpu():
        model.set_dtype(mx.float32)


def load_folder(path: Path, **kwargs):
    """``mlx_lm.load`` on a local folder, its failures turned into a UserError naming the folder."""
    import mlx_lm

    try:
        return mlx_lm.load(str(path), **kwargs)
    except (FileNotFoundError, ValueError, KeyError, OSError, RuntimeError) as e:  # RuntimeError: corrupt weights
        raise UserError(f"cannot load the model ({e})", str(path)) from None


def load_model(model: str | os.PathLike = DEFAULT_MODEL, adapter_path: str | os.PathLike | None = None, *,
               dequantize: bool = False):
    """``(model, tokenizer)`` for ``--model`` (plus an optional LoRA adapter folder), ready to run.

    ``dequantize=True`` replaces quantized layers with dense ones holding exactly the same
    (float32 on CPU) weights: same outputs, ~4x the memory, and on the CPU backend ~10x faster
    prompt processing and training, because MLX's CPU quantized matmul is slow for many tokens
    at once while dense fp32 goes through BLAS. Keep the default where the quantized structure
    matters (fusing, saving a 4-bit model).
    """
    from mlx_lm.utils import dequantize_model, load_adapters

    path = resolve_model(model)
    if adapter_path is not None and not (Path(adapter_path) / "adapter_config.json").is_file():
        raise UserError("not an adapter folder (no adapter_config.json)", str(adapter_path))
    loaded, tokenizer = load_folder(path)
    apply_cpu_dtype_policy(loaded)  # before dequantizing, so dense CPU weights come out float32
    if dequantize:
        dequantize_model(loaded)
    if adapter_path is not None:
        try:
            load_adapters(loaded, str(adapter_path))
        except (FileNotFoundError, ValueError, KeyError) as e:
            raise UserError(f"cannot load the adapter ({e})", str(adapter_path)) from None
        apply_cpu_dtype_policy(loaded)
    loaded.eval()
    return loaded, tokenizer
