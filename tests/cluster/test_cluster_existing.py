"""``--backend existing`` against a simulated cluster served by ``kovc sim serve --audit-log F``."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from cluster_helpers import ServedSim, kubectl, seed_presented_state, serve_sim, stop_process

from conformance import USER_AGENT, versions
from conformance.cluster import detect
from conformance.cluster.base import BackendError
from conformance.cluster.existing import ExistingBackend, default_kubeconfig
from conformance.sim.cluster import world_available


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ServedSim]:
    """A simulated cluster presenting Kube-OVN, its webhook and KubeVirt (seeded with kubectl when the
    simulated world is not there to present them)."""
    sim = serve_sim(tmp_path)
    try:
        if not world_available():
            seed_presented_state(sim.kubeconfig)
        yield sim
    finally:
        stop_process(sim.proc)


def options(kubeconfig: Path | str | None, **kw: object) -> SimpleNamespace:
    base: dict[str, object] = {"kubeconfig": str(kubeconfig) if kubeconfig else None, "context": None,
                               "kube_ovn_version": None, "kubevirt_version": None}
    base.update(kw)
    return SimpleNamespace(**base)


def backend(kubeconfig: Path | str | None, **kw: object) -> ExistingBackend:
    return ExistingBackend(options(kubeconfig, **kw), log=lambda line: None)


def audit(sim: ServedSim) -> list[dict[str, object]]:
    if not sim.audit_log.exists():
        return []
    return [json.loads(line) for line in sim.audit_log.read_text().splitlines() if line.strip()]


def test_detects_and_records_everything(cluster: ServedSim, tmp_path: Path) -> None:
    info = backend(cluster.kubeconfig).provision(tmp_path / "work")
    assert info.backend == "existing" and info.kubeconfig == str(cluster.kubeconfig)
    assert info.simulated is True and info.versions.kubernetes.endswith("+kovc-sim")
    assert info.versions.kube_ovn_controller == versions.KUBE_OVN_VERSION
    assert info.versions.kube_ovn_webhook == versions.KUBE_OVN_VERSION
    assert info.versions.kubevirt == versions.KUBEVIRT_VERSION
    assert info.webhook_configuration == "kube-ovn-webhook"
    assert info.webhook_name == "pod-ip-validating.kube-ovn.io"
    assert info.keep_vm_ip is True
    assert info.extra["kube_ovn_webhook"] == "kube-system/kube-ovn-webhook"
    assert info.extra["kubevirt"].endswith("/kubevirt")
    assert json.loads(json.dumps(info.to_json()))["versions"]["kubevirt"] == versions.KUBEVIRT_VERSION
    backend(cluster.kubeconfig).teardown(info)  # nothing to release: the backend created nothing


def test_detection_writes_nothing(cluster: ServedSim, tmp_path: Path) -> None:
    before = len(audit(cluster))
    backend(cluster.kubeconfig).provision(tmp_path / "work")
    ours = [e for e in audit(cluster)[before:] if str(e.get("userAgent", "")).startswith("kovc/")]
    assert ours == [], f"mutating requests from the existing backend: {ours}"
    # The audit log does show a write made with our user agent (so the check above can fail).
    api = detect.connect(str(cluster.kubeconfig))
    try:
        from kubernetes import client
        client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
            name="kovc-audit-probe", labels={"kovc.io/run": "r-test"})))
    finally:
        api.close()
    # (only the create: kube-ovn-controller annotates a new namespace at once, which raced this check)
    agents = [e.get("userAgent") for e in audit(cluster)
              if e.get("name") == "kovc-audit-probe" and e.get("verb") == "create"]
    assert agents == [USER_AGENT]


def test_missing_kubevirt_refuses_with_one_line(cluster: ServedSim, tmp_path: Path) -> None:
    kubectl(cluster.kubeconfig, "-n", "kubevirt", "delete", "kubevirt", "kubevirt", "--wait=false")
    if kubectl(cluster.kubeconfig, "-n", "kubevirt", "get", "kubevirt", "kubevirt", check=False).returncode == 0:
        # Held by virt-operator's finalizer, as on a real cluster: refused while it is being removed.
        with pytest.raises(BackendError, match=r"KubeVirt is being removed: KubeVirt kubevirt/kubevirt"):
            backend(cluster.kubeconfig).provision(tmp_path / "work")
        kubectl(cluster.kubeconfig, "-n", "kubevirt", "patch", "kubevirt", "kubevirt", "--type=merge", "-p",
                '{"metadata": {"finalizers": null}}')
    with pytest.raises(BackendError) as err:
        backend(cluster.kubeconfig).provision(tmp_path / "work")
    text = str(err.value)
    assert "\n" not in text and "KubeVirt is not installed" in text and str(cluster.kubeconfig) in text


def test_kubevirt_not_deployed_refuses(cluster: ServedSim, tmp_path: Path) -> None:
    kubectl(cluster.kubeconfig, "-n", "kubevirt", "patch", "kubevirt", "kubevirt", "--subresource=status",
            "--type=merge", "-p", json.dumps({"status": {"phase": "Deploying",
                                                          "conditions": [{"type": "Available",
                                                                          "status": "False"}]}}))
    with pytest.raises(BackendError, match=r"KubeVirt is not ready: .*phase Deploying"):
        backend(cluster.kubeconfig).provision(tmp_path / "work")


def test_missing_kube_ovn_refuses(cluster: ServedSim, tmp_path: Path) -> None:
    kubectl(cluster.kubeconfig, "-n", "kube-system", "delete", "deployment", "kube-ovn-controller")
    with pytest.raises(BackendError, match="Kube-OVN is not installed: no Deployment kube-ovn-controller"):
        backend(cluster.kubeconfig).provision(tmp_path / "work")


def test_missing_webhook_refuses(cluster: ServedSim, tmp_path: Path) -> None:
    kubectl(cluster.kubeconfig, "delete", "validatingwebhookconfiguration", "kube-ovn-webhook")
    with pytest.raises(BackendError, match="webhook is not installed: no ValidatingWebhookConfiguration"):
        backend(cluster.kubeconfig).provision(tmp_path / "work")


def test_webhook_without_server_refuses(cluster: ServedSim, tmp_path: Path) -> None:
    kubectl(cluster.kubeconfig, "-n", "kube-system", "delete", "deployment", "kube-ovn-webhook")
    with pytest.raises(BackendError, match="webhook has no server"):
        backend(cluster.kubeconfig).provision(tmp_path / "work")


def test_webhook_found_by_entry_name_in_any_configuration(cluster: ServedSim, tmp_path: Path) -> None:
    vwc = json.loads(kubectl(cluster.kubeconfig, "get", "validatingwebhookconfiguration", "kube-ovn-webhook",
                             "-o", "json").stdout)
    kubectl(cluster.kubeconfig, "delete", "validatingwebhookconfiguration", "kube-ovn-webhook")
    renamed = {"apiVersion": vwc["apiVersion"], "kind": vwc["kind"],
               "metadata": {"name": "vendor-ipam-guard"}, "webhooks": vwc["webhooks"]}
    kubectl(cluster.kubeconfig, "apply", "-f", _write(tmp_path / "vwc.json", renamed))
    info = backend(cluster.kubeconfig).provision(tmp_path / "work")
    assert info.webhook_configuration == "vendor-ipam-guard"


def test_tags_recorded_separately_and_difference_warned(cluster: ServedSim, tmp_path: Path) -> None:
    kubectl(cluster.kubeconfig, "-n", "kube-system", "set", "image", "deployment/kube-ovn-webhook",
            "kube-ovn-webhook=docker.io/kubeovn/kube-ovn:v1.15.0")
    info = backend(cluster.kubeconfig, kube_ovn_version="v1.16.2").provision(tmp_path / "work")
    assert info.versions.kube_ovn_controller == versions.KUBE_OVN_VERSION
    assert info.versions.kube_ovn_webhook == "v1.15.0"
    assert any("kube-ovn-controller runs" in w and "v1.15.0" in w for w in info.warnings)
    assert any(w.startswith("--kube-ovn-version v1.16.2 was given but the webhook runs v1.15.0")
               for w in info.warnings)


def test_keep_vm_ip_off_is_recorded(cluster: ServedSim, tmp_path: Path) -> None:
    dep = json.loads(kubectl(cluster.kubeconfig, "-n", "kube-system", "get", "deployment",
                             "kube-ovn-controller", "-o", "json").stdout)
    container = dep["spec"]["template"]["spec"]["containers"][0]
    args = [a for a in container.get("args") or [] if not a.startswith("--keep-vm-ip")]
    args.append("--keep-vm-ip=false")
    patch = {"spec": {"template": {"spec": {"containers": [{"name": container["name"], "args": args}]}}}}
    kubectl(cluster.kubeconfig, "-n", "kube-system", "patch", "deployment", "kube-ovn-controller",
            "--type=strategic", "-p", json.dumps(patch))
    info = backend(cluster.kubeconfig).provision(tmp_path / "work")
    assert info.keep_vm_ip is False


def test_context_is_used(cluster: ServedSim, tmp_path: Path) -> None:
    with pytest.raises(BackendError, match=r"context nope\)? is unusable"):
        backend(cluster.kubeconfig, context="nope").provision(tmp_path / "work")


@pytest.mark.parametrize("content", [None, "::: not yaml :::\n  - [", "apiVersion: v1\nkind: Config\n"])
def test_bad_kubeconfig_is_one_line(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "kubeconfig"
    if content is not None:
        path.write_text(content)
    with pytest.raises(BackendError) as err:
        backend(path).provision(tmp_path / "work")
    assert "\n" not in str(err.value) and str(err.value).startswith(f"kubeconfig {path}")


def test_unreachable_server_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    with pytest.raises(BackendError) as err:
        backend(path).provision(tmp_path / "work")
    text = str(err.value)
    assert "\n" not in text and text.startswith(f"API server http://127.0.0.1:{port} unreachable")


def test_plan_touches_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "does-not-exist"))
    lines = backend(None, context="prod").plan()
    assert lines[0].startswith(f"existing backend: kubeconfig {tmp_path / 'does-not-exist'}, context prod")
    assert any("installs nothing" in line for line in lines)
    assert default_kubeconfig() == str(tmp_path / "does-not-exist")
    monkeypatch.delenv("KUBECONFIG")
    assert default_kubeconfig().endswith(str(Path(".kube") / "config"))


def _write(path: Path, doc: object) -> str:
    path.write_text(json.dumps(doc))
    return str(path)


def test_kovc_run_existing_writes_only_its_own_objects(cluster: ServedSim, tmp_path: Path) -> None:
    """A whole run (quick profile) through ``--backend existing``: the audit log shows every write made
    with kovc's user agent landing on an object the run created (its namespaces, what is inside them,
    cluster-scoped objects it created) — nothing installed is touched."""
    import subprocess
    import sys

    before = len(audit(cluster))
    report = tmp_path / "report"
    proc = subprocess.run([sys.executable, "-m", "conformance", "run", "--backend", "existing", "--kubeconfig",
                           str(cluster.kubeconfig), "--profile", "quick", "--report-dir", str(report),
                           "--timeout-scale", "0.05"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:])
    data = json.loads((report / "report.json").read_text())
    assert data["backend"] == "existing" and data["simulated"] is True and data["verdict"] == "conformant"
    ours = [e for e in audit(cluster)[before:] if str(e.get("userAgent", "")).startswith("kovc/")]
    assert ours, "the run made no write: the check below would prove nothing"
    created: set[tuple[str, str, str]] = set()
    namespaces: set[str] = set()
    for e in ours:
        key = (str(e["resource"]), str(e["namespace"]), str(e["name"]))
        if e["verb"] == "create" and not e.get("dryRun") and int(e.get("code", 0)) < 300:
            created.add(key)
            if e["resource"] == "namespaces":
                namespaces.add(str(e["name"]))
            continue
        if e.get("dryRun") or int(e.get("code", 0)) >= 400:
            continue  # admission probes and refused writes change nothing
        assert e["namespace"] in namespaces or key in created, f"write outside the run's objects: {e}"


def test_existing_backend_looks_for_no_attachment_network(cluster: ServedSim, tmp_path: Path) -> None:
    """The attachment scenarios bring their own NetworkAttachmentDefinition, so provisioning reads no NADs
    (GETs: detection only) and records none; the plan says so."""
    before = len(audit(cluster))
    backend(cluster.kubeconfig).provision(tmp_path / "work")
    seen = audit(cluster)[before:]
    assert seen and not [e for e in seen if e.get("resource") == "network-attachment-definitions"], seen
    plan = "\n".join(backend(cluster.kubeconfig).plan())
    assert ("attachment networks: none is looked for - the attachment scenarios create their own "
            "NetworkAttachmentDefinition and Subnet in their namespaces where the API serves "
            "network-attachment-definitions.k8s.cni.cncf.io (Multus), else they are not applicable") in plan
