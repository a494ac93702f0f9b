"""Cleanup: after a passing run, a failing run and a run interrupted by SIGINT mid-scenario, nothing
labelled ``kovc.io/run`` remains (cluster-scoped kinds included), and the simulated cluster's audit log
shows no request from kovc touching anything but what the run itself created.

The cluster here is a separately started ``kovc sim serve --audit-log F`` reached through
``--backend existing`` — the same path a vendor's cluster takes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import Served, serve_sim

#: Every kind the suite may create, cluster-scoped ones included.
KINDS = ("namespaces", "pods", "configmaps", "virtualmachines", "virtualmachineinstances",
         "virtualmachineinstancemigrations", "virtualmachineclones", "ips", "subnets", "vpcs",
         "network-attachment-definitions")
CLUSTER_SCOPED_CREATES = {"subnets.kubeovn.io", "vpcs.kubeovn.io"}



@pytest.fixture
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    """``kovc sim serve`` of a release (param: ``VERSION [serve args…]``; default v1.16.2), or of the ``reference``
    policy (a cluster every selected requirement passes on: with Multus, v1.16.2 fails deny.attachment-other-vm)."""
    model, *extra = getattr(request, "param", "v1.16.2").split()
    args = ("--sim-webhook-policy", "reference") if model == "reference" else ("--kube-ovn-version", model)
    with serve_sim(tmp_path, *args, *extra) as served:
        yield served


def kovc_run(served: Served, tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "conformance", "run", "--backend", "existing",
                             "--kubeconfig", str(served.kubeconfig), "--report-dir", str(tmp_path / "report"),
                             "--timeout-scale", "0.02", *args],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=_default_sigint)


def _default_sigint() -> None:
    """The run gets Ctrl-C's default disposition even when this test process was started with SIGINT
    ignored (a background job of a non-interactive shell, e.g. ``cmd &`` in a CI script): Python installs
    its KeyboardInterrupt handler only when SIGINT is not ignored at start, so such a kovc would rightly
    ignore the SIGINT below, as any background job does."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def leftovers(served: Served) -> list[str]:
    out = subprocess.run(["kubectl", "--kubeconfig", str(served.kubeconfig), "get", ",".join(KINDS), "-A",
                          "-l", "kovc.io/run", "-o", "name"], capture_output=True, text=True, check=True)
    return [line for line in out.stdout.splitlines() if line.strip()]


def audit_violations(served: Served) -> list[str]:
    """kovc's mutating requests that touched something the run did not create."""
    rows: list[dict[str, Any]] = [json.loads(line) for line in served.audit.read_text().splitlines() if line]
    mine = [r for r in rows if r["userAgent"].startswith("kovc/") and not r.get("dryRun")]
    assert mine, "the audit log shows no request from kovc at all"
    namespaces = {r["name"] for r in mine if r["verb"] == "create" and r["resource"] == "namespaces"}
    created = {(r["resource"], r["namespace"], r["name"]) for r in mine if r["verb"] == "create"}
    bad = []
    for r in mine:
        key = (r["resource"], r["namespace"], r["name"])
        if r["verb"] == "create":
            ok = r["resource"] == "namespaces" or r["namespace"] in namespaces or \
                r["resource"] in CLUSTER_SCOPED_CREATES
        else:
            ok = key in created or r["namespace"] in namespaces or \
                (r["resource"] == "namespaces" and r["name"] in namespaces)
        if not ok:
            bad.append(f"{r['verb']} {r['resource']} {r['namespace']}/{r['name']} ({r['path']})")
    return bad


@pytest.mark.parametrize("served", ["reference"], indirect=True)
def test_passing_run_leaves_nothing(served: Served, tmp_path: Path) -> None:
    proc = kovc_run(served, tmp_path, "--profile", "baseline")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    assert leftovers(served) == []
    assert audit_violations(served) == []


@pytest.mark.parametrize("served", ["v1.14.2"], indirect=True)
def test_failing_run_leaves_nothing(served: Served, tmp_path: Path) -> None:
    proc = kovc_run(served, tmp_path, "--profile", "quick")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1, out[-3000:]
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["backend"] == "existing" and report["simulated"] is True
    assert leftovers(served) == []
    assert audit_violations(served) == []


# Each controller step paced at 20 ms keeps the run mid-scenario for tens of seconds, so the interrupt below
# lands while a scenario runs however fast or loaded the machine is (at the 5 ms default a quiet machine
# finished the whole baseline before the signal arrived). The run is stopped right after its first VM, so the
# slow pacing costs only that first VM's start.
@pytest.mark.parametrize("served", ["v1.16.2 --sim-step-delay 0.02"], indirect=True)
def test_sigint_mid_scenario_leaves_nothing(served: Served, tmp_path: Path) -> None:
    proc = kovc_run(served, tmp_path, "--profile", "baseline", "--timeout-scale", "1")
    deadline = time.monotonic() + 120
    # Interrupt as soon as the run has a VM of its own: mid-scenario.
    while True:
        assert proc.poll() is None, "the run ended before it created a VM"
        assert time.monotonic() < deadline, "no VM created by kovc within 120 s"
        text = served.audit.read_text() if served.audit.exists() else ""
        if any('"virtualmachines.kubevirt.io"' in line and '"kovc/' in line and '"create"' in line
               for line in text.splitlines()):
            break
        time.sleep(0.02)
    # The check below can fail: right now the run's objects are there, and the selector finds them.
    assert leftovers(served), "the run's labelled objects are not visible mid-run"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 3, f"expected exit 3 (stopped by a signal), got {proc.returncode}:\n{out[-3000:]}"
    assert "Traceback" not in out, out[-3000:]
    assert leftovers(served) == [], out[-3000:]
    assert audit_violations(served) == []
