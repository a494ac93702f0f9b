"""Every image and manifest a run on a real cluster needs, derived from the pinned version table.

Used by ``kovc images`` (preload lists for air-gapped runs), by ``KindBackend.plan()`` and by the
kind backend itself (``kind load docker-image``). Offline: nothing here touches the network.

Sources (upstream Kube-OVN ``Makefile`` / ``makefiles/kind.mk`` at each release tag, KubeVirt's release
manifests ``kubevirt-operator.yaml`` / ``kubevirt-cr.yaml``): Kube-OVN ships one image,
``docker.io/kubeovn/kube-ovn:<tag>``, for the controller, the
CNI daemon, OVN/OVS and the webhook; KubeVirt's operator deploys api/controller/handler/launcher from
the operator's registry and tag (export proxy and synchronization controller only with feature gates
the suite does not turn on); cert-manager's manifest runs controller, cainjector and webhook.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import versions
from .network import MULTUS_MANIFEST, Multus, multus_for

KUBE_OVN_REGISTRY = "docker.io/kubeovn"
KUBEVIRT_REGISTRY = "quay.io/kubevirt"
CERT_MANAGER_REGISTRY = "quay.io/jetstack"
KUBEVIRT_COMPONENTS = ("virt-operator", "virt-api", "virt-controller", "virt-handler", "virt-launcher")
CERT_MANAGER_COMPONENTS = ("cert-manager-controller", "cert-manager-cainjector", "cert-manager-webhook")
#: The three Deployments cert-manager's manifest creates in namespace ``cert-manager``.
CERT_MANAGER_DEPLOYMENTS = ("cert-manager", "cert-manager-cainjector", "cert-manager-webhook")


def kube_ovn_image(kube_ovn_version: str) -> str:
    """The Kube-OVN image; also the webhook's image once rewritten (upstream ``kind-install-webhook``
    seds ``image: $(REGISTRY)/kube-ovn:$(VERSION)`` into ``yamls/webhook.yaml``)."""
    return f"{KUBE_OVN_REGISTRY}/kube-ovn:{kube_ovn_version}"


def kind_node_image(k8s_version: str) -> str:
    return f"kindest/node:{k8s_version}"


@dataclass(frozen=True)
class RunVersions:
    """The versions one run uses, validated."""

    kube_ovn: str
    kubevirt: str
    kubernetes: str
    cert_manager: str
    kind_image: str
    #: ``--ip-family``: ``ipv4`` or ``dual`` (``conformance.cluster.network``).
    ip_family: str = "ipv4"
    #: ``--multus``: Multus is installed (the attachment scenarios bring their own network).
    multus: bool = False

    @classmethod
    def resolve(cls, kube_ovn: str | None = None, kubevirt: str | None = None, kubernetes: str | None = None,
                kind_image: str | None = None, *, ip_family: str | None = None,
                multus: bool = False) -> RunVersions:
        """Fill defaults from :mod:`conformance.versions`; :class:`versions.VersionError` (one line)
        for an unknown or malformed version."""
        ko = kube_ovn or versions.KUBE_OVN_VERSION
        versions.kube_ovn_release(ko)
        kv = versions.check_kubevirt_version(kubevirt or versions.KUBEVIRT_VERSION)
        k8s = versions.check_kubernetes_version(kubernetes or versions.K8S_VERSION)
        # cert-manager as the Kube-OVN tag's own CI installs it (its Makefile's pin), else the default
        cm = versions.kube_ovn_release(ko).cert_manager_ci_version or versions.CERT_MANAGER_VERSION
        return cls(kube_ovn=ko, kubevirt=kv, kubernetes=k8s, cert_manager=cm,
                   kind_image=kind_image or kind_node_image(k8s), ip_family=ip_family or "ipv4", multus=multus)

    @property
    def multus_release(self) -> Multus | None:
        """The Multus this run installs (None without ``--multus``, or for a release pinning none)."""
        return multus_for(self.kube_ovn) if self.multus else None


@dataclass(frozen=True)
class Image:
    image: str
    #: What uses it (one image can serve several components: Kube-OVN's serves the webhook too).
    components: tuple[str, ...]
    #: Whether ``kind load docker-image`` makes sense (not for the node image itself).
    loadable: bool = True


def run_images(v: RunVersions) -> list[Image]:
    """Every image a run needs, each once, in install order."""
    entries: list[tuple[str, str, bool]] = [
        (v.kind_image, "kind-node", False),
        (kube_ovn_image(v.kube_ovn), "kube-ovn", True),
        (kube_ovn_image(v.kube_ovn), "kube-ovn-webhook", True),
    ]
    entries += [(f"{CERT_MANAGER_REGISTRY}/{c}:{v.cert_manager}", c, True) for c in CERT_MANAGER_COMPONENTS]
    entries += [(f"{KUBEVIRT_REGISTRY}/{c}:{v.kubevirt}", c, True) for c in KUBEVIRT_COMPONENTS]
    if v.multus_release is not None:
        entries.append((v.multus_release.image, "multus", True))
    entries += [(versions.cirros_image(v.kubevirt), "cirros-containerdisk", True),
                (versions.PROBE_IMAGE, "probe", True)]
    merged: dict[str, tuple[list[str], bool]] = {}
    for image, component, loadable in entries:
        comps, _ = merged.setdefault(image, ([], loadable))
        comps.append(component)
    return [Image(image=i, components=tuple(c), loadable=ld) for i, (c, ld) in merged.items()]


@dataclass(frozen=True)
class Manifest:
    """One upstream artifact the installers read: from ``url``, or from ``--manifests-dir/<filename>``."""

    filename: str
    url: str
    purpose: str
    contents: tuple[str, ...] = field(default=())


def kube_ovn_archive_name(kube_ovn_version: str) -> str:
    return f"kube-ovn-{kube_ovn_version}.tar.gz"


def run_manifests(v: RunVersions) -> list[Manifest]:
    """The upstream files a kind run installs from, with the file names ``--manifests-dir`` expects."""
    kv = f"https://github.com/kubevirt/kubevirt/releases/download/{v.kubevirt}"
    multus = ([Manifest(MULTUS_MANIFEST, v.multus_release.url,
                        f"Multus {v.multus_release.version} (thick plugin), as Kube-OVN {v.kube_ovn}'s CI installs it")]
              if v.multus_release is not None else [])
    return [
        Manifest(kube_ovn_archive_name(v.kube_ovn),
                 f"https://github.com/kubeovn/kube-ovn/archive/refs/tags/{v.kube_ovn}.tar.gz",
                 f"Kube-OVN {v.kube_ovn} source at the tag: the Helm chart, dist/images/install.sh, "
                 "yamls/webhook.yaml",
                 ("charts/kube-ovn-v2/", "charts/kube-ovn/", "dist/images/install.sh", "yamls/webhook.yaml")),
        Manifest("cert-manager.yaml",
                 f"https://github.com/cert-manager/cert-manager/releases/download/{v.cert_manager}/"
                 "cert-manager.yaml", f"cert-manager {v.cert_manager}"),
        Manifest("kubevirt-operator.yaml", f"{kv}/kubevirt-operator.yaml", f"KubeVirt {v.kubevirt} operator"),
        Manifest("kubevirt-cr.yaml", f"{kv}/kubevirt-cr.yaml", f"KubeVirt {v.kubevirt} CR"),
        *multus,
    ]
