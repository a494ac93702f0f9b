"""CRUD verbs of the simulated API server through the real ``kubernetes`` client."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient

from conformance.sim.cluster import SimCluster
from conformance.sim.resources import CONFIGMAPS, SERVICEACCOUNTS
from conformance.sim.store import MAX_GENERATE_BASE, NAME_ALPHABET, AdmissionRequest, ApiError

Waiter = Callable[..., None]


def cm(name: str, data: dict[str, str] | None = None, **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, **meta}, "data": data or {}}


#: Bound to a node no kubelet serves: the world's scheduler and kubelets leave such pods alone.
NOWHERE = "kovc-test-nowhere"


def pod(name: str, containers: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"nodeName": NOWHERE, "containers": containers or [{"name": "main", "image": "busybox"}]},
    }


@pytest.fixture
def core(sim_api: k8s.ApiClient) -> k8s.CoreV1Api:
    return k8s.CoreV1Api(sim_api)


@pytest.fixture
def custom(sim_api: k8s.ApiClient) -> k8s.CustomObjectsApi:
    return k8s.CustomObjectsApi(sim_api)


def test_create_get_list_update_delete_configmap(core: k8s.CoreV1Api, sim_namespace: str) -> None:
    created = core.create_namespaced_config_map(sim_namespace, cm("a", {"k": "1"}, labels={"app": "x"}))
    assert created.metadata.uid and created.metadata.resource_version and created.metadata.creation_timestamp
    core.create_namespaced_config_map(sim_namespace, cm("b", labels={"app": "y"}))
    got = core.read_namespaced_config_map("a", sim_namespace)
    assert got.data == {"k": "1"}
    listed = core.list_namespaced_config_map(sim_namespace, label_selector="app=x")
    assert [i.metadata.name for i in listed.items] == ["a"], "label selector app=x"
    assert int(listed.metadata.resource_version) >= int(created.metadata.resource_version)
    by_field = core.list_namespaced_config_map(sim_namespace, field_selector="metadata.name=b")
    assert [i.metadata.name for i in by_field.items] == ["b"], "field selector metadata.name=b"
    all_ns = core.list_config_map_for_all_namespaces(label_selector="app in (x,y)")
    assert {(i.metadata.namespace, i.metadata.name) for i in all_ns.items} == {
        (sim_namespace, "a"),
        (sim_namespace, "b"),
    }
    got.data = {"k": "2"}
    updated = core.replace_namespaced_config_map("a", sim_namespace, got)
    assert updated.data == {"k": "2"} and updated.metadata.resource_version != got.metadata.resource_version
    core.delete_namespaced_config_map("a", sim_namespace)
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("a", sim_namespace)
    assert err.value.status == 404
    assert json.loads(err.value.body)["message"] == 'configmaps "a" not found'


def test_create_twice_is_409_already_exists(core: k8s.CoreV1Api, sim_namespace: str) -> None:
    core.create_namespaced_config_map(sim_namespace, cm("dup"))
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(sim_namespace, cm("dup"))
    assert err.value.status == 409 and json.loads(err.value.body)["reason"] == "AlreadyExists"


def test_put_with_stale_resource_version_is_409(core: k8s.CoreV1Api, sim_namespace: str) -> None:
    first = core.create_namespaced_config_map(sim_namespace, cm("stale", {"v": "1"}))
    fresh = core.read_namespaced_config_map("stale", sim_namespace)
    fresh.data = {"v": "2"}
    core.replace_namespaced_config_map("stale", sim_namespace, fresh)
    first.data = {"v": "3"}
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("stale", sim_namespace, first)
    body = json.loads(err.value.body)
    assert err.value.status == 409 and body["reason"] == "Conflict", body
    assert "the object has been modified" in body["message"]
    assert core.read_namespaced_config_map("stale", sim_namespace).data == {"v": "2"}


def test_put_name_mismatch_is_400(core: k8s.CoreV1Api, sim_namespace: str) -> None:
    core.create_namespaced_config_map(sim_namespace, cm("one"))
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("one", sim_namespace, cm("two"))
    assert err.value.status == 400


def test_generate_name(core: k8s.CoreV1Api, sim_namespace: str) -> None:
    made = core.create_namespaced_config_map(sim_namespace, {"metadata": {"generateName": "gen-"}})
    name = made.metadata.name
    assert name.startswith("gen-") and len(name) == len("gen-") + 5, name
    assert all(c in NAME_ALPHABET for c in name[4:]), f"suffix {name[4:]!r} outside {NAME_ALPHABET}"
    long_base = "x" * 70
    made = core.create_namespaced_config_map(sim_namespace, {"metadata": {"generateName": long_base}})
    assert made.metadata.name[:MAX_GENERATE_BASE] == long_base[:MAX_GENERATE_BASE]
    assert len(made.metadata.name) == MAX_GENERATE_BASE + 5 == 63


def test_missing_namespace_is_404(core: k8s.CoreV1Api) -> None:
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("no-such-namespace", cm("x"))
    assert err.value.status == 404


@pytest.fixture
def deny_label(sim_cluster: SimCluster) -> Iterator[list[AdmissionRequest]]:
    """A validator denying objects labelled ``deny=yes``; yields what it saw."""
    seen: list[AdmissionRequest] = []

    def validator(req: AdmissionRequest) -> None:
        if req.rt.key != CONFIGMAPS.key:
            return
        seen.append(req)
        obj = req.object or {}
        if (obj.get("metadata", {}).get("labels") or {}).get("deny") == "yes":
            raise ApiError(
                400,
                "BadRequest",
                f'admission webhook "test.kovc.io" denied the request: {req.name} is labelled deny=yes',
            )

    sim_cluster.call(lambda s: s.validators.append(validator))
    yield seen
    sim_cluster.call(lambda s: s.validators.remove(validator))


def test_dry_run_create_runs_admission_and_stores_nothing(
    core: k8s.CoreV1Api, sim_namespace: str, deny_label: list[AdmissionRequest]
) -> None:
    made = core.create_namespaced_config_map(sim_namespace, cm("dry", {"a": "b"}), dry_run="All")
    assert made.metadata.name == "dry" and made.metadata.uid
    assert [(r.operation, r.name, r.dry_run) for r in deny_label] == [("CREATE", "dry", True)]
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("dry", sim_namespace)
    assert err.value.status == 404, "a dry-run create must not store the object"
    with pytest.raises(ApiException) as denied:
        core.create_namespaced_config_map(sim_namespace, cm("dry2", labels={"deny": "yes"}), dry_run="All")
    body = json.loads(denied.value.body)
    assert denied.value.status == 400
    assert body["message"] == 'admission webhook "test.kovc.io" denied the request: dry2 is labelled deny=yes'


def test_dry_run_update_patch_delete_change_nothing(core: k8s.CoreV1Api, sim_namespace: str) -> None:
    core.create_namespaced_config_map(sim_namespace, cm("keep", {"v": "1"}))
    current = core.read_namespaced_config_map("keep", sim_namespace)
    current.data = {"v": "2"}
    assert core.replace_namespaced_config_map("keep", sim_namespace, current, dry_run="All").data == {
        "v": "2"
    }
    assert core.patch_namespaced_config_map(
        "keep", sim_namespace, {"data": {"v": "3"}}, dry_run="All"
    ).data == {"v": "3"}
    core.delete_namespaced_config_map("keep", sim_namespace, dry_run="All")
    after = core.read_namespaced_config_map("keep", sim_namespace)
    assert after.data == {"v": "1"} and after.metadata.resource_version == current.metadata.resource_version


def test_finalizers_hold_deletion_with_deletion_timestamp(
    core: k8s.CoreV1Api, sim_namespace: str, sim_wait: Waiter
) -> None:
    core.create_namespaced_config_map(sim_namespace, cm("fin", finalizers=["kovc.io/test"]))
    answer = core.delete_namespaced_config_map("fin", sim_namespace)
    held = core.read_namespaced_config_map("fin", sim_namespace)
    assert held.metadata.deletion_timestamp is not None, "expected a deletionTimestamp on a finalized object"
    assert held.metadata.finalizers == ["kovc.io/test"]
    assert answer is not None
    core.patch_namespaced_config_map("fin", sim_namespace, {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("fin", sim_namespace)
    assert err.value.status == 404, "removing the last finalizer must complete the deletion"


def test_delete_preconditions(core: k8s.CoreV1Api, sim_namespace: str) -> None:
    made = core.create_namespaced_config_map(sim_namespace, cm("pre"))
    with pytest.raises(ApiException) as err:
        core.delete_namespaced_config_map(
            "pre", sim_namespace, body=k8s.V1DeleteOptions(preconditions=k8s.V1Preconditions(uid="nope"))
        )
    assert err.value.status == 409
    core.delete_namespaced_config_map(
        "pre",
        sim_namespace,
        body=k8s.V1DeleteOptions(preconditions=k8s.V1Preconditions(uid=made.metadata.uid)),
    )
    assert not core.list_namespaced_config_map(sim_namespace, field_selector="metadata.name=pre").items


def test_deletecollection_by_label(core: k8s.CoreV1Api, sim_namespace: str) -> None:
    for i in range(3):
        core.create_namespaced_config_map(
            sim_namespace, cm(f"dc{i}", labels={"batch": "1" if i < 2 else "2"})
        )
    core.delete_collection_namespaced_config_map(sim_namespace, label_selector="batch=1")
    left = core.list_namespaced_config_map(sim_namespace, label_selector="batch")
    assert [i.metadata.name for i in left.items] == ["dc2"]


def test_status_subresource(core: k8s.CoreV1Api, sim_namespace: str) -> None:
    core.create_namespaced_pod(sim_namespace, pod("st"))
    core.patch_namespaced_pod_status(
        "st", sim_namespace, {"status": {"phase": "Running", "podIP": "10.16.0.9"}}
    )
    status = core.read_namespaced_pod_status("st", sim_namespace)
    assert status.status.phase == "Running" and status.status.pod_ip == "10.16.0.9"
    # A plain update/patch cannot change the status; the status subresource cannot change the spec.
    core.patch_namespaced_pod(
        "st", sim_namespace, {"status": {"phase": "Failed"}, "metadata": {"labels": {"a": "b"}}}
    )
    after = core.read_namespaced_pod("st", sim_namespace)
    assert after.status.phase == "Running" and after.metadata.labels == {"a": "b"}
    # The simulated scheduler and kubelet write this pod too, so a read-modify-write may meet a newer
    # resourceVersion (409), as on a real cluster: read again and retry.
    for _ in range(20):
        body = core.read_namespaced_pod("st", sim_namespace)
        body.spec.containers[0].image = "changed"
        body.status.pod_ip = "10.16.0.10"
        try:
            core.replace_namespaced_pod_status("st", sim_namespace, body)
            break
        except ApiException as exc:
            if exc.status != 409:
                raise
    else:
        pytest.fail("pods/st status: 20 read-modify-write attempts all met 409 Conflict")
    after = core.read_namespaced_pod("st", sim_namespace)
    assert after.status.pod_ip == "10.16.0.10" and after.spec.containers[0].image == "busybox"


def test_pod_log(core: k8s.CoreV1Api, sim_cluster: SimCluster, sim_namespace: str) -> None:
    core.create_namespaced_pod(sim_namespace, pod("logger"))
    text = core.read_namespaced_pod_log("logger", sim_namespace)
    assert isinstance(text, str)
    if sim_cluster.world is not None:
        assert text == sim_cluster.call(lambda s: sim_cluster.world.pod_log(s, sim_namespace, "logger"))  # type: ignore[union-attr]
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_log("no-such-pod", sim_namespace)
    assert err.value.status == 404


def test_cluster_scoped_custom_resource_crud(custom: k8s.CustomObjectsApi) -> None:
    body = {"apiVersion": "kubeovn.io/v1", "kind": "Vpc", "metadata": {"name": "crud-vpc"}, "spec": {}}
    made = custom.create_cluster_custom_object("kubeovn.io", "v1", "vpcs", body)
    assert made["metadata"]["uid"] and "namespace" not in made["metadata"]
    got = custom.get_cluster_custom_object("kubeovn.io", "v1", "vpcs", "crud-vpc")
    assert got["metadata"]["name"] == "crud-vpc"
    listed = custom.list_cluster_custom_object("kubeovn.io", "v1", "vpcs")
    assert "crud-vpc" in [i["metadata"]["name"] for i in listed["items"]]
    assert listed["kind"] == "VpcList"
    deleted = custom.delete_cluster_custom_object("kubeovn.io", "v1", "vpcs", "crud-vpc")
    # kube-apiserver answers an immediate DELETE of a custom resource with a Status (measured by the
    # differential check, conformance/envtest/apidiff.py: ip.delete)
    assert (deleted["kind"], deleted["status"], deleted["details"]["name"]) == ("Status", "Success", "crud-vpc"), \
        deleted
    with pytest.raises(ApiException) as err:
        custom.get_cluster_custom_object("kubeovn.io", "v1", "vpcs", "crud-vpc")
    assert err.value.status == 404


def test_kind_mismatch_is_400(custom: k8s.CustomObjectsApi) -> None:
    with pytest.raises(ApiException) as err:
        custom.create_cluster_custom_object(
            "kubeovn.io",
            "v1",
            "vpcs",
            {"apiVersion": "kubeovn.io/v1", "kind": "Subnet", "metadata": {"name": "wrong"}},
        )
    assert err.value.status == 400


def test_dynamic_client(sim_api: k8s.ApiClient, sim_namespace: str, tmp_path: Path) -> None:
    dyn = DynamicClient(sim_api, cache_file=str(tmp_path / "discovery.json"))
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    cms.create(body=cm("dyn", {"x": "1"}), namespace=sim_namespace)
    assert cms.get(name="dyn", namespace=sim_namespace).data.x == "1"
    vms = dyn.resources.get(api_version="kubevirt.io/v1", kind="VirtualMachine")
    assert vms.namespaced and vms.short_names == ["vm", "vms"]
    cms.delete(name="dyn", namespace=sim_namespace)
    assert not cms.get(namespace=sim_namespace, field_selector="metadata.name=dyn").items


def _raw(sim: SimCluster, path: str, accept: str) -> dict[str, Any]:
    req = urllib.request.Request(sim.url + path, headers={"Accept": accept, **sim.auth_headers})
    with urllib.request.urlopen(req, timeout=10, context=sim.client_ssl_context()) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


def test_table_and_partial_metadata(
    sim_cluster: SimCluster, core: k8s.CoreV1Api, sim_namespace: str, custom: k8s.CustomObjectsApi
) -> None:
    core.create_namespaced_pod(sim_namespace, pod("tab"))
    table_accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    table = _raw(sim_cluster, f"/api/v1/namespaces/{sim_namespace}/pods", table_accept)
    assert table["kind"] == "Table"
    columns = [c["name"] for c in table["columnDefinitions"]]
    assert columns[:5] == ["Name", "Ready", "Status", "Restarts", "Age"], columns
    assert table["rows"][0]["cells"][0] == "tab"
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    custom.create_cluster_custom_object(
        "kubeovn.io",
        "v1",
        "ips",
        {
            "apiVersion": "kubeovn.io/v1",
            "kind": "IP",
            "metadata": {"name": f"tabip.{sim_namespace}"},
            "spec": {
                "v4IpAddress": "10.16.250.77",
                "macAddress": "00:00:00:00:00:01",
                "nodeName": "n1",
                "subnet": "ovn-default",
                "podName": "tabip",
                "namespace": sim_namespace,
            },
        },
    )
    ips = _raw(sim_cluster, f"/apis/kubeovn.io/v1/ips/tabip.{sim_namespace}", table_accept)
    cells = dict(zip([c["name"] for c in ips["columnDefinitions"]], ips["rows"][0]["cells"], strict=True))
    assert {k: cells[k] for k in ("V4IP", "Mac", "Node", "Subnet")} == {
        "V4IP": "10.16.250.77",
        "Mac": "00:00:00:00:00:01",
        "Node": "n1",
        "Subnet": "ovn-default",
    }
    partial = _raw(
        sim_cluster,
        f"/api/v1/namespaces/{sim_namespace}/pods",
        "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io",
    )
    assert partial["kind"] == "PartialObjectMetadataList" and "spec" not in partial["items"][0]
    plain = _raw(
        sim_cluster,
        f"/api/v1/namespaces/{sim_namespace}/pods",
        "application/vnd.kubernetes.protobuf, application/json",
    )
    assert plain["kind"] == "PodList"
    custom.delete_cluster_custom_object("kubeovn.io", "v1", "ips", f"tabip.{sim_namespace}")


def test_store_writes_carry_user_agent(
    core: k8s.CoreV1Api, sim_cluster: SimCluster, sim_namespace: str
) -> None:
    core.create_namespaced_config_map(sim_namespace, cm("ua"))
    entries = [e for e in sim_cluster.audit() if e["namespace"] == sim_namespace and e["name"] == "ua"]
    assert [(e["verb"], e["userAgent"], e["code"]) for e in entries] == [("create", "kovc-tests/api", 201)]


def test_namespace_gets_default_service_account(
    sim_cluster: SimCluster, sim_namespace: str, sim_wait: Waiter
) -> None:
    sim_wait(
        lambda s: s.get(SERVICEACCOUNTS, sim_namespace, "default") is not None,
        f"serviceaccount {sim_namespace}/default",
    )
    sa = sim_cluster.call(lambda s: s.require(SERVICEACCOUNTS, sim_namespace, "default"))
    assert sa["metadata"]["namespace"] == sim_namespace


def test_vm_action_without_world_is_503(api_only_cluster: Any) -> None:
    sim = api_only_cluster()
    req = urllib.request.Request(
        sim.url + "/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachines/x/start",
        data=b"{}",
        method="PUT",
        headers={"Content-Type": "application/json", **sim.auth_headers},
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10, context=sim.client_ssl_context())
    assert err.value.code == 503
    assert [(e["verb"], e["code"]) for e in sim.audit()] == [("start", 503)]


def _put(sim: SimCluster, path: str, body: bytes = b"{}") -> tuple[int, bytes]:
    req = urllib.request.Request(
        sim.url + path,
        data=body,
        method="PUT",
        headers={"Content-Type": "application/json", "User-Agent": "kovc-tests/actions", **sim.auth_headers},
    )
    try:
        with urllib.request.urlopen(req, timeout=10, context=sim.client_ssl_context()) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_vm_actions_through_virt_api_paths(
    sim_cluster: SimCluster, custom: k8s.CustomObjectsApi, sim_namespace: str, sim_wait: Waiter
) -> None:
    if sim_cluster.world is None:
        pytest.skip("VM actions need the behaviour module (conformance.sim.world)")
    custom.create_namespaced_custom_object(
        "kubevirt.io",
        "v1",
        sim_namespace,
        "virtualmachines",
        {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachine",
            "metadata": {"name": "act"},
            "spec": {"runStrategy": "Halted", "template": {"spec": {"domain": {"devices": {}}}}},
        },
    )
    base = f"/namespaces/{sim_namespace}/virtualmachines/act"
    code, _ = _put(sim_cluster, f"/apis/subresources.kubevirt.io/v1{base}/start", b'{"dryRun": ["All"]}')
    assert code == 202
    vm = custom.get_namespaced_custom_object("kubevirt.io", "v1", sim_namespace, "virtualmachines", "act")
    assert vm["spec"]["runStrategy"] == "Halted", "a dry-run start changes nothing"
    code, _ = _put(sim_cluster, f"/apis/subresources.kubevirt.io/v1alpha3{base}/start")
    assert code == 202, "v1alpha3 is served too"
    vm = custom.get_namespaced_custom_object("kubevirt.io", "v1", sim_namespace, "virtualmachines", "act")
    assert vm["spec"]["runStrategy"] == "Always"
    code, raw = _put(
        sim_cluster,
        f"/apis/subresources.kubevirt.io/v1/namespaces/{sim_namespace}/virtualmachines/missing/stop",
    )
    assert code == 404 and json.loads(raw)["kind"] == "Status", raw
    entries = [
        (e["verb"], e["name"], e["code"], e["dryRun"])
        for e in sim_cluster.audit()
        if e["userAgent"] == "kovc-tests/actions"
        and e["namespace"] == sim_namespace
        and e["verb"] in ("start", "stop")
    ]
    assert entries == [
        ("start", "act", 202, True),
        ("start", "act", 202, False),
        ("stop", "missing", 404, False),
    ]
