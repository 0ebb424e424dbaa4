"""Shared fixtures: real shared data paths and tiny random models built at test time.

Keep fixtures that only one test module needs inside that module.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO.parent / "shared" / "data").resolve()
MANGO_DIR = SHARED_DATA / "mango"
POLYVORE_DIR = SHARED_DATA / "polyvore"
POLYVORE_VALID = POLYVORE_DIR / "valid_no_dup_with_category_3more_name.json"
POLYVORE_TRAIN = POLYVORE_DIR / "train_no_dup_with_category_3more_name.json"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data not found at {SHARED_DATA} (expected ../shared/data beside the repo)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    """A tiny random fp32 llama model folder (loads with mlx_lm.load)."""
    from mlx_outfit.testing.tiny_llm import make_tiny_llama

    return make_tiny_llama(tmp_path_factory.mktemp("tiny_llama"))


@pytest.fixture(scope="session")
def tiny_llama_4bit(tmp_path_factory) -> Path:
    """The same tiny llama, 4-bit quantized (group 32) like the default model."""
    from mlx_outfit.testing.tiny_llm import make_tiny_llama

    return make_tiny_llama(tmp_path_factory.mktemp("tiny_llama_4bit"), quantize=True)


@pytest.fixture
def run_cli(monkeypatch, capsys):
    """Run ``mlx-outfit ARGS`` in-process through the real entry point: returns (exit code, stdout, stderr)."""
    from mlx_outfit.cli.main import main

    monkeypatch.setenv("MLX_OUTFIT_NO_OPENBLAS", "1")  # no re-exec of pytest itself

    def run(*args) -> tuple[int, str, str]:
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code
        out, err = capsys.readouterr()
        return code, out, err

    return run


def polyvore_catalog(root: Path, n_train: int, n_valid: int):
    """A catalog folder of the first real Polyvore valid-file outfits: ``n_train`` train, then ``n_valid`` valid."""
    from mlx_outfit.catalog import Catalog, save_catalog
    from mlx_outfit.importers import import_polyvore

    items, outfits = import_polyvore(POLYVORE_VALID)
    outfits = outfits[: n_train + n_valid]
    for n, outfit in enumerate(outfits):
        outfit.split = "train" if n < n_train else "valid"
    used = {i for o in outfits for i in o.items}
    catalog = Catalog(root=root)
    catalog.merge([i for i in items if i.id in used], outfits)
    save_catalog(catalog)
    return catalog
