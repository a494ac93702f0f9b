#!/usr/bin/env python3
"""Repeatability: run the full suite N times (default 20) on the simulated cluster and print how many
runs' verdicts differ from the first (the run verdict and every requirement's outcome are compared).

Usage: python tools/repeat.py [--runs 20] [-- extra kovc run options, e.g. --kube-ovn-version v1.14.2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one_run(extra: list[str]) -> tuple[int, dict[str, str], str]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report"
        proc = subprocess.run([sys.executable, "-m", "conformance", "run", "--backend", "sim",
                               "--report-dir", str(report), *extra], cwd=tmp, capture_output=True, text=True)
        data = json.loads((report / "report.json").read_text()) if (report / "report.json").exists() else {}
        outcomes = {r["id"]: r["outcome"] for r in data.get("requirements", [])}
        return proc.returncode, outcomes, data.get("verdict", "no report")


def main() -> int:
    argv = sys.argv[1:]
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args(argv)
    if not any(a.startswith("--profile") for a in extra):
        extra = ["--profile", "extended", *extra]
    first: tuple[int, dict[str, str], str] | None = None
    differing = 0
    start = time.monotonic()
    for i in range(1, args.runs + 1):
        code, outcomes, verdict = one_run(extra)
        if first is None:
            first = (code, outcomes, verdict)
            print(f"run {i:2d}: exit {code}, {verdict} (reference)")
            continue
        diff = {rid: (first[1].get(rid), out) for rid, out in outcomes.items() if first[1].get(rid) != out}
        same = code == first[0] and not diff and set(outcomes) == set(first[1])
        differing += 0 if same else 1
        print(f"run {i:2d}: exit {code}, {verdict}" + ("" if same else f"  DIFFERS: {diff}"))
    print(f"{differing} of {args.runs - 1} runs differ from the first "
          f"({time.monotonic() - start:.0f} s in all)")
    return 1 if differing else 0


if __name__ == "__main__":
    raise SystemExit(main())
