"""The real control plane: kube-apiserver + etcd + kube-controller-manager and Kube-OVN's real webhook,
as ``kovc assets build`` builds them. Every test skips (with the reason) when the assets are absent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.envtest import assets as a
from conformance.envtest import install as inst
from conformance.envtest.client import ApiClient, ApiError
from conformance.envtest.controlplane import Binaries, ControlPlane

ROOT = Path(__file__).resolve().parents[2]

#: Kube-OVN's webhook reads its serving certificate from one fixed directory, held under a lock: the
#: tests that start it run on one xdist worker, one after another, instead of refusing each other.
pytestmark = pytest.mark.xdist_group("kube-ovn-webhook-cert-dir")


def _binaries() -> Binaries:
    try:
        return Binaries.find(None)
    except a.AssetError as err:
        pytest.skip(f"real control plane not built: {err}")


def _webhooks() -> list[str]:
    base = a.default_dir() / "kube-ovn"
    return sorted(d.name for d in base.iterdir() if (d / a.WEBHOOK).is_file()) if base.is_dir() else []


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    binaries = _binaries()
    cp = ControlPlane(binaries, tmp_path_factory.mktemp("logs"))
    cp.start()
    try:
        yield cp
    finally:
        cp.stop()
        assert not cp.dir.exists(), "the control plane's temporary directory is removed"


def test_apiserver_and_etcd_start_and_version_is_the_built_one(plane: ControlPlane) -> None:
    version = plane.admin_client().get("/version")
    built = plane.binaries.k8s_dir.name.split("-", 1)[0]
    assert version["gitVersion"] == f"v{built}", f"/version says {version}, the binary was built as v{built}"
    print(f"timings: {json.dumps({k: round(v, 2) for k, v in plane.timings.items()})}")
    assert plane.timings["apiserver+etcd ready"] > 0


def test_rbac_is_enforced_for_the_suite_account(plane: ControlPlane) -> None:
    client = plane.admin_client()
    docs = inst.rbac_manifest(ROOT / "manifests" / "rbac.yaml")
    inst.apply_all(client, docs)
    ns, name = inst.rbac_account(docs)
    user, groups = inst.service_account_user(ns, name)
    suite = ApiClient.from_kubeconfig(plane.kubeconfig_for(user, groups, name="kovc-test"))
    suite.request("GET", "/api/v1/nodes")  # granted by rbac.yaml
    with pytest.raises(ApiError) as denied:
        suite.request("GET", "/api/v1/namespaces/kube-system/secrets")
    assert denied.value.code == 403 and user in denied.value.message


def test_namespace_deletion_and_garbage_collection_run(plane: ControlPlane) -> None:
    if plane.binaries.kube_controller_manager is None:
        pytest.skip("kube-controller-manager not built")
    client = plane.admin_client()
    client.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gc-test"}})
    owner = client.create({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": "owner", "namespace": "gc-test"}})
    client.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "dependent", "namespace": "gc-test",
        "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
                             "uid": owner["metadata"]["uid"]}]}})
    client.delete(owner)
    deadline = time.monotonic() + 60
    while client.get("/api/v1/namespaces/gc-test/configmaps/dependent") is not None:
        assert time.monotonic() < deadline, "the garbage collector did not delete the dependent ConfigMap"
        time.sleep(0.2)
    client.delete({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gc-test"}})
    while client.get("/api/v1/namespaces/gc-test") is not None:
        assert time.monotonic() < deadline, "namespace gc-test still exists (namespace controller)"
        time.sleep(0.2)


@pytest.mark.parametrize("tag", _webhooks() or ["v1.16.2"])
def test_real_webhook_denies_a_conflicting_static_ip(plane: ControlPlane, tag: str) -> None:
    from conformance.envtest.webhook import SERVICE_ACCOUNT, RealWebhook

    binary = a.webhook_path(a.default_dir(), tag)
    if not binary.is_file():
        pytest.skip(f"kube-ovn-webhook {tag} not built (kovc assets build --kube-ovn-version {tag})")
    module = a.kube_ovn_module_dir(tag)
    if module is None:
        pytest.skip(f"github.com/kubeovn/kube-ovn@{tag} is not in the Go module cache")
    client = plane.admin_client()
    crds, _src = inst.kube_ovn_crds(module)
    inst.install_crds(client, crds)
    user, _g = inst.service_account_user(*SERVICE_ACCOUNT)
    inst.apply_all(client, inst.read_only_role("kovc:kube-ovn-webhook-read", user))
    hook = RealWebhook(binary, tag, plane)
    try:
        hook.start()
        inst.apply_all(client, [inst.with_url(inst.webhook_registration(module), hook.url, hook.ca.cert_pem)])
        ip = inst.canary_ip_cr()
        client.apply(ip)
        denial = inst.wait_denied(client, timeout=90)
        print(f"{tag} denial after {denial.seconds:.1f} s: {denial.message}")
        assert "is conflict with ip crd" in denial.message, denial.message
        assert f"{inst.CANARY_OWNER}.kube-system" in denial.message
        # The pod that owns the IP CR (same name as spec.podName) is admitted.
        owner_pod: dict[str, Any] = inst.canary_pod()
        owner_pod["metadata"]["name"] = inst.CANARY_OWNER
        client.create(owner_pod, dry_run=True)
        client.delete(ip)
    finally:
        hook.release()
        client.delete({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
                       "metadata": {"name": inst.WEBHOOK_CONFIGURATION}})


def test_envtest_serve_without_attach_is_ready_and_cleans_up(tmp_path: Path) -> None:
    _binaries()
    ready = tmp_path / "ready.json"
    args = [sys.executable, "-m", "conformance.envtest.serve", "--no-attach", "--ready-file", str(ready),
            "--log-dir", str(tmp_path / "logs")]
    if not _webhooks():
        args += ["--webhook", "none"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        deadline = time.monotonic() + 240
        while not ready.exists():
            assert proc.poll() is None, f"serve exited {proc.returncode}: {proc.stderr.read().decode()[-2000:]}"
            assert time.monotonic() < deadline, "serve not ready in 240 s"
            time.sleep(0.2)
        data = json.loads(ready.read_text())
        names = {c["name"]: c for c in data["components"]}
        assert names["kube-apiserver"]["real"] and len(names["kube-apiserver"]["sha256"]) == 64
        assert names["kube-ovn-crds"]["real"]
        suite = ApiClient.from_kubeconfig(Path(data["kubeconfig"]))
        assert suite.get("/apis/kubeovn.io/v1/ips") is not None
        workdir = Path(data["workdir"])
        assert workdir.is_dir()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    assert proc.returncode == 0
    assert not workdir.exists()


def test_no_assets_is_one_line_naming_kovc_assets_build(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "conformance.envtest.serve", "--assets", str(tmp_path / "none"),
                           "--no-attach"], capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "kovc assets build" in lines[0], proc.stderr


def test_upgrade_in_place_on_the_real_control_plane(tmp_path: Path) -> None:
    """``kovc run --backend envtest --upgrade-from v1.13.13 --kube-ovn-version v1.16.2``: the real webhook
    v1.13.13 is stopped, nothing serves for a measured gap, v1.16.2's real webhook is started and registered;
    v1.16.2 compares the VMI owner, so restarts of the VMs made on v1.13.13 are admitted: exit 0."""
    _binaries()
    source, target = "v1.13.13", "v1.16.2"
    for tag in (source, target):
        if not a.webhook_path(a.default_dir(), tag).is_file():
            pytest.skip(f"kube-ovn-webhook {tag} not built (kovc assets build --kube-ovn-version {tag})")
    report = tmp_path / "report"
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "conformance", "run", "--backend", "envtest", "--upgrade-from", source,
                           "--kube-ovn-version", target, "--report-dir", str(report)],
                          capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                          timeout=600)
    wall = time.monotonic() - t0
    tail = (proc.stdout + proc.stderr)[-3000:]
    assert proc.returncode == 0, f"expected exit 0, got {proc.returncode}: {tail}"
    data = json.loads((report / "report.json").read_text())
    outcomes = {r["id"]: r["outcome"] for r in data["requirements"]}
    for rid in ("upgrade.ips-kept", "upgrade.restart-after", "upgrade.migrate-after",
                "upgrade.collisions-denied-after", "upgrade.no-duplicate-ips"):
        assert outcomes.get(rid) == "passed", f"{rid}: expected passed, saw {outcomes.get(rid)}: {tail}"
    assert data["upgrade"]["from"] == source and data["upgrade"]["to"] == target, data["upgrade"]
    assert "real control plane" in str(data["upgrade"]["method"]), data["upgrade"]
    cases = [c["name"] for r in data["requirements"] if r["id"] == "upgrade.ips-kept" for c in r["cases"]]
    method = next((c for c in cases if c.startswith(f"upgrade {source} -> {target}: ")), "")
    assert "real webhook v1.13.13 stopped" in method and "yamls/webhook.yaml" in method, cases
    swap = next((c for c in cases if c.startswith("rollout measured: webhook")), "")
    assert "real kube-ovn-webhook v1.16.2" in swap and "nothing answered for" in swap, cases
    gap = float(swap.rsplit("nothing answered for ", 1)[1].split(" s", 1)[0])
    assert gap >= 1.0, f"expected the gap to last at least the modelled window (1 s), measured {gap} s"
    assert any(c.startswith("rollout measured: kube-ovn-controller") for c in cases), cases
    first = (report / "report.md").read_text().splitlines()[0]
    assert "real Kube-OVN webhook v1.13.13 → v1.16.2" in first, first
    print(f"envtest upgrade {source} -> {target}: exit 0 in {wall:.0f} s, webhook gap {gap} s")
