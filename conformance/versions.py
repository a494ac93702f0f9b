"""The one pinned default version table, and the Kube-OVN releases the simulated cluster models.

Used by ``--plan``, ``kovc images``, the kind backend and the simulated cluster. Sources:
kube-ovn-facts.md §3.2 (Makefile pins per release branch) and §1.5 (webhook history).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Default Kube-OVN release under test (the latest the simulated cluster models).
KUBE_OVN_VERSION = "v1.16.2"
#: The KubeVirt release Kube-OVN's release-1.16 CI pins (Makefile KUBEVIRT_VERSION on release-1.16).
KUBEVIRT_VERSION = "v1.8.1"
#: kindest/node matching Kube-OVN release-1.15/1.16 CI (K8S_VERSION v1.35.1).
K8S_VERSION = "v1.35.1"
KIND_NODE_IMAGE = f"kindest/node:{K8S_VERSION}"
#: cert-manager as in Kube-OVN's Makefile (CERT_MANAGER_VERSION).
CERT_MANAGER_VERSION = "v1.21.1"
#: kind >= v0.32.0 emits kubeadm v1beta4, which Kubernetes >= 1.36 requires; older kind cannot
#: create current node images (pytest-kind's default v0.17.0 cannot).
KIND_MIN_VERSION = "v0.32.0"
CIRROS_IMAGE_REPO = "quay.io/kubevirt/cirros-container-disk-demo"
PROBE_IMAGE = "docker.io/library/busybox:1.37.0"
#: The oldest release the suite can model: v1.10.8 introduced the pod-name allowance (PR #2188).
OLDEST_SUPPORTED = "v1.10.8"

_VERSION_RE = re.compile(r"^v(\d+)\.(\d+)\.(\d+)$")


class VersionError(ValueError):
    """An unknown or unsupported version; the message is the one line shown to the user."""


def parse(version: str) -> tuple[int, int, int]:
    m = _VERSION_RE.match(version.strip())
    if not m:
        raise VersionError(f"malformed version {version!r}: expected vMAJOR.MINOR.PATCH, e.g. {KUBE_OVN_VERSION}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def cirros_image(kubevirt_version: str = KUBEVIRT_VERSION) -> str:
    """The cirros containerDisk, pinned to the KubeVirt version (kubevirt-facts.md §2.4)."""
    return f"{CIRROS_IMAGE_REPO}:{kubevirt_version}"


@dataclass(frozen=True)
class KubeOvnRelease:
    """How one Kube-OVN release behaves, as far as the suite cares."""

    version: str
    #: Name of the built-in webhook conflict policy this release ships (conformance.sim.policies).
    webhook_policy: str
    #: Whether ``handleDeleteVM`` exists (v1.14.0+, #5390): without it a VM stopped before deletion
    #: leaks its IP CR (#5367).
    releases_stopped_vm_ip: bool
    #: Whether the chart v2 exists in the tag (Helm install path for the kind backend).
    has_chart_v2: bool
    #: The KubeVirt release this Kube-OVN release branch's CI pins.
    kubevirt_ci_version: str


#: Highest patch release per minor line that the models are known to describe. A version above
#: these is refused as unknown rather than guessed at.
LATEST_PATCH: dict[tuple[int, int], int] = {
    (1, 10): 17, (1, 11): 18, (1, 12): 36, (1, 13): 15, (1, 14): 13, (1, 15): 8, (1, 16): 2,
}

_KUBEVIRT_BY_MINOR = {10: "v0.58.0", 11: "v0.59.0", 12: "v1.1.0", 13: "v1.3.1", 14: "v1.5.2", 15: "v1.7.0",
                      16: "v1.8.1"}


def kube_ovn_release(version: str) -> KubeOvnRelease:
    """The model of ``version``; :class:`VersionError` for unknown or unsupported versions."""
    major, minor, patch = parse(version)
    if (major, minor) not in LATEST_PATCH or patch > LATEST_PATCH[(major, minor)]:
        if (major, minor, patch) < parse(OLDEST_SUPPORTED):
            raise VersionError(f"Kube-OVN {version} is not supported: releases before {OLDEST_SUPPORTED} "
                               "deny a pod its own IP CR, so no static-IP pod or VM can restart")
        raise VersionError(f"unknown Kube-OVN version {version}: modelled releases are "
                           f"{OLDEST_SUPPORTED} to {KUBE_OVN_VERSION}")
    if (major, minor, patch) < parse(OLDEST_SUPPORTED):
        raise VersionError(f"Kube-OVN {version} is not supported: releases before {OLDEST_SUPPORTED} "
                           "deny a pod its own IP CR, so no static-IP pod or VM can restart")
    if minor < 13:
        policy = "pod-name-equality-multus-bypass"
    elif (minor, patch) == (13, 0):
        policy = "pod-name-equality"
    elif (minor == 13 and patch < 15) or (minor == 14 and patch < 5):
        policy = "reverse-containment"
    else:
        policy = "owner-equality"
    return KubeOvnRelease(
        version=version,
        webhook_policy=policy,
        releases_stopped_vm_ip=minor >= 14,
        has_chart_v2=minor >= 15,
        kubevirt_ci_version=_KUBEVIRT_BY_MINOR[minor],
    )


#: The releases the verdict self-tests run against: one per distinct behaviour, plus the default.
REPRESENTATIVE_RELEASES = ("v1.12.0", "v1.13.0", "v1.13.14", "v1.13.15", "v1.14.2", "v1.14.5", "v1.15.0",
                           "v1.16.2")
