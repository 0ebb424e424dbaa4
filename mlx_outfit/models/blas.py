"""Fast CPU BLAS on Linux.

The Linux mlx-cpu wheel links a reference BLAS; OpenBLAS computes the same fp32 matmuls
~15× faster. It must be preloaded before Python starts, so entry points re-execute
themselves once with ``LD_PRELOAD`` set. Set ``MLX_OUTFIT_NO_OPENBLAS=1`` to opt out.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

OPENBLAS_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3",
    "/usr/lib/aarch64-linux-gnu/openblas-pthread/libblas.so.3",
    "/usr/lib64/libopenblas.so.0",
)
_MARK = "MLX_OUTFIT_BLAS_CHECKED"


def openblas_path() -> str | None:
    """The OpenBLAS library to preload, or None when not on Linux or not installed."""
    if not sys.platform.startswith("linux"):
        return None
    return next((p for p in OPENBLAS_CANDIDATES if Path(p).is_file()), None)


def openblas_active() -> bool:
    lib = openblas_path()
    return bool(lib) and lib in os.environ.get("LD_PRELOAD", "")


def openblas_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of ``env`` with OpenBLAS preloaded (unchanged when unavailable or opted out)."""
    env = dict(os.environ if env is None else env)
    lib = openblas_path()
    if lib and not env.get("MLX_OUTFIT_NO_OPENBLAS") and lib not in env.get("LD_PRELOAD", ""):
        env["LD_PRELOAD"] = ":".join(p for p in (lib, env.get("LD_PRELOAD", "")) if p)
    return env


def ensure_openblas() -> None:
    """Re-execute the current process once with OpenBLAS preloaded; a no-op where not possible."""
    if os.environ.get(_MARK) or os.environ.get("MLX_OUTFIT_NO_OPENBLAS") or "mlx" in sys.modules:
        return
    env = openblas_env()
    env[_MARK] = "1"
    if env.get("LD_PRELOAD") == os.environ.get("LD_PRELOAD"):
        return
    try:
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
    except OSError:
        return  # fall back to the bundled BLAS: slower, same results
