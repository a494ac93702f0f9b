"""Issue 14: capability detection from the Kubernetes API only (conformance/capabilities.py) and how the
plugin turns a missing capability into ``not-applicable``."""

from __future__ import annotations

from typing import Any

import pytest

from conformance import capabilities, catalog


class FakeKube:
    def __init__(self, subnets: list[dict[str, Any]], groups: dict[str, list[str]]) -> None:
        self.subnets, self.groups = subnets, groups

    def list_subnets(self) -> list[dict[str, Any]]:
        return self.subnets

    def api_group_served(self, group: str, version: str | None = None) -> bool:
        return group in self.groups and (version is None or version in self.groups[group])


def subnet(name: str, cidr: str, protocol: str | None = None, default: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"cidrBlock": cidr, "default": default}
    if protocol is not None:
        spec["protocol"] = protocol
    return {"metadata": {"name": name}, "spec": spec}


def test_dual_stack_subnet_found_default_first() -> None:
    kube = FakeKube([subnet("b-dual", "10.18.0.0/16,fd00:10:18::/112", "Dual"),
                     subnet("ovn-default", "10.16.0.0/16,fd00:10:16::/112", "Dual", default=True),
                     subnet("join", "100.64.0.0/16", "IPv4")], {})
    caps = capabilities.detect(kube)
    assert caps.dual_stack_subnets == ("ovn-default", "b-dual")
    assert caps.has("dual-stack") and caps.dual_stack_subnet == "ovn-default"
    assert not caps.has("multus")
    assert "k8s.cni.cncf.io/v1" in caps.reason("multus")


@pytest.mark.parametrize(("cidr", "protocol", "dual"), [
    ("10.16.0.0/16", "IPv4", False),
    ("fd00::/112", "IPv6", False),
    ("10.16.0.0/16,fd00::/112", "Dual", True),
    ("10.16.0.0/16,fd00::/112", None, True),        # not yet defaulted by the controller
    ("10.16.0.0/16,10.17.0.0/16", "IPv4", False),   # two CIDRs of one family are no dual stack
    ("10.16.0.0/16,garbage", "Dual", False),
])
def test_is_dual_stack(cidr: str, protocol: str | None, dual: bool) -> None:
    assert capabilities.is_dual_stack(subnet("s", cidr, protocol)) is dual


def test_multus_is_the_nad_api() -> None:
    caps = capabilities.detect(FakeKube([subnet("ovn-default", "10.16.0.0/16", "IPv4")],
                                        {"k8s.cni.cncf.io": ["v1"]}))
    assert caps.has("multus") and not caps.has("dual-stack")
    assert "none of the 1 kubeovn.io Subnets" in caps.reason("dual-stack")
    with pytest.raises(KeyError):
        caps.has("sriov")


def test_every_condition_is_a_detectable_capability() -> None:
    caps = capabilities.detect(FakeKube([], {}))
    for req in catalog.all_requirements():
        if req.applies_when:
            assert caps.has(req.applies_when) is False
            assert req.applies_when in catalog.CAPABILITY_CONDITIONS
