"""``mlx-outfit caption``: describe item photos and store the captions in the catalog."""

from __future__ import annotations

import click
from rich.console import Console

from ..caption.vlm import DEFAULT_PROMPT_VERSION, DEFAULT_VLM, PROMPTS
from ..errors import UserError


@click.command()
@click.argument("catalog", type=click.Path(file_okay=False))
@click.option("--model", default=None, metavar="VLM",
              help="mlx-vlm model (hub id or folder), or 'builtin' for the offline colour describer. "
                   f"Default: {DEFAULT_VLM} (the describer, announced, if it cannot be loaded).")
@click.option("--prompt-version", default=DEFAULT_PROMPT_VERSION, show_default=True, type=int,
              help=f"VLM prompt ({', '.join(map(str, PROMPTS))}; 1: one free-text phrase, 2: five "
                   "'field: value' lines). A new version re-captions.")
@click.option("--batch-size", default=4, show_default=True, type=int, help="Images per generation batch.")
@click.option("--max-tokens", default=48, show_default=True, type=int, help="Longest answer per image.")
@click.option("--limit", default=None, type=int, help="Caption at most this many items.")
@click.option("--force", is_flag=True, help="Also redo items that already have a caption "
                                            "(answers still come from the cache when nothing changed).")
def caption(catalog: str, model: str | None, prompt_version: int, batch_size: int, max_tokens: int,
            limit: int | None, force: bool) -> None:
    """Caption every item in CATALOG that has an image and no caption yet.

    Results are cached in CATALOG/caption_cache.jsonl by (image hash, model, prompt
    version): re-runs skip done work and Ctrl-C loses at most the batch in flight.

    \b
    Examples:
      mlx-outfit caption catalogs/mango
      mlx-outfit caption catalogs/mango --model builtin
      mlx-outfit caption catalogs/mine --model mlx-community/SmolVLM-Instruct-4bit --limit 20
    """
    from ..caption import caption_catalog

    console = Console(stderr=True)
    summary = caption_catalog(catalog, model, prompt_version=prompt_version, batch_size=batch_size,
                              max_tokens=max_tokens, limit=limit, force=force, console=console)
    rate = summary.captioned / summary.seconds if summary.seconds else 0.0
    console.print(f"[bold]{summary.source}[/bold]: {summary.captioned} captioned ({rate:.2f} items/s), "
                  f"{summary.cached} from cache, {len(summary.failed)} failed, {summary.targets} to do",
                  highlight=False)
    if summary.targets == 0:
        console.print("nothing to caption: every item with an image has a caption (use --force to redo)")
    elif summary.done == 0:
        raise UserError(f"no item could be captioned ({len(summary.failed)} failed; see the messages above)")
