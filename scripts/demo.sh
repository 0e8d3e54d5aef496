#!/usr/bin/env bash
# Build tensorbridge and run every example (the source articles' code, rewritten).
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
install_package
"$VPY" examples/run_all.py
