"""Issue 9 items 4 and 6: a run ends cleanly whatever ends it.

* SIGTERM and SIGHUP (what CI cancellations and timeouts send) mid-scenario: the scenarios stop, the
  report bundle is written (saying which signal), nothing labelled with the run is left, exit 3;
* ``kill -9`` of ``kovc run --backend sim`` (serial and under xdist): its ``kovc sim serve`` stops by
  itself instead of serving on, re-parented to init.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.kube import Kube

from .conftest import Served, serve_sim

KINDS = ("Namespace", "Pod", "VirtualMachine", "VirtualMachineInstanceMigration", "Subnet", "Vpc")



@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    # the reference policy: a run on it is conformant (with Multus, v1.16.2 fails deny.attachment-other-vm)
    with serve_sim(tmp_path, "--sim-webhook-policy", "reference") as served:
        yield served


def labelled(kubeconfig: Path) -> list[str]:
    kube = Kube(str(kubeconfig), None, run_id="probe")
    try:
        return [f"{kind}/{(o['metadata'].get('namespace') or '')}/{o['metadata']['name']}"
                for kind in KINDS for o in kube.list(kind, None, label_selector="kovc.io/run")]
    finally:
        kube.close()


def wait_for_vm_create(audit: Path, proc: subprocess.Popen[str], bound: float = 120) -> None:
    deadline = time.monotonic() + bound
    while True:
        assert proc.poll() is None, "the run ended before it created a VM"
        assert time.monotonic() < deadline, f"no VM created by kovc within {bound} s"
        text = audit.read_text() if audit.exists() else ""
        if any('"virtualmachines.kubevirt.io"' in line and '"kovc/' in line and '"create"' in line
               for line in text.splitlines()):
            return
        time.sleep(0.02)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_stop_signal_mid_scenario_cleans_up_reports_and_exits_3(sig: signal.Signals, served: Served,
                                                                  tmp_path: Path) -> None:
    report = tmp_path / "report"
    proc = subprocess.Popen([sys.executable, "-m", "conformance", "run", "--backend", "existing",
                             "--kubeconfig", str(served.kubeconfig), "--report-dir", str(report),
                             "--timeout-scale", "0.02", "--profile", "baseline"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for_vm_create(served.audit, proc)
    assert labelled(served.kubeconfig), "the run's labelled objects are not visible mid-run"
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 3, out[-3000:]
    assert "Traceback" not in out and "INTERNALERROR" not in out, out[-3000:]
    assert f"stopped by {sig.name}" in out, out[-3000:]
    assert labelled(served.kubeconfig) == [], out[-3000:]
    data = json.loads((report / "report.json").read_text())
    assert f"the run was interrupted by {sig.name}" in data["warnings"], data["warnings"]
    assert any(r["reason"] == "the run was interrupted before it finished" for r in data["requirements"]
               if r["outcome"] == "not-run")
    assert data["stopped_by"] == sig.name, data.get("stopped_by")
    # the verdict line says the exit code the run has (3), not the one its verdict alone would give
    verdict_lines = [line for line in out.splitlines() if line.startswith("kovc Verdict:")]
    assert verdict_lines and all(line.split(" — SIMULATED")[0].endswith(
        f"stopped by {sig.name} before it finished (exit 3)") for line in verdict_lines), verdict_lines
    assert f"stopped by {sig.name} before it finished (exit 3)" in (report / "report.md").read_text()
    assert (report / "MANIFEST.sha256").is_file()


def _servers_for(marker: str) -> list[int]:
    """pids of ``conformance sim serve`` processes whose command line mentions ``marker``."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        text = [a.decode(errors="replace") for a in args]
        if "serve" in text and "sim" in text and any(marker in a for a in text):
            out.append(int(entry.name))
    return out


def _wait_gone(pid: int, bound: float) -> bool:
    """Follow a pidfd until ``pid`` exits (True) or ``bound`` expires (False)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([fd], [], [], bound)
        return bool(readable)
    finally:
        os.close(fd)


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists() or not hasattr(os, "pidfd_open"),
                    reason="needs procfs and pidfd_open (Linux)")
@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_kill_9_of_the_run_takes_the_sim_server_with_it(workers: list[str], tmp_path: Path) -> None:
    report = tmp_path / "report"
    proc = subprocess.Popen([sys.executable, "-m", "conformance", "run", "--backend", "sim", "--report-dir",
                             str(report), "--profile", "baseline", *workers],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        audit = report / "sim-audit.jsonl"
        deadline = time.monotonic() + 120
        servers: list[int] = []
        while not servers:
            assert proc.poll() is None, "the run ended before its simulated cluster served"
            assert time.monotonic() < deadline, "no simulated cluster within 120 s"
            if audit.exists() and audit.stat().st_size > 0:
                servers = _servers_for(str(audit))
            time.sleep(0.05)
        proc.kill()  # SIGKILL: no handler, no teardown
        proc.wait(10)
        for pid in servers:
            assert _wait_gone(pid, 15), f"kovc sim serve (pid {pid}) still runs 15 s after kill -9 of its run"
    finally:
        with_group = proc.pid
        try:
            os.killpg(with_group, signal.SIGKILL)  # xdist workers of the killed run, if any linger
        except ProcessLookupError:
            pass
        for pid in _servers_for(str(report)):
            os.kill(pid, signal.SIGKILL)


def test_cleanup_all_mid_run_leaves_the_live_run_alone(served: Served, tmp_path: Path) -> None:
    """Issue 9 item 7: ``kovc cleanup --all`` while a run is in progress skips it; the run stays
    conformant, and after it ended nothing of it is left."""
    report = tmp_path / "report"
    proc = subprocess.Popen([sys.executable, "-m", "conformance", "run", "--backend", "existing",
                             "--kubeconfig", str(served.kubeconfig), "--report-dir", str(report),
                             "--timeout-scale", "0.02", "--profile", "baseline"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for_vm_create(served.audit, proc)
    cleanup = subprocess.run([sys.executable, "-m", "conformance", "cleanup", "--all", "--kubeconfig",
                              str(served.kubeconfig)], capture_output=True, text=True, timeout=60)
    out, _ = proc.communicate(timeout=300)
    assert cleanup.returncode == 0, cleanup.stdout + cleanup.stderr
    run_id = json.loads((report / "report.json").read_text())["run_id"]
    assert f"skipped run {run_id}: live (heartbeat" in cleanup.stdout, cleanup.stdout
    assert not any(line.startswith("deleted") for line in cleanup.stdout.splitlines()), cleanup.stdout
    assert proc.returncode == 0, out[-3000:]
    assert labelled(served.kubeconfig) == []
