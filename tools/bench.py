#!/usr/bin/env python3
"""Speed benchmark of the suite on the simulated cluster (a benchmark, not a test: it prints figures).

Measures, in one invocation so the figures are comparable (timings on a shared machine vary from run to
run: compare the ratios, which are taken within this invocation):
  1. wall time of the baseline suite, serial, and with ``-n 2`` (xdist);
  2. wall time of the extended suite against the default model, serial and with ``-n 2``;
  3. wall time of an extended run against a failing model (default: Kube-OVN v1.14.2), and its ratio
     to the default model's extended run;
  4. the median lag from "condition true in the sim" to "the suite's watch-based wait observed it".

With ``--compare DIR`` (a checkout of another revision, e.g. ``git worktree add /tmp/old main``) every
suite configuration is run alternately with that tree's code and this one's, ``--repeat`` times, and
the medians and new/old ratios are printed (issue #12's before/after figures).

Targets (issues #6 and #12): baseline serial <= 30 s; failing-model extended <= 1.5 x default extended;
extended -n 2 <= 0.6 x extended serial; lag <= 50 ms.
Each ``kovc run`` is started without a ``PYTHONDONTWRITEBYTECODE`` of the environment (kovc's default:
byte code in its own cache, see ``conformance._bytecode``); ``--no-bytecode`` keeps it, so every process
compiles its imports from source as before stop 18.

Usage: python tools/bench.py [--failing-model v1.14.2] [--lag-samples 40] [--skip-suite] [--skip-lag]
                             [--compare DIR] [--repeat N] [--no-bytecode]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from conformance.kube import Kind, Kube
from conformance.sim.cluster import SimCluster
from conformance.sim.config import SimConfig
from conformance.sim.resources import CONFIGMAPS
from conformance.waits import wait_for

CONFIGMAP = Kind("", "v1", "configmaps", "ConfigMap", True)


#: ``--no-bytecode``: keep a PYTHONDONTWRITEBYTECODE of the environment (every process compiles its imports).
keep_no_bytecode = False


def timed_run(args: list[str], tree: str | None = None) -> tuple[float, int]:
    """Wall time and exit code of one ``kovc run --backend sim`` (with ``tree``'s code when given)."""
    env = dict(os.environ)
    if not keep_no_bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # kovc's default: byte code in its cache (conformance._bytecode)
    if tree:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (tree, env.get("PYTHONPATH", "")) if p)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "conformance", "run", "--backend", "sim", "--report-dir",
               str(Path(tmp) / "report"), *args]
        start = time.monotonic()
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, env=env)
        return time.monotonic() - start, proc.returncode


def measure_lag(samples: int) -> list[float]:
    """Flip a ConfigMap field inside the sim (store write on the sim's loop, timestamped there) while
    the suite's ``wait_for`` follows a watch for it; lag = observed - written."""
    lags: list[float] = []
    with SimCluster(SimConfig()) as cluster, tempfile.TemporaryDirectory() as tmp:
        kubeconfig = cluster.write_kubeconfig(Path(tmp) / "kubeconfig")
        kube = Kube(str(kubeconfig), None, run_id="bench")
        kube.create(CONFIGMAP, "default", {"metadata": {"name": "lag"}, "data": {"n": "0"}})
        for i in range(1, samples + 1):
            written: dict[str, float] = {}

            def flip(n: int = i, out: dict[str, float] = written) -> None:
                def write(store: Any) -> None:
                    def edit(obj: dict[str, Any]) -> None:
                        obj["data"]["n"] = str(n)
                    store.mutate(CONFIGMAPS, "default", "lag", edit, user_agent="bench-sim/1")
                    out["t"] = time.monotonic()
                cluster.call(write)

            timer = threading.Timer(0.05, flip)
            timer.start()
            wait_for(kube, CONFIGMAP, "default", "lag", lambda o, n=i: o.get("data", {}).get("n") == str(n),
                     timeout=10, what=f"data.n == {i}")
            observed = time.monotonic()
            timer.join()
            lags.append(observed - written["t"])
        kube.close()
    return lags


def suite_figures(failing: str, trees: dict[str, str | None], repeat: int) -> dict[str, dict[str, float]]:
    """Median wall time of each configuration for each tree, runs interleaved (tree by tree, config by
    config, ``repeat`` rounds) so that load on the machine hits every tree alike."""
    configs = {
        "baseline serial": ["--profile", "baseline"],
        "baseline -n 2": ["--profile", "baseline", "-n", "2"],
        "extended serial": ["--profile", "extended"],
        "extended -n 2": ["--profile", "extended", "-n", "2"],
        f"extended {failing}": ["--profile", "extended", "--kube-ovn-version", failing],
    }
    walls: dict[str, dict[str, list[float]]] = {t: {c: [] for c in configs} for t in trees}
    for _ in range(repeat):
        for config, args in configs.items():
            for label, tree in trees.items():
                wall, code = timed_run(args, tree)
                walls[label][config].append(wall)
                print(f"  {label:4s} {config:22s} {wall:6.1f} s (exit {code})", flush=True)
    return {t: {c: statistics.median(v) for c, v in per.items()} for t, per in walls.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--failing-model", default="v1.14.2")
    parser.add_argument("--lag-samples", type=int, default=40)
    parser.add_argument("--skip-suite", action="store_true", help="only measure the lag")
    parser.add_argument("--skip-lag", action="store_true", help="only measure the suite")
    parser.add_argument("--compare", metavar="DIR", help="also run another checkout's code, interleaved")
    parser.add_argument("--repeat", type=int, default=1, metavar="N", help="rounds (medians are printed)")
    parser.add_argument("--no-bytecode", action="store_true",
                        help="keep PYTHONDONTWRITEBYTECODE from the environment (no byte-code cache)")
    args = parser.parse_args()
    global keep_no_bytecode
    keep_no_bytecode = args.no_bytecode
    if not args.skip_suite:
        trees: dict[str, str | None] = {"new": None}
        if args.compare:
            trees = {"old": str(Path(args.compare).resolve()), "new": None}
        figures = suite_figures(args.failing_model, trees, max(args.repeat, 1))
        failing = f"extended {args.failing_model}"
        for label, fig in figures.items():
            print(f"{label}: medians over {max(args.repeat, 1)} round(s)")
            for config, wall in fig.items():
                print(f"  {config:22s} {wall:6.1f} s")
            print(f"  ratios: {failing} / extended serial = {fig[failing] / fig['extended serial']:.2f} "
                  f"(target <= 1.5); extended -n 2 / serial = "
                  f"{fig['extended -n 2'] / fig['extended serial']:.2f} (target <= 0.6); baseline -n 2 / "
                  f"serial = {fig['baseline -n 2'] / fig['baseline serial']:.2f}")
        if "old" in figures:
            old, new = figures["old"], figures["new"]
            print("new / old:")
            for config in new:
                print(f"  {config:22s} {new[config] / old[config]:.2f}"
                      + ("  (target <= 0.6)" if config == "baseline serial" else ""))
    if not args.skip_lag:
        lags = measure_lag(args.lag_samples)
        print(f"condition-to-observed lag:   median {statistics.median(lags) * 1000:.1f} ms, "
              f"p90 {sorted(lags)[int(len(lags) * 0.9) - 1] * 1000:.1f} ms over {len(lags)} samples "
              "(target <= 50 ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
