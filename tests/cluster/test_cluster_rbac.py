"""``manifests/rbac.yaml``: least privilege that still covers everything the suite touches."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from conformance import _data

WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}


def load() -> list[dict[str, Any]]:
    path = _data.data_dir("manifests") / "rbac.yaml"
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def rules() -> list[dict[str, Any]]:
    (role,) = [d for d in load() if d["kind"] == "ClusterRole"]
    return list(role["rules"])


def allowed(group: str, resource: str) -> set[str]:
    verbs: set[str] = set()
    for rule in rules():
        if group in rule["apiGroups"] and resource in rule["resources"]:
            verbs |= set(rule["verbs"])
    return verbs


def test_binding_ties_the_role_to_the_service_account() -> None:
    docs = {d["kind"]: d for d in load()}
    assert set(docs) == {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"}
    binding = docs["ClusterRoleBinding"]
    assert binding["roleRef"]["name"] == docs["ClusterRole"]["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": docs["ServiceAccount"]["metadata"]["name"],
                                    "namespace": docs["ServiceAccount"]["metadata"]["namespace"]}]


def test_no_wildcards_and_no_privileged_resources() -> None:
    for rule in rules():
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[key], rule
        assert not {"secrets", "configmaps", "pods/exec", "roles", "clusterroles", "rolebindings",
                    "clusterrolebindings", "serviceaccounts/token"} & set(rule["resources"]), rule
        assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"]), rule


def test_installation_objects_are_read_only() -> None:
    for group, resource in (("apps", "deployments"), ("admissionregistration.k8s.io",
                                                      "validatingwebhookconfigurations"),
                            ("kubevirt.io", "kubevirts"), ("", "nodes"), ("kubevirt.io", "virtualmachineinstances")):
        verbs = allowed(group, resource)
        assert verbs and not verbs & WRITE_VERBS, (group, resource, verbs)


@pytest.mark.parametrize(("group", "resource", "verbs"), [
    ("kubevirt.io", "virtualmachineinstancemigrations", {"create", "get", "delete"}),
    ("subresources.kubevirt.io", "virtualmachines/migrate", {"update"}),
    ("subresources.kubevirt.io", "virtualmachines/restart", {"update"}),
    ("subresources.kubevirt.io", "virtualmachines/start", {"update"}),
    ("subresources.kubevirt.io", "virtualmachines/stop", {"update"}),
    ("clone.kubevirt.io", "virtualmachineclones", {"create", "delete"}),
    ("kubevirt.io", "virtualmachines", {"create", "patch", "delete", "watch"}),
    ("", "pods", {"create", "delete", "watch"}),
    ("", "pods/log", {"get"}),
    ("", "namespaces", {"create", "delete"}),
    ("kubeovn.io", "subnets", {"create", "delete"}),
    ("kubeovn.io", "vpcs", {"create", "delete"}),
    ("kubeovn.io", "ips", {"get", "list", "watch", "delete"}),
    ("k8s.cni.cncf.io", "network-attachment-definitions", {"create", "get", "list", "delete"}),
])
def test_what_the_suite_does_is_granted(group: str, resource: str, verbs: set[str]) -> None:
    assert verbs <= allowed(group, resource), (group, resource)


def test_attachment_definitions_are_only_the_runs_own() -> None:
    """The one way to an attachment network: each scenario creates its NetworkAttachmentDefinition in its
    own namespace and it goes with the namespace; nothing is detected or changed elsewhere, so one rule,
    no update/patch."""
    nad_rules = [r for r in rules() if "network-attachment-definitions" in r["resources"]]
    assert len(nad_rules) == 1 and nad_rules[0]["apiGroups"] == ["k8s.cni.cncf.io"], nad_rules
    assert allowed("k8s.cni.cncf.io", "network-attachment-definitions") == {"get", "list", "watch", "create",
                                                                             "delete"}


def test_every_kind_the_library_touches_is_readable() -> None:
    kube = pytest.importorskip("conformance.kube")
    for kind in kube.KINDS.values():
        assert {"get", "list", "watch"} <= allowed(kind.group, kind.plural), kind
