"""Discovery, version, OpenAPI, health and unknown paths of the simulated API server."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from conformance.sim.cluster import SimCluster
from conformance.sim.config import SimConfig
from conformance.versions import K8S_VERSION


def http(
    sim: SimCluster, path: str, method: str = "GET", body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(sim.url + path, data=data, method=method,
                                 headers={**sim.auth_headers, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10, context=sim.client_ssl_context()) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def get_json(sim: SimCluster, path: str) -> Any:
    code, _, raw = http(sim, path)
    assert code == 200, f"GET {path}: expected 200, got {code}: {raw[:300]!r}"
    return json.loads(raw)


def test_version_reports_configured_kubernetes(sim_cluster: SimCluster) -> None:
    version = get_json(sim_cluster, "/version")
    assert version["gitVersion"] == f"{K8S_VERSION}+kovc-sim", f"/version: {version}"
    assert (version["major"], version["minor"]) == tuple(K8S_VERSION.lstrip("v").split(".")[:2])
    assert version["platform"] == "linux/amd64"


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/livez"])
def test_health_endpoints(sim_cluster: SimCluster, path: str) -> None:
    code, _, raw = http(sim_cluster, path)
    assert (code, raw) == (200, b"ok"), f"{path}: expected 200 ok, got {code} {raw!r}"


def test_core_and_group_discovery(sim_cluster: SimCluster) -> None:
    assert get_json(sim_cluster, "/api")["versions"] == ["v1"]
    groups = {g["name"]: g for g in get_json(sim_cluster, "/apis")["groups"]}
    for group in ("apps", "kubevirt.io", "kubeovn.io", "subresources.kubevirt.io"):
        assert group in groups, f"/apis: expected group {group}, got {sorted(groups)}"
    assert [v["version"] for v in groups["subresources.kubevirt.io"]["versions"]] == ["v1", "v1alpha3"]
    core = {r["name"]: r for r in get_json(sim_cluster, "/api/v1")["resources"]}
    assert core["pods"]["shortNames"] == ["po"] and core["pods"]["namespaced"] is True
    assert core["pods/log"]["verbs"] == ["get"], core["pods/log"]
    assert core["pods/status"]["verbs"] == ["get", "patch", "update"]
    assert core["nodes"]["namespaced"] is False
    kubevirt = {r["name"]: r for r in get_json(sim_cluster, "/apis/kubevirt.io/v1")["resources"]}
    assert kubevirt["virtualmachines"]["shortNames"] == ["vm", "vms"]
    assert kubevirt["virtualmachines"]["categories"] == ["all"]
    assert "virtualmachines/status" in kubevirt
    sub = get_json(sim_cluster, "/apis/subresources.kubevirt.io/v1")["resources"]
    assert sorted(r["name"] for r in sub) == sorted(
        f"virtualmachines/{a}" for a in ("start", "stop", "restart", "migrate")
    )
    assert all(r["verbs"] == ["update"] and r["namespaced"] for r in sub), sub
    assert get_json(sim_cluster, "/apis/kubevirt.io")["preferredVersion"]["version"] == "v1"


def test_openapi_v3_declares_field_validation_for_every_kind(sim_cluster: SimCluster) -> None:
    index = get_json(sim_cluster, "/openapi/v3")["paths"]
    assert "api/v1" in index and "apis/kubevirt.io/v1" in index, sorted(index)
    for key, ref in index.items():
        doc = get_json(sim_cluster, ref["serverRelativeURL"])
        kinds = {
            g["kind"]
            for s in doc["components"]["schemas"].values()
            for g in s.get("x-kubernetes-group-version-kind", [])
        }
        for path, item in doc["paths"].items():
            for verb in ("post", "patch"):
                op = item.get(verb)
                if op is None or "x-kubernetes-group-version-kind" not in op:
                    continue
                params = {p["name"] for p in op["parameters"]}
                assert "fieldValidation" in params, f"{key} {verb} {path}: no fieldValidation parameter"
                assert op["x-kubernetes-group-version-kind"]["kind"] in kinds
    vm_doc = get_json(sim_cluster, index["apis/kubevirt.io/v1"]["serverRelativeURL"])
    assert "io.kubevirt.v1.VirtualMachine" in vm_doc["components"]["schemas"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/foos",
        "/apis/kubevirt.io/v1/namespaces/default/virtualmachines/x/nope",
        "/apis/subresources.kubevirt.io/v1/namespaces/d/virtualmachines/x/fly",
    ],
)
def test_unknown_path_is_404_status(sim_cluster: SimCluster, path: str) -> None:
    code, headers, raw = http(sim_cluster, path)
    body = json.loads(raw)
    assert code == 404, f"GET {path}: expected 404, got {code}"
    assert headers["Content-Type"].startswith("application/json")
    assert (body["kind"], body["status"], body["code"], body["reason"]) == (
        "Status",
        "Failure",
        404,
        "NotFound",
    )


@pytest.mark.parametrize("path", ["/nothing/here", "/api/v2", "/apis/nope.io/v1",
                                  "/apis/kubeovn.io/v1/namespaces/d/ips"])
def test_a_path_nothing_serves_is_a_plain_404_page(sim_cluster: SimCluster, path: str) -> None:
    """kube-apiserver's mux answers paths no API serves (unknown group or version, a namespaced path of a
    cluster-scoped resource) with a plain-text 404, not a Status (measured: conformance/envtest/apidiff.py)."""
    code, headers, raw = http(sim_cluster, path)
    assert (code, raw.strip()) == (404, b"404 page not found"), (path, code, raw[:200])
    assert headers["Content-Type"].startswith("text/plain")


def test_method_not_allowed_is_405_status(sim_cluster: SimCluster) -> None:
    code, _, raw = http(sim_cluster, "/api/v1/namespaces/default/configmaps/x", method="POST", body={})
    assert code == 405 and json.loads(raw)["reason"] == "MethodNotAllowed", raw


def test_protobuf_body_is_refused_with_json_status(sim_cluster: SimCluster) -> None:
    req = urllib.request.Request(
        sim_cluster.url + "/api/v1/namespaces/default/configmaps",
        data=b"k8s\x00",
        method="POST",
        headers={"Content-Type": "application/vnd.kubernetes.protobuf", **sim_cluster.auth_headers},
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10, context=sim_cluster.client_ssl_context())
    assert err.value.code == 415 and json.loads(err.value.read())["reason"] == "UnsupportedMediaType"


def test_kubectl_api_resources_lists_short_names(
    kubectl: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    out = kubectl("api-resources")
    assert out.returncode == 0, out.stderr
    rows = {line.split()[0]: line for line in out.stdout.splitlines()[1:]}
    for resource, short in (
        ("virtualmachines", "vm,vms"),
        ("virtualmachineinstances", "vmi,vmis"),
        ("ips", "ip"),
        ("pods", "po"),
    ):
        assert resource in rows and short in rows[resource].split(), (
            f"kubectl api-resources: expected {resource} with short names {short}, got {rows.get(resource)!r}"
        )


def test_startup_time(tmp_path: Any) -> None:
    began = time.perf_counter()
    sim = SimCluster(SimConfig(seed=1))
    sim.start()
    try:
        total = time.perf_counter() - began
        print(
            f"\nSimCluster.start() with world={'yes' if sim.world is not None else 'no'}: "
            f"{sim.startup_seconds * 1000:.1f} ms (constructor + start {total * 1000:.1f} ms)"
        )
        assert sim.startup_seconds < 5.0, f"startup took {sim.startup_seconds:.2f}s (sanity bound 5s)"
        assert get_json(sim, "/version")["gitVersion"].endswith("+kovc-sim")
    finally:
        sim.stop()
    assert not sim.running


def test_https_with_self_signed_certificate(tmp_path: Any) -> None:
    pytest.importorskip("cryptography", reason="HTTPS needs the cryptography package")
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    with SimCluster(SimConfig(https=True), world=False) as sim:
        assert sim.url.startswith("https://127.0.0.1:")
        api = k8s_config.new_client_from_config(str(sim.write_kubeconfig(tmp_path / "kc")))
        try:
            assert k8s.VersionApi(api).get_code().git_version == f"{K8S_VERSION}+kovc-sim"
        finally:
            api.close()
