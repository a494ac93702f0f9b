"""Each webhook model against the cases of kube-ovn-facts.md §1.5/§1.7 and its Corrections box.

The frame (``webhook.review_pod``) and the policies run on plain JSON, as the simulated API server
calls them; ``True`` in the tables means the pod is admitted.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from conformance.sim import policies
from conformance.sim.store import ApiError
from conformance.sim.webhook import (
    PolicyError,
    WebhookView,
    load_policy,
    review_pod,
    validate_pod_network,
)

JSON = dict[str, Any]
IP = "10.16.0.10"
VMI_UIDS = {
    ("a", "web"): "uid-web-a",
    ("b", "web"): "uid-web-b",
    ("a", "web-1"): "uid-web1-a",
    ("a", "vm1"): "uid-vm1-a",
    ("a", "vm10"): "uid-vm10-a",
    ("a", "db"): "uid-db-a",
}
POLICIES = [
    "pod-name-equality-multus-bypass",
    "pod-name-equality",
    "reverse-containment",
    "owner-equality",
    "forward-containment",
    "reference",
]


class FakeView:
    """A ``WebhookView`` over fixed VMIs and a namespace-bound subnet (``sub-a`` bound to ``bound``)."""

    def vmi(self, namespace: str, name: str) -> JSON | None:
        uid = VMI_UIDS.get((namespace, name))
        if uid is None:
            return None
        return {"metadata": {"namespace": namespace, "name": name, "uid": uid}}

    def namespace(self, name: str) -> JSON | None:
        return {"metadata": {"name": name}}

    def subnet(self, name: str) -> JSON | None:
        return next((s for s in self.subnets() if s["metadata"]["name"] == name), None)

    def subnets(self) -> list[JSON]:
        return [
            {"metadata": {"name": "ovn-default"}, "spec": {"cidrBlock": "10.16.0.0/16"}},
            {"metadata": {"name": "sub-a"}, "spec": {"cidrBlock": "10.16.0.0/16", "namespaces": ["bound"]}},
        ]

    def namespace_subnets(self, namespace: str) -> list[str]:
        return ["sub-a"] if namespace == "bound" else []


def ip_cr(name: str, namespace: str, *, vm: bool = True, subnet: str = "ovn-default", ip: str = IP) -> JSON:
    return {
        "apiVersion": "kubeovn.io/v1",
        "kind": "IP",
        "metadata": {"name": f"{name}.{namespace}", "creationTimestamp": "2026-11-27T10:00:00Z"},
        "spec": {
            "podName": name,
            "namespace": namespace,
            "subnet": subnet,
            "ipAddress": ip,
            "v4IpAddress": ip,
            "v6IpAddress": "",
            "macAddress": "00:00:00:aa:bb:cc",
            "podType": "VirtualMachine" if vm else "",
            "attachIps": [],
            "attachMacs": [],
            "attachSubnets": [],
        },
    }


def pod(
    name: str,
    namespace: str,
    *,
    owner: tuple[str, str, str] | None = None,
    ip: str = IP,
    extra: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
) -> JSON:
    """``owner`` = (VMI namespace, VMI name, uid) for an ownerReference to a VMI."""
    meta: JSON = {
        "name": name,
        "namespace": namespace,
        "annotations": {"ovn.kubernetes.io/ip_address": ip, **(extra or {})},
        "labels": dict(labels or {}),
    }
    if owner is not None:
        meta["ownerReferences"] = [
            {
                "apiVersion": "kubevirt.io/v1",
                "kind": "VirtualMachineInstance",
                "name": owner[1],
                "uid": owner[2],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {"containers": [{"name": "c"}]}}


def launcher(vmi: str, namespace: str, suffix: str = "abcde", **kw: Any) -> JSON:
    return pod(
        f"virt-launcher-{vmi}-{suffix}", namespace, owner=(namespace, vmi, VMI_UIDS[(namespace, vmi)]), **kw
    )


MIGRATION = {"kubevirt.io/migrationJobName": "kubevirt-migrate-vm-x2b4k"}
M, P, R, OWN, F, REF = POLICIES
ALL_DENY: dict[str, bool] = dict.fromkeys(POLICIES, False)


def only(*allowed: str) -> dict[str, bool]:
    return {p: p in allowed for p in POLICIES}


# (case id, pod, IP CRs, expected admission per policy)
CASES: list[tuple[str, JSON, list[JSON], dict[str, bool]]] = [
    ("restart-launcher-pod", launcher("web", "a"), [ip_cr("web", "a")], only(OWN, F, REF)),
    ("other-vm", launcher("db", "a"), [ip_cr("web", "a")], ALL_DENY),
    ("web-1-launcher-takes-web-ip", launcher("web-1", "a"), [ip_cr("web", "a")], only(F)),
    ("web-launcher-takes-web-1-ip", launcher("web", "a"), [ip_cr("web-1", "a")], ALL_DENY),
    ("vm10-launcher-takes-vm1-ip", launcher("vm10", "a"), [ip_cr("vm1", "a")], only(F)),
    ("vm1-launcher-takes-vm10-ip", launcher("vm1", "a"), [ip_cr("vm10", "a")], ALL_DENY),
    ("plain-pod-contained-in-vm-name", pod("web", "a"), [ip_cr("web-1", "a")], only(R)),
    ("plain-pod-named-like-the-vm", pod("web", "a"), [ip_cr("web", "a")], only(M, P, R, OWN, F)),
    ("cross-namespace-vm", launcher("web", "b"), [ip_cr("web", "a")], only(OWN, F)),
    (
        "spoofed-launcher-name-and-labels",
        pod(
            "virt-launcher-web-zzzzz",
            "a",
            labels={
                "kubevirt.io": "virt-launcher",
                "vm.kubevirt.io/name": "web",
                "kubevirt.io/created-by": "uid-web-a",
            },
        ),
        [ip_cr("web", "a")],
        only(F),
    ),
    (
        "forged-owner-ref-from-other-namespace",
        pod("evil", "b", owner=("a", "web", "uid-web-a")),
        [ip_cr("web", "a")],
        only(OWN),
    ),
    (
        "forged-owner-ref-stale-uid",
        pod("evil", "a", owner=("a", "web", "uid-of-a-deleted-vmi")),
        [ip_cr("web", "a")],
        only(OWN),
    ),
    (
        "migration-job-name-on-plain-pod",
        pod("intruder", "a", extra=MIGRATION),
        [ip_cr("web", "a")],
        only(P, R, OWN, F),
    ),
    (
        "migration-target-pod",
        launcher("web", "a", "tgt22", extra=MIGRATION),
        [ip_cr("web", "a")],
        only(P, R, OWN, F, REF),
    ),
    (
        "namespace-bound-subnet-without-logical-switch",
        pod("other", "bound"),
        [ip_cr("web", "bound", subnet="sub-a")],
        only(M, P, R, OWN, F),
    ),
    (
        "namespace-bound-subnet-with-logical-switch",
        pod("other", "bound", extra={"ovn.kubernetes.io/logical_switch": "sub-a"}),
        [ip_cr("web", "bound", subnet="sub-a")],
        ALL_DENY,
    ),
    (
        "same-ip-other-subnet",
        pod("other", "a", extra={"ovn.kubernetes.io/logical_switch": "vpc2-subnet"}),
        [ip_cr("web", "a")],
        dict.fromkeys(POLICIES, True),
    ),
    ("plain-pod-own-ip-cr", pod("web", "a"), [ip_cr("web", "a", vm=False)], only(M, P, R, OWN, F, REF)),
    ("plain-pod-other-plain-pod", pod("db", "a"), [ip_cr("web", "a", vm=False)], ALL_DENY),
    ("plain-pod-prefixed-by-other-plain-pod", pod("web2", "a"), [ip_cr("web", "a", vm=False)], only(F)),
    (
        "no-static-ip",
        {"metadata": {"name": "x", "namespace": "a"}},
        [ip_cr("web", "a")],
        dict.fromkeys(POLICIES, True),
    ),
    (
        "multus-allow-live-migration",
        pod(
            "virt-launcher-web-tgt33",
            "a",
            owner=("a", "web", "uid-web-a"),
            extra={
                "k8s.v1.cni.cncf.io/networks": "a/attachnet",
                "attachnet.a.ovn.kubernetes.io/allow_live_migration": "true",
            },
        ),
        [ip_cr("web", "a")],
        only(M, OWN, F, REF),
    ),
]


@pytest.mark.parametrize("policy_name", POLICIES)
@pytest.mark.parametrize(("case", "subject", "crs", "expected"), CASES, ids=[c[0] for c in CASES])
def test_policy_table(
    policy_name: str, case: str, subject: JSON, crs: list[JSON], expected: dict[str, bool]
) -> None:
    error = review_pod(subject, crs, FakeView(), load_policy(policy_name))
    seen = "admission" if error is None else f"{error.code} {error.message}"
    wanted = "admission" if expected[policy_name] else "denial"
    assert (error is None) is expected[policy_name], f"{case}, {policy_name}: expected {wanted}, got {seen}"
    if error is not None:
        assert error.code == 403 and error.reason == "Forbidden", f"{case}: {error.code} {error.reason}"
        crd = crs[0]["metadata"]["name"]
        assert error.message == (
            f'admission webhook "pod-ip-validating.kube-ovn.io" denied the request: '
            f"annotation static-ip {IP} is conflict with ip crd {crd}, ip {IP}"
        ), error.message


@pytest.mark.parametrize("policy_name", POLICIES)
@pytest.mark.parametrize(
    ("annotations", "message"),
    [
        (
            {"ovn.kubernetes.io/ip_address": "10.16.0.300"},
            "10.16.0.300 is not a valid ovn.kubernetes.io/ip_address",
        ),
        (
            {"ovn.kubernetes.io/ip_address": "10.16.0.10", "ovn.kubernetes.io/cidr": "10.17.0.0/16"},
            "10.16.0.10 not in cidr 10.17.0.0/16",
        ),
        (
            {"ovn.kubernetes.io/ip_address": "10.16.0.10", "ovn.kubernetes.io/mac_address": "zz"},
            "zz is not a valid ovn.kubernetes.io/mac_address",
        ),
    ],
)
def test_validate_pod_network_is_400_before_any_ip_cr(
    policy_name: str, annotations: dict[str, str], message: str
) -> None:
    subject = {"metadata": {"name": "p", "namespace": "a", "annotations": annotations}}
    error = review_pod(subject, [ip_cr("web", "a")], FakeView(), load_policy(policy_name))
    assert error is not None, f"{policy_name}: expected HTTP 400 for {annotations}, the pod was admitted"
    assert (error.code, error.reason) == (400, ""), f"{policy_name}: {error.code} {error.reason!r}"
    assert error.message == f'admission webhook "pod-ip-validating.kube-ovn.io" denied the request: {message}'


def test_validate_pod_network_aggregates() -> None:
    text = validate_pod_network({"ovn.kubernetes.io/ip_address": "bad1,bad2"})
    one = "is not a valid ovn.kubernetes.io/ip_address"
    assert text == f"[bad1 {one}, bad2 {one}]"
    assert (
        validate_pod_network(
            {
                "ovn.kubernetes.io/ip_address": "10.16.0.5",
                "ovn.kubernetes.io/cidr": "10.16.0.0/16",
                "ovn.kubernetes.io/mac_address": "00:00:00:AA:bb:cc",
            }
        )
        is None
    )


def test_v13_policies_reject_uppercase_ipv6_ip_crs() -> None:
    cr = ip_cr("web", "a", ip="FD00::5")
    cr["spec"]["v4IpAddress"] = ""
    subject = pod("web", "a")
    msg = policies.BUILTIN["pod-name-equality"](subject, [cr], FakeView())
    assert msg == "v6 ip address FD00::5 can not contain upper case"
    assert policies.BUILTIN["pod-name-equality-multus-bypass"](subject, [cr], FakeView()) is None


def test_ip_pool_address_list_is_checked_and_pool_names_must_exist() -> None:
    view = FakeView()
    for name in POLICIES:
        policy = load_policy(name)
        listed = pod("other", "a", extra={"ovn.kubernetes.io/ip_pool": f"{IP},10.16.0.11"})
        listed["metadata"]["annotations"].pop("ovn.kubernetes.io/ip_address")
        assert review_pod(listed, [ip_cr("web", "a")], view, policy) is not None, name
        named = pod("other", "a", extra={"ovn.kubernetes.io/ip_pool": "pool1"})
        named["metadata"]["annotations"].pop("ovn.kubernetes.io/ip_address")
        error = review_pod(named, [], view, policy)
        assert error is not None and error.message.endswith('ippool "pool1" not found'), name


def test_webhook_view_protocol() -> None:
    assert isinstance(FakeView(), WebhookView)


def test_custom_policy_from_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "kovc_custom_policy.py").write_text(
        textwrap.dedent("""
        def deny_all(pod, ip_crs, view, /):
            return f"custom says no to {pod['metadata']['name']} ({len(ip_crs)} ip crs)"

        class Holder:
            class Nested:
                def __call__(self, pod, ip_crs, view, /):
                    return None
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    policy = load_policy("kovc_custom_policy:deny_all")
    error = review_pod(pod("p", "a"), [ip_cr("web", "a")], FakeView(), policy)
    assert error is not None and error.code == 403
    assert error.message.endswith("denied the request: custom says no to p (1 ip crs)")
    nested = load_policy("kovc_custom_policy:Holder.Nested")
    assert review_pod(pod("p", "a"), [ip_cr("web", "a")], FakeView(), nested) is None
    sys.modules.pop("kovc_custom_policy", None)


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("no-such-policy", "unknown webhook policy 'no-such-policy'"),
        ("kovc_no_such_module_xyz:check", "No module named"),
        ("json:no_such_attribute", "has no attribute"),
        ("json:", "malformed webhook policy"),
        ("json:__name__", "is not callable"),
    ],
)
def test_bad_policy_names(name: str, fragment: str) -> None:
    with pytest.raises(PolicyError) as err:
        load_policy(name)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)
    assert isinstance(err.value, ValueError)


def test_denial_is_an_api_error_with_status() -> None:
    error = review_pod(launcher("db", "a"), [ip_cr("web", "a")], FakeView(), load_policy("owner-equality"))
    assert isinstance(error, ApiError)
    status = error.status()
    assert status["code"] == 403 and status["reason"] == "Forbidden" and status["status"] == "Failure"


@pytest.mark.parametrize(("version", "text_in_reason"), [
    ("v1.10.8", True), ("v1.11.16", True), ("v1.11.17", False), ("v1.12.35", False), ("v1.16.2", False),
])
def test_denial_status_per_release(version: str, text_in_reason: bool) -> None:
    """controller-runtime < v0.15.0 (v1.10.x, v1.11.0-16) answers the denial text in Status.reason, later
    releases reason Forbidden; the suite's denial detection reads both (issue 10 item 14)."""
    import json

    from kubernetes.client.exceptions import ApiException

    from conformance import assertions, versions
    from conformance.kube import api_reason, describe_error

    release = versions.kube_ovn_release(version)
    assert release.denial_text_in_reason is text_in_reason
    error = review_pod(launcher("db", "a"), [ip_cr("web", "a")], FakeView(), load_policy(release.webhook_policy),
                       text_in_reason=release.denial_text_in_reason)
    assert isinstance(error, ApiError)
    status = error.status()
    assert status["code"] == 403
    assert status["message"].startswith('admission webhook "pod-ip-validating.kube-ovn.io" denied the request: ')
    if text_in_reason:
        assert status["reason"] == status["message"].split("denied the request: ", 1)[1]
        assert "is conflict with ip crd" in status["reason"]
    else:
        assert status["reason"] == "Forbidden"
    exc = ApiException(status=403, reason="Forbidden")
    exc.body = json.dumps(status)
    assert api_reason(exc) == status["reason"]
    ip = status["message"].split("annotation static-ip ", 1)[1].split(" ", 1)[0]
    assert assertions.is_webhook_denial(describe_error(exc), "pod-ip-validating.kube-ovn.io", ip, code=403)
