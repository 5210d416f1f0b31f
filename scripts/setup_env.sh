#!/usr/bin/env bash
# Create/refresh the project's virtual environment (.venv) on a fresh clone.
# - keeps an importable torch (users with a GPU build keep theirs);
# - otherwise installs torch==2.13.0, whose CPU wheel is available locally on our machines
#   (any other torch spec pulls a multi-GB CUDA build);
# - then installs this package with the requested extras (default: sb3,dev).
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-sb3,dev}"
PY="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"
STAMP="$VENV/.vase_rl_installed"
# Re-install only when the project metadata changed since the last install.
if [ -f "$STAMP" ] && [ "$STAMP" -nt pyproject.toml ] && [ "$(cat "$STAMP")" = "$EXTRAS" ]; then
  exit 0
fi
"$VPY" -m pip install --quiet --upgrade pip setuptools wheel >/dev/null 2>&1 || true
if ! "$VPY" -c "import torch" >/dev/null 2>&1; then
  echo "[setup] installing torch==2.13.0 (CPU wheel)"
  "$VPY" -m pip install --quiet "torch==2.13.0"
fi
echo "[setup] installing vase-rl[$EXTRAS]"
"$VPY" -m pip install --quiet -e ".[$EXTRAS]"
echo "$EXTRAS" > "$STAMP"
