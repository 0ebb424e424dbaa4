"""The ``mlx-outfit`` entry point: a click group whose subcommands are imported on demand.

Each subcommand lives in its own module (``mlx_outfit.cli.<name>``) and is a thin wrapper
over a library function. Errors a user can cause (:class:`UserError`) print one line and
exit 1; Ctrl-C exits 130 after the command has saved what it can.
"""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.markup import escape

from ..errors import UserError
from .lazy import LazyGroup

# command name -> "module:attribute"; imported only when that command runs (fast --help).
COMMANDS = {
    "data": ("mlx_outfit.cli.data:data", "Import catalogs, split them, build FITB / retrieval questions."),
    "model": ("mlx_outfit.cli.model:model", "Import GGUF models, fetch the default model, inspect, chat."),
    "caption": ("mlx_outfit.cli.caption:caption", "Describe item photos with a vision-language model."),
    "train": ("mlx_outfit.cli.train:train", "Fine-tune with LoRA (sft), preferences (dpo), or the self-improving loop."),
    "eval": ("mlx_outfit.cli.evaluate:evaluate", "Score FITB / retrieval questions; compare runs."),
    "fuse": ("mlx_outfit.cli.fuse:fuse", "Fuse a LoRA adapter into the base model for fast inference."),
    "recommend": ("mlx_outfit.cli.recommend:recommend", "Recommend outfits from your wardrobe (the main job)."),
}

error_console = Console(stderr=True)


@click.group(cls=LazyGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mlx-outfit")
def cli() -> None:
    """mlx-outfit: private, on-device outfit recommendation with MLX.

    Pipeline: data import → caption → data split/questions → train sft → train dpo
    → eval → fuse → recommend. Every stage reads and writes plain files.
    """


def main(argv: list[str] | None = None) -> None:
    from ..models.blas import ensure_openblas

    ensure_openblas()
    try:
        cli.main(args=argv, prog_name="mlx-outfit", standalone_mode=False)
    except click.exceptions.Abort:
        error_console.print("[yellow]interrupted[/yellow]")
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except UserError as e:
        error_console.print(f"[bold red]error:[/bold red] {escape(str(e))}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        error_console.print("[yellow]interrupted[/yellow]")
        sys.exit(130)
    except MemoryError:
        error_console.print("[bold red]error:[/bold red] out of memory: try a smaller --batch-size or --max-seq, "
                            "or a smaller model", highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
