"""Render the manifests in ``manifests/`` into the objects the suite creates.

The YAML files are the reviewed shape; rendering only fills in names, addresses, subnets, images and
labels (never string substitution: the YAML is loaded, then fields are set).
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass
from typing import Any

import yaml

from . import RUN_LABEL, versions
from ._data import data_dir

JSON = dict[str, Any]

IP_ANNOTATION = "ovn.kubernetes.io/ip_address"
MAC_ANNOTATION = "ovn.kubernetes.io/mac_address"
SWITCH_ANNOTATION = "ovn.kubernetes.io/logical_switch"
CIDR_ANNOTATION = "ovn.kubernetes.io/cidr"
ALLOCATED_ANNOTATION = "ovn.kubernetes.io/allocated"
MIGRATION_ANNOTATION = "kubevirt.io/migrationJobName"
BRIDGE_MIGRATION_ANNOTATION = "kubevirt.io/allow-pod-bridge-network-live-migration"
PROBE_LABEL = "kovc.io/probe"
PROBE_TARGET = "kovc.io/probe-target"
PROBE_INTERVAL = "kovc.io/probe-interval-ms"
PROBE_COUNT = "kovc.io/probe-count"
DEFAULT_SUBNET = "ovn-default"
#: The VM's network name for its attachment interface.
ATTACHMENT_NETWORK = "attach"


@functools.cache
def _load(name: str) -> JSON:
    path = data_dir("manifests") / f"{name}.yaml"
    with path.open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected one YAML mapping")
    return data


def manifest(name: str) -> JSON:
    """A fresh copy of ``manifests/<name>.yaml``."""
    return copy.deepcopy(_load(name))


def _set_network_annotations(annotations: dict[str, str], ip: str | None, subnet: str | None) -> None:
    if ip:
        annotations[IP_ANNOTATION] = ip
    else:
        annotations.pop(IP_ANNOTATION, None)
    if subnet:
        annotations[SWITCH_ANNOTATION] = subnet
    else:  # the requirement is about subnet resolution
        annotations.pop(SWITCH_ANNOTATION, None)


@dataclass(frozen=True)
class Attachment:
    """A second VM interface on a Kube-OVN attachment network (NetworkAttachmentDefinition ``nad`` in
    ``nad_namespace``, provider ``<nad>.<ns>.ovn`` served by ``subnet``) with the static address ``ip``."""

    nad: str
    nad_namespace: str
    subnet: str
    ip: str

    @property
    def provider(self) -> str:
        return nad_provider(self.nad, self.nad_namespace)

    @property
    def ip_key(self) -> str:
        """``<provider>.kubernetes.io/ip_address`` (``util.IPAddressAnnotationTemplate``)."""
        return f"{self.provider}.kubernetes.io/ip_address"

    @property
    def allocated_key(self) -> str:
        return f"{self.provider}.kubernetes.io/allocated"

    def ip_cr(self, vm: str, namespace: str) -> str:
        """The attachment's IP CR: ``ovs.PodNameToPortName(vm, ns, provider)`` = ``<vm>.<ns>.<provider>``."""
        return f"{vm}.{namespace}.{self.provider}"


def nad_provider(nad: str, namespace: str) -> str:
    return f"{nad}.{namespace}.ovn"


def render_nad(*, name: str, namespace: str, run_id: str) -> JSON:
    """A Kube-OVN attachment network (manifests/attachment-nad.yaml), provider ``<name>.<namespace>.ovn``.
    The CNI config is what upstream's e2e creates for its attachment cases, ``MakeOVNNetworkAttachmentDefinition``
    (kubeovn/kube-ovn ``test/e2e/framework/cni.go`` L60-76 at v1.16.2): ``cniVersion`` the file's
    ``CNIVersion`` (``"0.3.1"``), ``type: kube-ovn``, kube-ovn-cni's ``server_socket`` and the provider."""
    nad = manifest("attachment-nad")
    meta = nad["metadata"]
    meta["name"] = name
    meta["namespace"] = namespace
    meta["labels"][RUN_LABEL] = run_id
    nad["spec"]["config"] = json.dumps({"cniVersion": "0.3.1", "type": "kube-ovn",
                                        "server_socket": "/run/openvswitch/kube-ovn-daemon.sock",
                                        "provider": nad_provider(name, namespace)})
    return nad


def render_vm(*, name: str, namespace: str, ip: str | None, subnet: str | None, run_id: str,
              kubevirt_version: str | None = None, run_strategy: str = "Always",
              labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None,
              attachment: Attachment | None = None) -> JSON:
    """The static-IP VM (manifests/vm.yaml). ``subnet=None`` omits logical_switch; ``ip=None`` leaves the
    pod-network address to IPAM. ``attachment`` adds a bridge interface on that multus network
    (``networkName`` ``<ns>/<nad>``) and its ``<provider>.kubernetes.io/ip_address``/``logical_switch``."""
    vm = manifest("vm")
    meta = vm["metadata"]
    meta["name"] = name
    meta["namespace"] = namespace
    meta.setdefault("labels", {}).update(labels or {})
    meta["labels"][RUN_LABEL] = run_id
    spec = vm["spec"]
    spec["runStrategy"] = run_strategy
    tmeta = spec["template"]["metadata"]
    tmeta.setdefault("labels", {}).update(labels or {})
    tmeta["labels"][RUN_LABEL] = run_id
    tanns = tmeta.setdefault("annotations", {})
    _set_network_annotations(tanns, ip, subnet)
    tanns.update(annotations or {})
    if attachment is not None:
        tspec = spec["template"]["spec"]
        tspec["domain"]["devices"]["interfaces"].append({"name": ATTACHMENT_NETWORK, "bridge": {}})
        tspec["networks"].append({"name": ATTACHMENT_NETWORK, "multus": {
            "networkName": f"{attachment.nad_namespace}/{attachment.nad}"}})
        tanns[attachment.ip_key] = attachment.ip
        tanns[f"{attachment.provider}.kubernetes.io/logical_switch"] = attachment.subnet
    image = versions.cirros_image(kubevirt_version or versions.KUBEVIRT_VERSION)
    for vol in spec["template"]["spec"]["volumes"]:
        if "containerDisk" in vol:
            vol["containerDisk"]["image"] = image
    return vm


def render_pod(*, name: str, namespace: str, ip: str | None, subnet: str | None, run_id: str,
               labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None,
               owner_references: list[JSON] | None = None, node_name: str | None = None,
               image: str | None = None) -> JSON:
    """A plain pod requesting ``ip`` (manifests/pod.yaml). ``subnet=None`` omits logical_switch."""
    pod = manifest("pod")
    meta = pod["metadata"]
    meta["name"] = name
    meta["namespace"] = namespace
    meta.setdefault("labels", {}).update(labels or {})
    meta["labels"][RUN_LABEL] = run_id
    anns = meta.setdefault("annotations", {})
    _set_network_annotations(anns, ip, subnet)
    anns.update(annotations or {})
    if owner_references:
        meta["ownerReferences"] = copy.deepcopy(owner_references)
    if node_name:
        pod["spec"]["nodeName"] = node_name
    for c in pod["spec"]["containers"]:
        c["image"] = image or versions.PROBE_IMAGE
    return pod


def render_probe(*, name: str, namespace: str, target: str, run_id: str, interval_ms: int = 200,
                 count: int = 3, subnet: str | None = DEFAULT_SUBNET, node_name: str | None = None) -> JSON:
    """The ping probe (manifests/probe.yaml): its annotations drive both busybox and the simulator."""
    if interval_ms <= 0 or count <= 0:
        raise ValueError(f"probe interval and count must be positive (got {interval_ms} ms, {count})")
    pod = manifest("probe")
    meta = pod["metadata"]
    meta["name"] = name
    meta["namespace"] = namespace
    meta["labels"][RUN_LABEL] = run_id
    anns = meta.setdefault("annotations", {})
    anns[PROBE_TARGET] = target
    anns[PROBE_INTERVAL] = str(int(interval_ms))
    anns[PROBE_COUNT] = str(int(count))
    _set_network_annotations(anns, None, subnet)
    if node_name:
        pod["spec"]["nodeName"] = node_name
    for c in pod["spec"]["containers"]:
        c["image"] = versions.PROBE_IMAGE
    return pod


def render_vpc(*, name: str, run_id: str, namespaces: list[str] | None = None) -> JSON:
    vpc = manifest("vpc")
    vpc["metadata"]["name"] = name
    vpc["metadata"]["labels"][RUN_LABEL] = run_id
    vpc["spec"]["namespaces"] = list(namespaces or [])
    return vpc


def render_subnet(*, name: str, run_id: str, cidr: str, gateway: str, vpc: str,
                  namespaces: list[str] | None = None, exclude_ips: list[str] | None = None,
                  provider: str | None = None) -> JSON:
    subnet = manifest("subnet")
    subnet["metadata"]["name"] = name
    subnet["metadata"]["labels"][RUN_LABEL] = run_id
    spec = subnet["spec"]
    spec["vpc"] = vpc
    spec["cidrBlock"] = cidr
    spec["gateway"] = gateway
    spec["protocol"] = "IPv6" if ":" in cidr else "IPv4"
    spec["namespaces"] = list(namespaces or [])
    spec["excludeIps"] = list(exclude_ips if exclude_ips is not None else [gateway])
    if provider:  # an attachment network's subnet (``<nad>.<ns>.ovn``)
        spec["provider"] = provider
    return subnet
