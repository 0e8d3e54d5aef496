# Shared by demo.sh and test.sh: make ./.venv (Python 3.11+ with pip) and build +
# install tensorbridge into it with `pip install .` (maturin builds the Rust extension).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPY="$ROOT/.venv/bin/python"
"$VPY" -m pip install -q --upgrade pip >/dev/null
install_package() {
  # Build and install from the working tree (not editable: tests import the installed package).
  "$VPY" -m pip install -q --no-deps --force-reinstall . 
  "$VPY" -m pip install -q "numpy>=1.24" "ml_dtypes>=0.3"
}
