"""Verdict self-tests: each case runs the whole conformance suite (``kovc run``) in a subprocess
against one modelled webhook on its own simulated cluster, then reads its report.json."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
#: The verdict runs shrink every timeout further than the sim default (0.05): a failing model spends its
#: time waiting for operations that never succeed, and the outcome does not depend on how long it waits.
VERDICT_TIMEOUT_SCALE = os.environ.get("KOVC_VERDICT_TIMEOUT_SCALE", "0.02")


@dataclass
class Run:
    exit_code: int
    report: dict[str, Any]
    output: str
    report_dir: Path

    def outcomes(self) -> dict[str, str]:
        """Outcome by requirement, for this kind of run: a normal run's report also lists the upgrade.*
        family (not-run: upgrade runs only), which the per-release tables leave out."""
        upgrade = self.report.get("upgrade") is not None
        return {r["id"]: r["outcome"] for r in self.report.get("requirements", [])
                if upgrade or not r["id"].startswith("upgrade.")}

    def requirement(self, rid: str) -> dict[str, Any]:
        return next(r for r in self.report["requirements"] if r["id"] == rid)

    def explain(self) -> str:
        return f"exit {self.exit_code}; report {self.report_dir}\n{self.output[-3000:]}"


def run_kovc(tmp_path: Path, *args: str, timeout: float = 300) -> Run:
    report_dir = tmp_path / "report"
    cmd = [sys.executable, "-m", "conformance", "run", "--backend", "sim", "--report-dir", str(report_dir),
           *args]
    if "--timeout-scale" not in args:
        cmd += ["--timeout-scale", VERDICT_TIMEOUT_SCALE]
    cmd += ["--", "-p", "no:cacheprovider", "-q"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=timeout)
    report_file = report_dir / "report.json"
    report = json.loads(report_file.read_text()) if report_file.exists() else {}
    return Run(proc.returncode, report, proc.stdout + proc.stderr, report_dir)


@pytest.fixture
def kovc(tmp_path: Path) -> Callable[..., Run]:
    def _run(*args: str, timeout: float = 300) -> Run:
        return run_kovc(tmp_path, *args, timeout=timeout)
    return _run


@dataclass
class Served:
    """A ``kovc sim serve`` started apart from the run (the cluster a ``--backend existing`` run uses)."""

    kubeconfig: Path
    audit: Path
    proc: subprocess.Popen[bytes]


@contextlib.contextmanager
def serve_sim(tmp_path: Path, *args: str) -> Iterator[Served]:
    """``kovc sim serve`` with an audit log (plus ``args``), ready within 30 s, stopped with SIGINT after."""
    ready = tmp_path / "ready.json"
    kubeconfig, audit = tmp_path / "kubeconfig", tmp_path / "audit.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "conformance", "sim", "serve", "--kubeconfig", str(kubeconfig),
                             "--audit-log", str(audit), "--ready-file", str(ready), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert proc.poll() is None, "kovc sim serve exited early"
        assert time.monotonic() < deadline, "kovc sim serve did not become ready in 30 s"
        time.sleep(0.05)
    try:
        yield Served(kubeconfig, audit, proc)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
