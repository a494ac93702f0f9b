"""What the cluster under test offers beyond one IPv4 on the pod network, detected from the Kubernetes API
only (so every backend - sim, envtest, kind, existing - is judged the same way):

* ``dual-stack``: a ``subnets.kubeovn.io`` Subnet whose ``spec.protocol`` is ``Dual`` or whose
  ``spec.cidrBlock`` holds an IPv4 and an IPv6 CIDR (Kube-OVN's own ``util.CheckProtocol`` of the
  cidrBlock, ``formatSubnet``);
* ``multus``: the CRD ``network-attachment-definitions.k8s.cni.cncf.io`` is served (group
  ``k8s.cni.cncf.io``, version ``v1``): Multus's own CRD, which every Multus install creates.

A requirement whose ``applies_when`` capability is absent is *not applicable*: the plugin reports it
``not-applicable`` with :func:`Capabilities.reason`, never skipped silently, never passed.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Protocol

NAD_GROUP = "k8s.cni.cncf.io"
NAD_VERSION = "v1"
NAD_CRD = "network-attachment-definitions.k8s.cni.cncf.io"


class _Kube(Protocol):
    def list_subnets(self) -> list[dict[str, Any]]: ...
    def api_group_served(self, group: str, version: str | None = None) -> bool: ...


def subnet_families(subnet: dict[str, Any]) -> set[int]:
    """The IP families (4, 6) of a Subnet's ``spec.cidrBlock`` (malformed parts are ignored)."""
    families: set[int] = set()
    for part in str((subnet.get("spec") or {}).get("cidrBlock") or "").split(","):
        try:
            families.add(ipaddress.ip_network(part.strip(), strict=False).version)
        except ValueError:
            continue
    return families


def is_dual_stack(subnet: dict[str, Any]) -> bool:
    """A Subnet with protocol ``Dual`` and both families in its cidrBlock, or (protocol not yet defaulted
    by the controller) a cidrBlock with both families."""
    families = subnet_families(subnet)
    return families == {4, 6} and (subnet.get("spec") or {}).get("protocol") in (None, "", "Dual")


@dataclass(frozen=True)
class Capabilities:
    #: Names of the dual-stack subnets (sorted; the default subnet, when it is one, first).
    dual_stack_subnets: tuple[str, ...] = ()
    #: Whether the NetworkAttachmentDefinition API (Multus's CRD) is served.
    multus: bool = False
    #: How each capability was decided, for the report.
    evidence: dict[str, str] = field(default_factory=dict)

    def has(self, capability: str) -> bool:
        if capability == "dual-stack":
            return bool(self.dual_stack_subnets)
        if capability == "multus":
            return self.multus
        raise KeyError(f"unknown capability {capability!r}")

    def reason(self, capability: str) -> str:
        """Why ``capability`` is absent (or present), in one line for the report."""
        return self.evidence.get(capability, capability)

    @property
    def dual_stack_subnet(self) -> str | None:
        return self.dual_stack_subnets[0] if self.dual_stack_subnets else None


def detect(kube: _Kube) -> Capabilities:
    """Read the capabilities from the API (two requests: the Subnets, the API group discovery)."""
    subnets = kube.list_subnets()
    dual = [s for s in subnets if is_dual_stack(s)]
    dual.sort(key=lambda s: (not (s.get("spec") or {}).get("default"), s["metadata"]["name"]))
    names = tuple(s["metadata"]["name"] for s in dual)
    evidence: dict[str, str] = {}
    if names:
        evidence["dual-stack"] = f"dual-stack subnet(s): {', '.join(names)}"
    else:
        evidence["dual-stack"] = (f"no dual-stack subnet: none of the {len(subnets)} kubeovn.io Subnets has "
                                  "protocol Dual with an IPv4 and an IPv6 CIDR in its cidrBlock")
    multus = kube.api_group_served(NAD_GROUP, NAD_VERSION)
    evidence["multus"] = (f"{NAD_CRD} is served" if multus else
                          f"Multus is not present: the API {NAD_GROUP}/{NAD_VERSION} "
                          f"(CRD {NAD_CRD}) is not served")
    return Capabilities(dual_stack_subnets=names, multus=multus, evidence=evidence)
