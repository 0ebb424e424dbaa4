"""Fuse a LoRA adapter into its base model (mlx-lm's machinery) and check the result.

Fusing folds ``scale * B·A`` into each adapted weight, so inference no longer pays for the
two extra low-rank matmuls per layer. A 4-bit base stays 4-bit by default: the fused weight
is rounded onto the base layer's own quantization grid (see :func:`fuse_on_base_grid`);
``--dequantize`` keeps full precision instead. Rounding moves a weight by up to half a
quantization step, so after saving we reload the folder, compare greedy outputs on a fixed
prompt with base+adapter, and report whether they are equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import UserError
from .fileio import atomic_directory
from .prompts import chat_prompt

# A fixed outfit prompt: the check exercises the same kind of text recommend generates.
CHECK_MESSAGE = ("Outfit:\n- top: white cotton t-shirt, plain crew-neck tee\n"
                 "- bottom: blue straight-leg jeans, mid-wash denim\nName one shoes that completes it.")


@dataclass
class FuseReport:
    out: Path
    fused_layers: int
    quantized: bool
    check_prompt: str
    adapter_tokens: list[int]      # greedy tokens from base + adapter (unfused)
    fused_tokens: list[int]        # greedy tokens from the saved, reloaded fused folder
    adapter_text: str
    fused_text: str

    @property
    def greedy_equal(self) -> bool:
        return self.adapter_tokens == self.fused_tokens

    @property
    def first_difference(self) -> int | None:
        """Index of the first differing greedy token, or None when equal."""
        for i, (a, b) in enumerate(zip(self.adapter_tokens, self.fused_tokens)):
            if a != b:
                return i
        return None if self.greedy_equal else min(len(self.adapter_tokens), len(self.fused_tokens))


def greedy_tokens(model, tokenizer, prompt: str, max_tokens: int) -> list[int]:
    """Greedy (argmax) continuation token ids of ``prompt``, stopping at an end-of-sequence token."""
    import mlx.core as mx
    from mlx_lm.generate import generate_step

    ids = mx.array(tokenizer.encode(prompt, add_special_tokens=False))
    tokens: list[int] = []
    for token, _ in generate_step(ids, model, max_tokens=max_tokens):
        token = int(token)
        if token in tokenizer.eos_token_ids:
            break
        tokens.append(token)
    return tokens


def fuse_on_base_grid(lora):
    """Fuse a LoRA layer whose base is affine-quantized, keeping the base's quantization grid where it fits.

    mlx-lm's ``fuse`` re-quantizes from scratch with new scales and biases, which moves every
    weight of the layer (on the GGUF-imported default model by up to two steps), however
    small the adapter. Here each group of ``group_size`` weights is rounded onto the base's
    own scale and bias, which leaves a weight the adapter moves by less than half a step
    exactly as it was. Only a group where the adapter pushed a weight past the grid's range
    (error above half a step) and which fresh quantization fits better is re-quantized.
    """
    import mlx.core as mx
    import mlx.nn as nn

    base = lora.linear
    gs, bits = base.group_size, base.bits
    target = lora.fuse(dequantize=True).weight
    out_dims, in_dims = target.shape
    grouped = target.reshape(out_dims, -1, gs)
    scales = mx.where(base.scales == 0, 1, base.scales)[..., None]
    levels = mx.clip(mx.round((grouped - base.biases[..., None]) / scales), 0, 2 ** bits - 1).astype(mx.uint32)
    per_word = 32 // bits
    kept = (levels.reshape(out_dims, -1, per_word) << (mx.arange(per_word, dtype=mx.uint32) * bits))
    kept = kept.sum(axis=-1).astype(mx.uint32)
    fresh, fresh_scales, fresh_biases = mx.quantize(target, group_size=gs, bits=bits)

    def group_error(weight, group_scales, group_biases):
        restored = mx.dequantize(weight, group_scales, group_biases, group_size=gs, bits=bits)
        return mx.abs(restored - target).reshape(out_dims, -1, gs).max(axis=-1)

    kept_error = group_error(kept, base.scales, base.biases)
    in_range = kept_error <= 0.5001 * mx.abs(base.scales)  # nothing clipped: every weight within half a step
    keep = in_range | (kept_error <= group_error(fresh, fresh_scales, fresh_biases))
    words = gs // per_word
    weight = mx.where(keep[..., None], kept.reshape(out_dims, -1, words), fresh.reshape(out_dims, -1, words))
    fused = nn.QuantizedLinear(in_dims, out_dims, bias="bias" in base, group_size=gs, bits=bits)
    fused.update({"weight": weight.reshape(out_dims, -1), "scales": mx.where(keep, base.scales, fresh_scales),
                  "biases": mx.where(keep, base.biases, fresh_biases),
                  **({"bias": base.bias} if "bias" in base else {})})
    return fused


def fuse_lora_layers(model, dequantize: bool = False, bits: int | None = None) -> list[str]:
    """Replace every LoRA layer in ``model`` by its fused linear; returns the fused layers' names.

    A quantized base layer stays quantized on its own grid (:func:`fuse_on_base_grid`), or is
    re-quantized at ``bits`` when given, or kept dense with ``dequantize``. Layer kinds with
    no grid-keeping path (DoRA, switch layers, non-affine modes) use mlx-lm's own ``fuse``.
    """
    import mlx.nn as nn
    from mlx.utils import tree_unflatten

    def fuse_one(module):
        base = getattr(module, "linear", None)
        if dequantize or not isinstance(base, nn.QuantizedLinear):
            return module.fuse(dequantize=dequantize)
        if bits is not None and bits != base.bits:
            return nn.QuantizedLinear.from_linear(module.fuse(dequantize=True), base.group_size, bits)
        if getattr(base, "mode", "affine") == "affine" and hasattr(module, "lora_a"):
            return fuse_on_base_grid(module)
        return module.fuse()

    fused = [(name, fuse_one(module)) for name, module in model.named_modules() if hasattr(module, "fuse")]
    if fused:
        model.update_modules(tree_unflatten(fused))
    return [name for name, _ in fused]


def fuse_adapter(model: str, adapter_path: str | Path, out: str | Path, *, dequantize: bool = False,
                 bits: int | None = None, overwrite: bool = False, check_tokens: int = 32) -> FuseReport:
    """Fuse ``adapter_path`` into ``model``, save an ``mlx_lm.load``-able folder at ``out``, verify greedy output.

    ``bits`` re-quantizes the adapted layers of a quantized base at that width (8 keeps a
    small adapter's effect that 4-bit rounding would mostly erase); ``dequantize`` saves
    the whole model in full precision.
    """
    from mlx_lm.utils import dequantize_model, load_config, save

    from .models.loading import load_model, resolve_model

    out = Path(out)
    adapter_path = Path(adapter_path)
    if not (adapter_path / "adapter_config.json").is_file():
        raise UserError("not an adapter folder (missing adapter_config.json)", str(adapter_path))
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise UserError("output folder exists and is not empty (use --force to replace it)", str(out))
    if out.resolve() == adapter_path.resolve():
        raise UserError("--out must differ from the adapter folder", str(out))
    if bits is not None and bits not in (2, 3, 4, 5, 6, 8):
        raise UserError(f"--bits must be one of 2, 3, 4, 5, 6, 8, not {bits}")

    source = resolve_model(model)
    lora_model, tokenizer = load_model(model, adapter_path=adapter_path)
    prompt = chat_prompt(tokenizer, CHECK_MESSAGE)
    adapter_tokens = greedy_tokens(lora_model, tokenizer, prompt, check_tokens)

    config = load_config(source)
    fused_names = fuse_lora_layers(lora_model, dequantize, bits)
    if not fused_names:
        raise UserError("the adapter added no LoRA layers, nothing to fuse", str(adapter_path))
    if dequantize:
        lora_model = dequantize_model(lora_model)
        config.pop("quantization", None)
        config.pop("quantization_config", None)
    elif bits is not None and "quantization" in config:
        group_size = config["quantization"].get("group_size", 64)
        config["quantization"].update({name: {"group_size": group_size, "bits": bits, "mode": "affine"}
                                       for name in fused_names})

    # Write beside the target and rename, so an interrupted fuse never leaves a half folder.
    with atomic_directory(out) as staging:
        save(staging, source, lora_model, tokenizer, config, donate_model=False)

    fused_model, fused_tokenizer = load_model(str(out))
    fused_tokens = greedy_tokens(fused_model, fused_tokenizer, prompt, check_tokens)
    return FuseReport(out=out, fused_layers=len(fused_names), quantized="quantization" in config,
                      check_prompt=CHECK_MESSAGE, adapter_tokens=adapter_tokens, fused_tokens=fused_tokens,
                      adapter_text=tokenizer.decode(adapter_tokens), fused_text=fused_tokenizer.decode(fused_tokens))
