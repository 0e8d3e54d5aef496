#!/usr/bin/env bash
# Run the unit tests of the modules that hold raw memory (storage, layout, view, dlpack) under Miri,
# the Rust interpreter that detects undefined behaviour (out-of-bounds reads, use-after-free,
# invalid alignment, leaks). Needs the nightly toolchain with the miri component; installs it if
# rustup can. Usage: bash scripts/miri.sh [extra test filters...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! cargo +nightly miri --version >/dev/null 2>&1; then
  rustup component add --toolchain nightly miri rust-src
fi
# Separate target dir: Miri's build artefacts do not mix with normal ones.
export CARGO_TARGET_DIR="${MIRI_TARGET_DIR:-target/miri}"
# Isolation off only for the temp files some tests create; rayon's threads are fine under Miri.
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-disable-isolation}"
filters=("${@:-storage:: layout:: view:: dlpack::}")
# shellcheck disable=SC2068
cargo +nightly miri test -p tensorbridge --lib -- ${filters[@]}
