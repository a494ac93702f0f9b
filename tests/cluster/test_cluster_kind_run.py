"""``kovc run --backend kind``: create -> install -> scenarios -> delete, with stand-in kind/helm/docker
and a simulated cluster behind them (the scenarios run against it through the real kubectl-installed
objects)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cluster_helpers import StandIns, needs_world

from conformance import versions


@needs_world
def test_kovc_run_kind_quick_profile(standins: StandIns, manifests_dir: Path, tmp_path: Path) -> None:
    report = tmp_path / "report"
    proc = subprocess.run([sys.executable, "-m", "conformance", "run", "--backend", "kind", "--profile", "quick",
                           "--manifests-dir", str(manifests_dir), "--report-dir", str(report),
                           "--timeout-scale", "0.05"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:])
    data = json.loads((report / "report.json").read_text())
    assert data["backend"] == "kind" and data["simulated"] is True and data["verdict"] == "conformant"
    assert data["versions"]["kube_ovn_webhook"] == versions.KUBE_OVN_VERSION
    assert data["versions"]["kind_node_image"] == versions.KIND_NODE_IMAGE
    outcomes = {r["id"]: r["outcome"] for r in data["requirements"]}
    assert outcomes["allow.restart"] == "passed" and outcomes["deny.other-vm"] == "passed"
    kind_calls = standins.calls("kind")
    assert sum(c[:2] == ["create", "cluster"] for c in kind_calls) == 1
    assert sum(c[:2] == ["delete", "cluster"] for c in kind_calls) == 1
    assert standins.running_clusters() == []
    assert "kovc kind [" in proc.stderr and "deleting kind cluster kovc" in proc.stderr


@needs_world
def test_kovc_run_kind_upgrade(standins: StandIns, tmp_path: Path, monkeypatch: Any) -> None:
    """Issue 13 on kind: install v1.16.0 (chart v2), create the VMs, `helm upgrade` to the chart of v1.16.2
    and apply its webhook.yaml, then the after-checks (stand-in helm sets the controller's image)."""
    from cluster_helpers import write_manifests_dir

    manifests = write_manifests_dir(tmp_path / "manifests", "v1.16.0")
    write_manifests_dir(manifests, "v1.16.2")
    monkeypatch.setenv("KOVC_STANDIN_SIM_ARGS", "--kube-ovn-version v1.16.0")
    report = tmp_path / "report"
    proc = subprocess.run([sys.executable, "-m", "conformance", "run", "--backend", "kind", "--upgrade-from",
                           "v1.16.0", "--manifests-dir", str(manifests), "--report-dir", str(report),
                           "--timeout-scale", "0.05"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    data = json.loads((report / "report.json").read_text())
    assert data["upgrade"]["from"] == "v1.16.0" and data["upgrade"]["to"] == "v1.16.2"
    assert data["upgrade"]["method"].startswith("helm upgrade kubeovn charts/kube-ovn-v2 (of v1.16.2)")
    outcomes = {r["id"]: r["outcome"] for r in data["requirements"]}
    assert all(outcomes[i] == "passed" for i in ("upgrade.ips-kept", "upgrade.restart-after",
                                                  "upgrade.collisions-denied-after")), outcomes
    helm = [c for c in standins.calls("helm") if c[:1] == ["upgrade"]]
    tags = [a for c in helm for a in c if a.startswith("global.images.kubeovn.tag=")]
    assert tags == ["global.images.kubeovn.tag=v1.16.0", "global.images.kubeovn.tag=v1.16.2"], helm


@needs_world
def test_install_failure_logs_land_in_the_report_bundle(standins: StandIns, manifests_dir: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 10 item 2: after a failed install, `kind export logs` writes into <report dir>/cluster-logs,
    which the workflow uploads, and MANIFEST.sha256 covers them."""
    monkeypatch.setenv("KOVC_STANDIN_HELM_FAIL", "1")
    report = tmp_path / "report"
    proc = subprocess.run([sys.executable, "-m", "conformance", "run", "--backend", "kind", "--profile", "quick",
                           "--manifests-dir", str(manifests_dir), "--report-dir", str(report),
                           "--timeout-scale", "0.05"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, (proc.stdout[-2000:], proc.stderr[-2000:])
    logs = report.resolve() / "cluster-logs"
    assert ["export", "logs", str(logs), "--name=kovc"] in standins.calls("kind")
    assert (logs / "kind-version.txt").is_file()
    assert f"cluster logs in {logs}" in proc.stdout + proc.stderr
    manifest = (report / "MANIFEST.sha256").read_text()
    assert "cluster-logs/kind-version.txt" in manifest, manifest
    assert standins.running_clusters() == []
