"""The resources the simulated cluster serves (what discovery lists and the store keys by).

Shapes follow the real API groups: core v1, apps/v1, admissionregistration.k8s.io/v1,
kubevirt.io/v1 (``pkg/virt-operator/resource/generate/components/crds.go``), clone.kubevirt.io,
subresources.kubevirt.io (virt-api's aggregated API) and kubeovn.io/v1 (``kube-ovn-crd.yaml``).
"""

from __future__ import annotations

from .store import ResourceType, Store

NAMESPACES = ResourceType("", "v1", "Namespace", "namespaces", False, ("ns",), ("status",), singular="namespace")
PODS = ResourceType("", "v1", "Pod", "pods", True, ("po",), ("status", "log"), singular="pod",
                    categories=("all",))
NODES = ResourceType("", "v1", "Node", "nodes", False, ("no",), ("status",), singular="node")
EVENTS = ResourceType("", "v1", "Event", "events", True, ("ev",), singular="event")
SERVICES = ResourceType("", "v1", "Service", "services", True, ("svc",), ("status",), singular="service",
                        categories=("all",))
CONFIGMAPS = ResourceType("", "v1", "ConfigMap", "configmaps", True, ("cm",), singular="configmap")
SERVICEACCOUNTS = ResourceType("", "v1", "ServiceAccount", "serviceaccounts", True, ("sa",),
                               singular="serviceaccount")
DEPLOYMENTS = ResourceType("apps", "v1", "Deployment", "deployments", True, ("deploy",), ("status",),
                           singular="deployment", categories=("all",))
#: The owners of the component pods (pods → ReplicaSet → Deployment; virt-handler pods → DaemonSet), so
#: that diagnostics can tell a component's pods from any pod carrying the same labels.
REPLICASETS = ResourceType("apps", "v1", "ReplicaSet", "replicasets", True, ("rs",), ("status",),
                           singular="replicaset")
DAEMONSETS = ResourceType("apps", "v1", "DaemonSet", "daemonsets", True, ("ds",), ("status",), singular="daemonset",
                          categories=("all",))
VWC = ResourceType("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration",
                   "validatingwebhookconfigurations", False, (), singular="validatingwebhookconfiguration")

VMS = ResourceType("kubevirt.io", "v1", "VirtualMachine", "virtualmachines", True, ("vm", "vms"), ("status",),
                   singular="virtualmachine", categories=("all",))
# No status subresource: KubeVirt's generated VirtualMachineInstance CRD has none (status is a plain update).
VMIS = ResourceType("kubevirt.io", "v1", "VirtualMachineInstance", "virtualmachineinstances", True,
                    ("vmi", "vmis"), (), singular="virtualmachineinstance", categories=("all",))
VMIMS = ResourceType("kubevirt.io", "v1", "VirtualMachineInstanceMigration", "virtualmachineinstancemigrations",
                     True, ("vmim", "vmims"), ("status",), singular="virtualmachineinstancemigration",
                     categories=("all",))
KUBEVIRTS = ResourceType("kubevirt.io", "v1", "KubeVirt", "kubevirts", True, ("kv", "kvs"), ("status",),
                         singular="kubevirt")
VM_CLONES = ResourceType("clone.kubevirt.io", "v1beta1", "VirtualMachineClone", "virtualmachineclones", True,
                         ("vmclone", "vmclones"), ("status",), singular="virtualmachineclone")

IPS = ResourceType("kubeovn.io", "v1", "IP", "ips", False, ("ip",), singular="ip")
SUBNETS = ResourceType("kubeovn.io", "v1", "Subnet", "subnets", False, ("subnet",), ("status",),
                       singular="subnet")
VPCS = ResourceType("kubeovn.io", "v1", "Vpc", "vpcs", False, ("vpc",), ("status",), singular="vpc")

#: Multus's NetworkAttachmentDefinition (CRD ``network-attachment-definitions.k8s.cni.cncf.io``), served only
#: when the simulated cluster has Multus (``SimConfig.multus``).
NADS = ResourceType("k8s.cni.cncf.io", "v1", "NetworkAttachmentDefinition", "network-attachment-definitions", True,
                    ("net-attach-def",), singular="network-attachment-definition")

#: virt-api's aggregated subresource API: only PUT on ``virtualmachines/<name>/<action>``.
SUBRESOURCE_GROUP = "subresources.kubevirt.io"
VM_ACTIONS = ("start", "stop", "restart", "migrate")

ALL: tuple[ResourceType, ...] = (
    NAMESPACES, PODS, NODES, EVENTS, SERVICES, CONFIGMAPS, SERVICEACCOUNTS, DEPLOYMENTS, REPLICASETS, DAEMONSETS, VWC,
    VMS, VMIS, VMIMS, KUBEVIRTS, VM_CLONES, IPS, SUBNETS, VPCS,
)


def register_all(store: Store, *, multus: bool = True) -> None:
    for rt in ALL:
        store.register(rt)
    if multus:
        store.register(NADS)
