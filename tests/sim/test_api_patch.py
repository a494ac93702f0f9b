"""PATCH flavours: the pure functions of ``conformance.sim.patch`` and the same through HTTP."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from conformance.sim import patch as p
from conformance.sim.resources import PODS, SERVICES, VMS
from conformance.sim.store import ApiError

# ----------------------------------------------------------------------------- pure functions


def test_merge_patch_rfc7386() -> None:
    target = {"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]}
    patched = p.merge_patch(target, {"a": "z", "c": {"f": None}, "l": [3], "n": {"x": None}})
    assert patched == {"a": "z", "c": {"d": "e"}, "l": [3], "n": {}}
    assert target == {"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]}, "the input must not change"


def test_json_patch_operations() -> None:
    doc = {"a": {"b": [1, 2, 3]}, "x/y": 1, "t~": 2}
    out = p.json_patch(
        doc,
        [
            {"op": "add", "path": "/a/b/1", "value": 9},
            {"op": "add", "path": "/a/b/-", "value": 4},
            {"op": "remove", "path": "/a/b/0"},
            {"op": "replace", "path": "/x~1y", "value": 5},
            {"op": "copy", "from": "/t~0", "path": "/c"},
            {"op": "move", "from": "/c", "path": "/d"},
            {"op": "test", "path": "/a/b", "value": [9, 2, 3, 4]},
        ],
    )
    assert out == {"a": {"b": [9, 2, 3, 4]}, "x/y": 5, "t~": 2, "d": 2}


@pytest.mark.parametrize(
    "ops",
    [
        [{"op": "test", "path": "/a", "value": 2}],
        [{"op": "remove", "path": "/missing"}],
        [{"op": "replace", "path": "/missing", "value": 1}],
        [{"op": "add", "path": "/no/parent", "value": 1}],
        [{"op": "add", "path": "/l/5", "value": 1}],
    ],
)
def test_json_patch_that_does_not_apply_is_422(ops: list[dict[str, Any]]) -> None:
    with pytest.raises(ApiError) as err:
        p.json_patch({"a": 1, "l": []}, ops)
    assert err.value.code == 422, err.value.message


@pytest.mark.parametrize(
    "ops",
    [
        {"op": "add"},
        [{"path": "/a"}],
        [{"op": "jump", "path": "/a"}],
        [{"op": "add", "path": "a", "value": 1}],
    ],
)
def test_malformed_json_patch_is_400(ops: Any) -> None:
    with pytest.raises(ApiError) as err:
        p.json_patch({"a": 1}, ops)
    assert err.value.code == 400


def test_strategic_merge_service_ports_by_port() -> None:
    svc = {
        "spec": {
            "ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}],
            "selector": {"app": "a"},
        }
    }
    out = p.strategic_merge_patch(
        svc, {"spec": {"ports": [{"port": 443, "targetPort": 8443}, {"port": 53, "name": "dns"}]}}, SERVICES
    )
    assert out["spec"]["ports"] == [
        {"port": 80, "name": "http"},
        {"port": 443, "name": "https", "targetPort": 8443},
        {"port": 53, "name": "dns"},
    ]
    out = p.strategic_merge_patch(out, {"spec": {"ports": [{"port": 80, "$patch": "delete"}]}}, SERVICES)
    assert [x["port"] for x in out["spec"]["ports"]] == [443, 53]
    out = p.strategic_merge_patch(out, {"spec": {"ports": [{"$patch": "replace"}, {"port": 1}]}}, SERVICES)
    assert out["spec"]["ports"] == [{"port": 1}]


def test_strategic_merge_pod_containers_env_and_replace_lists() -> None:
    pod = {
        "metadata": {"finalizers": ["a"], "ownerReferences": [{"uid": "1", "name": "o"}]},
        "spec": {
            "containers": [
                {"name": "main", "image": "v1", "args": ["x", "y"], "env": [{"name": "A", "value": "1"}]},
                {"name": "side", "image": "s"},
            ],
            "tolerations": [{"key": "k1"}],
        },
    }
    out = p.strategic_merge_patch(
        pod,
        {
            "metadata": {"finalizers": ["b", "a"], "ownerReferences": [{"uid": "1", "controller": True}]},
            "spec": {
                "containers": [
                    {"name": "main", "image": "v2", "args": ["z"], "env": [{"name": "B", "value": "2"}]},
                    {"name": "side", "$patch": "delete"},
                ],
                "tolerations": [{"key": "k2"}],
            },
        },
        PODS,
    )
    assert out["metadata"]["finalizers"] == ["a", "b"], "finalizers are a merged primitive list"
    assert out["metadata"]["ownerReferences"] == [{"uid": "1", "name": "o", "controller": True}]
    assert out["spec"]["containers"] == [
        {
            "name": "main",
            "image": "v2",
            "args": ["z"],
            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
        }
    ]
    assert out["spec"]["tolerations"] == [{"key": "k2"}], "tolerations have no merge strategy: replaced"


def test_strategic_merge_directives() -> None:
    obj = {"spec": {"a": 1, "b": {"c": 1, "d": 2}, "l": ["x", "y"]}, "metadata": {"finalizers": ["f1", "f2"]}}
    out = p.strategic_merge_patch(obj, {"spec": {"b": {"$patch": "replace", "e": 3}}}, PODS)
    assert out["spec"]["b"] == {"e": 3}
    out = p.strategic_merge_patch(obj, {"spec": {"b": {"$patch": "delete"}}}, PODS)
    assert "b" not in out["spec"]
    out = p.strategic_merge_patch(obj, {"spec": {"$retainKeys": ["a"], "a": 2}}, PODS)
    assert out["spec"] == {"a": 2}
    out = p.strategic_merge_patch(obj, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["f1"]}}, PODS)
    assert out["metadata"]["finalizers"] == ["f2"]
    with pytest.raises(ApiError) as err:
        p.strategic_merge_patch(obj, {"spec": {"containers": [{"image": "no-name"}]}}, PODS)
    assert err.value.code == 400


def test_strategic_merge_is_415_for_custom_resources() -> None:
    with pytest.raises(ApiError) as err:
        p.apply_patch({}, p.STRATEGIC_MERGE_PATCH, {"spec": {}}, VMS)
    assert err.value.code == 415 and err.value.reason == "UnsupportedMediaType"
    assert p.STRATEGIC_MERGE_PATCH not in err.value.message.split("include: ")[1]


# ----------------------------------------------------------------------------- through HTTP


def test_http_strategic_merge_on_service_ports(sim_api: k8s.ApiClient, sim_namespace: str) -> None:
    core = k8s.CoreV1Api(sim_api)
    core.create_namespaced_service(
        sim_namespace,
        {
            "metadata": {"name": "svc"},
            "spec": {"ports": [{"port": 80, "name": "a"}, {"port": 81, "name": "b"}]},
        },
    )
    patched = core.patch_namespaced_service(
        "svc", sim_namespace, {"spec": {"ports": [{"port": 81, "name": "bb"}, {"port": 82, "name": "c"}]}}
    )
    assert [(x.port, x.name) for x in patched.spec.ports] == [(80, "a"), (81, "bb"), (82, "c")], (
        "a dict body is sent as strategic merge: ports merged by port"
    )


def test_http_strategic_merge_on_pod_containers(sim_api: k8s.ApiClient, sim_namespace: str) -> None:
    core = k8s.CoreV1Api(sim_api)
    core.create_namespaced_pod(
        sim_namespace,
        {
            "metadata": {"name": "p"},
            "spec": {
                "nodeName": "kovc-test-nowhere",  # no kubelet touches it
                "containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}],
            },
        },
    )
    patched = core.patch_namespaced_pod(
        "p", sim_namespace, {"spec": {"containers": [{"name": "b", "image": "b:2"}]}}
    )
    assert [(c.name, c.image) for c in patched.spec.containers] == [("a", "a:1"), ("b", "b:2")]


def _vpc(custom: k8s.CustomObjectsApi, name: str) -> dict[str, Any]:
    return custom.create_cluster_custom_object(  # type: ignore[no-any-return]
        "kubeovn.io",
        "v1",
        "vpcs",
        {
            "apiVersion": "kubeovn.io/v1",
            "kind": "Vpc",
            "metadata": {"name": name},
            "spec": {"namespaces": ["a"], "staticRoutes": [{"cidr": "0.0.0.0/0"}]},
        },
    )


def test_http_merge_and_json_patch_on_custom_resource(sim_api: k8s.ApiClient) -> None:
    custom = k8s.CustomObjectsApi(sim_api)
    _vpc(custom, "patch-vpc")
    try:
        with pytest.raises(ApiException) as err:  # CustomObjectsApi sends merge patch by default
            custom.patch_cluster_custom_object(
                "kubeovn.io", "v1", "vpcs", "patch-vpc", [{"op": "remove", "path": "/spec"}]
            )
        assert err.value.status == 400, "a JSON list is not a merge patch"
        merged = custom.patch_cluster_custom_object(
            "kubeovn.io", "v1", "vpcs", "patch-vpc", {"spec": {"namespaces": ["b"], "staticRoutes": None}}
        )
        assert merged["spec"] == {"namespaces": ["b"]}, "merge patch replaces lists and deletes nulls"
        patched = custom.patch_cluster_custom_object(
            "kubeovn.io",
            "v1",
            "vpcs",
            "patch-vpc",
            [
                {"op": "test", "path": "/spec/namespaces/0", "value": "b"},
                {"op": "add", "path": "/spec/namespaces/-", "value": "c"},
            ],
            _content_type=p.JSON_PATCH,
        )
        assert patched["spec"]["namespaces"] == ["b", "c"]
        with pytest.raises(ApiException) as err:
            custom.patch_cluster_custom_object(
                "kubeovn.io",
                "v1",
                "vpcs",
                "patch-vpc",
                [{"op": "test", "path": "/spec/namespaces/0", "value": "zz"}],
                _content_type=p.JSON_PATCH,
            )
        assert err.value.status == 422, err.value.body
        with pytest.raises(ApiException) as err:
            custom.patch_cluster_custom_object(
                "kubeovn.io", "v1", "vpcs", "patch-vpc", {"spec": {}}, _content_type=p.STRATEGIC_MERGE_PATCH
            )
        assert err.value.status == 415
        assert json.loads(err.value.body)["reason"] == "UnsupportedMediaType"
    finally:
        custom.delete_cluster_custom_object("kubeovn.io", "v1", "vpcs", "patch-vpc")


def test_http_patch_resource_version_precondition(sim_api: k8s.ApiClient, sim_namespace: str) -> None:
    core = k8s.CoreV1Api(sim_api)
    made = core.create_namespaced_config_map(sim_namespace, {"metadata": {"name": "rv"}, "data": {"a": "1"}})
    core.patch_namespaced_config_map("rv", sim_namespace, {"data": {"a": "2"}})
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_config_map(
            "rv",
            sim_namespace,
            {"metadata": {"resourceVersion": made.metadata.resource_version}, "data": {"a": "3"}},
        )
    assert err.value.status == 409


def test_http_server_side_apply_approximation(sim_api: k8s.ApiClient, sim_namespace: str) -> None:
    core = k8s.CoreV1Api(sim_api)
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"a": "1"}}
    created = core.patch_namespaced_config_map(
        "ssa", sim_namespace, body, field_manager="t", _content_type=p.APPLY_PATCH
    )
    assert created.data == {"a": "1"}, "apply creates a missing object"
    body["data"] = {"b": "2"}
    applied = core.patch_namespaced_config_map(
        "ssa", sim_namespace, body, field_manager="t", _content_type=p.APPLY_PATCH
    )
    assert applied.data == {"a": "1", "b": "2"}, "approximation: fields are merged, not pruned"


def test_http_patch_missing_object_is_404(sim_api: k8s.ApiClient, sim_namespace: str) -> None:
    with pytest.raises(ApiException) as err:
        k8s.CoreV1Api(sim_api).patch_namespaced_config_map("nope", sim_namespace, {"data": {}})
    assert err.value.status == 404
