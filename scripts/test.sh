#!/usr/bin/env bash
# Build tensorbridge and run every test: Rust (unit, doc, property) and Python (NumPy/TF oracle).
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
"$VPY" -m pip install -q -r requirements-dev.txt
echo "== cargo test" && cargo test --workspace --quiet
install_package
echo "== pytest" && "$VPY" -m pytest -q tests "$@"
echo "== examples" && "$VPY" examples/run_all.py >/dev/null
echo "All tests passed."
