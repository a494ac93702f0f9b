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
#: cert-manager as in the default release's Makefile (CERT_MANAGER_VERSION at tag v1.16.2;
#: master has moved on to v1.21.1).
CERT_MANAGER_VERSION = "v1.20.1"
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


#: Highest existing patch release per minor line (``git tag`` of kubeovn/kube-ovn, verified against the
#: mirror at master 1533681d, 2026-08-22). v1.16 is capped at v1.16.2, the newest release the models
#: were checked against. A version above these is refused as unknown rather than guessed at.
LATEST_PATCH: dict[tuple[int, int], int] = {
    (1, 10): 10, (1, 11): 24, (1, 12): 35, (1, 13): 15, (1, 14): 41, (1, 15): 24, (1, 16): 2,
}
#: Patch numbers inside those ranges that were never tagged upstream.
MISSING_TAGS: frozenset[str] = frozenset({"v1.10.9", "v1.11.4", "v1.11.9"})


def _kubevirt_ci_version(minor: int, patch: int) -> str:
    """``KUBEVIRT_VERSION`` in the release tag's Makefile (checked tag by tag). release-1.10/1.11 pin
    no KubeVirt for CI; for them this is the ``kubevirt.io/client-go`` version of the tag's go.mod."""
    if minor == 10:
        return "v0.53.1"  # go.mod: kubevirt.io/client-go => v0.53.1
    if minor == 11:
        return "v0.58.1"  # go.mod: kubevirt.io/client-go v0.58.1 (replaced by kubeovn's fork)
    if minor == 12:
        if patch < 20:
            return "v0.59.2"
        return "v1.3.0" if patch < 23 else "v1.3.1"
    return {13: "v1.3.1", 14: "v1.5.2", 15: "v1.7.0", 16: "v1.8.1"}[minor]


def _unsupported(version: str) -> VersionError:
    major, minor, patch = parse(version)
    if (major, minor) == (1, 9) and patch >= 18:  # v1.9.18 has PR #2188, but the line is not modelled
        return VersionError(f"Kube-OVN {version} is not supported: the simulated models start at "
                            f"{OLDEST_SUPPORTED}")
    return VersionError(f"Kube-OVN {version} is not supported: releases before {OLDEST_SUPPORTED} deny a pod "
                        "its own IP CR, so no static-IP pod or VM can restart")


def kube_ovn_release(version: str) -> KubeOvnRelease:
    """The model of ``version``; :class:`VersionError` for unknown or unsupported versions.

    Webhook policy by tag (``pkg/webhook/static_ip.go`` read at every boundary tag):
    v1.10.8 … v1.12.35 ``pod-name-equality-multus-bypass``; v1.13.0 ``pod-name-equality``;
    v1.13.1 … v1.13.14 and v1.14.0 … v1.14.4 ``reverse-containment`` (PR #4807);
    v1.13.15, v1.14.5 … v1.14.41, v1.15.x, v1.16.x ``owner-equality`` (PR #5569).
    ``handleDeleteVM`` (``pkg/controller/kubevirt.go``) first appears in v1.14.0; ``charts/kube-ovn-v2`` too.
    """
    major, minor, patch = parse(version)
    if (major, minor, patch) < parse(OLDEST_SUPPORTED):
        raise _unsupported(version)
    if version in MISSING_TAGS:
        raise VersionError(f"unknown Kube-OVN version {version}: it was never released (no such tag upstream)")
    if (major, minor) not in LATEST_PATCH or patch > LATEST_PATCH[(major, minor)]:
        raise VersionError(f"unknown Kube-OVN version {version}: modelled releases are "
                           f"{OLDEST_SUPPORTED} to {KUBE_OVN_VERSION}")
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
        has_chart_v2=minor >= 14,
        kubevirt_ci_version=_kubevirt_ci_version(minor, patch),
    )


#: The releases the verdict self-tests run against: one per distinct behaviour, plus the default.
REPRESENTATIVE_RELEASES = ("v1.12.0", "v1.13.0", "v1.13.14", "v1.13.15", "v1.14.2", "v1.14.5", "v1.15.0",
                           "v1.16.2")


# --- KubeVirt and Kubernetes versions (added for the kind backend and ``kovc images``) -------------

#: Highest KubeVirt patch release per minor line known to this table (kubevirt/kubevirt tags as of
#: the facts' snapshot, d923fdb). A version outside it is refused as unknown rather than guessed at.
KUBEVIRT_LATEST_PATCH: dict[tuple[int, int], int] = {
    (0, 53): 2, (0, 54): 0, (0, 55): 2, (0, 56): 1, (0, 57): 1, (0, 58): 2, (0, 59): 2,
    (1, 0): 1, (1, 1): 1, (1, 2): 2, (1, 3): 1, (1, 4): 1, (1, 5): 3, (1, 6): 6, (1, 7): 4, (1, 8): 4,
    (1, 9): 0,
}


def check_kubevirt_version(version: str) -> str:
    """``version`` if it is a KubeVirt release this table knows; :class:`VersionError` otherwise."""
    try:
        major, minor, patch = parse(version)
    except VersionError:
        raise VersionError(f"malformed KubeVirt version {version!r}: expected vMAJOR.MINOR.PATCH, "
                           f"e.g. {KUBEVIRT_VERSION}") from None
    latest = KUBEVIRT_LATEST_PATCH.get((major, minor))
    if latest is None or patch > latest:
        lines = sorted(KUBEVIRT_LATEST_PATCH)
        oldest, newest = lines[0], lines[-1]
        raise VersionError(f"unknown KubeVirt version {version}: known releases are "
                           f"v{oldest[0]}.{oldest[1]}.0 to v{newest[0]}.{newest[1]}."
                           f"{KUBEVIRT_LATEST_PATCH[newest]}")
    return version


def check_kubernetes_version(version: str) -> str:
    """``version`` if it is well-formed (``vMAJOR.MINOR.PATCH``, the ``kindest/node`` tag form)."""
    try:
        parse(version)
    except VersionError:
        raise VersionError(f"malformed Kubernetes version {version!r}: expected vMAJOR.MINOR.PATCH, "
                           f"e.g. {K8S_VERSION}") from None
    return version


# --- upgrade pairs (issue 13: ``kovc run --upgrade-from X [--kube-ovn-version Y]``) ---------------


def check_upgrade(from_version: str, to_version: str) -> tuple[KubeOvnRelease, KubeOvnRelease]:
    """Both releases when ``from_version`` -> ``to_version`` is an upgrade the suite supports;
    :class:`VersionError` (one line) otherwise. Both must be releases the suite models. Refused: a
    downgrade and a "same version" pair (nothing to upgrade). Minor skips are allowed: upstream's
    upgrade instructions (``charts/README.md`` "upgrade to this version: helm upgrade ...";
    re-running the target's ``dist/images/install.sh``) state no one-minor-at-a-time rule, and the
    suite's must-show pair v1.13.0 -> v1.16.2 skips minors; the report notes a skip."""
    src = kube_ovn_release(from_version)
    dst = kube_ovn_release(to_version)
    if parse(from_version) == parse(to_version):
        raise VersionError(f"--upgrade-from {from_version} is the target release {to_version}: nothing to upgrade "
                           "(choose another --kube-ovn-version)")
    if parse(from_version) > parse(to_version):
        raise VersionError(f"upgrade {from_version} -> {to_version} is a downgrade, which Kube-OVN does not "
                           "support (use --force to run it anyway)")
    return src, dst


def skipped_minors(from_version: str, to_version: str) -> list[str]:
    """The minor lines an upgrade skips (``v1.13.0 -> v1.16.2``: v1.14, v1.15)."""
    a, b = parse(from_version), parse(to_version)
    return [f"v{a[0]}.{m}" for m in range(a[1] + 1, b[1])] if a[0] == b[0] else []


def upgrade_method(from_version: str, to_version: str) -> str:
    """How a real cluster installed with ``from_version`` by the kind backend is upgraded to
    ``to_version``, as upstream documents it: a chart-v2 install (v1.14.0+) is upgraded with
    ``helm upgrade kubeovn charts/kube-ovn-v2`` of the target tag; an ``install.sh`` install (before
    v1.14.0, no chart v2) by running the target tag's ``dist/images/install.sh`` again, which applies
    the new manifests over the old ones (rolling the Deployments/DaemonSets)."""
    src = kube_ovn_release(from_version)
    dst = kube_ovn_release(to_version)
    if src.has_chart_v2 and dst.has_chart_v2:
        return f"helm upgrade kubeovn charts/kube-ovn-v2 (of {to_version})"
    return f"dist/images/install.sh of {to_version} re-run over the {from_version} install"
