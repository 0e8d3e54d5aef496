#!/usr/bin/env python
"""Old-vs-new A/B of bench_handoff.py children, interleaved per round (issue 12).

Each round runs, for each interpreter (old = the one given with ``--old``, new = this
one; their order alternates between rounds), one ``bench_handoff.py --child KIND``
per kind. Neighbouring children see the same machine conditions, so on a noisy VM
the per-round ratios and the pooled medians compare builds better than two separate
``bench_handoff.py`` runs. A benchmark, not a test.

    python bench/ab_handoff.py --old /work/main/.venv/bin/python [--rounds 6] [--epochs 3] [--only tb,tf_ds]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

BENCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_handoff.py")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--old", required=True, help="the interpreter of the old build")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--only", default="tb,tf_ds")
    a = ap.parse_args()
    pys = {"old": a.old, "new": sys.executable}
    kinds = [k for k in a.only.split(",") if k]
    rates: dict = {(w, k): [] for w in pys for k in kinds}
    cpu: dict = {(w, k): [] for w in pys for k in kinds}
    ratios: dict = {w: [] for w in pys}
    for r in range(a.rounds):
        for w in (["old", "new"] if r % 2 == 0 else ["new", "old"]):
            med = {}
            for k in kinds:
                out = subprocess.run([pys[w], BENCH, "--child", k, "--epochs", str(a.epochs)],
                                     capture_output=True, text=True)
                if out.returncode:
                    sys.exit(f"{w} {k} failed:\n{out.stderr[-3000:]}")
                res = json.loads(out.stdout.strip().splitlines()[-1])
                rates[(w, k)] += res["rates"]
                cpu[(w, k)] += res.get("cpu_ms", [])
                med[k] = statistics.median(res["rates"])
                print(f"r{r} {w} {k:8} " + " ".join(f"{x:,.0f}" for x in res["rates"])
                      + "  CPU ms/batch " + " ".join(f"{x:.2f}" for x in res.get("cpu_ms", [])), flush=True)
            if "tb" in med and "tf_ds" in med:
                ratios[w].append(med["tf_ds"] / med["tb"])
        print(f"   load average {os.getloadavg()[0]:.2f}", flush=True)
    print()
    for w in pys:
        for k in kinds:
            c = f"{statistics.median(cpu[(w, k)]):.2f}" if cpu[(w, k)] else "-"
            print(f"{w} {k:8} median {statistics.median(rates[(w, k)]):>10,.0f}  min {min(rates[(w, k)]):>9,.0f}"
                  f"  max {max(rates[(w, k)]):>9,.0f}  CPU ms/batch {c}")
        if ratios[w]:
            mt = statistics.median(rates[(w, "tf_ds")]) / statistics.median(rates[(w, "tb")])
            print(f"{w} tf_ds/tb: ratio of medians {mt:.2f}; per round "
                  + " ".join(f"{x:.2f}" for x in ratios[w]) + f" (median {statistics.median(ratios[w]):.2f})")


if __name__ == "__main__":
    main()
