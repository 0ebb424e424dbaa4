"""``mlx-outfit recommend``: outfits from your wardrobe, as a table, JSON, a collage; optional feedback."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table


def _ask_verdicts(console: Console, outfits, wardrobe, context, recommender) -> int:
    """Ask accept / reject per outfit (or reject one item by its number); store each answer at once."""
    from ..recommend.feedback import Feedback, feedback_path, record_feedback

    db = feedback_path(wardrobe)
    stored = 0
    for rank, outfit in enumerate(outfits, start=1):
        items = outfit.items
        answer = click.prompt(f"Outfit {rank}: [a]ccept, [r]eject, reject one item [1-{len(items)}], [s]kip",
                              default="s", err=True).strip().lower()
        if answer in ("s", ""):
            continue
        rejected_item = None
        if answer.isdigit() and 1 <= int(answer) <= len(items):
            rejected_item, verdict = items[int(answer) - 1].id, "reject"
        elif answer in ("a", "r"):
            verdict = "accept" if answer == "a" else "reject"
        else:
            console.print(f"[yellow]'{answer}' is not an answer; outfit {rank} skipped[/yellow]")
            continue
        record_feedback(db, Feedback(wardrobe=str(wardrobe), anchor=outfit.anchor.id if outfit.anchor else None,
                                     context=context, items=tuple(i.id for i in items), verdict=verdict,
                                     rejected_item=rejected_item, model=recommender.model_name,
                                     adapter=str(recommender.adapter) if recommender.adapter else None))
        stored += 1
    console.print(f"stored {stored} verdict(s) in {db}")
    return stored


def _print_table(console: Console, outfits) -> None:
    from ..itemtext import item_text

    for rank, outfit in enumerate(outfits, start=1):
        table = Table(title=f"Outfit {rank}  (score {outfit.score:.2f})", title_justify="left")
        for column in ("#", "item", "category", "description", "score"):
            table.add_column(column, justify="right" if column in ("#", "score") else "left")
        for number, item in enumerate(outfit.items, start=1):
            pick = next((p for p in outfit.picks if p.item.id == item.id), None)
            table.add_row(str(number), item.id, item.category, item_text(item),
                          f"{pick.score:.2f}" if pick else "anchor")
        console.print(table)
        if outfit.reason:
            console.print(f"  [italic]{outfit.reason}[/italic]", highlight=False)


@click.command()
@click.option("--wardrobe", "-w", type=click.Path(file_okay=False), default=None,
              help="Wardrobe catalog folder (items.jsonl); default: the sample wardrobe that ships with the package.")
@click.option("--item", "item_id", default=None, help="Anchor item id: outfits are built around it.")
@click.option("--image", type=click.Path(dir_okay=False), default=None,
              help="A new photo: captioned, added to the wardrobe and used as the anchor.")
@click.option("--category", default=None, help="Category of the --image photo (e.g. top).")
@click.option("--captioner", default="builtin", show_default=True,
              help="Captions the --image photo: 'builtin' (offline colour describer) or a vision model folder / id.")
@click.option("--occasion", default=None, help="e.g. 'job interview'; goes into the prompt.")
@click.option("--season", default=None, help="e.g. winter; goes into the prompt.")
@click.option("-n", "n", default=3, show_default=True, type=click.IntRange(1, 20), help="Number of outfits.")
@click.option("--categories", default=None,
              help="Comma-separated categories to fill (default: chosen from the wardrobe's categories).")
@click.option("--model", "-m", default="default", show_default=True,
              help="'default', a local mlx-lm folder (e.g. a fused model) or a Hugging Face id.")
@click.option("--adapter", "-a", default="auto", show_default=True,
              help="LoRA adapter folder; 'auto' = the shipped adapter with the default model; 'none' = no adapter.")
@click.option("--max-candidates", default=24, show_default=True, type=click.IntRange(2, 500),
              help="Candidates re-ranked per category (larger categories are cut first).")
@click.option("--diversity", default=1.0, show_default=True, type=click.FloatRange(0),
              help="Score penalty (nats per token) for reusing an item of an earlier outfit; 0 = pure ranking.")
@click.option("--no-reasons", is_flag=True, help="Skip the model-written reason per outfit (faster).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables (schema in docs/recommend.md).")
@click.option("--collage", type=click.Path(dir_okay=False), default=None,
              help="Write one PNG with each outfit's item photos side by side (one row per outfit).")
@click.option("--feedback", "ask_feedback", is_flag=True,
              help="Accept / reject each outfit; stored in feedback.sqlite beside the wardrobe for `train dpo`.")
def recommend(wardrobe, item_id, image, category, captioner, occasion, season, n, categories, model, adapter,
              max_candidates, diversity, no_reasons, as_json, collage, ask_feedback) -> None:
    """Recommend outfits from your wardrobe (the main job). Everything runs locally.

    \b
    Examples:
      mlx-outfit recommend                                # sample wardrobe, 3 outfits
      mlx-outfit recommend -w my-wardrobe --item top-03 --occasion "office" --season winter
      mlx-outfit recommend -w my-wardrobe --image new-shirt.jpg --category top --collage looks.png
    """
    from ..catalog import load_catalog
    from ..errors import UserError
    from ..recommend.collage import write_collage
    from ..recommend.photo import add_photo
    from ..recommend.recommender import context_text, load_recommender, recommendations_dict
    from ..recommend.recommender import recommend as build
    from ..recommend.sample import sample_wardrobe_path

    if item_id and image:
        raise UserError("give either --item or --image, not both")
    console = Console(stderr=as_json)
    root = sample_wardrobe_path() if wardrobe is None else wardrobe
    catalog = load_catalog(root)
    if image:
        anchor = add_photo(catalog, image, category or "", captioner=captioner)
        item_id = anchor.id
        console.print(f"added {image} as {anchor.id} ({anchor.category}): {anchor.caption}", highlight=False)
    with console.status("loading the model..."):
        recommender = load_recommender(model, adapter)
    with console.status("building outfits..."):
        outfits = build(recommender, catalog, item_id, occasion, season, n,
                        categories=[c.strip() for c in categories.split(",") if c.strip()] if categories else None,
                        max_candidates=max_candidates, diversity=diversity, reasons=not no_reasons)
    context = context_text(occasion, season)
    if len(outfits) < n:
        console.print(f"[yellow]only {len(outfits)} distinct outfit(s) could be built from this wardrobe[/yellow]")
    if as_json:
        click.echo(json.dumps(recommendations_dict(catalog, recommender, outfits, context), indent=2,
                              ensure_ascii=False))
    else:
        _print_table(console, outfits)
    if collage:
        path = write_collage(catalog, [o.items for o in outfits], collage)
        console.print(f"collage: {path}")
    if ask_feedback:
        _ask_verdicts(console, outfits, catalog.root, context, recommender)

