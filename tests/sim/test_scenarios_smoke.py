"""A few conformance scenarios end to end on the simulated cluster, through the real plugin:
``pytest tests/scenarios --backend sim -k …`` in a subprocess, judged from report.json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conformance.sim.cluster import world_available

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not world_available(),
                                reason="the simulated cluster's behaviour (conformance.sim.world) is absent")


def run_scenarios(tmp_path: Path, selection: str, *extra: str) -> tuple[int, dict[str, Any], str]:
    report = tmp_path / "report"
    cmd = [sys.executable, "-m", "pytest", str(ROOT / "tests" / "scenarios"), "--backend", "sim",
           "-p", "no:cacheprovider", "-q", "-k", selection, "--report-dir", str(report), *extra]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=240, check=False)
    output = proc.stdout + proc.stderr
    path = report / "report.json"
    assert path.exists(), f"no report.json; pytest said:\n{output[-4000:]}"
    return proc.returncode, json.loads(path.read_text()), output


def requirement(report: dict[str, Any], rid: str) -> dict[str, Any]:
    return next(r for r in report["requirements"] if r["id"] == rid)


def test_default_model_admits_restart_and_denies_other_vm(tmp_path: Path) -> None:
    code, report, out = run_scenarios(tmp_path, "env or test_restart or test_other_vm or test_pod_takes")
    for rid in ("env.webhook-live", "env.keep-vm-ip", "allow.restart", "deny.other-vm",
                "deny.pod-takes-vm-ip"):
        req = requirement(report, rid)
        assert req["outcome"] == "passed", (rid, req, out[-3000:])
    assert code == 0, out[-3000:]


def test_v1_14_2_denies_restart(tmp_path: Path) -> None:
    code, report, out = run_scenarios(tmp_path, "env or test_restart", "--kube-ovn-version", "v1.14.2")
    assert requirement(report, "env.webhook-live")["outcome"] == "passed", out[-3000:]
    req = requirement(report, "allow.restart")
    assert req["outcome"] == "failed", (req, out[-3000:])
    text = json.dumps(req)
    assert 'admission webhook \\"pod-ip-validating.kube-ovn.io\\" denied the request' in text, text[:3000]
    assert code != 0


def test_webhook_off_makes_the_run_invalid(tmp_path: Path) -> None:
    code, report, out = run_scenarios(tmp_path, "env or test_pod_takes", "--sim-webhook", "off")
    assert requirement(report, "env.webhook-live")["outcome"] == "failed", out[-3000:]
    assert report["verdict"] == "invalid" and code != 0, out[-3000:]


def test_an_admitting_webhook_fails_deny_and_says_what_happened(tmp_path: Path) -> None:
    code, report, out = run_scenarios(tmp_path, "env or test_pod_takes or test_other_vm",
                                      "--sim-webhook-policy", "conformance.sim.mutants:admit_all")
    assert requirement(report, "env.webhook-live")["outcome"] == "passed", out[-3000:]
    for rid in ("deny.pod-takes-vm-ip", "deny.other-vm"):
        req = requirement(report, rid)
        assert req["outcome"] == "failed", (req, out[-3000:])
        thens = [c.get("admitted_then") for c in req.get("cases", [])]
        assert any(t in ("blocked-by-ipam", "took-over-address", "unallocated") for t in thens), req
    assert code != 0
