"""The one pinned default version table, and the Kube-OVN releases the simulated cluster models.

Used by ``--plan``, ``kovc images``, the kind backend and the simulated cluster. Sources: the
``Makefile`` / ``makefiles/kind.mk`` pins of ``kubeovn/kube-ovn`` at each release tag, and
``pkg/webhook/static_ip.go`` read at every boundary tag (webhook history, :func:`kube_ovn_release`).
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
#: The kind release for a ``kindest/node`` image, per Kubernetes minor: kind supports a node image only
#: with the release it shipped with (pytest-kind's default v0.17.0 cannot create any current one). Each
#: pair is one a kind release names (its default node image, ``kubernetes-sigs/kind@<tag>:
#: pkg/apis/config/defaults/image.go`` L21) or one Kube-OVN's own CI uses (``KIND_VERSION`` of
#: ``.github/workflows/build-x86-image.yaml`` with that tag's node image).
KIND_FOR_KUBERNETES: dict[tuple[int, int], tuple[str, str]] = {
    (1, 32): ("v0.29.0", "Kube-OVN v1.14.2's CI: KIND_VERSION v0.29.0 (build-x86-image.yaml L25) with "
                         "kindest/node:v1.32.5 (yamls/kind.yaml.j2 L2)"),
    (1, 33): ("v0.29.0", "kind v0.29.0's default node image is kindest/node:v1.33.1"),
    (1, 34): ("v0.30.0", "kind v0.30.0's default node image is kindest/node:v1.34.0"),
    (1, 35): ("v0.31.0", "Kube-OVN v1.15.24 and v1.16.2 CI: KIND_VERSION v0.31.0 (build-x86-image.yaml L29 at "
                         "v1.16.2) with K8S_VERSION v1.35.1 (makefiles/kind.mk L12); kind v0.31.0's default "
                         "node image is v1.35.0"),
    (1, 36): ("v0.32.0", "kind v0.32.0's default node image is kindest/node:v1.36.1 (kubeadm v1beta4)"),
}


def kind_release_for(kubernetes_version: str) -> tuple[str, str]:
    """(kind release, why) for ``kindest/node:<kubernetes_version>``; outside the table the nearest pair
    (older minors: the oldest kind listed, newer: the newest), said so in ``why``."""
    major, minor, _ = parse(kubernetes_version)
    pair = KIND_FOR_KUBERNETES.get((major, minor))
    if pair is not None:
        return pair
    keys = sorted(KIND_FOR_KUBERNETES)
    nearest = keys[0] if (major, minor) < keys[0] else keys[-1]
    kind = KIND_FOR_KUBERNETES[nearest][0]
    return kind, (f"no kind release is known to pair with Kubernetes {major}.{minor}; the nearest pairing "
                  f"({nearest[0]}.{nearest[1]}) uses kind {kind}")


#: The kind release of the default node image (what the CI's default row installs).
KIND_MIN_VERSION = KIND_FOR_KUBERNETES[(1, 35)][0]
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
    """The cirros containerDisk, pinned to the KubeVirt version (the tag KubeVirt publishes with each
    release: ``quay.io/kubevirt/cirros-container-disk-demo:<release>``)."""
    return f"{CIRROS_IMAGE_REPO}:{kubevirt_version}"


@dataclass(frozen=True)
class KubeOvnRelease:
    """How one Kube-OVN release behaves, as far as the suite cares."""

    version: str
    #: Name of the built-in webhook conflict policy this release ships (conformance.sim.policies).
    webhook_policy: str
    #: Whether ``handleDeleteVM`` exists (v1.14.0+, #5390, ``pkg/controller/kubevirt.go`` L60-94 at
    #: v1.16.2): without it the IP CR of a VM stopped before deletion is released only by the periodic
    #: ``markAndCleanLSP`` on its second pass after the VM is gone, 6-12 min late (#5367;
    #: ``pkg/controller/gc.go`` L315-436 and ``controller.go`` L1192-1198 at v1.13.14).
    releases_stopped_vm_ip: bool
    #: Whether ``charts/kube-ovn-v2`` exists in the tag (from v1.14.0; 2.0.0 there, a preview).
    has_chart_v2: bool
    #: The KubeVirt release this Kube-OVN release branch's CI pins.
    kubevirt_ci_version: str
    #: v1.15.0+: ``handleDeletePod`` skips a VM (or StatefulSet) pod's IP CR unless its owner is being
    #: deleted ("skip clean ip CR", ``pod.go`` L1177-1182 at v1.15.0). Before (v1.12-v1.14, e.g.
    #: ``pod.go`` L1150-1172 at v1.14.41), a VM pod deleted with keep-vm-ip off loses its IP CR at once.
    skips_vm_pod_ip_cr_cleanup: bool = True
    #: controller-runtime < v0.15.0 (v1.10.x, v1.11.0-v1.11.16: go.mod v0.12.3 / v0.14.1) puts the denial
    #: text in ``Status.reason`` (``ValidationResponse``, ``pkg/webhook/admission/response.go`` L63-80 at
    #: v0.14.1); v0.15.0+ answers reason ``Forbidden`` with the text in ``Status.message``.
    denial_text_in_reason: bool = False
    #: How the kind backend installs the release: the way the tag's own CI does. ``chart-v2`` from
    #: v1.16.0, whose CI installs ``charts/kube-ovn-v2`` (``.github/workflows/helm-testing.yaml`` L62 at
    #: v1.16.2, ``ct install … charts/kube-ovn-v2/ct.yaml``); ``install.sh`` before - the path of every
    #: tag's KubeVirt e2e (``make kind-install-<mode>-<ip family>``: ``sed 's/VERSION=.*/…/'
    #: dist/images/install.sh | bash``, ``kind.mk`` L221-224 at v1.14.2); no CI of v1.14.x/v1.15.x installs
    #: the chart v2 it ships.
    install_method: str = "install.sh"
    #: ``CERT_MANAGER_VERSION`` of the tag's ``Makefile`` (None before v1.12.0, which pin none): the
    #: cert-manager its CI installs the webhook with.
    cert_manager_ci_version: str | None = None


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


def _cert_manager_ci_version(minor: int, patch: int) -> str | None:
    """``CERT_MANAGER_VERSION`` in the release tag's Makefile (every tag read; it changes at v1.12.1,
    v1.12.2, v1.12.5, v1.12.23 and with each minor from v1.13.0)."""
    if minor < 12:
        return None
    if minor == 12:
        for first, pin in ((23, "v1.15.2"), (5, "v1.14.1"), (2, "v1.12.5"), (1, "v1.12.3"), (0, "v1.12.2")):
            if patch >= first:
                return pin
    return {13: "v1.16.1", 14: "v1.18.1", 15: "v1.19.2", 16: "v1.20.1"}[minor]


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
        skips_vm_pod_ip_cr_cleanup=minor >= 15,
        denial_text_in_reason=minor == 10 or (minor == 11 and patch <= 16),
        install_method="chart-v2" if minor >= 16 else "install.sh",
        cert_manager_ci_version=_cert_manager_ci_version(minor, patch),
    )


#: The releases the verdict self-tests run against: one per distinct behaviour, plus the default.
REPRESENTATIVE_RELEASES = ("v1.12.35", "v1.13.0", "v1.13.14", "v1.13.15", "v1.14.2", "v1.14.5", "v1.15.0",
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


#: Highest Kubernetes patch release per minor line known to this table: v1.31.13, v1.32.9, v1.33.5 (the
#: patch releases of 2025-09-09, alongside v1.34.1), the final patches of the lines that reached end of
#: life before them, and the ``k8s.io/kubernetes`` versions the Go module proxy served on 2026-12-01
#: (v1.34.4, v1.35.4, v1.36.3, v1.37.2). Kube-OVN's CI pins kindest/node v1.35.1 (release-1.15/1.16)
#: and v1.36.1 (master). A version outside it is refused as unknown rather than guessed at.
KUBERNETES_LATEST_PATCH: dict[tuple[int, int], int] = {
    (1, 27): 16, (1, 28): 15, (1, 29): 15, (1, 30): 14, (1, 31): 13, (1, 32): 9, (1, 33): 5,
    (1, 34): 4, (1, 35): 4, (1, 36): 3, (1, 37): 2,
}


def check_kubernetes_version(version: str) -> str:
    """``version`` if it is a Kubernetes release this table knows (``vMAJOR.MINOR.PATCH``, the
    ``kindest/node`` tag form); :class:`VersionError` otherwise."""
    try:
        major, minor, patch = parse(version)
    except VersionError:
        raise VersionError(f"malformed Kubernetes version {version!r}: expected vMAJOR.MINOR.PATCH, "
                           f"e.g. {K8S_VERSION}") from None
    latest = KUBERNETES_LATEST_PATCH.get((major, minor))
    if latest is None or patch > latest:
        lines = sorted(KUBERNETES_LATEST_PATCH)
        oldest, newest = lines[0], lines[-1]
        raise VersionError(f"unknown Kubernetes version {version}: known releases are "
                           f"v{oldest[0]}.{oldest[1]}.0 to v{newest[0]}.{newest[1]}."
                           f"{KUBERNETES_LATEST_PATCH[newest]}")
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
    ``to_version``, as upstream documents it: a chart-v2 install (``install_method``: v1.16.0+, as each
    release's CI installs it) is upgraded with ``helm upgrade kubeovn charts/kube-ovn-v2`` of the target
    tag; an ``install.sh`` install by running the target tag's ``dist/images/install.sh`` again, which applies
    the new manifests over the old ones (rolling the Deployments/DaemonSets)."""
    src = kube_ovn_release(from_version)
    kube_ovn_release(to_version)
    if src.install_method == "chart-v2":
        return f"helm upgrade kubeovn charts/kube-ovn-v2 (of {to_version})"
    return f"dist/images/install.sh of {to_version} re-run over the {from_version} install"
