"""Recommend on real MANGO data and on the sample wardrobe, with a tiny model (the real one in a slow test)."""

from __future__ import annotations

import json
import shutil
import socket

import pytest
from click.testing import CliRunner
from PIL import Image

from mlx_outfit.caption.describer import describe
from mlx_outfit.catalog import Catalog, load_catalog, save_catalog
from mlx_outfit.cli.main import cli
from mlx_outfit.errors import UserError
from mlx_outfit.importers.mango import import_mango
from mlx_outfit.itemtext import item_text
from mlx_outfit.recommend.collage import LABEL_HEIGHT, collage_size, write_collage
from mlx_outfit.recommend.recommender import context_text, load_recommender, needed_categories, recommend
from mlx_outfit.recommend.sample import sample_wardrobe_path

from conftest import MANGO_DIR

N_OUTFITS = 12  # MANGO outfits whose items form the test wardrobe (~70 items)


@pytest.fixture(scope="module")
def mango_wardrobe(tmp_path_factory, shared_data) -> Catalog:
    """A wardrobe made of real MANGO products (captioned by the offline describer) and their outfits."""
    items, outfits = import_mango(MANGO_DIR)
    by_id = {i.id: i for i in items}
    chosen = outfits[:N_OUTFITS]
    catalog = Catalog(root=tmp_path_factory.mktemp("mango_wardrobe"))
    for item_id in dict.fromkeys(i for o in chosen for i in o.items):
        item = by_id[item_id]
        item.caption = describe(item.image, item)
        catalog.items[item_id] = item
    catalog.outfits = list(chosen)
    save_catalog(catalog)
    return load_catalog(catalog.root)


@pytest.fixture(scope="module")
def offline_env():
    """load_recommender puts the hub offline process-wide; undo that after this module's tests."""
    import huggingface_hub.constants as hub_constants

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "0")
        mp.setenv("TRANSFORMERS_OFFLINE", "0")
        mp.setattr(hub_constants, "HF_HUB_OFFLINE", hub_constants.HF_HUB_OFFLINE)
        yield


@pytest.fixture(scope="module")
def recommender(tiny_llama_4bit, offline_env):
    return load_recommender(str(tiny_llama_4bit), adapter="none")


@pytest.fixture
def sample_copy(tmp_path) -> str:
    """A writable copy of the sample wardrobe (feedback and added photos are stored beside it)."""
    return str(shutil.copytree(sample_wardrobe_path(), tmp_path / "wardrobe"))


def _assert_well_formed(outfits, anchor, categories, n):
    assert len(outfits) == n
    for outfit in outfits:
        ids = [i.id for i in outfit.items]
        assert ids[0] == anchor.id
        assert len(ids) == len(set(ids)), "an item appears twice in one outfit"
        assert [p.item.category for p in outfit.picks] == list(categories)  # one item per needed category
        assert all(p.score < 0 for p in outfit.picks)
    assert len({frozenset(i.id for i in o.items) for o in outfits}) == n, "two outfits are identical"


def test_recommend_on_mango_wardrobe(recommender, mango_wardrobe):
    anchor = mango_wardrobe.items[mango_wardrobe.outfits[0].items[0]]
    categories = needed_categories(mango_wardrobe, anchor)
    assert categories and anchor.category not in categories
    # The categories form a combination stylists actually used with the anchor's category.
    wanted = set(categories) | {anchor.category}
    assert any(wanted <= {mango_wardrobe.items[i].category for i in o.items} for o in mango_wardrobe.outfits)

    outfits = recommend(recommender, mango_wardrobe, anchor.id, occasion="dinner", n=3, reasons=False)
    _assert_well_formed(outfits, anchor, categories, 3)
    for outfit in outfits:
        assert all(mango_wardrobe.items[p.item.id] is p.item for p in outfit.picks)


def test_recommend_scores_match_the_shared_prefix_scorer(recommender, mango_wardrobe):
    """The pick of the first category is the scorer's best candidate for that question."""
    from mlx_outfit.eval.scoring import score_continuations
    from mlx_outfit.prompts import chat_prompt, complete_message

    anchor = mango_wardrobe.items[mango_wardrobe.outfits[1].items[0]]
    first = needed_categories(mango_wardrobe, anchor)[0]
    outfit = recommend(recommender, mango_wardrobe, anchor.id, n=1, reasons=False)[0]
    pool = [mango_wardrobe.items[i] for i in mango_wardrobe.categories()[first] if i != anchor.id]
    prompt = chat_prompt(recommender.tokenizer, complete_message([anchor], first))
    scores = score_continuations(recommender.model, recommender.tokenizer, prompt, [item_text(c) for c in pool])
    best = max(range(len(pool)), key=lambda k: scores[k].logprob_mean)
    assert outfit.picks[0].item.id == pool[best].id
    assert outfit.picks[0].score == pytest.approx(scores[best].logprob_mean, abs=1e-5)


def test_recommend_without_anchor_and_with_reasons(recommender):
    catalog = load_catalog(sample_wardrobe_path())
    outfits = recommend(recommender, catalog, None, occasion="beach", season="summer", n=2)
    assert len(outfits) == 2
    for outfit in outfits:
        assert outfit.anchor is None
        assert sorted(i.category for i in outfit.items) == sorted(catalog.categories())
        assert isinstance(outfit.reason, str) and outfit.reason == outfit.reason.strip()
    assert context_text("beach", "summer") == "beach, summer"


def test_small_wardrobe_runs_out_of_outfits(recommender, tmp_path):
    catalog = load_catalog(sample_wardrobe_path())
    small = Catalog(root=tmp_path, items={i: catalog.items[i] for i in ("top-01", "bottom-01", "bottom-02",
                                                                          "shoes-01")})
    outfits = recommend(recommender, small, "top-01", n=5, reasons=False)
    assert len(outfits) == 2  # only two distinct (bottom, shoes) combinations exist


def test_recommend_user_errors(recommender, mango_wardrobe):
    with pytest.raises(UserError, match="no item with id"):
        recommend(recommender, mango_wardrobe, "no-such-item", reasons=False)
    with pytest.raises(UserError, match="no items of category"):
        recommend(recommender, mango_wardrobe, None, categories=["spacesuit"], reasons=False)


def test_json_output_schema(tiny_llama_4bit, offline_env):
    result = CliRunner().invoke(cli, ["recommend", "--model", str(tiny_llama_4bit), "--adapter", "none",
                                      "--item", "top-02", "--occasion", "office", "-n", "2", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc) == {"wardrobe", "model", "adapter", "anchor", "context", "outfits"}
    assert doc["anchor"] == "top-02" and doc["context"] == "office" and doc["adapter"] is None
    assert [o["rank"] for o in doc["outfits"]] == [1, 2]
    for outfit in doc["outfits"]:
        assert set(outfit) == {"rank", "score", "reason", "items"}
        assert isinstance(outfit["score"], float) and isinstance(outfit["reason"], str)
        first, *rest = outfit["items"]
        assert first["id"] == "top-02" and first["anchor"] is True and first["score"] is None
        for item in rest:
            assert set(item) == {"id", "category", "description", "score", "anchor", "image"}
            assert item["anchor"] is False and isinstance(item["score"], float)
            assert item["image"].endswith(".png")
        assert len({i["category"] for i in outfit["items"]}) == len(outfit["items"]) == 6


def test_collage_dimensions_and_items(recommender, tmp_path):
    catalog = load_catalog(sample_wardrobe_path())
    outfits = recommend(recommender, catalog, "bag-01", n=2, reasons=False, categories=["top", "shoes"])
    rows = [o.items for o in outfits] + [[catalog.items["accessory-01"]]]  # a shorter row stays blank on the right
    tile = 100
    path = write_collage(catalog, rows, tmp_path / "looks.png", tile=tile)
    image = Image.open(path)
    assert image.format == "PNG"
    assert image.size == collage_size(rows, tile) == (3 * tile, 3 * (tile + LABEL_HEIGHT))

    def drawn(row: int, column: int) -> bool:
        box = (column * tile, row * (tile + LABEL_HEIGHT), (column + 1) * tile, row * (tile + LABEL_HEIGHT) + tile)
        return image.crop(box).convert("L").getextrema()[0] < 200  # something darker than the background

    assert [[drawn(r, c) for c in range(3)] for r in range(3)] == [[True] * 3, [True] * 3, [True, False, False]]


def test_collage_cli_and_missing_photo(recommender, tiny_llama_4bit, sample_copy, tmp_path):
    catalog = load_catalog(sample_copy)
    catalog.items["shoes-01"].image = "images/missing.png"
    save_catalog(catalog)
    out = tmp_path / "c.png"
    result = CliRunner().invoke(cli, ["recommend", "-w", sample_copy, "--model", str(tiny_llama_4bit),
                                      "--adapter", "none", "-n", "3", "--no-reasons", "--collage", str(out)])
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (6 * 160, 3 * (160 + LABEL_HEIGHT))


def test_image_adds_a_captioned_anchor(tiny_llama_4bit, mango_wardrobe, tmp_path, offline_env):
    wardrobe = shutil.copytree(mango_wardrobe.root, tmp_path / "wardrobe")
    photo = next(MANGO_DIR.glob("datathon/images/*.jpg"))
    result = CliRunner().invoke(cli, ["recommend", "-w", str(wardrobe), "--model", str(tiny_llama_4bit),
                                      "--adapter", "none", "--image", str(photo), "--category", "Shirt", "-n", "1",
                                      "--no-reasons", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    added = load_catalog(wardrobe).items[doc["anchor"]]
    assert added.category == "Shirt" and added.caption and added.caption_source.startswith("builtin describer")
    assert (wardrobe / added.image).read_bytes() == photo.read_bytes()
    assert doc["outfits"][0]["items"][0]["id"] == added.id

    missing = CliRunner().invoke(cli, ["recommend", "-w", str(wardrobe), "--model", str(tiny_llama_4bit),
                                       "--image", str(photo)])
    assert isinstance(missing.exception, UserError) and "--category" in str(missing.exception)


def test_no_network_with_a_local_model(tiny_llama_4bit, offline_env, monkeypatch):
    """With sockets blocked, recommend (model load, scoring, reasons, JSON) still works end to end."""
    import huggingface_hub.constants as hub_constants

    def refuse(self, address):
        raise AssertionError(f"recommend tried to connect to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    with pytest.raises(AssertionError):
        socket.create_connection(("127.0.0.1", 9), timeout=1)  # the block itself works

    result = CliRunner().invoke(cli, ["recommend", "--model", str(tiny_llama_4bit), "--adapter", "none",
                                      "--item", "shoes-02", "-n", "2", "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["outfits"]) == 2
    assert hub_constants.HF_HUB_OFFLINE is True
    # Offline mode is really on: a hub download now fails without even trying the network.
    from huggingface_hub import snapshot_download

    with pytest.raises(Exception) as refused:
        snapshot_download("mlx-outfit-tests/no-such-model")
    assert not isinstance(refused.value, AssertionError)


@pytest.mark.slow
@pytest.mark.ci
def test_recommend_with_the_default_model(offline_env):
    """The real default model (+ the shipped adapter when present) on the sample wardrobe."""
    result = CliRunner().invoke(cli, ["recommend", "--item", "top-03", "--season", "winter", "-n", "2"])
    assert result.exit_code == 0, result.output
    assert "Outfit 1" in result.output and "Outfit 2" in result.output


def test_sample_wardrobe_ships_complete():
    root = sample_wardrobe_path()
    catalog = load_catalog(root)
    assert set(catalog.categories()) == {"top", "bottom", "shoes", "bag", "outerwear", "accessory"}
    assert 20 <= len(catalog.items) <= 30
    for item in catalog.items.values():
        assert item.caption and item.title and not item.image.startswith("/")
        with Image.open(catalog.image_path(item)) as photo:
            assert photo.size == (96, 120)
    assert sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) < 500_000
