#!/usr/bin/env bash
# Run unit tests of the modules that hold raw memory under Miri, the Rust interpreter that
# detects undefined behaviour (out-of-bounds reads, use-after-free, invalid alignment, leaks).
# Needs the nightly toolchain with the miri component; installs it if rustup can.
#   bash scripts/miri.sh                  both groups below
#   bash scripts/miri.sh FILTER...        only the given test filters (Stacked Borrows)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! cargo +nightly miri --version >/dev/null 2>&1; then
  rustup component add --toolchain nightly miri rust-src
fi
# Separate target dir: Miri's build artefacts do not mix with normal ones.
export CARGO_TARGET_DIR="${MIRI_TARGET_DIR:-target/miri}"
# Isolation off only for the temp files some tests create.
BASE="-Zmiri-disable-isolation"
if [ "$#" -gt 0 ]; then
  MIRIFLAGS="${MIRIFLAGS:-$BASE}" cargo +nightly miri test -p tensorbridge --lib -- "$@"
  exit
fi
# 1. Storage, layout, views, DLPack: single-threaded, under Stacked Borrows (the stricter model).
MIRIFLAGS="$BASE" cargo +nightly miri test -p tensorbridge --lib -- storage:: layout:: view:: dlpack::
# 2. Pipeline stages with unsafe buffer fills (batch recycling, padded_batch, random access by
#    pread): they run on rayon, whose crossbeam-epoch trips Stacked Borrows (a known false
#    positive) and whose global pool threads are never joined, hence Tree Borrows and
#    -Zmiri-ignore-leaks here. (Tests that map files cannot run: Miri has no file mmap.)
MIRIFLAGS="$BASE -Zmiri-tree-borrows -Zmiri-permissive-provenance -Zmiri-ignore-leaks" \
  cargo +nightly miri test -p tensorbridge --lib -- data::batch data::global_tests::padded_batch \
  data::global_tests::a_file_changed
