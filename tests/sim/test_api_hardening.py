"""``kovc sim serve`` is not easy to break: it requires the bearer token of its kubeconfig, refuses bodies
it would not accept as kube-apiserver (size, media type, YAML alias bombs), validates metadata as
``ValidateObjectMetaAccessor`` does — with the real server's Status reason, code and message — and an
object that a real server would refuse can no longer poison later lists."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from conformance.sim.cluster import SimCluster
from conformance.sim.validation import MAX_BODY

JSON = dict[str, Any]
SUBDOMAIN = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
             "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
             "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
LABEL = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
         "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
         "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')")


def call(sim: SimCluster, method: str, path: str, body: bytes | None = None, *,
         content_type: str | None = "application/json", token: str | None = "") -> tuple[int, JSON]:
    """One request; ``token`` "" means the cluster's own, None none at all."""
    headers: dict[str, str] = {}
    if content_type and body is not None:
        headers["Content-Type"] = content_type
    if token is not None:
        headers["Authorization"] = f"Bearer {token or sim.token}"
    req = urllib.request.Request(sim.url + path, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=20, context=sim.client_ssl_context()) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw.strip().startswith(b"{") else {}
    except urllib.error.HTTPError as err:
        raw = err.read()
        return err.code, json.loads(raw) if raw.strip().startswith(b"{") else {"raw": raw.decode()}


def pod(name: Any = "web", **meta: Any) -> bytes:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, **meta},
                       "spec": {"containers": [{"name": "c", "image": "busybox"}]}}).encode()


@pytest.fixture
def create(sim_cluster: SimCluster, sim_namespace: str) -> Callable[..., tuple[int, JSON]]:
    def run(body: bytes, content_type: str = "application/json") -> tuple[int, JSON]:
        return call(sim_cluster, "POST", f"/api/v1/namespaces/{sim_namespace}/pods", body,
                    content_type=content_type)
    return run


def test_the_bearer_token_is_required(sim_cluster: SimCluster) -> None:
    code, status = call(sim_cluster, "GET", "/api/v1/namespaces", token="not-the-token")
    assert (code, status) == (401, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                    "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
    # No credentials at all: kube-apiserver's system:anonymous, which RBAC lets read only the health checks
    # and /version (measured: conformance/envtest/apidiff.py auth.none.*).
    code, status = call(sim_cluster, "GET", "/api/v1/namespaces", token=None)
    assert (code, status["reason"]) == (403, "Forbidden")
    assert status["message"] == ('namespaces is forbidden: User "system:anonymous" cannot list resource "namespaces" '
                                 'in API group "" at the cluster scope')
    assert call(sim_cluster, "GET", "/version", token=None)[0] == 200
    assert call(sim_cluster, "GET", "/readyz", token=None)[0] == 200  # health checks are public
    assert call(sim_cluster, "GET", "/api/v1/namespaces")[0] == 200
    assert sim_cluster.url.startswith("https://"), "client-go sends a kubeconfig token only over TLS"


def test_writes_in_other_media_types_are_415(create: Callable[..., tuple[int, JSON]]) -> None:
    code, status = create(b"name=web", "application/x-www-form-urlencoded")
    assert (code, status["reason"], status["code"]) == (415, "UnsupportedMediaType", 415)
    assert status["message"].startswith("the body of the request was in an unknown format - accepted media "
                                        "types include: application/json, application/yaml")
    assert create(pod("yaml-ok").replace(b"{", b"{", 1), "application/yaml")[0] == 201  # JSON is YAML


def test_bodies_over_3_mib_are_413(create: Callable[..., tuple[int, JSON]]) -> None:
    code, status = create(pod("big", annotations={"a": "x" * MAX_BODY}))
    assert (code, status["reason"], status["message"]) == (413, "RequestEntityTooLarge",
                                                          "Request entity too large: limit is 3145728")


def test_a_yaml_alias_bomb_is_refused_without_expanding_it(create: Callable[..., tuple[int, JSON]]) -> None:
    levels = ["a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]"]
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        levels.append(f"{name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]")
    bomb = ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: bomb\n  annotations:\n    x: y\n"
            + "\n".join(levels) + "\nspec: {containers: [{name: c, image: busybox}]}\n").encode()
    assert len(bomb) < 1024
    code, status = create(bomb, "application/yaml")  # 9**9 "lol"s: ~2 GB if expanded
    assert (code, status["reason"]) == (400, "BadRequest"), status
    assert "document contains excessive aliasing" in status["message"]


def test_placeholder_names_are_invalid_as_on_a_real_server(
        create: Callable[..., tuple[int, JSON]], sim_namespace: str) -> None:
    code, status = create(pod("VM_NAME"))
    assert (code, status["reason"], status["code"]) == (422, "Invalid", 422)
    assert status["message"] == f'Pod "VM_NAME" is invalid: metadata.name: Invalid value: "VM_NAME": {SUBDOMAIN}'
    assert status["details"] == {"name": "VM_NAME", "kind": "Pod", "causes": [
        {"reason": "FieldValueInvalid", "message": f'Invalid value: "VM_NAME": {SUBDOMAIN}',
         "field": "metadata.name"}]}


def test_name_rules_per_kind_and_length(sim_cluster: SimCluster, create: Callable[..., tuple[int, JSON]]) -> None:
    code, status = call(sim_cluster, "POST", "/api/v1/namespaces",
                        json.dumps({"metadata": {"name": "a.b"}}).encode())
    assert code == 422 and status["message"] == \
        'Namespace "a.b" is invalid: metadata.name: Invalid value: "a.b": must not contain dots'
    code, status = call(sim_cluster, "POST", "/api/v1/namespaces",
                        json.dumps({"metadata": {"name": "Team_A"}}).encode())
    assert code == 422 and status["message"].endswith(f': "Team_A": {LABEL}')
    long_name = "a" * 254
    code, status = create(pod(long_name))
    assert code == 422 and status["details"]["causes"][0]["message"] == \
        f'Invalid value: "{long_name}": must be no more than 253 characters'
    code, status = create(pod(None, generateName="Web_"))
    assert code == 422 and status["details"]["causes"][0]["field"] == "metadata.generateName"
    code, status = create(pod(None, generateName="web-"))
    assert code == 201 and status["metadata"]["name"].startswith("web-")
    code, status = create(pod(None))
    assert code == 422 and status["message"] == \
        'Pod "" is invalid: metadata.name: Required value: name or generateName is required'
    code, status = call(sim_cluster, "POST", "/apis/kubevirt.io/v1/namespaces/default/virtualmachines",
                        json.dumps({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                                    "metadata": {"name": "VM_NAME"}, "spec": {}}).encode())
    assert code == 422 and status["message"].startswith('VirtualMachine.kubevirt.io "VM_NAME" is invalid: ')
    assert status["details"]["group"] == "kubevirt.io"


def test_metadata_types_are_400_and_cannot_poison_lists(
        sim_cluster: SimCluster, sim_namespace: str, create: Callable[..., tuple[int, JSON]]) -> None:
    code, status = create(pod(5))
    assert (code, status["reason"]) == (400, "BadRequest")
    assert status["message"] == ('Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal number '
                                 "into Go struct field ObjectMeta.metadata.name of type string")
    for meta in ({"namespace": 7}, {"labels": {"a": 1}}, {"annotations": ["x"]}, {"ownerReferences": "x"},
                 {"ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "a", "uid": 3}]},
                 {"finalizers": "x"}):
        code, status = create(pod("typed", **meta))
        assert (code, status["reason"]) == (400, "BadRequest"), (meta, status)
    assert create(pod("fine"))[0] == 201
    patch = call(sim_cluster, "PATCH", f"/api/v1/namespaces/{sim_namespace}/pods/fine",
                 json.dumps({"metadata": {"labels": {"n": 5}}}).encode(), content_type="application/merge-patch+json")
    assert patch[0] == 400, patch
    code, listing = call(sim_cluster, "GET", "/api/v1/pods")
    assert code == 200 and any(p["metadata"]["name"] == "fine" for p in listing["items"])


def test_owner_references_labels_and_annotations(create: Callable[..., tuple[int, JSON]]) -> None:
    code, status = create(pod("owned", ownerReferences=[{}]))
    assert code == 422
    assert [c["field"] for c in status["details"]["causes"]] == [
        "metadata.ownerReferences.apiVersion", "metadata.ownerReferences.kind",
        "metadata.ownerReferences.name", "metadata.ownerReferences.uid"]
    assert status["details"]["causes"][0]["message"] == 'Invalid value: "": version must not be empty'
    two = [{"apiVersion": "v1", "kind": "Pod", "name": n, "uid": n, "controller": True} for n in ("a", "b")]
    code, status = create(pod("owned", ownerReferences=two))
    assert code == 422 and 'Only one reference can have Controller set to true. Found "true" in references ' \
        "for Pod/a and Pod/b" in status["message"]
    code, status = create(pod("labelled", labels={"bad key!": "v"}))
    assert code == 422 and status["details"]["causes"][0]["field"] == "metadata.labels"
    code, status = create(pod("annotated", annotations={"a": "x" * (256 * 1024)}))
    assert code == 422 and status["details"]["causes"] == [
        {"reason": "FieldValueTooLong", "message": "Too long: must have at most 262144 bytes",
         "field": "metadata.annotations"}]
    assert create(pod("annotated", annotations={"a": "x" * (256 * 1024 - 1)}))[0] == 201


def test_kubectl_sends_the_token_and_sees_the_real_answer(
        kubectl: Callable[..., Any], sim_namespace: str) -> None:
    ok = kubectl("get", "pods", "-n", sim_namespace)
    assert ok.returncode == 0, ok.stderr
    manifest = ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: VM_NAME\nspec:\n  containers:\n"
                "  - name: c\n    image: busybox\n")
    bad = kubectl("apply", "-n", sim_namespace, "-f", "-", input=manifest)
    assert bad.returncode != 0
    assert 'is invalid: metadata.name: Invalid value: "VM_NAME": a lowercase RFC 1123 subdomain' in bad.stderr
