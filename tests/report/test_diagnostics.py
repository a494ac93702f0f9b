"""diagnostics.collect: against the simulated cluster (a real HTTP API server) and against a fake
ApiClient that fails in every way; the ``kubectl ko`` branch with a fake kubectl-ko plugin."""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlparse

import pytest
import yaml

from conformance.cluster.base import ClusterInfo
from conformance.report import diagnostics

HOLDER_IP = "10.16.0.15"
NS = "kovc-r1-restart"


# ---------------------------------------------------------------- the simulated cluster


def _owner(obj: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": obj["kind"], "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"], "controller": True}


def _seed(store: Any) -> None:
    from conformance.sim import resources as r

    ua = "kovc-test"
    for ns in (NS, "kube-system", "kubevirt", "other"):
        store.create(r.NAMESPACES, {"metadata": {"name": ns}}, user_agent=ua)
    annotations = {"ovn.kubernetes.io/ip_address": HOLDER_IP,
                   "ovn.kubernetes.io/logical_switch": "ovn-default"}
    store.create(r.VMS, {"metadata": {"name": "h-k2x9q", "namespace": NS,
                                      "managedFields": [{"manager": "x"}]},
                         "spec": {"runStrategy": "Always",
                                  "template": {"metadata": {"annotations": annotations}, "spec": {}}}},
                 user_agent=ua)
    store.create(r.VMIS, {"metadata": {"name": "h-k2x9q", "namespace": NS, "annotations": annotations},
                          "spec": {}, "status": {"phase": "Scheduling"}}, user_agent=ua)
    store.create(r.VMIMS, {"metadata": {"name": "mig-1", "namespace": NS}, "spec": {"vmiName": "h-k2x9q"}},
                 user_agent=ua)
    store.create(r.PODS, {"metadata": {"name": "virt-launcher-h-k2x9q-abcde", "namespace": NS,
                                       "annotations": annotations},
                          "spec": {"nodeName": "node-b", "containers": [{"name": "compute", "image": "x"}]}},
                 user_agent=ua)
    store.create(r.EVENTS, {"metadata": {"name": "h-k2x9q.1", "namespace": NS},
                            "involvedObject": {"kind": "VirtualMachineInstance", "name": "h-k2x9q"},
                            "type": "Warning", "reason": "FailedCreate",
                            "lastTimestamp": "2026-11-28T10:00:05Z",
                            "message": "Error creating pod: admission webhook "
                                       '"pod-ip-validating.kube-ovn.io" '
                                       f"denied the request: ip address {HOLDER_IP} has been occupied"},
                 user_agent=ua)
    store.create(r.IPS, {"metadata": {"name": f"h-k2x9q.{NS}"},
                         "spec": {"ipAddress": HOLDER_IP, "v4IpAddress": HOLDER_IP, "podName": "h-k2x9q",
                                  "namespace": NS, "subnet": "ovn-default", "podType": "VirtualMachine"}},
                 user_agent=ua)
    store.create(r.IPS, {"metadata": {"name": "foreign.other"},
                         "spec": {"ipAddress": "10.16.0.99", "podName": "foreign", "namespace": "other",
                                  "subnet": "ovn-default"}}, user_agent=ua)
    store.create(r.SUBNETS, {"metadata": {"name": "ovn-default"}, "spec": {"cidrBlock": "10.16.0.0/16"}},
                 user_agent=ua)
    store.create(r.SUBNETS, {"metadata": {"name": "join"}, "spec": {"cidrBlock": "100.64.0.0/16"}},
                 user_agent=ua)
    store.create(r.SUBNETS, {"metadata": {"name": "vpc2-net"}, "spec": {"cidrBlock": "10.16.0.0/24"}},
                 user_agent=ua)
    store.create(r.VWC, {"metadata": {"name": "kube-ovn-webhook"},
                         "webhooks": [{"name": "pod-ip-validating.kube-ovn.io", "failurePolicy": "Ignore",
                                       "clientConfig": {"caBundle": "QUJD" * 400}}]}, user_agent=ua)
    store.create(r.VWC, {"metadata": {"name": "unrelated"}, "webhooks": [{"name": "other.example.com"}]},
                 user_agent=ua)
    # The real kube-ovn-controller: Deployment → ReplicaSet kube-ovn-controller-7d9f → pod.
    dep = store.create(r.DEPLOYMENTS, {"metadata": {"name": "kube-ovn-controller", "namespace": "kube-system"},
                                       "spec": {"selector": {"matchLabels": {"app": "kube-ovn-controller"}}}},
                       user_agent=ua)
    rs = store.create(r.REPLICASETS, {"metadata": {"name": "kube-ovn-controller-7d9f", "namespace": "kube-system",
                                                   "ownerReferences": [_owner(dep)]}}, user_agent=ua)
    store.create(r.PODS, {"metadata": {"name": "kube-ovn-controller-7d9f-x1", "namespace": "kube-system",
                                       "labels": {"app": "kube-ovn-controller", "pod-template-hash": "7d9f"},
                                       "ownerReferences": [_owner(rs)]},
                          "spec": {"nodeName": "node-a", "containers": [{"name": "kube-ovn-controller",
                                                                         "image": "x"}]}}, user_agent=ua)
    # Impostors (issue 9 item 13): pods that merely carry the labels / the name prefix, in a user's
    # namespace and in kube-system, and one whose "ReplicaSet" belongs to another Deployment.
    for i in range(4):
        store.create(r.PODS, {"metadata": {"name": f"kube-ovn-controller-user-{i}", "namespace": "other",
                                           "labels": {"app": "kube-ovn-controller"}},
                              "spec": {"nodeName": "node-b", "containers": [{"name": "kube-ovn-controller",
                                                                             "image": "x"}]}}, user_agent=ua)
    store.create(r.PODS, {"metadata": {"name": "kube-ovn-controller-loose", "namespace": "kube-system",
                                       "labels": {"app": "kube-ovn-controller"}},
                          "spec": {"nodeName": "node-b", "containers": [{"name": "c", "image": "x"}]}},
                 user_agent=ua)
    impostor = store.create(r.DEPLOYMENTS, {"metadata": {"name": "impostor", "namespace": "kube-system"}},
                            user_agent=ua)
    fake_rs = store.create(r.REPLICASETS, {"metadata": {"name": "kube-ovn-controller-9x9x", "namespace":
                                                        "kube-system", "ownerReferences": [_owner(impostor)]}},
                           user_agent=ua)
    store.create(r.PODS, {"metadata": {"name": "kube-ovn-controller-9x9x-a1", "namespace": "kube-system",
                                       "labels": {"app": "kube-ovn-controller", "pod-template-hash": "9x9x"},
                                       "ownerReferences": [_owner(fake_rs)]},
                          "spec": {"nodeName": "node-b", "containers": [{"name": "c", "image": "x"}]}},
                 user_agent=ua)
    store.create(r.PODS, {"metadata": {"name": "virt-handler-user", "namespace": "other",
                                       "labels": {"kubevirt.io": "virt-handler"}},
                          "spec": {"nodeName": "node-b", "containers": [{"name": "virt-handler", "image": "x"}]}},
                 user_agent=ua)
    # virt-handler: owned by its DaemonSet, no labels (ownership decides, not labels)
    ds = store.create(r.DAEMONSETS, {"metadata": {"name": "virt-handler", "namespace": "kubevirt"}}, user_agent=ua)
    for node in ("node-a", "node-b", "node-c", "node-d", "node-e"):
        restarts = 1 if node == "node-b" else 0
        store.create(r.PODS, {"metadata": {"name": f"virt-handler-{node}", "namespace": "kubevirt",
                                           "ownerReferences": [_owner(ds)]},
                              "spec": {"nodeName": node,
                                       "containers": [{"name": "virt-handler", "image": "x"}]}},
                     user_agent=ua)
        # A create ignores status, as kube-apiserver does; the kubelet reports restarts through pods/status.
        store.mutate(r.PODS, "kubevirt", f"virt-handler-{node}",
                     lambda p, n=restarts: p.setdefault("status", {}).update(
                         containerStatuses=[{"name": "virt-handler", "restartCount": n}]),
                     user_agent=ua, subresource="status")


@pytest.fixture(scope="module")
def sim_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, ClusterInfo]]:
    try:
        from conformance.sim.cluster import SimCluster
        from conformance.sim.config import SimConfig
    except ImportError as err:
        pytest.skip(f"the simulated cluster is not available: {err}")
    from kubernetes import client, config

    with SimCluster(SimConfig(), world=False) as sim:
        kubeconfig = sim.write_kubeconfig(tmp_path_factory.mktemp("sim") / "kubeconfig")
        sim.call(_seed)
        configuration = client.Configuration()
        config.load_kube_config(str(kubeconfig), client_configuration=configuration,  # type: ignore[no-untyped-call]
                                persist_config=False)
        api = client.ApiClient(configuration)
        info = ClusterInfo(backend="sim", kubeconfig=str(kubeconfig), simulated=True,
                           sim_model="kube-ovn v1.16.2")
        try:
            yield api, info
        finally:
            api.close()  # type: ignore[no-untyped-call]


def _rel(paths: list[Path], root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in paths}


def test_collect_against_the_simulated_cluster(sim_api: tuple[Any, ClusterInfo], tmp_path: Path) -> None:
    api, info = sim_api
    out = tmp_path / "diagnostics" / "allow.restart"
    written = diagnostics.collect(api, out, namespaces=[NS], ip_addresses=[HOLDER_IP, "10.16.0.77"],
                                  info=info)
    files = _rel(written, out)
    assert files == {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    for expected in (
        f"namespaces/{NS}.yaml",
        f"virtualmachines/{NS}/h-k2x9q.yaml",
        f"virtualmachineinstances/{NS}/h-k2x9q.yaml",
        f"virtualmachineinstancemigrations/{NS}/mig-1.yaml",
        f"pods/{NS}/virt-launcher-h-k2x9q-abcde.yaml",
        f"events/{NS}.yaml", f"events/{NS}.txt",
        f"ips/h-k2x9q.{NS}.yaml",
        "subnets/ovn-default.yaml", "subnets/vpc2-net.yaml",
        "validatingwebhookconfigurations/kube-ovn-webhook.yaml",
        "logs/kube-ovn-controller/kube-system.kube-ovn-controller-7d9f-x1.kube-ovn-controller.log",
        "logs/virt-handler/kubevirt.virt-handler-node-b.virt-handler.log",
        "logs/virt-handler/kubevirt.virt-handler-node-b.virt-handler.previous.log",
        "ovn-nb/README.txt", "index.txt",
    ):
        assert expected in files, (expected, sorted(files))
    assert "ips/foreign.other.yaml" not in files
    assert "subnets/join.yaml" not in files
    assert "validatingwebhookconfigurations/unrelated.yaml" not in files
    assert "errors.txt" not in files, (out / "errors.txt").read_text()
    # only the components' own pods: none of the impostors' logs
    logs = sorted(f for f in files if f.startswith("logs/"))
    assert [f for f in logs if f.startswith("logs/kube-ovn-controller/")] == [
        "logs/kube-ovn-controller/kube-system.kube-ovn-controller-7d9f-x1.kube-ovn-controller.log"], logs
    assert not any("user" in f or "loose" in f or "9x9x" in f or "/other." in f for f in logs), logs
    # virt-handler: at most 4 pods, the one on the launcher's node first
    handler_logs = [f for f in files
                    if f.startswith("logs/virt-handler/") and not f.endswith(".previous.log")]
    assert len(handler_logs) == diagnostics.MAX_PODS_PER_COMPONENT

    vm = yaml.safe_load((out / f"virtualmachines/{NS}/h-k2x9q.yaml").read_text())
    assert vm["kind"] == "VirtualMachine" and "managedFields" not in vm["metadata"]
    vwc = yaml.safe_load((out / "validatingwebhookconfigurations/kube-ovn-webhook.yaml").read_text())
    assert vwc["webhooks"][0]["clientConfig"]["caBundle"] == "<1600 characters elided>"
    events = (out / f"events/{NS}.txt").read_text()
    assert "Warning FailedCreate VirtualMachineInstance/h-k2x9q" in events and "denied the request" in events
    index = (out / "index.txt").read_text()
    assert "kube-ovn-webhook: no pod of Deployment kube-system/kube-ovn-webhook found" in index
    assert f"addresses: {HOLDER_IP}, 10.16.0.77" in index
    assert "simulated cluster" in (out / "ovn-nb/README.txt").read_text()
    assert all(p.stat().st_size < 64 * 1024 for p in written)


def test_collect_records_errors_and_never_raises(sim_api: tuple[Any, ClusterInfo], tmp_path: Path) -> None:
    api, info = sim_api
    out = tmp_path / "d"
    written = diagnostics.collect(api, out, namespaces=["kovc-gone"], ip_addresses=[], info=info)
    errors = (out / "errors.txt").read_text().splitlines()
    assert out / "errors.txt" in written
    expected = "namespace kovc-gone: GET /api/v1/namespaces/kovc-gone: HTTP 404"
    assert any(e.startswith(expected) for e in errors), errors
    assert (out / "index.txt").is_file()


# ---------------------------------------------------------------- a fake ApiClient


class _Response:
    def __init__(self, status: int, data: bytes) -> None:
        self.status = status
        self._data = data

    def read(self) -> bytes:
        return self._data


class FakeApiClient:
    """The two ApiClient methods collect() uses; ``routes`` maps a path to a JSON answer, a text
    answer, an HTTP status or an exception."""

    def __init__(self, routes: dict[str, Any], default: Any = None) -> None:
        self.routes = routes
        self.default = default if default is not None else {"items": []}
        self.requests: list[tuple[str, dict[str, str]]] = []

    def param_serialize(self, method: str, resource_path: str, path_params: Any = None,
                        query_params: list[tuple[str, str]] | None = None, header_params: Any = None,
                        body: Any = None, post_params: Any = None, files: Any = None,
                        auth_settings: Any = None, collection_formats: Any = None, _host: Any = None,
                        _request_auth: Any = None
                        ) -> tuple[str, str, dict[str, str], Any, list[Any]]:
        url = "https://fake.invalid" + resource_path + ("?" + urlencode(query_params) if query_params else "")
        return method, url, dict(header_params or {}), body, []

    def call_api(self, method: str, url: str, header_params: Any = None, body: Any = None,
                 post_params: Any = None, _request_timeout: Any = None) -> _Response:
        parsed = urlparse(url)
        self.requests.append((parsed.path, dict(parse_qsl(parsed.query))))
        answer = self.routes.get(parsed.path, self.default)
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, int):
            return _Response(answer, json.dumps({"kind": "Status", "message": f"boom {answer}"}).encode())
        if isinstance(answer, str):
            return _Response(200, answer.encode())
        selector = dict(parse_qsl(parsed.query)).get("labelSelector")
        if selector and isinstance(answer, dict):
            key, _, value = selector.partition("=")
            answer = {"items": [i for i in answer.get("items", [])
                                if (i.get("metadata", {}).get("labels") or {}).get(key) == value]}
        return _Response(200, json.dumps(answer).encode())


def _no_cluster() -> Any:
    """An ApiClient stand-in whose every list is empty."""
    return FakeApiClient({})


def test_collect_survives_every_kind_of_failure(tmp_path: Path) -> None:
    api: Any = FakeApiClient({
        f"/api/v1/namespaces/{NS}": ConnectionResetError("connection reset by peer"),
        f"/api/v1/namespaces/{NS}/pods": 500,
        f"/apis/kubevirt.io/v1/namespaces/{NS}/virtualmachines": "<html>not json</html>",
        f"/apis/kubevirt.io/v1/namespaces/{NS}/virtualmachineinstances": [1, 2],
        "/apis/kubeovn.io/v1/ips": 403,
        "/apis/kubeovn.io/v1/subnets": TimeoutError("read timed out"),
        "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations": RuntimeError("weird"),
        "/api/v1/namespaces/kubevirt/pods": {"items": [{
            "metadata": {"name": "virt-controller-5d8f-1", "namespace": "kubevirt",
                         "labels": {"pod-template-hash": "5d8f"},
                         "ownerReferences": [{"kind": "ReplicaSet", "name": "virt-controller-5d8f",
                                              "controller": True}]},
            "spec": {"containers": [{"name": "virt-controller"}]}}]},
        "/apis/apps/v1/namespaces/kubevirt/replicasets/virt-controller-5d8f": 403,
        "/api/v1/namespaces/kubevirt/pods/virt-controller-5d8f-1/log": 404,
    })
    out = tmp_path / "diag"
    written = diagnostics.collect(api, out, namespaces=[NS], ip_addresses=[HOLDER_IP], info=None)
    errors = (out / "errors.txt").read_text()
    for fragment in (f"namespace {NS}: GET /api/v1/namespaces/{NS}: ConnectionResetError: connection reset "
                     "by peer",
                     f"list pods in {NS}: GET /api/v1/namespaces/{NS}/pods: HTTP 500: boom 500",
                     "answer is not JSON", "expected a JSON object, got list",
                     "list IP CRs: GET /apis/kubeovn.io/v1/ips: HTTP 403: boom 403",
                     "list subnets: GET /apis/kubeovn.io/v1/subnets: TimeoutError: read timed out",
                     "RuntimeError: weird",
                     "logs of kubevirt/virt-controller-5d8f-1 container virt-controller: "):
        assert fragment in errors, (fragment, errors)
    assert out / "errors.txt" in written
    assert (out / "ovn-nb/README.txt").read_text().startswith("skipped: no cluster information")
    log_requests = [q for p, q in api.requests if p.endswith("/log")]
    assert log_requests == [{"container": "virt-controller", "tailLines": str(diagnostics.LOG_TAIL_LINES),
                             "limitBytes": str(diagnostics.LOG_LIMIT_BYTES)}]


def test_collect_returns_nothing_when_the_folder_cannot_be_made(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert diagnostics.collect(_no_cluster(), blocker / "sub", namespaces=[NS], ip_addresses=[],
                               info=None) == []


# ---------------------------------------------------------------- kubectl ko on a "real" cluster

FAKE_KO = """#!/bin/sh
printf '%s\\n' "$*" > "{log}"
cat "$KUBECONFIG" > "{log}.kubeconfig"
echo "_uuid,name,addresses,dynamic_addresses,port_security,up,external_ids"
echo "u1,h-k2x9q.{ns},00:00:00:aa:bb:cc {ip},,00:00:00:aa:bb:cc {ip},true,vendor=kube-ovn"
echo "u2,other.ns,00:00:00:aa:bb:dd {ip}0,,,true,vendor=kube-ovn"
echo "u3,third.ns,00:00:00:aa:bb:ee 10.16.0.2,,,true,vendor=kube-ovn"
"""


@pytest.fixture
def fake_ko(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "ko-args"
    plugin = bindir / "kubectl-ko"
    plugin.write_text(FAKE_KO.format(log=log, ns=NS, ip=HOLDER_IP))
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", os.pathsep.join([str(bindir), str(Path(kubectl).parent), "/bin", "/usr/bin"]))
    return log


def _kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "a",
        "clusters": [{"name": "a", "cluster": {"server": "https://a.invalid"}},
                     {"name": "b", "cluster": {"server": "https://b.invalid"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "a", "context": {"cluster": "a", "user": "u"}},
                     {"name": "b", "context": {"cluster": "b", "user": "u"}}],
    }))
    return path


def test_kubectl_ko_logical_switch_ports(fake_ko: Path, tmp_path: Path) -> None:
    info = ClusterInfo(backend="existing", kubeconfig=str(_kubeconfig(tmp_path)), context="b",
                       simulated=False)
    out = tmp_path / "diag"
    diagnostics.collect(_no_cluster(), out, namespaces=[NS], ip_addresses=[HOLDER_IP], info=info)
    csv = (out / "ovn-nb/logical-switch-ports.csv").read_text().splitlines()
    assert csv[0].startswith("_uuid,name,addresses")
    assert [row.split(",")[1] for row in csv[1:]] == [f"h-k2x9q.{NS}"]  # 10.16.0.150 is another address
    assert fake_ko.read_text().startswith("nbctl --format=csv")
    pinned = fake_ko.with_name("ko-args.kubeconfig").read_text()
    assert "https://b.invalid" in pinned and "https://a.invalid" not in pinned
    assert "OVN NB: 1 of 3 logical switch ports carry the addresses" in (out / "index.txt").read_text()


def test_kubectl_ko_absent_leaves_a_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    info = ClusterInfo(backend="existing", kubeconfig=str(_kubeconfig(tmp_path)), simulated=False)
    out = tmp_path / "diag"
    diagnostics.collect(_no_cluster(), out, namespaces=[NS], ip_addresses=[HOLDER_IP], info=info)
    assert "`kubectl ko` is not available" in (out / "ovn-nb/README.txt").read_text()
    assert not (out / "errors.txt").exists()
