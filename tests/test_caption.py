"""Captioning: the real mlx-vlm path on a tiny random VLM, the cache, failures, the offline describer."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import mlx.core  # noqa: F401  (imported before the CLI so it never re-executes the test process)
import pytest
from PIL import Image
from rich.console import Console

from conftest import MANGO_DIR
from mlx_outfit.caption import caption_catalog, describe, tidy_caption
from mlx_outfit.caption import runner
from mlx_outfit.caption.cache import CACHE_FILE, open_cache
from mlx_outfit.caption.describer import compose_caption, dominant_colours
from mlx_outfit.caption.describer_eval import evaluate_describer
from mlx_outfit.caption.vlm import load_vlm
from mlx_outfit.catalog import Catalog, Item, load_catalog, save_catalog
from mlx_outfit.errors import UserError
from mlx_outfit.testing.tiny_vlm import FAMILIES, make_tiny_vlm

N_PHOTOS = 6


@pytest.fixture(scope="module", params=FAMILIES)
def tiny_vlm(request, tmp_path_factory) -> Path:
    """A tiny random VLM of each family mlx-vlm batches (SmolVLM's idefics3, the default's qwen2_vl)."""
    return make_tiny_vlm(tmp_path_factory.mktemp(f"tiny_{request.param}"), family=request.param)


def _mango_photos(n: int) -> list[Path]:
    photos = sorted((MANGO_DIR / "datathon" / "images").glob("*.jpg"))[:n]
    assert len(photos) == n, f"MANGO images missing under {MANGO_DIR}"
    return photos


def _corrupt_jpeg(path: Path) -> Path:
    """A real JPEG cut in half: the header reads, the pixels do not."""
    data = _mango_photos(1)[0].read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.fixture
def catalog_dir(tmp_path) -> Path:
    """Six real MANGO photos (copied, so two items can share one), a corrupt JPEG and an item without image."""
    root = tmp_path / "catalog"
    (root / "images").mkdir(parents=True)
    items = {}
    for i, photo in enumerate(_mango_photos(N_PHOTOS)):
        shutil.copy(photo, root / "images" / photo.name)
        items[f"p{i}"] = Item(id=f"p{i}", category="top", attributes={"type": "shirt", "fabric": "cotton"},
                              image=f"images/{photo.name}")
    items["broken"] = Item(id="broken", category="top", image=str(_corrupt_jpeg(root / "images" / "broken.jpg")))
    items["no-photo"] = Item(id="no-photo", category="bag", title="leather tote")
    save_catalog(Catalog(root, items))
    return root


def test_vlm_captions_every_item_caches_and_recaptions_on_new_prompt(catalog_dir, tiny_vlm):
    first = caption_catalog(catalog_dir, str(tiny_vlm), batch_size=4, max_tokens=8, show_progress=False)
    assert (first.captioned, first.cached, first.targets) == (N_PHOTOS, 0, N_PHOTOS + 1)
    assert [f.item_id for f in first.failed] == ["broken"]
    assert "corrupt image" in first.failed[0].reason
    catalog = load_catalog(catalog_dir)
    photos = [catalog.items[f"p{i}"] for i in range(N_PHOTOS)]
    assert all(i.caption is not None and i.caption_raw is not None for i in photos)
    assert {i.caption_source for i in photos} == {f"{tiny_vlm.resolve()} prompt v2"}
    assert catalog.items["broken"].caption is None and catalog.items["no-photo"].caption is None

    again = caption_catalog(catalog_dir, str(tiny_vlm), force=True, max_tokens=8, show_progress=False)
    assert (again.captioned, again.cached) == (0, N_PHOTOS)
    assert load_catalog(catalog_dir).items == catalog.items

    recaption = caption_catalog(catalog_dir, str(tiny_vlm), prompt_version=1, force=True, max_tokens=8,
                                show_progress=False)
    assert (recaption.captioned, recaption.cached) == (N_PHOTOS, 0)
    assert load_catalog(catalog_dir).items["p0"].caption_source.endswith("prompt v1")
    assert len(open_cache(catalog_dir / CACHE_FILE).raw) == 2 * N_PHOTOS


def test_batched_generation_matches_one_at_a_time(tiny_vlm):
    captioner = load_vlm(str(tiny_vlm), max_tokens=8)
    images = [Image.open(p).convert("RGB") for p in _mango_photos(4)]
    one_by_one = [captioner.raw_captions([image])[0] for image in images]
    assert captioner.raw_captions(images) == one_by_one


def test_vlm_that_cannot_batch_asks_for_batch_size_one(catalog_dir, tmp_path):
    smolvlm2_like = make_tiny_vlm(tmp_path / "smolvlm", family="smolvlm")
    with pytest.raises(UserError, match="--batch-size 1"):
        caption_catalog(catalog_dir, str(smolvlm2_like), batch_size=2, max_tokens=4, show_progress=False)
    summary = caption_catalog(catalog_dir, str(smolvlm2_like), batch_size=1, max_tokens=4, show_progress=False)
    assert (summary.captioned, summary.failed[0].item_id) == (N_PHOTOS, "broken")


def test_interrupted_run_keeps_finished_batches_and_resumes(catalog_dir, tiny_vlm):
    captioner = load_vlm(str(tiny_vlm), max_tokens=8)
    real = captioner.raw_captions
    calls = []

    def interrupted_on_third_batch(images):
        calls.append(len(images))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(images)

    captioner.raw_captions = interrupted_on_third_batch
    with pytest.raises(KeyboardInterrupt):
        caption_catalog(catalog_dir, captioner=captioner, batch_size=2, show_progress=False)
    saved = load_catalog(catalog_dir)
    assert [i for i in saved.items if saved.items[i].caption is not None] == ["p0", "p1", "p2", "p3"]

    captioner.raw_captions = real
    resumed = caption_catalog(catalog_dir, captioner=captioner, batch_size=2, show_progress=False)
    assert (resumed.captioned, resumed.cached) == (2, 0)


def test_identical_photos_are_captioned_once(catalog_dir):
    catalog = load_catalog(catalog_dir)
    catalog.items["twin"] = Item(id="twin", category="top", image=catalog.items["p0"].image)
    summary = caption_catalog(catalog, "builtin", show_progress=False)
    assert (summary.captioned, summary.cached) == (N_PHOTOS, 1)
    assert catalog.items["twin"].caption_raw == catalog.items["p0"].caption_raw


def test_captions_reach_item_text_and_bad_options_are_user_errors(catalog_dir):
    from mlx_outfit.itemtext import item_text

    caption_catalog(catalog_dir, "builtin", show_progress=False)
    item = load_catalog(catalog_dir).items["p0"]
    assert item.caption and item_text(item).startswith(item.caption)
    for bad in ({"prompt_version": 9}, {"batch_size": 0}, {"limit": 0}):
        with pytest.raises(UserError):
            caption_catalog(catalog_dir, "builtin", show_progress=False, **bad)


def test_torn_last_cache_line_is_dropped(catalog_dir):
    caption_catalog(catalog_dir, "builtin", limit=2, show_progress=False)
    cache_path = catalog_dir / CACHE_FILE
    cache_path.write_text(cache_path.read_text() + '{"image_sha256": "ab')  # a crash mid-append
    summary = caption_catalog(catalog_dir, "builtin", show_progress=False)
    assert summary.captioned == N_PHOTOS - 2
    assert all(json.loads(line) for line in cache_path.read_text().splitlines()[:2])


def test_explicit_model_never_falls_back(catalog_dir, tmp_path):
    before = (catalog_dir / "items.jsonl").read_text()
    with pytest.raises(UserError, match="cannot fetch vision model"):
        caption_catalog(catalog_dir, "no-such-org/no-such-vlm", show_progress=False)
    (tmp_path / "empty_model").mkdir()
    with pytest.raises(UserError, match="no config.json"):
        caption_catalog(catalog_dir, str(tmp_path / "empty_model"), show_progress=False)
    assert (catalog_dir / "items.jsonl").read_text() == before


def test_no_model_falls_back_to_describer_loudly(catalog_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "DEFAULT_VLM", str(tmp_path / "absent-default-vlm"))
    out = io.StringIO()
    summary = caption_catalog(catalog_dir, console=Console(file=out, width=200), show_progress=False)
    assert "WARNING: the default vision model is unavailable" in out.getvalue()
    assert summary.source == "builtin describer v1" and summary.captioned == N_PHOTOS


def test_cli_exit_codes(catalog_dir, tmp_path, capsys):
    from mlx_outfit.cli.main import main

    main(["caption", str(catalog_dir), "--model", "builtin"])  # returns: exit status 0
    assert "broken" in capsys.readouterr().err

    only_broken = tmp_path / "broken_only"
    save_catalog(Catalog(only_broken, {"x": Item(id="x", category="top",
                                                 image=str(_corrupt_jpeg(tmp_path / "x.jpg")))}))
    with pytest.raises(SystemExit) as failed:
        main(["caption", str(only_broken), "--model", "builtin"])
    assert failed.value.code == 1
    assert "no item could be captioned" in capsys.readouterr().err


@pytest.mark.parametrize("raw, tidy", [
    ("colour: Navy blue\npattern: striped\nmaterial: cotton\nstyle: casual\ntype: shirt.",
     "navy blue striped cotton casual shirt"),
    ("- Colour: black\n- Pattern: none\n- Fabric: leather\n- Garment type: ankle boots",
     "black leather ankle boots"),
    ("The image shows a red floral midi dress. It has short sleeves.", "red floral midi dress"),
    ("", ""),
])
def test_tidy_caption(raw, tidy):
    assert tidy_caption(raw) == tidy


def _photo(garment_rgb, background=(236, 236, 238), size=(120, 160)) -> Image.Image:
    image = Image.new("RGB", size, background)
    image.paste(Image.new("RGB", (60, 100), garment_rgb), (30, 30))
    return image


@pytest.mark.parametrize("rgb, name", [((190, 30, 40), "red"), ((25, 25, 28), "black"),
                                       ((35, 40, 70), "navy"), ((250, 250, 250), "white")])
def test_describer_names_the_garment_not_the_background(rgb, name):
    assert dominant_colours(_photo(rgb))[0].name == name


def test_describe_combines_colours_with_attributes(tmp_path):
    path = tmp_path / "skirt.png"
    _photo((45, 80, 160)).save(path)
    item = Item(id="s", category="skirt", attributes={"fabric": "denim", "type": "midi skirt"})
    assert describe(path, item) == "blue denim midi skirt"
    jeans = Item(id="j", category="jeans", attributes={"fabric": "denim", "type": "jeans"})
    assert compose_caption("denim blue 82%, light grey 5%", jeans) == "denim blue jeans"
    with pytest.raises(UserError, match="image not found"):
        describe(tmp_path / "missing.png", item)


def test_describer_agrees_with_mango_colour_groups(shared_data):
    report = evaluate_describer(MANGO_DIR, n=500, seed=0)
    assert report.n == 500
    assert report.agreement >= 0.70, report.per_group
