"""Caption a catalog: pick the captioner, skip cached work, record each result, rewrite the catalog.

Every finished image is appended to the cache before the next one starts, and the catalog
is rewritten from the cache at the end, on Ctrl-C and on errors, so an interrupted run
loses at most the batch in flight and the next run picks up where this one stopped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from PIL import Image
from rich.console import Console
from rich.markup import escape
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.text import Text

from ..catalog import Catalog, Item, load_catalog, save_catalog
from ..errors import UserError
from .cache import CACHE_FILE, CaptionCache, open_cache
from .describer import DESCRIBER_ID, BuiltinDescriber
from .images import decode_image, read_image_bytes
from .vlm import DEFAULT_PROMPT_VERSION, DEFAULT_VLM, load_vlm, prompt_text


class Captioner(Protocol):
    model_id: str
    prompt_version: int

    @property
    def source(self) -> str: ...

    def raw_captions(self, images: list[Image.Image]) -> list[str]: ...

    def tidy(self, raw: str, item: Item) -> str: ...


@dataclass
class CaptionFailure:
    item_id: str
    reason: str


@dataclass
class CaptionSummary:
    source: str
    targets: int = 0  # items that needed a caption this run
    captioned: int = 0  # newly captioned by the model
    cached: int = 0  # taken from the cache
    failed: list[CaptionFailure] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def done(self) -> int:
        return self.captioned + self.cached


def choose_captioner(model: str | None = None, prompt_version: int = DEFAULT_PROMPT_VERSION,
                     max_tokens: int = 48, console: Console | None = None) -> Captioner:
    """``builtin`` → the offline describer; a model id/folder → that VLM (errors if unavailable);
    ``None`` → the default VLM, or the describer, loudly announced, when it cannot be loaded."""
    if model == DESCRIBER_ID:
        return BuiltinDescriber()
    if model is not None:
        return load_vlm(model, prompt_version, max_tokens)
    try:
        return load_vlm(DEFAULT_VLM, prompt_version, max_tokens)
    except UserError as e:
        (console or Console(stderr=True)).print(
            f"[bold yellow]WARNING: the default vision model is unavailable ({escape(str(e))}).\n"
            f"Falling back to the offline colour describer (--model builtin): captions will name "
            f"colours and attributes only. Pass --model to use a specific VLM.[/bold yellow]", highlight=False)
        return BuiltinDescriber()


class RateColumn(ProgressColumn):
    """Items per second."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.2f} items/s" if task.speed else "– items/s", style="progress.data.speed")


def caption_catalog(catalog: str | Path | Catalog, model: str | None = None, *,
                    prompt_version: int = DEFAULT_PROMPT_VERSION, batch_size: int = 4, max_tokens: int = 48,
                    limit: int | None = None, force: bool = False, captioner: Captioner | None = None,
                    console: Console | None = None, show_progress: bool = True) -> CaptionSummary:
    """Caption every item with an image and no caption (all of them with ``force``) and save the catalog.

    ``captioner`` reuses an already loaded one (it overrides ``model``). Unreadable images are
    reported in the summary and skipped; the catalog is saved even when interrupted.
    """
    if batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    if limit is not None and limit < 1:
        raise UserError("--limit must be at least 1")
    prompt_text(prompt_version)
    if not isinstance(catalog, Catalog):
        catalog = load_catalog(catalog)
    console = console or Console(stderr=True)
    captioner = captioner or choose_captioner(model, prompt_version, max_tokens, console)
    targets = [item for item in catalog.items.values() if item.image and (force or item.caption is None)]
    targets = targets[:limit]
    cache = open_cache(catalog.root / CACHE_FILE)
    summary = CaptionSummary(source=captioner.source, targets=len(targets))
    hashes: dict[str, str] = {}  # item id -> image hash, for items whose image loaded
    started = time.perf_counter()
    progress = Progress(TextColumn("[bold]caption"), BarColumn(), MofNCompleteColumn(), RateColumn(),
                        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console,
                        disable=not show_progress)
    try:
        with progress:
            task = progress.add_task("caption", total=len(targets))
            batch: list[tuple[Image.Image, str]] = []
            for item in targets:
                path = catalog.image_path(item)
                try:
                    data, sha = read_image_bytes(path)
                    cached = cache.get(sha, captioner.model_id, captioner.prompt_version) is not None
                    image = None if cached else decode_image(data, path)
                except UserError as e:
                    summary.failed.append(CaptionFailure(item.id, str(e)))
                    progress.console.print(f"[yellow]skipped item {escape(item.id)}: {escape(str(e))}[/yellow]",
                                           highlight=False)
                    progress.advance(task)
                    continue
                hashes[item.id] = sha
                if cached:
                    summary.cached += 1
                    progress.advance(task)
                    continue
                batch.append((image, sha))
                if len(batch) == batch_size:
                    _caption_batch(captioner, cache, batch, summary, progress, task)
                    batch = []
            if batch:
                _caption_batch(captioner, cache, batch, summary, progress, task)
    finally:
        summary.seconds = time.perf_counter() - started
        _apply_cache(catalog, captioner, cache, hashes)
        save_catalog(catalog)
    return summary


def _caption_batch(captioner: Captioner, cache: CaptionCache, batch: list[tuple[Image.Image, str]],
                   summary: CaptionSummary, progress: Progress, task) -> None:
    """Caption the distinct images of one batch and record each result in the cache."""
    unique: dict[str, Image.Image] = {}
    for image, sha in batch:
        unique.setdefault(sha, image)
    raws = captioner.raw_captions(list(unique.values()))
    for sha, raw in zip(unique, raws):
        cache.put(sha, captioner.model_id, captioner.prompt_version, raw)
    summary.captioned += len(unique)
    summary.cached += len(batch) - len(unique)  # repeats of an image in the same batch
    progress.advance(task, len(batch))


def _apply_cache(catalog: Catalog, captioner: Captioner, cache: CaptionCache, hashes: dict[str, str]) -> None:
    for item_id, sha in hashes.items():
        raw = cache.get(sha, captioner.model_id, captioner.prompt_version)
        if raw is None:
            continue
        item = catalog.items[item_id]
        item.caption_raw = raw
        item.caption = captioner.tidy(raw, item)
        item.caption_source = captioner.source
