"""virt-controller, virt-handler and the virt-api admission webhooks, modelled on
``kubevirt/kubevirt@d923fdb8`` (main after v1.9.0; file paths below are that revision). User agents
``virt-controller/<kubevirt version>``, ``virt-handler/<…>``, ``virt-api/<…>``.

VirtualMachine (:class:`VmController`, ``pkg/virt-controller/watch/vm/vm.go``):

* run strategies ``Always``/``Halted``/``Manual``/``RerunOnFailure``/``Once`` (and the deprecated
  ``spec.running`` true/false = Always/Halted); ``status.stateChangeRequests`` (``Stop`` with a VMI uid,
  ``Start``) written by the subresources are honoured as ``syncRunStrategy`` does: a restart deletes the
  VMI, and once it is gone a new one (same name, new uid) is created;
* a VMI is the template's metadata (labels, annotations) and spec, a controller ownerReference to the
  VM, finalizer ``kubevirt.io/virtualMachineControllerFinalize`` (``SetupVMIFromVM``); a final VMI
  of an ``Always`` VM is deleted and replaced;
* the VM carries the same finalizer while it exists; a deleted VM stops its VMI and drops the
  finalizer once the VMI is gone (so deletion never hangs while the controllers run);
* status ``created``, ``ready``, ``printableStatus`` (Stopped, Starting, Running, Migrating, Stopping,
  Terminating, ErrorUnschedulable), ``runStrategy``, ``conditions`` (Ready).

VirtualMachineInstance (:class:`VmiController`, ``watch/vmi/lifecycle.go``): phase ``Pending`` → launcher
pod created **through the admission chain** (``services/template.go``: ``generateName:
virt-launcher-<vmi>-``, one controller ownerReference to the VMI, the VMI's labels plus
``kubevirt.io=virt-launcher``, ``kubevirt.io/created-by=<vmi uid>``, ``vm.kubevirt.io/name`` and, from
KubeVirt v1.7.0, ``vmi.kubevirt.io/id``; the VMI's annotations minus ``kubectl.kubernetes.io*`` and the
observed-api-version ones, plus ``kubevirt.io/domain``; node selector ``kubevirt.io/schedulable:
"true"``) → ``Scheduling`` → ``Scheduled`` (pod ready: ``nodeName``, label ``kubevirt.io/nodeName``).
A pod creation error is a Warning Event ``FailedCreate`` ``Error creating pod: <err>`` on the VMI and
the condition ``Synchronized=False`` (reason ``FailedCreate``, message ``failed to create virtual
machine pod: <err>``; ``CheckFailure`` keeps the first message while the reason is unchanged, and the
next clean sync removes the condition), retried with the workqueue's exponential backoff. A VMI whose
launcher pod disappears or dies goes ``Failed``. A deleted VMI is ``Succeeded`` (virt-handler shut the
domain down), its pods are deleted, then its finalizers removed.

virt-handler (:class:`Handler`): ``Scheduled`` → ``Running`` with ``Ready=True``, ``LiveMigratable``
(``pkg/network/vmispec/interface.go`` ``VerifyVMIMigratable``: bridge binding on the pod network needs
``kubevirt.io/allow-pod-bridge-network-live-migration``) and ``status.interfaces[0]`` {name, ipAddress,
ipAddresses, mac, infoSource: domain} filled from the launcher pod's Kube-OVN annotations once they
are allocated (virt-handler reads the pod interface, ``pkg/network/setup/netstat.go``).

Migration (:class:`MigrationController`, ``watch/migration/migration.go``): phase Pending → target pod
(same template, ``kubevirt.io/migrationJobUID`` label, ``kubevirt.io/migrationJobName`` annotation,
required anti-affinity on ``kubevirt.io/created-by=<vmi uid>`` per hostname) created through admission
(a denial is a ``FailedCreate`` Warning ``Error creating pod: …`` on the VMI, retried) → Scheduling →
Scheduled → PreparingTarget → TargetReady → Running → switch-over (the VM's address answers no ping
for ``config.migration_gap`` seconds) → Succeeded: the VMI's ``nodeName`` and ``migrationState``
(sourceNode, targetNode, sourcePod, targetPod, completed, startTimestamp, endTimestamp) are updated and
the source pod ends ``Succeeded`` (Completed). A target pod that stays unschedulable gets
``migrationTargetPodUnschedulable`` Warnings and is deleted after the unschedulable timeout (upstream
300 s; here ``config.extra["migration_unschedulable_timeout"]`` seconds, default ``max(0.5,
100 * step_delay)``), which fails the migration (``Migration target pod was removed during active
migration.``); a target pod Pending for any other reason times out at 3 times that (upstream's catch-all
900 s).

VirtualMachineClone (:class:`CloneController`, ``watch/clone/``): the target VM is the source with
``annotationFilters``/``labelFilters`` (VM metadata) and ``template.annotationFilters``/
``template.labelFilters`` applied exactly as ``vm-target.go`` ``addRemovePatchesFromFilter`` does -
filters are *inclusion* patterns (Go regular expressions matched anywhere in the key; a lone ``*``
means everything), ``!pattern`` excludes, and with filters set every key not included is dropped;
without filters everything is copied, so an unfiltered clone keeps the static-IP annotation.
Interface ``macAddress`` values are replaced by ``newMacAddresses`` (or emptied).

Admission (virt-api): ``migration-create-validator.kubevirt.io`` (VMI must exist, not be final, be
``LiveMigratable``, have no migration in flight → HTTP 400 ``Cannot migrate VMI, Reason: %s, Message:
%s`` …) and ``virtualmachine-validator.kubevirt.io`` (``Running and RunStrategy are mutually
exclusive…`` / ``RunStrategy must be specified`` / ``missing virtual machine template.`` → 422).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from typing import Any

from ... import versions
from .. import api
from .. import resources as r
from ..store import (
    AdmissionRequest,
    ApiError,
    ResourceType,
    Validator,
    WatchEvent,
    deepcopy_json,
    now_rfc3339,
)
from ..view import (
    JSON,
    Key,
    Reconciler,
    Requeue,
    World,
    annotations_of,
    controller_ref,
    get_condition,
    is_controlled_by,
    is_deleting,
    labels_of,
    owner_ref,
    remove_condition,
    set_condition,
)
from . import kubeovn, scheduler

VM_FINALIZER = "kubevirt.io/virtualMachineControllerFinalize"
VMI_FINALIZER = "foregroundDeleteVirtualMachine"
MIGRATION_FINALIZER = "kubevirt.io/migrationJobFinalize"
#: KubeVirt's VirtualMachineInstance CRD has no status subresource (virt-operator's generated CRDs; VMs,
#: migrations and clones have one): virt-controller and virt-handler write a VMI's status by a plain update.
VMI_STATUS = ""
ALLOW_BRIDGE_MIGRATION = "kubevirt.io/allow-pod-bridge-network-live-migration"
MIGRATION_JOB_NAME = "kubevirt.io/migrationJobName"
MIGRATION_JOB_UID = "kubevirt.io/migrationJobUID"
CREATED_BY = "kubevirt.io/created-by"
NODE_NAME_LABEL = "kubevirt.io/nodeName"
VMI_NAME_LABEL = "kubevirt.io/vmi-name"
FINAL = ("Succeeded", "Failed")
INTERFACE_NOT_MIGRATABLE = (
    "cannot migrate VMI which does not use masquerade, bridge with "
    f"{ALLOW_BRIDGE_MIGRATION} VM annotation or a migratable plugin to connect to the pod network"
)


def run_strategy(vm: JSON) -> str:
    """``vm.RunStrategy()``: ``spec.runStrategy``, else ``spec.running`` true/false = Always/Halted."""
    spec = vm.get("spec") or {}
    if spec.get("runStrategy"):
        return str(spec["runStrategy"])
    if spec.get("running") is True:
        return "Always"
    return "Halted"


def vmi_id(name: str) -> str:
    """``apimachinery.CalculateVirtualMachineInstanceID``: the name, or a hashed 63-char prefix."""
    if len(name) <= 63:
        return name
    return f"{name[:54]}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def is_final(vmi: JSON | None) -> bool:
    return vmi is not None and (vmi.get("status") or {}).get("phase") in FINAL


def pod_network_binding(vmi_or_template_spec: JSON) -> str:
    """The binding of the pod-network interface (``bridge`` when KubeVirt's defaults apply)."""
    spec = vmi_or_template_spec
    networks = spec.get("networks")
    interfaces = ((spec.get("domain") or {}).get("devices") or {}).get("interfaces")
    if networks is None and interfaces is None:
        return "bridge"  # autoattachPodInterface with the default NetworkInterface (bridge)
    pod_net = next((n for n in networks or [] if "pod" in n), None)
    if pod_net is None:
        return ""
    iface = next((i for i in interfaces or [] if i.get("name") == pod_net.get("name")), None)
    if iface is None:
        return "bridge"
    for binding in ("bridge", "masquerade", "passt", "sriov", "slirp", "macvtap"):
        if binding in iface:
            return binding
    if iface.get("binding"):
        return "plugin"
    return "bridge"


MULTUS_NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"


def multus_networks_annotation(spec: JSON, namespace: str) -> str:
    """KubeVirt's ``GenerateMultusCNIAnnotation`` (name scheme ``CreateHashedNetworkNameScheme``): the VMI's
    non-default multus networks as the launcher pod's ``k8s.v1.cni.cncf.io/networks`` JSON list, each
    ``{"interface", "name", "namespace"}``, the interface ``pod`` + the first 11 hex digits of the network
    name's sha256; ``networkName`` ``<ns>/<nad>`` names another namespace. Empty when there is none."""
    out = []
    for net in spec.get("networks") or []:
        multus = net.get("multus")
        if not isinstance(multus, dict) or multus.get("default"):
            continue
        ref = str(multus.get("networkName") or "")
        nad_ns, _, nad = ref.rpartition("/")
        out.append({"name": nad, "namespace": nad_ns or namespace,
                    "interface": "pod" + hashlib.sha256(str(net.get("name", "")).encode()).hexdigest()[:11]})
    return json.dumps(out, separators=(",", ":")) if out else ""


def pod_network_name(spec: JSON) -> str:
    for n in spec.get("networks") or []:
        if "pod" in n:
            return str(n.get("name", "default"))
    return "default"


class KubeVirt:
    """User agents and helpers shared by the KubeVirt controllers."""

    def __init__(self, world: World) -> None:
        self.world = world
        v = world.config.kubevirt_version
        self.version = v
        self.controller_ua = f"virt-controller/{v}"
        self.handler_ua = f"virt-handler/{v}"
        self.api_ua = f"virt-api/{v}"
        try:
            self.has_vmi_id_label = versions.parse(v) >= (1, 7, 0)
        except versions.VersionError:
            self.has_vmi_id_label = True

    async def event(
        self,
        obj: JSON,
        etype: str,
        reason: str,
        message: str,
        component: str = "virtualmachine-controller",
        ua: str = "",
    ) -> None:
        await self.world.record_event(
            obj, etype, reason, message, component=component, user_agent=ua or self.controller_ua
        )

    def launcher_pods(self, vmi: JSON) -> list[JSON]:
        """Pods whose controller ownerReference is this VMI (by uid)."""
        uid = vmi["metadata"]["uid"]
        return [
            deepcopy_json(p)
            for p in self.world.client.by_owner(r.PODS, uid)
            if p["metadata"]["namespace"] == vmi["metadata"]["namespace"] and is_controlled_by(p, uid)
        ]

    def render_pod(self, vmi: JSON) -> JSON:
        """``TemplateService.RenderLaunchManifest`` (``services/template.go`` L600-760)."""
        m = vmi["metadata"]
        spec = vmi.get("spec") or {}
        name = m["name"]
        hostname = str(spec.get("hostname") or name)
        labels = dict(m.get("labels") or {})
        labels.update({"kubevirt.io": "virt-launcher", CREATED_BY: m["uid"], "vm.kubevirt.io/name": hostname})
        if self.has_vmi_id_label:
            labels["vmi.kubevirt.io/id"] = vmi_id(name)
        annotations = {"kubevirt.io/domain": name}
        for k, v in (m.get("annotations") or {}).items():
            if (
                k.startswith("kubectl.kubernetes.io")
                or k.startswith("kubevirt.io/storage-observed-api-version")
                or k.startswith("kubevirt.io/latest-observed-api-version")
            ):
                continue
            annotations[k] = v
        annotations.update(
            {
                "kubectl.kubernetes.io/default-container": "compute",
                "kubevirt.io/migrationTransportUnix": "true",
                "descheduler.alpha.kubernetes.io/request-evict-only": "",
            }
        )
        multus = multus_networks_annotation(spec, m["namespace"])
        if multus:
            annotations[MULTUS_NETWORKS_ANNOTATION] = multus
        node_selector = {**(spec.get("nodeSelector") or {}), scheduler.SCHEDULABLE_LABEL: "true"}
        memory = str(
            ((((spec.get("domain") or {}).get("resources") or {}).get("requests") or {}).get("memory"))
            or (((spec.get("domain") or {}).get("memory") or {}).get("guest"))
            or "128Mi"
        )
        grace = int(spec.get("terminationGracePeriodSeconds", 30)) + 15
        pod_spec: JSON = {
            "hostname": hostname,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": grace,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "schedulerName": spec.get("schedulerName") or "default-scheduler",
            "nodeSelector": node_selector,
            "securityContext": {"fsGroup": 107, "runAsGroup": 107, "runAsNonRoot": True, "runAsUser": 107},
            "containers": [
                {
                    "name": "compute",
                    "image": f"quay.io/kubevirt/virt-launcher:{self.version}",
                    "imagePullPolicy": "IfNotPresent",
                    "command": [
                        "/usr/bin/virt-launcher-monitor",
                        "--qemu-timeout",
                        "240s",
                        "--name",
                        name,
                        "--uid",
                        m["uid"],
                        "--namespace",
                        m["namespace"],
                        "--kubevirt-share-dir",
                        "/var/run/kubevirt",
                        "--ephemeral-disk-dir",
                        "/var/run/kubevirt-ephemeral-disks",
                        "--container-disk-dir",
                        "/var/run/kubevirt/container-disks",
                        "--grace-period-seconds",
                        str(grace),
                        "--hook-sidecars",
                        "0",
                        "--ovmf-path",
                        "/usr/share/OVMF",
                        "--run-as-nonroot",
                    ],
                    "resources": {
                        "requests": {
                            "cpu": "100m",
                            "memory": memory,
                            "devices.kubevirt.io/kvm": "1",
                            "devices.kubevirt.io/tun": "1",
                            "devices.kubevirt.io/vhost-net": "1",
                        },
                        "limits": {
                            "devices.kubevirt.io/kvm": "1",
                            "devices.kubevirt.io/tun": "1",
                            "devices.kubevirt.io/vhost-net": "1",
                        },
                    },
                }
            ],
        }
        if spec.get("affinity"):
            pod_spec["affinity"] = deepcopy_json(spec["affinity"])
        if spec.get("tolerations"):
            pod_spec["tolerations"] = deepcopy_json(spec["tolerations"])
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "generateName": f"virt-launcher-{name}-",
                "namespace": m["namespace"],
                "labels": labels,
                "annotations": annotations,
                "ownerReferences": [
                    owner_ref({**vmi, "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance"})
                ],
            },
            "spec": pod_spec,
        }


def _drop_finalizers(*names: str) -> Any:
    def edit(obj: JSON) -> None:
        obj["metadata"]["finalizers"] = [f for f in obj["metadata"].get("finalizers") or [] if f not in names]

    return edit


def _add_finalizer(name: str) -> Any:
    def edit(obj: JSON) -> None:
        fins = list(obj["metadata"].get("finalizers") or [])
        if name not in fins:
            fins.append(name)
        obj["metadata"]["finalizers"] = fins

    return edit


def _pod_down(pod: JSON) -> bool:
    return is_deleting(pod) or (pod.get("status") or {}).get("phase") in FINAL


def _pod_ready(pod: JSON) -> bool:
    cond = get_condition(pod, "Ready")
    return (
        (pod.get("status") or {}).get("phase") == "Running"
        and cond is not None
        and cond.get("status") == "True"
    )


def _is_target_pod(pod: JSON) -> bool:
    return MIGRATION_JOB_UID in labels_of(pod)


class _KubeVirtReconciler(Reconciler):
    """A virt-controller/virt-handler loop: the shared :class:`KubeVirt` state and event routing helpers."""

    watches = (r.VMS, r.VMIS, r.VMIMS, r.VM_CLONES, r.PODS)

    def __init__(self, world: World, kv: KubeVirt) -> None:
        super().__init__(world)
        self.kv = kv

    def _queue_object(self, obj: JSON) -> None:
        """Queue the object itself (namespace, name)."""
        self.queue.add((obj["metadata"]["namespace"], obj["metadata"]["name"]))

    def _queue_controller(self, obj: JSON, kind: str) -> None:
        """Queue the object's controller (same namespace) when it is of ``kind``."""
        ref = controller_ref(obj)
        if ref is not None and ref.get("kind") == kind:
            self.queue.add((obj["metadata"]["namespace"], str(ref.get("name", ""))))

    def _queue_all(self, rt: ResourceType) -> None:
        for obj in self.client.iter_raw(rt):
            self._queue_object(obj)


# ----------------------------------------------------------------------------- VirtualMachine
class VmController(_KubeVirtReconciler):
    name = "virt-controller-vm"

    def __init__(self, world: World, kv: KubeVirt) -> None:
        super().__init__(world, kv)
        self.once_started: set[str] = set()
        self.stopped_on_request: set[str] = set()

    def on_event(self, ev: WatchEvent) -> None:
        if ev.rt.key == r.VMS.key and ev.type != "DELETED":
            self._queue_object(ev.object)
        elif ev.rt.key == r.VMIS.key:
            self._queue_controller(ev.object, "VirtualMachine")

    def resync(self) -> None:
        self._queue_all(r.VMS)

    def _vmi_of(self, vm: JSON) -> JSON | None:
        vmi = self.client.get(r.VMIS, vm["metadata"]["namespace"], vm["metadata"]["name"])
        if vmi is None or not is_controlled_by(vmi, vm["metadata"]["uid"]):
            return None
        return vmi

    async def handle(self, key: Key) -> None:
        ns, name = key
        vm = self.client.get(r.VMS, ns, name)
        if vm is None:
            return
        ua = self.kv.controller_ua
        vmi = self._vmi_of(vm)
        if is_deleting(vm):
            if vmi is not None and not is_deleting(vmi):
                await self._stop(vm, vmi)
            if vmi is None and VM_FINALIZER in (vm["metadata"].get("finalizers") or []):
                await api.mutate(self.client.as_agent(ua), r.VMS, ns, name, _drop_finalizers(VM_FINALIZER))
                return
            await self._update_status(vm, vmi)
            return
        if VM_FINALIZER not in (vm["metadata"].get("finalizers") or []):
            vm = (
                await api.mutate(self.client.as_agent(ua), r.VMS, ns, name, _add_finalizer(VM_FINALIZER))
                or vm
            )
        strategy = run_strategy(vm)
        requests = list((vm.get("status") or {}).get("stateChangeRequests") or [])
        stop_uids = {
            str(req.get("uid")) for req in requests if req.get("action") == "Stop" and req.get("uid")
        }
        wants_start = any(req.get("action") == "Start" for req in requests)
        stop_requested = vmi is not None and (
            vmi["metadata"]["uid"] in stop_uids
            or any(req.get("action") == "Stop" and not req.get("uid") for req in requests)
        )
        vm_uid = vm["metadata"]["uid"]
        if stop_requested:
            self.stopped_on_request.add(vm_uid)
        if wants_start:
            self.stopped_on_request.discard(vm_uid)
        start = False
        if strategy == "Always":
            if vmi is not None and (stop_requested or is_final(vmi)):
                await self._stop(vm, vmi)
            elif vmi is None:
                start = True
        elif strategy == "Halted":
            if vmi is not None:
                await self._stop(vm, vmi)
        elif strategy in ("Manual", "RerunOnFailure", "Once"):
            if vmi is not None:
                failed = (vmi.get("status") or {}).get("phase") == "Failed"
                if stop_requested or (strategy == "RerunOnFailure" and failed):
                    await self._stop(vm, vmi)
            elif strategy == "Manual":
                start = wants_start
            elif strategy == "RerunOnFailure":
                start = vm_uid not in self.stopped_on_request
            else:
                start = vm_uid not in self.once_started
        if start:
            vmi = await self._start(vm)
            if strategy == "Once":
                self.once_started.add(vm_uid)
        vm = await self._trim_requests(vm, vmi)
        await self._update_status(vm, vmi)

    async def _trim_requests(self, vm: JSON, vmi: JSON | None) -> JSON:
        """Drop satisfied state-change requests: a ``Stop`` once no VMI with its uid exists, then a
        leading ``Start`` once a (new) VMI runs (``vm.go`` state-change request handling)."""
        requests = list((vm.get("status") or {}).get("stateChangeRequests") or [])
        if not requests:
            return vm
        keep = [
            req
            for req in requests
            if not (
                req.get("action") == "Stop"
                and (vmi is None or (req.get("uid") and req.get("uid") != vmi["metadata"]["uid"]))
            )
        ]
        if (
            keep
            and keep[0].get("action") == "Start"
            and vmi is not None
            and not is_deleting(vmi)
            and not any(req.get("action") == "Stop" for req in keep)
        ):
            keep = keep[1:]
        if keep == requests:
            return vm

        def edit(obj: JSON) -> None:
            status = obj.setdefault("status", {})
            if keep:
                status["stateChangeRequests"] = keep
            else:
                status.pop("stateChangeRequests", None)

        return (
            await api.mutate(
                self.client.as_agent(self.kv.controller_ua),
                r.VMS,
                vm["metadata"]["namespace"],
                vm["metadata"]["name"],
                edit,
                subresource="status",
            )
            or vm
        )

    async def _start(self, vm: JSON) -> JSON | None:
        """``startVMI`` + ``SetupVMIFromVM`` (``vm.go`` L1876-1903)."""
        tmpl = (vm.get("spec") or {}).get("template") or {}
        tmeta = tmpl.get("metadata") or {}
        spec = deepcopy_json(tmpl.get("spec") or {})
        if (
            spec.get("networks") is None
            and ((spec.get("domain") or {}).get("devices") or {}).get("interfaces") is None
        ):
            spec["networks"] = [{"name": "default", "pod": {}}]
            spec.setdefault("domain", {}).setdefault("devices", {})["interfaces"] = [
                {"name": "default", "bridge": {}}
            ]
        annotations = dict(tmeta.get("annotations") or {})
        annotations.update(
            {
                "kubevirt.io/latest-observed-api-version": "v1",
                "kubevirt.io/storage-observed-api-version": "v1",
                "kubevirt.io/vm-generation": str(vm["metadata"].get("generation", 1)),
            }
        )
        vmi: JSON = {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachineInstance",
            "metadata": {
                "name": vm["metadata"]["name"],
                "namespace": vm["metadata"]["namespace"],
                "labels": dict(tmeta.get("labels") or {}),
                "annotations": annotations,
                "ownerReferences": [
                    owner_ref({**vm, "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine"})
                ],
                "finalizers": [VM_FINALIZER],
            },
            "spec": spec,
        }
        created = await self.client.as_agent(self.kv.controller_ua).create(r.VMIS, vmi)
        await self.kv.event(
            vm,
            "Normal",
            "SuccessfulCreate",
            "Started the virtual machine by creating the new virtual machine instance "
            f"{vmi['metadata']['name']}",
        )
        return created

    async def _stop(self, vm: JSON, vmi: JSON) -> None:
        if is_deleting(vmi):
            return
        try:
            await self.client.as_agent(self.kv.controller_ua).delete(
                r.VMIS, vmi["metadata"]["namespace"], vmi["metadata"]["name"], uid=vmi["metadata"]["uid"]
            )
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise
            return
        await self.kv.event(
            vm,
            "Normal",
            "SuccessfulDelete",
            f"Stopped the virtual machine by deleting the virtual machine instance {vmi['metadata']['uid']}",
        )

    async def _update_status(self, vm: JSON, vmi: JSON | None) -> None:
        strategy = run_strategy(vm)
        status = deepcopy_json(vm.get("status") or {})
        ready_cond = get_condition(vmi, "Ready") if vmi is not None else None
        ready = bool(
            vmi is not None
            and not is_deleting(vmi)
            and ready_cond
            and ready_cond.get("status") == "True"
            and (vmi.get("status") or {}).get("phase") == "Running"
        )
        phase = (vmi.get("status") or {}).get("phase", "") if vmi is not None else ""
        migration = ((vmi or {}).get("status") or {}).get("migrationState") or {}
        sched = get_condition(vmi, "PodScheduled") if vmi is not None else None
        if is_deleting(vm):
            printable = "Terminating"
        elif vmi is not None and is_deleting(vmi):
            printable = "Stopping"
        elif vmi is None:
            printable = "Starting" if strategy in ("Always", "RerunOnFailure") else "Stopped"
            if strategy == "Manual" and (status.get("stateChangeRequests") or []):
                printable = "Starting"
        elif phase in FINAL:
            printable = "Stopped"
        elif strategy == "Halted":
            printable = "Stopping"
        elif migration and not migration.get("completed") and migration.get("targetPod"):
            printable = "Migrating"
        elif phase == "Running":
            printable = "Running"
        elif sched is not None and sched.get("status") == "False" and sched.get("reason") == "Unschedulable":
            printable = "ErrorUnschedulable"
        else:
            printable = "Starting"
        status.update(
            {
                "created": vmi is not None,
                "ready": ready,
                "printableStatus": printable,
                "runStrategy": strategy,
                "desiredGeneration": vm["metadata"].get("generation", 1),
                "observedGeneration": vm["metadata"].get("generation", 1),
            }
        )
        if not status["created"]:
            status.pop("created")
        if not status["ready"]:
            status.pop("ready")
        cond: JSON = {
            "type": "Ready",
            "status": "True" if ready else "False",
            "lastProbeTime": None,
            "lastTransitionTime": now_rfc3339(),
        }
        if not ready:
            cond.update(
                {
                    "reason": "VMINotExists" if vmi is None else "PodNotReady",
                    "message": "VMI does not exist" if vmi is None else "Pod is not ready",
                }
            )
        holder: JSON = {"status": status}
        set_condition(holder, cond)
        if status == (vm.get("status") or {}):
            return
        vm["status"] = status
        await api.replace(self.client.as_agent(self.kv.controller_ua), r.VMS, vm, subresource="status")


# ----------------------------------------------------------------------------- VirtualMachineInstance
class VmiController(_KubeVirtReconciler):
    name = "virt-controller-vmi"

    def on_event(self, ev: WatchEvent) -> None:
        if ev.rt.key == r.VMIS.key and ev.type != "DELETED":
            self._queue_object(ev.object)
        elif ev.rt.key == r.PODS.key:
            self._queue_controller(ev.object, "VirtualMachineInstance")
        elif ev.rt.key == r.VMS.key and ev.type == "DELETED":
            self._queue_object(ev.object)

    def resync(self) -> None:
        self._queue_all(r.VMIS)

    async def handle(self, key: Key) -> None:
        ns, name = key
        vmi = self.client.get(r.VMIS, ns, name)
        if vmi is None:
            return
        ua = self.kv.controller_ua
        pods = self.kv.launcher_pods(vmi)
        if is_deleting(vmi):
            await self._finalize(vmi, pods)
            return
        if VMI_FINALIZER not in (vmi["metadata"].get("finalizers") or []):
            vmi = (
                await api.mutate(self.client.as_agent(ua), r.VMIS, ns, name, _add_finalizer(VMI_FINALIZER))
                or vmi
            )
        status = deepcopy_json(vmi.get("status") or {})
        holder: JSON = {"status": status}
        phase = status.get("phase", "")
        node = status.get("nodeName", "")
        launchers = [p for p in pods if not _is_target_pod(p) or (node and p["spec"].get("nodeName") == node)]
        if node:
            current = next(
                (p for p in launchers if p["spec"].get("nodeName") == node and not _pod_down(p)), None
            ) or next((p for p in launchers if p["spec"].get("nodeName") == node), None)
        else:
            current = next((p for p in launchers if not _pod_down(p)), None) or (
                launchers[0] if launchers else None
            )
        sync_error: str | None = None
        if phase in ("", "Pending") and current is None:
            sync_error = await self._create_pod(vmi)
            if sync_error is None:
                pods = self.kv.launcher_pods(vmi)
                current = next((p for p in pods if not _is_target_pod(p)), None)
        new_phase = phase
        if phase in FINAL:
            if not pods:
                vmi = (
                    await api.mutate(
                        self.client.as_agent(ua), r.VMIS, ns, name, _drop_finalizers(VMI_FINALIZER)
                    )
                    or vmi
                )
            if self._owner_vm(vmi) is None:
                await api.mutate(self.client.as_agent(ua), r.VMIS, ns, name, _drop_finalizers(VM_FINALIZER))
            return
        if phase == "":
            new_phase = "Scheduling" if current is not None else "Pending"
        elif phase == "Pending":
            if current is not None:
                new_phase = "Scheduling"
        elif phase == "Scheduling":
            if current is None:
                new_phase = "Failed"
            else:
                sched = get_condition(current, "PodScheduled")
                if sched is not None and sched.get("status") == "False":
                    set_condition(
                        holder,
                        {
                            "type": "PodScheduled",
                            "status": "False",
                            "reason": sched.get("reason", ""),
                            "message": sched.get("message", ""),
                            "lastProbeTime": None,
                            "lastTransitionTime": now_rfc3339(),
                        },
                    )
                else:
                    remove_condition(holder, "PodScheduled")
                if _pod_ready(current):
                    new_phase = "Scheduled"
                    status["nodeName"] = current["spec"]["nodeName"]
                    status["migrationTransport"] = "Unix"
                    status["qosClass"] = (current.get("status") or {}).get("qosClass", "Burstable")
                elif _pod_down(current):
                    new_phase = "Failed"
        elif phase in ("Scheduled", "Running") and (current is None or _pod_down(current)):
            new_phase = "Failed"
        if sync_error is not None:
            cond = get_condition(holder, "Synchronized")
            if not (cond and cond.get("status") == "False" and cond.get("reason") == "FailedCreate"):
                remove_condition(holder, "Synchronized")
                set_condition(
                    holder,
                    {
                        "type": "Synchronized",
                        "status": "False",
                        "reason": "FailedCreate",
                        "message": f"failed to create virtual machine pod: {sync_error}",
                        "lastProbeTime": None,
                        "lastTransitionTime": now_rfc3339(),
                    },
                )
        else:
            remove_condition(holder, "Synchronized")
        if new_phase != phase:
            status["phase"] = new_phase
            stamps = list(status.get("phaseTransitionTimestamps") or [])
            stamps.append({"phase": new_phase, "phaseTransitionTimestamp": now_rfc3339()})
            status["phaseTransitionTimestamps"] = stamps
            if new_phase == "Failed":
                set_condition(
                    holder,
                    {
                        "type": "Ready",
                        "status": "False",
                        "reason": "PodTerminating",
                        "lastProbeTime": None,
                        "lastTransitionTime": now_rfc3339(),
                    },
                )
        if not status.get("conditions"):
            status.pop("conditions", None)
        # The status first, at the resourceVersion it was computed from: writing the label first would hand a
        # fresher object to the status write and let a status computed from a stale read overwrite newer news.
        if status != (vmi.get("status") or {}):
            vmi["status"] = status
            await api.replace(self.client.as_agent(ua), r.VMIS, vmi, subresource=VMI_STATUS)
        if new_phase == "Scheduled" and status.get("nodeName"):

            def label(obj: JSON) -> None:
                obj["metadata"].setdefault("labels", {})[NODE_NAME_LABEL] = status["nodeName"]

            await api.mutate(self.client.as_agent(ua), r.VMIS, ns, name, label)
        if sync_error is not None:
            raise Requeue()

    def _owner_vm(self, vmi: JSON) -> JSON | None:
        ref = controller_ref(vmi)
        if ref is None or ref.get("kind") != "VirtualMachine":
            return None
        vm = self.client.get(r.VMS, vmi["metadata"]["namespace"], str(ref.get("name", "")))
        return vm if vm is not None and vm["metadata"]["uid"] == ref.get("uid") else None

    async def _create_pod(self, vmi: JSON) -> str | None:
        """``lifecycle.go`` L173-182: the error text, or None when the pod was created."""
        pod = self.kv.render_pod(vmi)
        try:
            created = await self.client.as_agent(self.kv.controller_ua).create(r.PODS, pod)
        except ApiError as exc:
            await self.kv.event(
                vmi,
                "Warning",
                "FailedCreate",
                f"Error creating pod: {exc.message}",
                component="virtualmachine-controller",
            )
            self.world.log(
                "virt-controller",
                f"failed to create pod for vmi {vmi['metadata']['namespace']}/"
                f"{vmi['metadata']['name']}: {exc.message}",
            )
            return exc.message
        await self.kv.event(
            vmi, "Normal", "SuccessfulCreate", f"Created virtual machine pod {created['metadata']['name']}"
        )
        return None

    async def _finalize(self, vmi: JSON, pods: list[JSON]) -> None:
        ns, name = vmi["metadata"]["namespace"], vmi["metadata"]["name"]
        ua = self.kv.controller_ua
        status = vmi.get("status") or {}
        if status.get("phase") not in FINAL:

            def shut_down(obj: JSON) -> None:
                st = obj.setdefault("status", {})
                st["phase"] = "Succeeded"
                stamps = list(st.get("phaseTransitionTimestamps") or [])
                stamps.append({"phase": "Succeeded", "phaseTransitionTimestamp": now_rfc3339()})
                st["phaseTransitionTimestamps"] = stamps
                remove_condition(obj, "Ready")

            await api.mutate(
                self.client.as_agent(self.kv.handler_ua), r.VMIS, ns, name, shut_down, subresource=VMI_STATUS
            )
        for pod in pods:
            if is_deleting(pod):
                continue
            try:
                await self.client.as_agent(ua).delete(
                    r.PODS, ns, pod["metadata"]["name"], uid=pod["metadata"]["uid"]
                )
            except ApiError as exc:
                if exc.code not in (404, 409):
                    raise
        if self.kv.launcher_pods(vmi):
            raise Requeue(delay=self.world.step)
        await api.mutate(
            self.client.as_agent(ua), r.VMIS, ns, name, _drop_finalizers(VMI_FINALIZER, VM_FINALIZER)
        )


# ----------------------------------------------------------------------------- virt-handler
class Handler(_KubeVirtReconciler):
    name = "virt-handler"

    def on_event(self, ev: WatchEvent) -> None:
        if ev.rt.key == r.VMIS.key and ev.type != "DELETED":
            self._queue_object(ev.object)
        elif ev.rt.key == r.PODS.key and ev.type != "DELETED":
            self._queue_controller(ev.object, "VirtualMachineInstance")

    def resync(self) -> None:
        self._queue_all(r.VMIS)

    async def handle(self, key: Key) -> None:
        vmi = self.client.get(r.VMIS, key[0], key[1])
        if vmi is None or is_deleting(vmi):
            return
        status = deepcopy_json(vmi.get("status") or {})
        phase = status.get("phase")
        if phase not in ("Scheduled", "Running"):
            return
        node = status.get("nodeName", "")
        pod = next(
            (p for p in self.kv.launcher_pods(vmi) if p["spec"].get("nodeName") == node and not _pod_down(p)),
            None,
        )
        if pod is None or not _pod_ready(pod):
            return
        now = now_rfc3339()
        if phase == "Scheduled":
            status["phase"] = "Running"
            stamps = list(status.get("phaseTransitionTimestamps") or [])
            stamps.append({"phase": "Running", "phaseTransitionTimestamp": now})
            status["phaseTransitionTimestamps"] = stamps
            status["launcherContainerImageVersion"] = f"quay.io/kubevirt/virt-launcher:{self.kv.version}"
            status["guestOSInfo"] = {}
            status["migrationMethod"] = "BlockMigration"
            status.setdefault("currentCPUTopology", {"cores": 1, "sockets": 1, "threads": 1})
        holder: JSON = {"status": status}
        active = dict(status.get("activePods") or {})
        active[pod["metadata"]["uid"]] = node
        status["activePods"] = active
        set_condition(
            holder, {"type": "Ready", "status": "True", "lastProbeTime": None, "lastTransitionTime": now}
        )
        spec = vmi.get("spec") or {}
        binding = pod_network_binding(spec)
        if binding == "bridge" and ALLOW_BRIDGE_MIGRATION not in annotations_of(vmi):
            set_condition(
                holder,
                {
                    "type": "LiveMigratable",
                    "status": "False",
                    "reason": "InterfaceNotLiveMigratable",
                    "message": INTERFACE_NOT_MIGRATABLE,
                    "lastProbeTime": None,
                    "lastTransitionTime": None,
                },
            )
        else:
            set_condition(
                holder,
                {
                    "type": "LiveMigratable",
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": None,
                },
            )
        ann = annotations_of(pod)
        if ann.get(kubeovn.ALLOCATED) == "true" and ann.get(kubeovn.IP_ADDRESS):
            ips = [ip for ip in ann[kubeovn.IP_ADDRESS].split(",") if ip]
            iface = {
                "name": pod_network_name(spec),
                "ipAddress": ips[0],
                "ipAddresses": ips,
                "mac": ann.get(kubeovn.MAC_ADDRESS, ""),
                "infoSource": "domain",
                "queueCount": 1,
            }
            status["interfaces"] = [iface]
        if status != (vmi.get("status") or {}):
            vmi["status"] = status
            await api.replace(self.client.as_agent(self.kv.handler_ua), r.VMIS, vmi, subresource=VMI_STATUS)


# ----------------------------------------------------------------------------- migration
class MigrationController(_KubeVirtReconciler):
    name = "virt-controller-migration"

    def __init__(self, world: World, kv: KubeVirt) -> None:
        super().__init__(world, kv)
        self.switchovers: dict[str, float] = {}

    @property
    def unschedulable_timeout(self) -> float:
        value = self.config.extra.get("migration_unschedulable_timeout")
        if value is not None:
            return float(value)
        return max(0.5, 100 * self.world.step)

    def on_event(self, ev: WatchEvent) -> None:
        m = ev.object["metadata"]
        if ev.rt.key == r.VMIMS.key and ev.type != "DELETED":
            self._queue_object(ev.object)
        elif ev.rt.key in (r.PODS.key, r.VMIS.key):
            ns = m["namespace"]
            vmi_name = (
                m["name"]
                if ev.rt.key == r.VMIS.key
                else str((controller_ref(ev.object) or {}).get("name", ""))
            )
            if not vmi_name:
                return
            for vmim in self.client.iter_raw(r.VMIMS):
                if (
                    vmim["metadata"]["namespace"] == ns
                    and (vmim.get("spec") or {}).get("vmiName") == vmi_name
                    and (vmim.get("status") or {}).get("phase") not in FINAL
                ):
                    self.queue.add((ns, vmim["metadata"]["name"]))

    def resync(self) -> None:
        self._queue_all(r.VMIMS)

    async def _set_phase(self, vmim: JSON, phase: str, **extra: Any) -> JSON:
        def edit(obj: JSON) -> None:
            st = obj.setdefault("status", {})
            st["phase"] = phase
            stamps = list(st.get("phaseTransitionTimestamps") or [])
            stamps.append({"phase": phase, "phaseTransitionTimestamp": now_rfc3339()})
            st["phaseTransitionTimestamps"] = stamps
            st.update(extra)

        return (
            await api.mutate(
                self.client.as_agent(self.kv.controller_ua),
                r.VMIMS,
                vmim["metadata"]["namespace"],
                vmim["metadata"]["name"],
                edit,
                subresource="status",
            )
            or vmim
        )

    async def _release(self, vmim: JSON) -> None:
        """Drop the migration finalizer: the migration is final."""
        await api.mutate(
            self.client.as_agent(self.kv.controller_ua),
            r.VMIMS,
            vmim["metadata"]["namespace"],
            vmim["metadata"]["name"],
            _drop_finalizers(MIGRATION_FINALIZER),
        )

    async def _fail(self, vmim: JSON, message: str) -> None:
        vmim = await self._set_phase(vmim, "Failed")
        await self.kv.event(
            vmim, "Warning", "FailedMigration", message, component="virtualmachine-migration-controller"
        )
        await self._release(vmim)

    def _target_pod(self, vmim: JSON, vmi: JSON) -> JSON | None:
        uid = vmim["metadata"]["uid"]
        return next(
            (p for p in self.kv.launcher_pods(vmi) if labels_of(p).get(MIGRATION_JOB_UID) == uid), None
        )

    async def handle(self, key: Key) -> None:
        ns, name = key
        vmim = self.client.get(r.VMIMS, ns, name)
        if vmim is None:
            return
        ua = self.kv.controller_ua
        status = vmim.get("status") or {}
        phase = status.get("phase", "")
        vmi_name = str((vmim.get("spec") or {}).get("vmiName", ""))
        vmi = self.client.get(r.VMIS, ns, vmi_name)
        if phase in FINAL:
            if MIGRATION_FINALIZER in (vmim["metadata"].get("finalizers") or []):
                await api.mutate(
                    self.client.as_agent(ua), r.VMIMS, ns, name, _drop_finalizers(MIGRATION_FINALIZER)
                )
            return
        if vmi is None:
            await self._fail(vmim, "Migration failed because vmi does not exist.")
            return
        if is_final(vmi):
            await self._fail(vmim, "Migration failed vmi shutdown during migration.")
            return
        target = self._target_pod(vmim, vmi)
        if is_deleting(vmim) and phase not in ("Running",):
            if target is not None and not is_deleting(target):
                await self.client.as_agent(ua).delete(r.PODS, ns, target["metadata"]["name"])
            await self._fail(vmim, "Migration failed due to being canceled")
            return
        if phase == "":

            def prepare(obj: JSON) -> None:
                obj["metadata"].setdefault("labels", {})[VMI_NAME_LABEL] = vmi_name
                fins = list(obj["metadata"].get("finalizers") or [])
                if MIGRATION_FINALIZER not in fins:
                    fins.append(MIGRATION_FINALIZER)
                obj["metadata"]["finalizers"] = fins

            vmim = await api.mutate(self.client.as_agent(ua), r.VMIMS, ns, name, prepare) or vmim
            state = (vmi.get("status") or {}).get("migrationState") or {}
            if (
                state.get("migrationUid")
                and state.get("migrationUid") != vmim["metadata"]["uid"]
                and not state.get("completed")
                and not state.get("failed")
            ):
                await self._fail(
                    vmim, "VMI is not eligible for migration because another migration job is in progress."
                )
                return
            await self._set_phase(vmim, "Pending")
            return
        if phase == "Pending":
            if target is None:
                error = await self._create_target(vmim, vmi)
                if error:
                    raise Requeue()
                return
            await self._set_phase(vmim, "Scheduling")
            return
        if target is None:
            await self._fail(vmim, "Migration target pod was removed during active migration.")
            return
        if _pod_down(target) and phase not in ("Running",):
            await self._fail(vmim, "Migration failed because target pod shutdown during migration")
            return
        if phase == "Scheduling":
            if _pod_ready(target):
                await self._set_phase(vmim, "Scheduled")
                return
            await self._pending_timeout(vmim, vmi, target)
            return
        source_node = str((vmi.get("status") or {}).get("nodeName", ""))
        source_pod = next(
            (
                p
                for p in self.kv.launcher_pods(vmi)
                if p["spec"].get("nodeName") == source_node and not _is_target_pod(p) and not _pod_down(p)
            ),
            None,
        ) or next(
            (
                p
                for p in self.kv.launcher_pods(vmi)
                if p["spec"].get("nodeName") == source_node
                and not _pod_down(p)
                and p["metadata"]["uid"] != target["metadata"]["uid"]
            ),
            None,
        )
        target_node = str(target["spec"].get("nodeName", ""))
        if phase == "Scheduled":
            state = {
                "migrationUid": vmim["metadata"]["uid"],
                "sourceNode": source_node,
                "sourcePod": source_pod["metadata"]["name"] if source_pod else "",
                "targetNode": target_node,
                "targetPod": target["metadata"]["name"],
                "mode": "PreCopy",
                "targetNodeAddress": scheduler.node_address(self.world, target_node),
                "targetDirectMigrationNodePorts": {"35555": 49152, "41713": 0},
                "migrationConfiguration": {
                    "allowAutoConverge": False,
                    "allowPostCopy": False,
                    "bandwidthPerMigration": "0Mi",
                    "completionTimeoutPerGiB": 150,
                    "parallelMigrationsPerCluster": 5,
                    "parallelOutboundMigrationsPerNode": 2,
                    "progressTimeout": 150,
                    "unsafeMigrationOverride": False,
                },
            }
            await self._vmi_state(vmi, state)
            await self._set_phase(vmim, "PreparingTarget", migrationState=deepcopy_json(state))
            return
        if phase == "PreparingTarget":
            await self._set_phase(vmim, "TargetReady")
            return
        if phase == "TargetReady":
            state = {
                **((vmi.get("status") or {}).get("migrationState") or {}),
                "startTimestamp": now_rfc3339(),
            }
            await self._vmi_state(vmi, state)
            await self._set_phase(vmim, "Running")
            return
        if phase == "Running":
            uid = vmim["metadata"]["uid"]
            gap = max(self.config.migration_gap, 0.0)
            if uid not in self.switchovers:
                started = time.monotonic()
                self.switchovers[uid] = started
                ip = kubeovn.pod_ip(target)
                if ip:  # the switch-overs of this address that are over are forgotten
                    windows = [w for w in self.world.blackouts.get(ip, []) if w[1] > started]
                    self.world.blackouts[ip] = [*windows, (started, started + gap)]
                raise Requeue(delay=gap)
            if time.monotonic() < self.switchovers[uid] + gap:
                raise Requeue(delay=self.switchovers[uid] + gap - time.monotonic())
            await self._complete(vmim, vmi, target, source_pod)
            self.switchovers.pop(uid, None)

    async def _vmi_state(self, vmi: JSON, state: JSON) -> None:
        def edit(obj: JSON) -> None:
            obj.setdefault("status", {})["migrationState"] = deepcopy_json(state)

        await api.mutate(
            self.client.as_agent(self.kv.handler_ua),
            r.VMIS,
            vmi["metadata"]["namespace"],
            vmi["metadata"]["name"],
            edit,
            subresource=VMI_STATUS,
        )

    async def _complete(self, vmim: JSON, vmi: JSON, target: JSON, source_pod: JSON | None) -> None:
        now = now_rfc3339()
        target_node = str(target["spec"].get("nodeName", ""))
        state: JSON = {}

        def switch(obj: JSON) -> None:
            nonlocal state
            st = obj.setdefault("status", {})
            state = {
                **(st.get("migrationState") or {}),
                "completed": True,
                "endTimestamp": now,
                "targetNodeDomainDetected": True,
                "targetNodeDomainReadyTimestamp": now,
            }
            st["migrationState"] = state
            st["nodeName"] = target_node
            active = dict(st.get("activePods") or {})
            active[target["metadata"]["uid"]] = target_node
            st["activePods"] = active

        await api.mutate(
            self.client.as_agent(self.kv.handler_ua),
            r.VMIS,
            vmi["metadata"]["namespace"],
            vmi["metadata"]["name"],
            switch,
            subresource=VMI_STATUS,
        )

        def relabel(obj: JSON) -> None:
            obj["metadata"].setdefault("labels", {})[NODE_NAME_LABEL] = target_node

        await api.mutate(
            self.client.as_agent(self.kv.controller_ua),
            r.VMIS,
            vmi["metadata"]["namespace"],
            vmi["metadata"]["name"],
            relabel,
        )
        if source_pod is not None:
            await scheduler.complete_pod(self.world, source_pod, 0)
        vmim = await self._set_phase(vmim, "Succeeded", migrationState=deepcopy_json(state))
        await self.kv.event(
            vmim,
            "Normal",
            "SuccessfulMigration",
            "Source node reported migration succeeded",
            component="virtualmachine-migration-controller",
        )
        await self._release(vmim)

    async def _create_target(self, vmim: JSON, vmi: JSON) -> str | None:
        """``migration.go`` ``createTargetPod`` (L889-1040)."""
        pod = self.kv.render_pod(vmi)
        pod["metadata"]["labels"][MIGRATION_JOB_UID] = vmim["metadata"]["uid"]
        pod["metadata"]["annotations"][MIGRATION_JOB_NAME] = vmim["metadata"]["name"]
        affinity = pod["spec"].setdefault("affinity", {})
        anti = affinity.setdefault("podAntiAffinity", {})
        anti.setdefault("requiredDuringSchedulingIgnoredDuringExecution", []).append(
            {
                "labelSelector": {
                    "matchExpressions": [
                        {"key": CREATED_BY, "operator": "In", "values": [vmi["metadata"]["uid"]]}
                    ]
                },
                "topologyKey": scheduler.HOSTNAME_LABEL,
            }
        )
        added = (vmim.get("spec") or {}).get("addedNodeSelector") or {}
        pod["spec"]["nodeSelector"].update(added)
        try:
            created = await self.client.as_agent(self.kv.controller_ua).create(r.PODS, pod)
        except ApiError as exc:
            await self.kv.event(vmi, "Warning", "FailedCreate", f"Error creating pod: {exc.message}")
            self.world.log("virt-controller", f"failed to create vmi migration target pod: {exc.message}")
            return exc.message
        await self.kv.event(
            vmim,
            "Normal",
            "SuccessfulCreate",
            f"Created migration target pod "
            f"{created['metadata']['namespace']}/{created['metadata']['name']} with uuid "
            f"{created['metadata']['uid']} for migration {vmim['metadata']['name']} with uuid "
            f"{vmim['metadata']['uid']}",
            component="virtualmachine-migration-controller",
        )
        return None

    async def _pending_timeout(self, vmim: JSON, vmi: JSON, pod: JSON) -> None:
        """``handlePendingPodTimeout`` (L1716-1755)."""
        if (pod.get("status") or {}).get("phase", "Pending") != "Pending" or is_deleting(pod):
            return
        age = time.time() - _created_at(pod)
        timeout = self.unschedulable_timeout
        catch_all = 3 * timeout
        sched = get_condition(pod, "PodScheduled")
        ns = pod["metadata"]["namespace"]
        if sched is not None and sched.get("status") == "False" and sched.get("reason") == "Unschedulable":
            await self.kv.event(
                vmim,
                "Warning",
                "migrationTargetPodUnschedulable",
                f"Migration target pod for VMI [{ns}/{vmi['metadata']['name']}] is currently unschedulable.",
                component="virtualmachine-migration-controller",
            )
            if age >= timeout:
                await self._delete_timed_out(
                    vmim, pod, f"unschedulable pod {ns}/{pod['metadata']['name']} timeout period exceeded"
                )
                return
            raise Requeue(delay=max(timeout - age, self.world.step))
        if age >= catch_all:
            await self._delete_timed_out(
                vmim, pod, f"pending pod {ns}/{pod['metadata']['name']} timeout period exceeded"
            )
            return
        raise Requeue(delay=max(min(catch_all - age, 10 * self.world.step + 0.01), self.world.step))

    async def _delete_timed_out(self, vmim: JSON, pod: JSON, message: str) -> None:
        await self.client.as_agent(self.kv.controller_ua).delete(
            r.PODS, pod["metadata"]["namespace"], pod["metadata"]["name"]
        )
        await self.kv.event(
            vmim, "Normal", "SuccessfulDelete", message, component="virtualmachine-migration-controller"
        )
        raise Requeue(delay=self.world.step)


_CREATED_AT: dict[str, float] = {}


def _created_at(pod: JSON) -> float:
    """When the pod was created (monotonic-free wall time; creationTimestamp has 1 s resolution, so the
    first sighting is remembered for sub-second timeouts)."""
    uid = pod["metadata"]["uid"]
    if uid not in _CREATED_AT:
        _CREATED_AT[uid] = time.time()
    return _CREATED_AT[uid]


# ----------------------------------------------------------------------------- clone
def _filter_keys(values: dict[str, str], filters: list[str] | None) -> dict[str, str]:
    """``addRemovePatchesFromFilter`` (``vm-target.go`` L101-153)."""
    if filters is None:
        return dict(values)
    regular: list[str] = []
    negation: list[str] = []
    for f in filters:
        if f == "*":
            regular.append(".*")
        elif f.startswith("!"):
            negation.append(f[1:])
        else:
            regular.append(f)

    def match(pattern: str, key: str) -> bool:
        try:
            return re.search(pattern, key) is not None
        except re.error:
            return False

    kept = {}
    for key, value in values.items():
        included = any(match(p, key) for p in regular)
        if included and any(match(p, key) for p in negation):
            included = False
        if included:
            kept[key] = value
    return kept


#: ``restore.kubevirt.io/lastRestoreUID`` (``kubevirt/kubevirt@v1.8.1:pkg/storage/snapshot/restore.go``
#: L65, L1625-1638): the restore marks the VM it writes with ``<restore name>-<restore uid>``.
RESTORE_MARK_ANNOTATION = "restore.kubevirt.io/lastRestoreUID"


def _restore_mark(clone_uid: str) -> str:
    """The mark of the clone's restore ``tmp-restore-<clone uid>`` (``generateRestoreName``, clone
    ``util.go`` L63-65). The sim keeps no restore object, so its uid is derived from the clone's."""
    restore_uid = hashlib.sha1(f"tmp-restore-{clone_uid}".encode()).hexdigest()
    return f"tmp-restore-{clone_uid}-{restore_uid[:8]}-{restore_uid[8:12]}-{restore_uid[12:16]}-" \
           f"{restore_uid[16:20]}-{restore_uid[20:32]}"


class CloneController(_KubeVirtReconciler):
    name = "virt-controller-clone"

    def on_event(self, ev: WatchEvent) -> None:
        if ev.rt.key == r.VM_CLONES.key and ev.type != "DELETED":
            self._queue_object(ev.object)

    def resync(self) -> None:
        self._queue_all(r.VM_CLONES)

    async def _phase(self, clone: JSON, phase: str, **extra: Any) -> JSON:
        def edit(obj: JSON) -> None:
            st = obj.setdefault("status", {})
            st["phase"] = phase
            st.update(extra)
            done = phase in ("Succeeded", "Failed")
            now = now_rfc3339()
            set_condition(
                obj,
                {
                    "type": "Ready",
                    "status": "True" if phase == "Succeeded" else "False",
                    "reason": phase,
                    "lastProbeTime": None,
                    "lastTransitionTime": now,
                },
            )
            set_condition(
                obj,
                {
                    "type": "Progressing",
                    "status": "False" if done else "True",
                    "reason": phase,
                    "lastProbeTime": None,
                    "lastTransitionTime": now,
                },
            )

        # Written at the resourceVersion this pass read, as upstream's ``updateStatus`` writes its
        # cached copy: a pass that acted on a stale view gets 409 and runs again on fresh data instead
        # of overwriting a newer phase (re-editing on conflict turned RestoreInProgress into Failed).
        updated = deepcopy_json(clone)
        edit(updated)
        return (
            await api.replace(
                self.client.as_agent(self.kv.controller_ua), r.VM_CLONES, updated, subresource="status"
            )
            or clone
        )

    async def handle(self, key: Key) -> None:
        ns, name = key
        clone = self.client.get(r.VM_CLONES, ns, name)
        if clone is None or is_deleting(clone):
            return
        spec = clone.get("spec") or {}
        phase = (clone.get("status") or {}).get("phase", "")
        if phase in ("Succeeded", "Failed"):
            return
        source_ref = spec.get("source") or {}
        if source_ref.get("kind", "VirtualMachine") != "VirtualMachine":
            await self._phase(clone, "Failed")
            await self.kv.event(
                clone,
                "Warning",
                "CloneFailed",
                f"unsupported source kind {source_ref.get('kind')}",
                component="clone-controller",
            )
            return
        source = self.client.get(r.VMS, ns, str(source_ref.get("name", "")))
        if source is None:
            if phase != "Pending":
                await self._phase(clone, "Pending")
            await self.kv.event(
                clone,
                "Normal",
                "SourceDoesNotExist",
                "clone source does not exist",
                component="clone-controller",
            )
            raise Requeue(delay=max(20 * self.world.step, 0.05))
        target_name = str(
            (spec.get("target") or {}).get("name")
            or f"clone-{source['metadata']['name']}-{clone['metadata']['uid'][:5]}"
        )
        uid = clone["metadata"]["uid"]
        if phase in ("", "Pending"):
            await self._phase(clone, "SnapshotInProgress", snapshotName=f"tmp-snapshot-{uid}")
            raise Requeue(delay=self.world.step)
        if phase == "SnapshotInProgress":
            await self._phase(clone, "CreatingTargetVM")
            raise Requeue(delay=self.world.step)
        if phase == "CreatingTargetVM":
            restore_mark = _restore_mark(uid)
            existing = self.client.get(r.VMS, ns, target_name)
            if existing is not None and (existing["metadata"].get("annotations") or {}).get(
                RESTORE_MARK_ANNOTATION
            ) == restore_mark:
                # This clone's own target, created by an earlier pass whose phase write the (HTTP)
                # watch cache has not shown yet: upstream's steps recognise their own earlier work
                # (``createRestoreFromVm`` takes AlreadyExists as done; the restore marks the target).
                await self._phase(
                    clone, "RestoreInProgress", restoreName=f"tmp-restore-{uid}", targetName=target_name
                )
                raise Requeue(delay=self.world.step)
            if existing is not None:
                await self._phase(clone, "Failed")
                await self.kv.event(
                    clone,
                    "Warning",
                    "CloneFailed",
                    f"target VM {target_name} already exists",
                    component="clone-controller",
                )
                return
            target = self._target_vm(source, target_name, spec)
            target["metadata"]["annotations"][RESTORE_MARK_ANNOTATION] = restore_mark
            try:
                await self.client.as_agent(self.kv.controller_ua).create(r.VMS, target)
            except ApiError as exc:
                if exc.code != 409:
                    raise
                raise Requeue(delay=self.world.step) from None  # next pass tells ours from another's
            await self._phase(
                clone, "RestoreInProgress", restoreName=f"tmp-restore-{uid}", targetName=target_name
            )
            raise Requeue(delay=self.world.step)
        if phase == "RestoreInProgress":
            await self._phase(clone, "Succeeded", targetName=target_name, creationTime=now_rfc3339())
            await self.kv.event(
                clone, "Normal", "CloneSucceeded", "clone succeeded", component="clone-controller"
            )

    def _target_vm(self, source: JSON, target_name: str, spec: JSON) -> JSON:
        smeta = source["metadata"]
        tmpl_filters = spec.get("template") or {}
        vm_spec = deepcopy_json(source.get("spec") or {})
        tmpl = vm_spec.setdefault("template", {})
        tmeta = tmpl.setdefault("metadata", {})
        tmeta["labels"] = _filter_keys(dict(tmeta.get("labels") or {}), tmpl_filters.get("labelFilters"))
        tmeta["annotations"] = _filter_keys(
            dict(tmeta.get("annotations") or {}), tmpl_filters.get("annotationFilters")
        )
        new_macs = spec.get("newMacAddresses") or {}
        for iface in ((tmpl.get("spec") or {}).get("domain") or {}).get("devices", {}).get(
            "interfaces"
        ) or []:
            if "macAddress" in iface:
                iface["macAddress"] = new_macs.get(iface.get("name"), "")
        firmware = ((tmpl.get("spec") or {}).get("domain") or {}).get("firmware")
        if isinstance(firmware, dict):
            firmware["uuid"] = ""
            if "serial" in firmware or spec.get("newSMBiosSerial") is not None:
                firmware["serial"] = spec.get("newSMBiosSerial") or ""
        annotations = {
            k: v
            for k, v in (smeta.get("annotations") or {}).items()
            if k != "restore.kubevirt.io/lastRestoreUID"
            and not k.startswith("kubectl.kubernetes.io/last-applied")
        }
        return {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachine",
            "metadata": {
                "name": target_name,
                "namespace": smeta["namespace"],
                "labels": _filter_keys(dict(smeta.get("labels") or {}), spec.get("labelFilters")),
                "annotations": _filter_keys(annotations, spec.get("annotationFilters")),
            },
            "spec": vm_spec,
        }


# ----------------------------------------------------------------------------- admission (virt-api)
def make_validators(world: World) -> list[Validator]:
    store = world.client

    def denied(webhook: str, code: int, message: str, details: JSON | None = None) -> ApiError:
        # webhooks.ToAdmissionResponseError: code 400, no reason; ToAdmissionResponse(causes): 422 Invalid.
        reason = "Invalid" if code == 422 else ""
        return ApiError(
            code, reason, f'admission webhook "{webhook}" denied the request: {message}', details=details
        )

    def validate_vmim(req: AdmissionRequest) -> None:
        if req.operation != "CREATE" or req.rt.key != r.VMIMS.key or req.object is None:
            return
        webhook = "migration-create-validator.kubevirt.io"
        vmi_name = str((req.object.get("spec") or {}).get("vmiName", ""))
        if not vmi_name:
            raise denied(
                webhook,
                422,
                "spec.vmiName is required",
                {
                    "causes": [
                        {
                            "type": "FieldValueRequired",
                            "message": "spec.vmiName is required",
                            "field": "spec.vmiName",
                        }
                    ]
                },
            )
        vmi = store.get(r.VMIS, req.namespace, vmi_name)
        if vmi is None:
            raise denied(webhook, 400, f'the VMI "{req.namespace}/{vmi_name}" does not exist')
        if is_final(vmi):
            raise denied(webhook, 400, "Cannot migrate VMI in finalized state.")
        cond = get_condition(vmi, "LiveMigratable")
        if cond is not None and cond.get("status") == "False":
            raise denied(
                webhook,
                400,
                f"Cannot migrate VMI, Reason: {cond.get('reason', '')}, Message: {cond.get('message', '')}",
            )
        for vmim in store.iter_raw(r.VMIMS):
            if (
                vmim["metadata"]["namespace"] == req.namespace
                and (vmim.get("spec") or {}).get("vmiName") == vmi_name
                and (vmim.get("status") or {}).get("phase") not in FINAL
            ):
                raise denied(
                    webhook,
                    400,
                    f"in-flight migration detected. Active migration job "
                    f"({vmim['metadata']['uid']}) is currently already in progress for VMI "
                    f"{vmi_name}.",
                )

    def validate_vm(req: AdmissionRequest) -> None:
        if req.operation not in ("CREATE", "UPDATE") or req.rt.key != r.VMS.key or req.object is None:
            return
        if (
            req.operation == "UPDATE"
            and req.old_object is not None
            and req.object.get("spec") == req.old_object.get("spec")
        ):
            return  # status and metadata writes go through AdmitStatus, which does not check the spec
        spec = req.object.get("spec") or {}
        causes: list[JSON] = []
        if spec.get("template") is None:
            causes.append(
                {
                    "type": "FieldValueRequired",
                    "message": "missing virtual machine template.",
                    "field": "spec.template",
                }
            )
        else:
            if spec.get("running") is not None and spec.get("runStrategy") is not None:
                causes.append(
                    {
                        "type": "FieldValueInvalid",
                        "field": "spec.running",
                        "message": "Running and RunStrategy are mutually exclusive. Note that Running is "
                        "deprecated, please use RunStrategy instead",
                    }
                )
            if spec.get("running") is None and spec.get("runStrategy") is None:
                causes.append(
                    {
                        "type": "FieldValueInvalid",
                        "field": "spec.running",
                        "message": "RunStrategy must be specified",
                    }
                )
            strategy = spec.get("runStrategy")
            if strategy is not None and strategy not in (
                "Always",
                "Halted",
                "Manual",
                "RerunOnFailure",
                "Once",
            ):
                causes.append(
                    {
                        "type": "FieldValueInvalid",
                        "field": "spec.runStrategy",
                        "message": f"Invalid RunStrategy ({strategy})",
                    }
                )
        if causes:
            message = ", ".join(str(c["message"]) for c in causes)
            raise denied("virtualmachine-validator.kubevirt.io", 422, message, {"causes": causes})

    return [validate_vmim, validate_vm]
