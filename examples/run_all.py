"""Run every example in this folder, in order, printing a header before each."""
import pathlib
import runpy
import sys

here = pathlib.Path(__file__).parent
failed = 0
for path in sorted(here.glob("[0-9][0-9]_*.py")):
    print(f"\n===== {path.name} =====", flush=True)
    try:
        runpy.run_path(str(path), run_name="__main__")
    except Exception as e:  # report and keep going, fail at the end
        failed += 1
        print(f"FAILED: {type(e).__name__}: {e}", file=sys.stderr)
sys.exit(1 if failed else 0)
