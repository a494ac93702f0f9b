"""Beyond one IPv4 on the pod network (issue 14), on the kind backend: a dual-stack cluster and default
subnet (``--ip-family dual``) and Multus (``--multus``). The attachment network itself is not part of the
cluster: each attachment scenario creates its own NetworkAttachmentDefinition and Subnet in its run-owned
namespace (``tests/scenarios/test_attachment.py``, ``conformance.templates.render_nad``), so any cluster
serving the NetworkAttachmentDefinition API - kind with ``--multus`` or an existing one with Multus - runs
them, and the run cleans them up.

Everything is derived from upstream Kube-OVN at each modelled release (kubeovn/kube-ovn at the tags;
line numbers below are of those files at those tags):

* **dual-stack kind cluster** - ``make kind-init-dual`` renders ``yamls/kind.yaml.j2`` with
  ``ip_family=dual`` (``makefiles/kind.mk`` L155-158 at v1.16.2: ``kind-init-%`` passes ``ip_family=$*``):
  ``networking.ipFamily: dual`` and the dual ``podSubnet``/``serviceSubnet`` pair of the template
  (:data:`DUAL_KIND`), plus, from v1.12.23, the control plane's kube-controller-manager
  ``node-cidr-mask-size-ipv4: "24"`` / ``node-cidr-mask-size-ipv6: "120"`` (a /112 pod range cannot be cut
  into the default /64 node ranges). Every other line of ``clusters/kind-config.yaml`` stays as it is.
* **dual-stack default subnet** - ``make kind-install-dual`` is ``DUAL_STACK=true $(MAKE) kind-install``
  (``makefiles/kind.mk`` L284-286 at v1.16.2), i.e. ``dist/images/install.sh`` with ``DUAL_STACK=true``,
  whose own ``if [ "$DUAL_STACK" = "true" ]`` block sets ``ovn-default``/join/service CIDRs (L97-101 at
  v1.16.2). That is the path of the releases kovc installs with install.sh (before v1.16.0). From v1.16.0
  kovc installs the chart v2 (``versions.KubeOvnRelease.install_method``); upstream has no dual-stack
  chart-v2 kind target (``install-chart-v2``, ``Makefile`` L254-260 at v1.16.2, passes no stack, and
  ``helm-testing.yaml`` runs ``ip-family: [ "ipv4" ]``, L19), so kovc sets the chart's own keys
  (``networking.stack: Dual`` and the ``v6`` CIDRs, ``charts/kube-ovn-v2/values.yaml`` L54-131 at v1.16.2)
  to install.sh's DUAL_STACK values: ``clusters/kube-ovn-values-v2-dual.yaml``. Note the chart's default
  IPv6 service CIDR is ``fd00:10:96::/112`` (L111) while the kind template and install.sh use ``/108``;
  kovc uses ``/108`` so the controller's ``--service-cluster-ip-range`` equals the API server's.
  The run checks afterwards that ``ovn-default`` is ``protocol: Dual`` with an IPv4 and an IPv6 CIDR.
* **IPv6 only** - upstream has the targets (``kind-init-ipv6``, ``kind-install-ipv6``), but every kovc
  scenario pins IPv4 addresses in ``ovn-default``, so ``--ip-family ipv6`` is refused (exit 2).
* **Multus** - ``make kind-install-multus`` (:data:`MULTUS`): the thick plugin's
  ``deployments/multus-daemonset-thick.yml`` of the pinned ``MULTUS_VERSION`` with
  ``sed 's/:snapshot-thick/:$(MULTUS_VERSION)-thick/g'``, ``kubectl apply`` (kovc then waits for the
  manifest's NetworkAttachmentDefinition CRD to be Established, where the cluster serves CRDs); from
  v1.14.0 ``kubectl -n kube-system set resources ds/kube-multus-ds -c kube-multus
  --limits=cpu=200m,memory=200Mi``; then
  ``rollout status ds kube-multus-ds``; the image ``ghcr.io/k8snetworkplumbingwg/multus-cni:<v>-thick`` is
  preloaded (``kind_load_image … $(MULTUS_IMAGE),1``). Releases before v1.11.10 install an unpinned Multus
  from the multus-cni master branch (``MULTUS_IMAGE = …:stable`` / ``:snapshot-thick``): not reproducible,
  so ``--multus`` is refused for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import versions
from .base import BackendError

IP_FAMILIES = ("ipv4", "dual", "ipv6")
DEFAULT_IP_FAMILY = "ipv4"
MULTUS_REGISTRY = "ghcr.io/k8snetworkplumbingwg"
MULTUS_MANIFEST = "multus-daemonset-thick.yml"
MULTUS_DAEMONSET = "kube-multus-ds"
#: The chart v2 values that make ``ovn-default`` dual-stack (on top of ``kube-ovn-values-v2.yaml``).
CHART_V2_DUAL_VALUES = "kube-ovn-values-v2-dual.yaml"
NAD_CRD = "network-attachment-definitions.k8s.cni.cncf.io"


@dataclass(frozen=True)
class DualStackKind:
    """The dual branch of the tag's ``yamls/kind.yaml.j2``."""

    pod_subnet: str
    service_subnet: str
    #: kube-controller-manager's node CIDR mask sizes (None: the template sets none).
    node_cidr_masks: tuple[str, str] | None
    source: str


#: (first release, settings), newest last. Read at every tag v1.10.8 … v1.16.2.
DUAL_KIND: tuple[tuple[str, DualStackKind], ...] = (
    ("v1.10.8", DualStackKind("10.16.0.0/16,fd00:10:16::/64", "10.96.0.0/12,fd00:10:96::/112", None,
                              "yamls/kind.yaml.j2 L25-26 at v1.10.8 (L51-52 at v1.12.22)")),
    ("v1.12.23", DualStackKind("10.16.0.0/16,fd00:10:16::/112", "10.96.0.0/12,fd00:10:96::/108", ("24", "120"),
                               "yamls/kind.yaml.j2 L54-55 and L76-79 at v1.12.23 (L51-52 and L73-76 at "
                               "v1.16.2)")),
)


@dataclass(frozen=True)
class Multus:
    """``make kind-install-multus`` of one release line."""

    version: str
    #: ``kubectl set resources ds/kube-multus-ds … --limits=cpu=200m,memory=200Mi`` (from v1.14.0).
    set_limits: bool
    source: str

    @property
    def image(self) -> str:
        return f"{MULTUS_REGISTRY}/multus-cni:{self.version}-thick"

    @property
    def url(self) -> str:
        return (f"https://raw.githubusercontent.com/k8snetworkplumbingwg/multus-cni/{self.version}/deployments/"
                f"{MULTUS_MANIFEST}")


#: (first release, Multus), newest last; ``MULTUS_VERSION`` of the tag's ``Makefile`` and its
#: ``kind-install-multus`` recipe, read at every tag v1.10.8 … v1.16.2.
MULTUS: tuple[tuple[str, Multus], ...] = (
    ("v1.11.10", Multus("v4.0.2", False, "Makefile L16 (MULTUS_VERSION), L493-496 (kind-install-multus) at "
                                         "v1.11.10; L25, L692 at v1.12.0")),
    ("v1.12.23", Multus("v4.1.1", False, "Makefile L32, L772-775 at v1.12.23")),
    ("v1.13.0", Multus("v4.1.3", False, "Makefile L35, L780 at v1.13.0; Makefile L24, kind.mk L457-460 at "
                                        "v1.13.15")),
    ("v1.14.0", Multus("v4.2.1", True, "Makefile L24, kind.mk L456-460 at v1.14.0")),
    ("v1.15.0", Multus("v4.2.3", True, "Makefile L26, makefiles/kind.mk L468-472 at v1.15.0")),
    ("v1.16.0", Multus("v4.2.4", True, "Makefile L28, makefiles/kind.mk L501-505 at v1.16.2")),
)


def _pick(table: tuple[tuple[str, Any], ...], kube_ovn: str) -> Any:
    found = None
    for first, value in table:
        if versions.parse(kube_ovn) >= versions.parse(first):
            found = value
    return found


def dual_stack_kind(kube_ovn: str) -> DualStackKind:
    value: DualStackKind = _pick(DUAL_KIND, kube_ovn)
    return value


def multus_for(kube_ovn: str) -> Multus | None:
    """The Multus a release's CI installs; None when it installs an unpinned one (before v1.11.10)."""
    value: Multus | None = _pick(MULTUS, kube_ovn)
    return value


def check_options(backend: str, *, ip_family: str | None, multus: bool, kube_ovn_version: str | None) -> None:
    """Refuse a combination that cannot be honoured (:class:`BackendError`, one line, exit 2)."""
    family = ip_family or DEFAULT_IP_FAMILY
    if family not in IP_FAMILIES:
        raise BackendError(f"--ip-family {family!r}: expected one of {', '.join(IP_FAMILIES)}")
    if backend != "kind":
        given = [flag for flag, on in (("--ip-family " + family, family != DEFAULT_IP_FAMILY),
                                       ("--multus", multus)) if on]
        if given:
            what = ("an existing cluster is tested as it is: whether it is dual-stack and serves "
                    "NetworkAttachmentDefinitions (Multus) is detected through the API" if backend == "existing" else
                    f"backend {backend} builds its own cluster")
            verb = "configure" if len(given) > 1 else "configures"
            raise BackendError(f"{' and '.join(given)} {verb} the kind cluster kovc creates (--backend kind); "
                               f"{what}")
        return
    if family == "ipv6":
        raise BackendError("--ip-family ipv6 is not supported: upstream's kind targets can build an IPv6-only "
                           "cluster, but kovc's scenarios pin IPv4 addresses in ovn-default; use --ip-family dual")
    if multus:
        release = kube_ovn_version or versions.KUBE_OVN_VERSION
        try:
            versions.kube_ovn_release(release)
        except versions.VersionError as err:
            raise BackendError(str(err)) from None
        if multus_for(release) is None:
            raise BackendError(f"--multus with Kube-OVN {release}: its CI installs an unpinned Multus from the "
                               "multus-cni master branch (Makefile MULTUS_IMAGE :stable/:snapshot-thick), which "
                               "cannot be reproduced; the first release pinning one is v1.11.10")


# -- the dual-stack kind config ------------------------------------------------------------------------


def dual_stack_kind_config(doc: dict[str, Any], kube_ovn: str) -> dict[str, Any]:
    """``clusters/kind-config.yaml`` (parsed) made dual-stack as the release's ``kind-init-dual`` does:
    ``ipFamily: dual``, the template's dual pod/service subnets and, where the template has them, the
    control plane's kube-controller-manager node CIDR mask sizes (a patch in the map form of
    ``extraArgs``: kubeadm v1beta3, and kind >= v0.32.0 converts it for v1beta4 - kind's
    ``pkg/internal/patch/kubeadm_merge.go``)."""
    import copy

    out = copy.deepcopy(doc)
    dual = dual_stack_kind(kube_ovn)
    net = out.setdefault("networking", {})
    net["ipFamily"] = "dual"
    net["podSubnet"] = dual.pod_subnet
    net["serviceSubnet"] = dual.service_subnet
    if dual.node_cidr_masks is not None:
        v4, v6 = dual.node_cidr_masks
        patch = ("kind: ClusterConfiguration\ncontrollerManager:\n  extraArgs:\n"
                 f"    node-cidr-mask-size-ipv4: \"{v4}\"\n    node-cidr-mask-size-ipv6: \"{v6}\"\n")
        planes = [n for n in out.get("nodes") or [] if n.get("role") == "control-plane"]
        if not planes:
            raise BackendError("kind config: expected a control-plane node to carry kube-controller-manager's "
                               "node CIDR mask sizes, saw none")
        for node in planes:
            node.setdefault("kubeadmConfigPatches", []).append(patch)
    return out
