"""The sim backend and the plugin's cluster lifecycle against a real ``kovc sim serve`` process:
lazy provisioning shared by xdist workers, teardown once at the end, namespaces, leak report."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from conformance.cluster import sim as sim_backend
from conformance.cluster.base import BackendError
from conformance.cluster.select import BackendOptions, make_backend
from conformance.cluster.sim import SimBackend, pid_alive
from conformance.results import RunResult

pytest_plugins = ["pytester"]


def test_sim_backend_provisions_and_tears_down(tmp_path: Path) -> None:
    options = BackendOptions(backend="sim", report_dir=tmp_path / "report", run_id="r-simb")
    options.sim.kube_ovn_version = "v1.14.2"
    backend = make_backend("sim", options)
    assert isinstance(backend, SimBackend)
    info = backend.provision(tmp_path / "work")
    pid = int(info.extra["pid"])
    try:
        assert info.simulated and info.backend == "sim"
        assert info.sim_model == "kube-ovn v1.14.2"
        assert info.versions.kubernetes.endswith("+kovc-sim")
        assert info.versions.kube_ovn_webhook == "v1.14.2" == info.versions.kube_ovn_controller
        assert info.webhook_name == "pod-ip-validating.kube-ovn.io"
        assert Path(info.kubeconfig).is_file()
        assert pid_alive(pid)
        assert os.getpgid(pid) == pid, "the server runs in its own process group"
    finally:
        backend.teardown(info)
    assert not pid_alive(pid)
    assert (tmp_path / "report" / "sim-audit.jsonl").parent.is_dir()


def test_a_server_that_never_gets_ready_is_killed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pid_file = tmp_path / "pid"
    monkeypatch.setattr(sim_backend, "START_TIMEOUT", 0.5)
    monkeypatch.setattr(
        SimBackend,
        "command",
        lambda self, workdir: [
            sys.executable,
            "-c",
            f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); print('stuck'); "
            "import sys; sys.stdout.flush(); time.sleep(60)",
        ],
    )
    backend = SimBackend(BackendOptions(report_dir=tmp_path / "report"))
    with pytest.raises(BackendError, match=r"not ready after 0 s .*stuck"):
        backend.provision(tmp_path / "work")
    assert not pid_alive(int(pid_file.read_text()))


SCENARIOS = """
import json, os, pytest
from conformance import RUN_LABEL

def note(cluster_info, kube, ns, settings):
    out = os.environ["KOVC_TEST_OUT"]
    obj = kube.get("Namespace", None, ns)
    data = {"pid": cluster_info.extra["pid"], "ns": ns, "label": obj["metadata"]["labels"].get(RUN_LABEL),
            "run_id": settings.run_id, "scale": settings.timeout_scale, "worker": settings.worker}
    with open(os.path.join(out, f"{ns}.json"), "w") as f:
        json.dump(data, f)

@pytest.mark.conformance("env.webhook-live", "env.keep-vm-ip")
def test_env(cluster_info, kube, ns, settings):
    note(cluster_info, kube, ns, settings)

@pytest.mark.conformance("allow.restart")
def test_restart(cluster_info, kube, ns, settings):
    note(cluster_info, kube, ns, settings)

@pytest.mark.conformance("deny.other-vm")
def test_other(cluster_info, kube, ns, settings):
    note(cluster_info, kube, ns, settings)
"""


def test_one_cluster_for_all_workers_torn_down_once(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setenv("KOVC_TEST_OUT", str(out))
    pytester.makepyfile(test_s=SCENARIOS)
    report_dir = tmp_path / "r"
    result = pytester.runpytest_subprocess(
        "-n", "2", "--report-dir", str(report_dir), "--run-id", "r-shared", "--profile", "quick", timeout=120
    )
    result.assert_outcomes(passed=3)
    notes = [json.loads(p.read_text()) for p in out.glob("*.json")]
    assert len(notes) == 3
    assert len({n["pid"] for n in notes}) == 1, "one simulated cluster shared by every worker"
    assert {n["label"] for n in notes} == {"r-shared"} == {n["run_id"] for n in notes}
    assert {n["scale"] for n in notes} == {0.05}
    assert {n["worker"] for n in notes} <= {"gw0", "gw1"}
    assert not pid_alive(int(notes[0]["pid"])), "the controller tore the cluster down"
    data = json.loads((report_dir / "report.json").read_text())
    assert (data["backend"], data["simulated"], data["sim_model"]) == ("sim", True, "kube-ovn v1.16.2")
    assert data["versions"]["kubernetes"].endswith("+kovc-sim")
    assert {r["id"]: r["outcome"] for r in data["requirements"] if r["id"] in data["selected"]} == {
        "env.webhook-live": "passed",
        "env.keep-vm-ip": "passed",
        "allow.restart": "passed",
        "deny.other-vm": "passed",
    }
    assert data["verdict"] == RunResult.from_json(data).verdict
    audit = [json.loads(line) for line in (report_dir / "sim-audit.jsonl").read_text().splitlines()]
    deleted = {
        a.get("name")
        for a in audit
        if a.get("verb") == "delete" and str(a.get("userAgent", "")).startswith("kovc/")
    }
    assert {n["ns"] for n in notes} <= deleted, "every scenario namespace was deleted"


def test_keep_on_failure_diagnostics_and_leaked_ips(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(
        test_s="""
import pytest

@pytest.mark.conformance("env.webhook-live", "env.keep-vm-ip")
def test_env(cluster_info):
    pass

@pytest.mark.conformance("allow.restart")
def test_leaks(kube, ns, record):
    record.addresses("10.16.0.77")
    kube.create("IP", None, {"metadata": {"name": f"vm1.{ns}"},
                             "spec": {"ipAddress": "10.16.0.77", "v4IpAddress": "10.16.0.77",
                                      "podName": "vm1", "namespace": ns, "subnet": "ovn-default",
                                      "podType": "VirtualMachine"}})
    kube.patch("IP", None, f"vm1.{ns}", {"metadata": {"labels": {"kovc.io/run": None}}})

@pytest.mark.conformance("deny.other-vm")
def test_fails(kube, ns, record):
    with record.subcase("challenger"):
        assert False, "expected a denial; admitted"

@pytest.mark.conformance("deny.other-vm")
def test_fails_too(kube, ns):
    assert False, "expected a denial of the second challenger; admitted"
"""
    )
    report_dir = tmp_path / "r"
    result = pytester.runpytest_subprocess(
        "--report-dir",
        str(report_dir),
        "--profile",
        "quick",
        "--keep-on-failure",
        "--diagnostics",
        "once",
        timeout=120,
    )
    result.assert_outcomes(passed=2, failed=2)
    data = json.loads((report_dir / "report.json").read_text())
    assert [(i["name"].split(".")[0], i["ipAddress"]) for i in data["leaked_ips"]] == [("vm1", "10.16.0.77")]
    assert any("leaked IP CR vm1." in w for w in data["warnings"])
    reqs = {r["id"]: r for r in data["requirements"]}
    assert any("kept for debugging" in w for w in reqs["deny.other-vm"]["warnings"])
    assert reqs["deny.other-vm"]["diagnostics"] == "diagnostics/deny.other-vm"
    assert (report_dir / "diagnostics" / "deny.other-vm").is_dir()
    assert [p.name for p in (report_dir / "diagnostics").iterdir()] == ["deny.other-vm"]  # once
    assert data["verdict"] == "non-conformant"
