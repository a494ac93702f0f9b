"""Verdict self-tests: each case runs the whole conformance suite (``kovc run``) in a subprocess
against one modelled webhook on its own simulated cluster, then reads its report.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
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
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)
    report_file = report_dir / "report.json"
    report = json.loads(report_file.read_text()) if report_file.exists() else {}
    return Run(proc.returncode, report, proc.stdout + proc.stderr, report_dir)


@pytest.fixture
def kovc(tmp_path: Path) -> Callable[..., Run]:
    def _run(*args: str, timeout: float = 300) -> Run:
        return run_kovc(tmp_path, *args, timeout=timeout)
    return _run
