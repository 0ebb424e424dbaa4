"""``mlx-outfit fuse``: fold a LoRA adapter into the base model and check it still answers the same."""

from __future__ import annotations

import click
from rich.console import Console


@click.command()
@click.option("--model", "-m", default="default", show_default=True,
              help="Base model: 'default', a local mlx-lm folder, or a Hugging Face id.")
@click.option("--adapter", "-a", "adapter", required=True, type=click.Path(file_okay=False),
              help="LoRA adapter folder (adapter_config.json + adapters.safetensors).")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Folder for the fused model.")
@click.option("--dequantize", is_flag=True, help="Save full-precision weights instead of keeping 4-bit.")
@click.option("--bits", type=click.Choice(["2", "3", "4", "5", "6", "8"]), default=None,
              help="Re-quantize the adapted layers at this width (default: keep the base's; 8 keeps a small "
                   "adapter's effect that 4-bit rounding erases).")
@click.option("--force", is_flag=True, help="Replace --out if it already holds files.")
@click.option("--check-tokens", default=32, show_default=True, type=click.IntRange(1, 512),
              help="Greedy tokens compared between base+adapter and the fused model.")
def fuse(model: str, adapter: str, out: str, dequantize: bool, bits: str | None, force: bool,
         check_tokens: int) -> None:
    """Fuse LoRA adapters into the base model for fast inference.

    The folder loads with `mlx_lm.load` and the mlx-lm server. Afterwards the fused model's
    greedy answer to a fixed outfit prompt is compared with base+adapter.

    Example: mlx-outfit fuse --adapter runs/sft/adapter --out models/outfit-fused
    """
    from ..fuse import fuse_adapter

    console = Console()
    with console.status("fusing..."):
        report = fuse_adapter(model, adapter, out, dequantize=dequantize, bits=int(bits) if bits else None,
                              overwrite=force, check_tokens=check_tokens)
    kind = ("full precision" if not report.quantized else f"{bits}-bit adapted layers" if bits
            else "quantization of the base kept")
    console.print(f"fused {report.fused_layers} LoRA layers into {report.out} ({kind})")
    if report.greedy_equal:
        console.print(f"[green]check passed:[/green] greedy output on the check prompt equals base+adapter "
                      f"({len(report.adapter_tokens)} tokens): {report.fused_text!r}", highlight=False)
    else:
        console.print(f"[yellow]check: greedy outputs differ from token {report.first_difference}[/yellow] "
                      "(rounding the fused weights to the quantization grid changes them; "
                      "--bits 8 or --dequantize keep the adapter's effect)\n"
                      f"  base+adapter: {report.adapter_text!r}\n  fused:        {report.fused_text!r}",
                      highlight=False)
