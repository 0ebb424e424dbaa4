# Sourced by scripts/quickstart and scripts/test: create or reuse .venv, install the package
# (with the extras named in $MLX_OUTFIT_EXTRAS), and bring OpenBLAS on Linux where we can.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
  || { echo "error: Python >= 3.10 is required (found $("$PYTHON" --version 2>&1))" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PYTHON" -m venv .venv
fi
# shellcheck disable=SC1091
source .venv/bin/activate

# OpenBLAS makes MLX's fp32 CPU matmuls ~15x faster on Linux (the mlx-cpu wheel links a
# reference BLAS). Installed only where we are root with apt; everything works without it.
if [ "$(uname -s)" = "Linux" ] && [ ! -e /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3 ] \
   && [ ! -e /usr/lib/aarch64-linux-gnu/openblas-pthread/libblas.so.3 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "==> installing OpenBLAS (apt-get install libopenblas0-pthread)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas0-pthread) >/dev/null \
      || echo "warning: could not install OpenBLAS; MLX will use its bundled (slower) BLAS" >&2
  else
    echo "note: install libopenblas0-pthread for ~15x faster CPU matmuls (optional)" >&2
  fi
fi

echo "==> installing mlx-outfit${MLX_OUTFIT_EXTRAS:+[$MLX_OUTFIT_EXTRAS]} into .venv"
python -m pip install -q --upgrade pip
python -m pip install -q -e ".${MLX_OUTFIT_EXTRAS:+[$MLX_OUTFIT_EXTRAS]}"

# Preload OpenBLAS for every Python started from here on (pytest, benchmarks).
eval "$(python -c 'from mlx_outfit.models.blas import openblas_env; import shlex; e = openblas_env(); print("export LD_PRELOAD=" + shlex.quote(e["LD_PRELOAD"]) if e.get("LD_PRELOAD") else ":")')"
