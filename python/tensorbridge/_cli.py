"""The ``tensorbridge`` console script (``pip install`` puts it on the PATH).

It runs the same Rust code as the cargo-built ``tensorbridge`` binary
(``tensorbridge_cli::run``), through the compiled ``_core`` module.
"""

from __future__ import annotations

import signal
import sys
from typing import NoReturn


def main() -> NoReturn:
    """Run ``tensorbridge`` with ``sys.argv`` and exit with its exit code."""
    from . import _core

    # Ctrl-C stops the command at once, as it does the native binary (Python's
    # own handler would wait for the Rust code to return to the interpreter).
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    # The Rust code writes to file descriptors 1 and 2 directly.
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(_core._cli_main(sys.argv))


if __name__ == "__main__":
    main()
