"""Issue 13 on an existing cluster: ``kovc upgrade prepare`` -> the operator upgrades -> ``kovc upgrade
verify --run-id``, against a simulated cluster served by ``kovc sim serve`` (the operator's upgrade is
``kubectl set image`` on the two Deployments, which the simulated cluster rolls out in place)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cluster_helpers import REPO, kubectl, needs_world, serve_sim


def _kovc(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "conformance", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


@needs_world
def test_prepare_upgrade_verify(tmp_path: Path) -> None:
    sim = serve_sim(tmp_path, "--kube-ovn-version", "v1.14.2")
    kc = str(sim.kubeconfig)
    try:
        prep = _kovc(tmp_path, "upgrade", "prepare", "--kubeconfig", kc, "--timeout-scale", "0.05")
        assert prep.returncode == 0, prep.stdout + prep.stderr
        run_id = prep.stdout.strip().splitlines()[-1]
        assert f"kovc upgrade verify --run-id {run_id}" in prep.stdout
        cms = json.loads(kubectl(sim.kubeconfig, "get", "configmaps", "-A", "-l",
                                 f"kovc.io/run={run_id},kovc.io/upgrade-state", "-o", "json").stdout)["items"]
        assert len(cms) == 1 and "state.json" in cms[0]["data"], cms
        # Verifying before the upgrade is refused by every requirement with the reason.
        early = _kovc(tmp_path, "upgrade", "verify", "--run-id", run_id, "--kubeconfig", kc,
                      "--timeout-scale", "0.05", "--report-dir", str(tmp_path / "early"),
                      "--requirement", "upgrade.ips-kept")
        assert early.returncode == 1, early.stdout[-2000:] + early.stderr[-2000:]
        reason = next(r for r in json.loads((tmp_path / "early" / "report.json").read_text())["requirements"]
                      if r["id"] == "upgrade.ips-kept")["reason"]
        assert "still runs v1.14.2" in reason, reason
        # ... and its end-of-run sweep removed the run's objects: prepare again, then upgrade for real.
        prep = _kovc(tmp_path, "upgrade", "prepare", "--kubeconfig", kc, "--timeout-scale", "0.05")
        assert prep.returncode == 0, prep.stdout + prep.stderr
        run_id = prep.stdout.strip().splitlines()[-1]
        for name in ("kube-ovn-controller", "kube-ovn-webhook"):
            kubectl(sim.kubeconfig, "-n", "kube-system", "set", "image", f"deployment/{name}",
                    f"{name}=docker.io/kubeovn/kube-ovn:v1.16.2")
        kubectl(sim.kubeconfig, "-n", "kube-system", "rollout", "status", "deployment/kube-ovn-webhook",
                "--timeout=30s")
        report = tmp_path / "report"
        verify = _kovc(tmp_path, "upgrade", "verify", "--run-id", run_id, "--kubeconfig", kc,
                       "--timeout-scale", "0.05", "--report-dir", str(report))
        assert verify.returncode == 0, verify.stdout[-3000:] + verify.stderr[-2000:]
        data = json.loads((report / "report.json").read_text())
        assert data["upgrade"]["phase"] == "verify" and data["versions"]["kube_ovn_webhook"] == "v1.16.2"
        outcomes = {r["id"]: r["outcome"] for r in data["requirements"]}
        assert all(outcomes[i] == "passed" for i in ("upgrade.ips-kept", "upgrade.restart-after",
                                                      "upgrade.collisions-denied-after",
                                                      "upgrade.no-duplicate-ips")), outcomes
        left = kubectl(sim.kubeconfig, "get", "namespaces", "-l", f"kovc.io/run={run_id}", "-o", "name").stdout
        assert not left.strip(), left
    finally:
        sim.proc.terminate()
        sim.proc.wait(timeout=30)


def test_verify_needs_a_run_id(tmp_path: Path) -> None:
    proc = _kovc(tmp_path, "upgrade", "verify", "--kubeconfig", str(tmp_path / "nope"))
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "kovc: kovc upgrade verify needs --run-id (printed by `kovc upgrade prepare`)"], proc.stderr
