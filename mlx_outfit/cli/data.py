"""``mlx-outfit data``: import catalogs, split them, build FITB / retrieval questions, inspect."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..catalog import SPLITS, Catalog, load_catalog, save_catalog
from ..importers import import_into
from ..questions import MIN_OUTFIT_ITEMS, TASK_CANDIDATES, build_questions, split_catalog, write_questions

console = Console()
CATALOG_ARG = click.argument("catalog", type=click.Path(path_type=Path))


def _print_notes(notes: list[str]) -> None:
    for note in notes:
        console.print(f"  {escape(note)}", highlight=False, soft_wrap=True)


@click.group()
def data() -> None:
    """Import catalogs, split them, build FITB / retrieval questions, inspect them."""


@data.group("import")
def import_() -> None:
    """Import a dataset or your photos into a catalog.

    Importing into an existing catalog merges by id and keeps captions already computed.
    """


def _run_import(kind: str, source: Path, out: Path) -> None:
    notes: list[str] = []
    with console.status(f"importing {source} ..."):
        catalog = import_into(out, kind, source, notes=notes)
    console.print(f"[green]catalog {escape(str(out))}[/green]: {len(catalog.items)} items, {len(catalog.outfits)} outfits",
                  highlight=False, soft_wrap=True)
    _print_notes(notes)


@import_.command("mango")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Catalog folder (created or merged into).")
def import_mango_cmd(directory: Path, out: Path) -> None:
    """The MANGO datathon folder (the unzipped datathon.zip).

    DIRECTORY holds datathon/dataset/product_data.csv, outfit_data.csv and datathon/images/.
    Outfits that repeat another outfit's item set are dropped.

    \b
    Example:
      mlx-outfit data import mango ../shared/data/mango --out catalogs/mango
    """
    _run_import("mango", directory, out)


@import_.command("polyvore")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Catalog folder (created or merged into).")
def import_polyvore_cmd(file: Path, out: Path) -> None:
    """A Maryland Polyvore-T JSON file.

    FILE maps {set_id: {slot: {index, name}}}; images/{set_id}/{index}.jpg beside it are used
    when present.

    \b
    Example:
      mlx-outfit data import polyvore polyvore/valid_no_dup_with_category_3more_name.json \\
          --out catalogs/polyvore
    """
    _run_import("polyvore", file, out)


@import_.command("folder")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Catalog folder (created or merged into).")
def import_folder_cmd(directory: Path, out: Path) -> None:
    """Your own photos, one item per image.

    Sub-folder names become categories (else "item"). An optional items.csv
    (file,category,title,<attribute columns>) or items.json
    ({"file": {"category", "title", "attributes"}}) in DIRECTORY adds details.

    \b
    Example:
      mlx-outfit data import folder ~/wardrobe --out catalogs/wardrobe
    """
    _run_import("folder", directory, out)


@data.command()
@CATALOG_ARG
@click.option("--valid", default=0.1, show_default=True, help="Fraction of outfits for validation.")
@click.option("--test", default=0.1, show_default=True, help="Fraction of outfits for test.")
@click.option("--seed", default=0, show_default=True, help="Shuffle seed.")
def split(catalog: Path, valid: float, test: float, seed: int) -> None:
    """Split outfits into train / valid / test.

    Whole outfits are assigned; outfits with the same item set stay together.

    \b
    Example:
      mlx-outfit data split catalogs/mango --valid 0.1 --test 0.1 --seed 0
    """
    loaded = load_catalog(catalog)
    counts = split_catalog(loaded, valid=valid, test=test, seed=seed)
    save_catalog(loaded)
    console.print(f"[green]split {escape(str(catalog))}[/green]: " + ", ".join(f"{s} {counts[s]}" for s in SPLITS),
                  highlight=False, soft_wrap=True)


@data.command()
@CATALOG_ARG
@click.option("--task", type=click.Choice(list(TASK_CANDIDATES)), default="fitb", show_default=True,
              help="fitb: few candidates (default 4); retrieval: many (default 100).")
@click.option("--split", "split_name", type=click.Choice([*SPLITS, "all"]), default="test", show_default=True,
              help="Outfits to ask about.")
@click.option("--candidates", type=int, default=None, help="Candidates per question, the true item included.")
@click.option("--seed", default=0, show_default=True, help="Seed for blanks, negatives and answer positions.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Question file to write (JSONL).")
def questions(catalog: Path, task: str, split_name: str, candidates: int | None, seed: int, out: Path) -> None:
    """Write FITB / retrieval questions for one split.

    One question per outfit with 3+ items: a seeded random item is the blank, negatives are
    random items of its category from the whole catalog, never from the outfit.

    \b
    Example:
      mlx-outfit data questions catalogs/mango --task fitb --split test --out runs/fitb_test.jsonl
    """
    notes: list[str] = []
    built = build_questions(load_catalog(catalog), task=task, split=split_name, n_candidates=candidates, seed=seed,
                            notes=notes)
    write_questions(out, built)
    n = candidates or TASK_CANDIDATES[task]
    console.print(f"[green]wrote {len(built)} {task} questions[/green] ({n} candidates, split {split_name}, "
                  f"seed {seed}) to {escape(str(out))}", highlight=False, soft_wrap=True)
    _print_notes(notes)


@data.command()
@CATALOG_ARG
def info(catalog: Path) -> None:
    """Show counts per split and category, images and captions."""
    show_info(load_catalog(catalog))


def show_info(catalog: Catalog) -> None:
    items = list(catalog.items.values())
    splits = Counter(o.split or "unsplit" for o in catalog.outfits)
    askable = Counter(o.split or "unsplit" for o in catalog.outfits if len(o.items) >= MIN_OUTFIT_ITEMS)
    summary = Table(title=f"catalog {escape(str(catalog.root))}", show_header=False)
    summary.add_row("items", str(len(items)))
    summary.add_row("  with image", str(sum(i.image is not None for i in items)))
    summary.add_row("  captioned", str(sum(i.caption is not None for i in items)))
    summary.add_row("outfits", str(len(catalog.outfits)))
    for name in (*SPLITS, "unsplit"):
        if splits[name]:
            summary.add_row(f"  {name}", f"{splits[name]} ({askable[name]} with {MIN_OUTFIT_ITEMS}+ items)")
    console.print(summary)
    captioned = Counter(i.category for i in items if i.caption is not None)
    per_category = Table("category", "items", "captioned", title="items per category")
    for category, ids in sorted(catalog.categories().items(), key=lambda kv: (-len(kv[1]), kv[0])):
        per_category.add_row(escape(category), str(len(ids)), str(captioned[category]))
    console.print(per_category)
