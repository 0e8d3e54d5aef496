#!/usr/bin/env bash
# Build tensorbridge and run every test: formatting and lints, Rust (unit, doc, property) and
# Python (NumPy/TF/JAX/Ray oracles). Miri runs separately: bash scripts/miri.sh (see README).
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
"$VPY" -m pip install -q -r requirements-dev.txt
echo "== cargo fmt --check" && cargo fmt --all --check
echo "== cargo clippy" && cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== mypy" && "$VPY" -m mypy
echo "== cargo test" && cargo test --workspace --quiet
install_package
echo "== pytest" && "$VPY" -m pytest -q tests "$@"
echo "== examples" && "$VPY" examples/run_all.py >/dev/null
echo "All tests passed."
