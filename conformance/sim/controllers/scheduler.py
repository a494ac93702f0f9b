"""Nodes, kube-scheduler, the kubelets and probe pods of the simulated cluster.

Nodes (:func:`seed_nodes`): ``config.workers`` workers ``kovc-sim-worker``, ``kovc-sim-worker2``, … and one
untainted control plane ``kovc-sim-control-plane`` (labels ``node-role.kubernetes.io/control-plane: ""``
and ``kube-ovn/role: master``, as Kube-OVN's kind flow leaves it). Workers carry ``kovc.io/vm-node:
"true"`` as kovc's kind install labels them, and ``kubevirt.io/schedulable: "true"`` (virt-handler's label)
goes on the nodes virt-handler runs on: those matching the KubeVirt CR's
``spec.workloads.nodePlacement.nodeSelector`` (:func:`virt_handler_selector`; the presented CR sets it to
``kovc.io/vm-node: "true"``, as the kind install does), or *every* node - the untainted control plane
included - when it has none (``config.extra["kubevirt_workload_placement"] = False``, what a plain install
does: virt-handler's DaemonSet has no node selector of its own); every node carries ``kovc.io/simulated: "true"``
and ``kubernetes.io/hostname``, ``status.nodeInfo.kubeletVersion = config.kubernetes_version`` and a
``Ready`` condition.

Scheduler (user agent ``default-scheduler``): binds pending pods honouring ``spec.nodeName``,
``nodeSelector``, required node affinity, required pod affinity/anti-affinity (any topology key that
is a node label, typically ``kubernetes.io/hostname``; existing pods' anti-affinity is honoured too),
taints/tolerations and ``spec.unschedulable``; among feasible nodes the one running the fewest pods
wins (ties by name). An unschedulable pod gets ``PodScheduled=False`` (reason ``Unschedulable``, the
scheduler's ``0/N nodes are available: …`` message) and a ``FailedScheduling`` Warning event, and is
retried whenever pods or nodes change.

Kubelet (user agent ``kubelet/<kubernetes version>``): a bound pod starts once kube-ovn-cni can set up
its network (Kube-OVN ``allocated`` and ``routed``; ``hostNetwork`` pods use the node IP) - phase
``Running``, ``podIP``/``podIPs``, ``Ready``/``ContainersReady``/``Initialized``/``PodScheduled``
conditions, running ``containerStatuses``. A pod whose address does not come gets a
``FailedCreatePodSandBox`` Warning (kube-ovn-cni's "no address allocated" error; repeated, aggregated,
as the kubelet retries) and stays ``Pending``. A pod with ``restartPolicy: Never`` whose containers run a command
that finishes (not ``sleep``/``tail -f``/``while`` loops; ``exit N`` decides the exit code) ends
``Succeeded`` (or ``Failed``).

Probe pods - the contract other parts of the suite use:

* label ``kovc.io/probe`` (any value) marks a probe pod; it needs an address like any pod (give it a
  ``ovn.kubernetes.io/logical_switch`` annotation to place it in a subnet);
* annotation ``kovc.io/probe-target: <ip>`` (required) - the address to ping;
* ``kovc.io/probe-interval-ms: <int>`` - time between pings (default 100, minimum 10);
* ``kovc.io/probe-count: <int>`` - ping this many times, then finish: ``Succeeded`` (exit 0) iff at
  least one reply came back, else ``Failed`` (exit 1); absent or ``0`` = ping until deleted;
* ``kovc.io/probe-duration-ms: <int>`` - alternative to a count: ``ceil(duration / interval)`` pings.

Pinging starts when the probe pod is ``Running``. A ping is answered iff, at that moment, another pod
that is ``Running``, not being deleted, allocated by Kube-OVN (``ovn.kubernetes.io/allocated: "true"``)
holds the target address (``ovn.kubernetes.io/ip_address``) in a subnet of the probe's VPC (subnets of
one VPC are routed; the same address in another VPC is not reachable) - and no live-migration
switch-over window of that address is open (``config.migration_gap`` seconds from the switch-over).
The pod log (``pods/log``) has one line per ping, then a summary::

    2026-11-27T10:00:00.123456Z reply from 10.16.0.5 seq=1
    2026-11-27T10:00:00.223456Z no reply from 10.16.0.5 seq=2
    --- 10.16.0.5 probe statistics: 2 transmitted, 1 received

(the summary only for a probe with a count or duration).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import re
import time
from typing import Any

from ...names import VM_NODE_LABEL
from .. import api
from .. import resources as r
from ..store import ApiError, WatchEvent, now_rfc3339
from ..view import (
    JSON,
    Key,
    Reconciler,
    Requeue,
    World,
    annotations_of,
    get_condition,
    is_deleting,
    labels_of,
    now_rfc3339_nano,
)
from . import kubeovn

CONTROL_PLANE = "kovc-sim-control-plane"
SIMULATED_LABEL = "kovc.io/simulated"
SCHEDULABLE_LABEL = "kubevirt.io/schedulable"
HOSTNAME_LABEL = "kubernetes.io/hostname"
PROBE_LABEL = "kovc.io/probe"
PROBE_TARGET = "kovc.io/probe-target"
PROBE_INTERVAL_MS = "kovc.io/probe-interval-ms"
PROBE_COUNT = "kovc.io/probe-count"
PROBE_DURATION_MS = "kovc.io/probe-duration-ms"
DEFAULT_PROBE_INTERVAL_MS = 100
SCHEDULER_UA = "default-scheduler"
# A simulated node's capacity, reported as allocatable too (nothing reserved for the system).
NODE_RESOURCES = {
    "cpu": "8",
    "memory": "16374584Ki",
    "pods": "110",
    "ephemeral-storage": "102626232Ki",
    "devices.kubevirt.io/kvm": "1k",
    "devices.kubevirt.io/tun": "1k",
    "devices.kubevirt.io/vhost-net": "1k",
}


def worker_names(workers: int) -> list[str]:
    return ["kovc-sim-worker" + ("" if i == 1 else str(i)) for i in range(1, workers + 1)]


def node_names(workers: int) -> list[str]:
    return [CONTROL_PLANE, *worker_names(workers)]


#: ``config.extra`` keys set by ``kovc sim attach``: where its kubelet API (pods/log) listens. Nodes then
#: report that address (InternalIP only, so kube-apiserver dials it) and port (``daemonEndpoints``).
KUBELET_ADDRESS = "kubelet_address"
KUBELET_PORT = "kubelet_port"


def node_address(world: World, node: str) -> str:
    served = world.config.extra.get(KUBELET_ADDRESS)
    if served:
        return str(served)
    names = node_names(world.config.workers)
    index = names.index(node) if node in names else len(names)
    return f"172.18.0.{index + 2}"


def virt_handler_selector(config: Any) -> dict[str, str] | None:
    """The KubeVirt CR's ``spec.workloads.nodePlacement.nodeSelector`` the simulated install sets (None:
    no workload placement, virt-handler on every node)."""
    if config.extra.get("kubevirt_workload_placement", True) is False:
        return None
    return {VM_NODE_LABEL: "true"}


async def seed_nodes(world: World) -> None:
    """Create the nodes (idempotent)."""
    client, config = world.client, world.config
    ua = f"kubelet/{config.kubernetes_version}"
    for node in node_names(max(config.workers, 0)):
        existing = client.get(r.NODES, "", node)
        if existing is not None:
            await _clear_startup_taints(world, existing)
            continue
        worker = node != CONTROL_PLANE
        labels = {
            "beta.kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "kubernetes.io/os": "linux",
            HOSTNAME_LABEL: node,
            SIMULATED_LABEL: "true",
            "type": "kind",
        }
        if worker:
            labels[VM_NODE_LABEL] = "true"
        else:
            labels.update(
                {
                    "node-role.kubernetes.io/control-plane": "",
                    "kube-ovn/role": "master",
                    "node.kubernetes.io/exclude-from-external-load-balancers": "",
                }
            )
        selector = virt_handler_selector(config)
        if selector is None or all(labels.get(k) == v for k, v in selector.items()):
            labels[SCHEDULABLE_LABEL] = "true"
        digest = hashlib.sha256(node.encode()).hexdigest()
        now = now_rfc3339()
        node_obj: JSON = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": node,
                "labels": labels,
                "annotations": {
                    "node.alpha.kubernetes.io/ttl": "0",
                    "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                },
            },
            "spec": {"providerID": f"kind://docker/kind/{node}"},
            "status": {
                "addresses": [{"type": "InternalIP", "address": node_address(world, node)}]
                + ([] if config.extra.get(KUBELET_ADDRESS) else [{"type": "Hostname", "address": node}]),
                "capacity": dict(NODE_RESOURCES),
                "allocatable": dict(NODE_RESOURCES),
                "conditions": [
                    {
                        "type": t,
                        "status": "False",
                        "reason": reason,
                        "message": msg,
                        "lastHeartbeatTime": now,
                        "lastTransitionTime": now,
                    }
                    for t, reason, msg in (
                        (
                            "MemoryPressure",
                            "KubeletHasSufficientMemory",
                            "kubelet has sufficient memory available",
                        ),
                        ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                        (
                            "PIDPressure",
                            "KubeletHasSufficientPID",
                            "kubelet has sufficient PID available",
                        ),
                    )
                ]
                + [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "kubelet is posting ready status",
                        "lastHeartbeatTime": now,
                        "lastTransitionTime": now,
                    }
                ],
                "daemonEndpoints": {
                    "kubeletEndpoint": {"Port": int(config.extra.get(KUBELET_PORT) or 10250)}
                },
                "nodeInfo": {
                    "architecture": "amd64",
                    "bootID": digest[:32],
                    "machineID": digest[32:64],
                    "systemUUID": digest[:36],
                    "containerRuntimeVersion": "containerd://2.1.3",
                    "kernelVersion": "6.8.0-1017-azure",
                    "kubeProxyVersion": config.kubernetes_version,
                    "kubeletVersion": config.kubernetes_version,
                    "operatingSystem": "linux",
                    "osImage": "Debian GNU/Linux 12 (bookworm)",
                },
            },
        }
        created = await client.as_agent(ua).create(r.NODES, node_obj)
        if created.get("status") != node_obj["status"]:  # a kube-apiserver drops status on create
            created["status"] = node_obj["status"]
            created = (
                await api.replace(client.as_agent(ua), r.NODES, created, subresource="status") or created
            )
        await _clear_startup_taints(world, created)


#: Taints kube-apiserver's ``TaintNodesByCondition`` admission puts on a new node until the node lifecycle
#: controller sees it Ready.
STARTUP_TAINTS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")


async def _clear_startup_taints(world: World, node: JSON) -> None:
    """A simulated node is Ready from the start: drop the startup taints a real apiserver adds on create
    (what kube-controller-manager's node lifecycle controller does once the kubelet reports Ready)."""
    if labels_of(node).get(SIMULATED_LABEL) != "true":
        return
    if not any(t.get("key") in STARTUP_TAINTS for t in (node.get("spec") or {}).get("taints") or []):
        return

    def untaint(obj: JSON) -> None:
        spec = obj.setdefault("spec", {})
        taints = [t for t in spec.get("taints") or [] if t.get("key") not in STARTUP_TAINTS]
        if taints:
            spec["taints"] = taints
        else:
            spec.pop("taints", None)

    ua = "kube-controller-manager/node-lifecycle-controller"
    await api.mutate(world.client.as_agent(ua), r.NODES, "", node["metadata"]["name"], untaint)


# ----------------------------------------------------------------------------- matching helpers
def _match_expression(labels: dict[str, str], expr: JSON) -> bool:
    key, op = str(expr.get("key", "")), str(expr.get("operator", ""))
    values = [str(v) for v in expr.get("values") or []]
    present = key in labels
    if op == "In":
        return present and labels[key] in values
    if op == "NotIn":
        return not present or labels[key] not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt") and present and values:
        try:
            a, b = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return a > b if op == "Gt" else a < b
    return False


def label_selector_matches(selector: JSON | None, labels: dict[str, str]) -> bool:
    """``metav1.LabelSelector`` semantics (nil matches nothing, empty matches everything)."""
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    return all(_match_expression(labels, e) for e in selector.get("matchExpressions") or [])


def _node_term_matches(term: JSON, node: JSON) -> bool:
    labels = labels_of(node)
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return False
    if not all(_match_expression(labels, e) for e in exprs):
        return False
    return all(_match_expression({"metadata.name": node["metadata"]["name"]}, f) for f in fields)


def _tolerates(pod: JSON, taint: JSON) -> bool:
    for tol in (pod.get("spec") or {}).get("tolerations") or []:
        effect = tol.get("effect", "")
        if effect and effect != taint.get("effect"):
            continue
        op = tol.get("operator", "Equal")
        if not tol.get("key") and op == "Exists":
            return True
        if tol.get("key") != taint.get("key"):
            continue
        if op == "Exists" or tol.get("value", "") == taint.get("value", ""):
            return True
    return False


def _pod_is_live(pod: JSON) -> bool:
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed") and not is_deleting(pod)


#: Scheduler indexes of pods (kept current by the store or the watch cache on every change, so a
#: scheduling decision costs the pods of the nodes it considers, not a pass over every pod):
#: live pods by the node they are bound to, and live bound pods that carry a required anti-affinity.
BOUND_INDEX = "scheduler:bound-node"
ANTI_INDEX = "scheduler:required-anti-affinity"


def _bound_node(pod: JSON) -> tuple[str, ...]:
    node = (pod.get("spec") or {}).get("nodeName")
    return (str(node),) if node and _pod_is_live(pod) else ()


def _required_anti(pod: JSON) -> list[JSON]:
    anti = ((pod.get("spec") or {}).get("affinity") or {}).get("podAntiAffinity") or {}
    return list(anti.get("requiredDuringSchedulingIgnoredDuringExecution") or [])


def _bound_with_anti(pod: JSON) -> tuple[str, ...]:
    return ("yes",) if _bound_node(pod) and _required_anti(pod) else ()


def _term_namespaces(term: JSON, pod: JSON) -> list[str] | None:
    if term.get("namespaceSelector") is not None:
        return None  # any namespace (selectors over namespaces are not evaluated)
    return list(term.get("namespaces") or [pod["metadata"]["namespace"]])


# ----------------------------------------------------------------------------- scheduler
class Scheduler(Reconciler):
    name = "default-scheduler"
    watches = (r.PODS, r.NODES)

    def on_event(self, ev: WatchEvent) -> None:
        if ev.rt.key == r.PODS.key:
            spec = ev.object.get("spec") or {}
            if ev.type != "DELETED" and not spec.get("nodeName"):
                self.queue.add(("pod", ev.object["metadata"]["namespace"], ev.object["metadata"]["name"]))
            elif ev.type == "DELETED" or (ev.object.get("status") or {}).get("phase") in (
                "Succeeded",
                "Failed",
            ):
                self._retry_pending()
        elif ev.rt.key == r.NODES.key:
            self._retry_pending()

    def _retry_pending(self) -> None:
        for pod in self.client.by_field(r.PODS, "spec.nodeName", ""):
            if not (pod.get("spec") or {}).get("nodeName") and not is_deleting(pod):
                self.queue.add(("pod", pod["metadata"]["namespace"], pod["metadata"]["name"]))

    def resync(self) -> None:
        self._retry_pending()

    async def handle(self, key: Key) -> None:
        pod = self.client.get(r.PODS, key[1], key[2])
        if pod is None or is_deleting(pod) or (pod.get("spec") or {}).get("nodeName"):
            return
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return
        nodes = self.client.list(r.NODES)
        uid = pod["metadata"]["uid"]
        # From the indexes, never a pass over every pod: the live pods bound to each node are counted for
        # the load; listed only when the pod's own (anti-)affinity terms need them; the bound pods with a
        # required anti-affinity (the only ones that can refuse a newcomer) are listed. The pod itself is
        # unbound, so it is in neither index.
        names = [n["metadata"]["name"] for n in nodes]
        own = (pod.get("spec") or {}).get("affinity") or {}
        pods: list[JSON] = []
        if own.get("podAffinity") or own.get("podAntiAffinity"):
            pods = [p for name in names for p in self.client.by_index(r.PODS, BOUND_INDEX, _bound_node, name)]
        anti_pods = [p for p in self.client.by_index(r.PODS, ANTI_INDEX, _bound_with_anti, "yes")
                     if p["metadata"]["uid"] != uid]
        feasible: list[JSON] = []
        reasons: dict[str, int] = {}
        for node in nodes:
            why = self._unfit(pod, node, pods, anti_pods, nodes)
            if why is None:
                feasible.append(node)
            else:
                reasons[why] = reasons.get(why, 0) + 1
        if not feasible:
            parts = sorted(f"{n} {why}" for why, n in reasons.items())
            total = len(nodes)
            message = (
                f"0/{total} nodes are available: {', '.join(parts)}. preemption: 0/{total} nodes are "
                f"available: {total} Preemption is not helpful for scheduling."
            )
            cond = get_condition(pod, "PodScheduled")
            if cond is None or cond.get("message") != message:

                def unschedulable(obj: JSON) -> None:
                    _set_pod_condition(
                        obj,
                        {
                            "type": "PodScheduled",
                            "status": "False",
                            "reason": "Unschedulable",
                            "message": message,
                            "lastProbeTime": None,
                            "lastTransitionTime": now_rfc3339(),
                        },
                    )
                    obj.setdefault("status", {})["phase"] = "Pending"

                await api.mutate(
                    self.client.as_agent(SCHEDULER_UA),
                    r.PODS,
                    key[1],
                    key[2],
                    unschedulable,
                    subresource="status",
                )
            await self.world.record_event(
                pod,
                "Warning",
                "FailedScheduling",
                message,
                component="default-scheduler",
                user_agent=SCHEDULER_UA,
            )
            raise Requeue(delay=max(50 * self.world.step, 0.05))
        load = {name: self.client.count_index(r.PODS, BOUND_INDEX, _bound_node, name) for name in names}
        chosen = min(feasible, key=lambda n: (load[n["metadata"]["name"]], n["metadata"]["name"]))
        node_name = chosen["metadata"]["name"]

        binding: JSON = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": key[2], "namespace": key[1], "uid": pod["metadata"]["uid"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node_name},
        }
        try:
            # pods/binding sets spec.nodeName and the PodScheduled=True condition in one write.
            await self.client.as_agent(SCHEDULER_UA).create(
                r.PODS, binding, namespace=key[1], subresource=api.BINDING
            )
        except ApiError as exc:
            if exc.code in (404, 409):
                return  # gone, replaced, or bound meanwhile
            raise
        await self.world.record_event(
            pod,
            "Normal",
            "Scheduled",
            f"Successfully assigned {key[1]}/{key[2]} to {node_name}",
            component="default-scheduler",
            user_agent=SCHEDULER_UA,
        )

    def _unfit(self, pod: JSON, node: JSON, pods: list[JSON], anti_pods: list[JSON], nodes: list[JSON]
               ) -> str | None:
        """Why ``node`` cannot take ``pod`` (None: it can). ``pods``: the live pods bound to ``nodes``;
        ``anti_pods``: those of them with a required pod anti-affinity (the only ones that can refuse a
        newcomer)."""
        spec = pod.get("spec") or {}
        labels = labels_of(node)
        if (node.get("spec") or {}).get("unschedulable"):
            return "node(s) were unschedulable"
        for taint in (node.get("spec") or {}).get("taints") or []:
            if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerates(pod, taint):
                return f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value', '')}}}"
        selector = spec.get("nodeSelector") or {}
        if any(labels.get(k) != v for k, v in selector.items()):
            return "node(s) didn't match Pod's node affinity/selector"
        affinity = spec.get("affinity") or {}
        required = (affinity.get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        ) or {}
        terms = required.get("nodeSelectorTerms") or []
        if terms and not any(_node_term_matches(t, node) for t in terms):
            return "node(s) didn't match Pod's node affinity/selector"
        node_by_name = {n["metadata"]["name"]: n for n in nodes}

        def co_located(term: JSON, other: JSON) -> bool:
            topo = str(term.get("topologyKey", ""))
            other_node = node_by_name.get(str(other["spec"]["nodeName"]))
            if other_node is None or topo not in labels:
                return False
            return labels_of(other_node).get(topo) == labels[topo]

        def term_hits(term: JSON, owner: JSON, candidate: JSON) -> bool:
            namespaces = _term_namespaces(term, owner)
            if namespaces is not None and candidate["metadata"]["namespace"] not in namespaces:
                return False
            return label_selector_matches(term.get("labelSelector"), labels_of(candidate))

        for term in (affinity.get("podAntiAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        ) or []:
            if any(term_hits(term, pod, p) and co_located(term, p) for p in pods):
                return "node(s) didn't match pod anti-affinity rules"
        for term in (affinity.get("podAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        ) or []:
            if not any(term_hits(term, pod, p) and co_located(term, p) for p in pods):
                return "node(s) didn't match pod affinity rules"
        for p in anti_pods:
            for term in _required_anti(p):
                if term_hits(term, p, pod) and co_located(term, p):
                    return "node(s) didn't satisfy existing pods anti-affinity rules"
        return None


def _set_pod_condition(pod: JSON, cond: JSON) -> None:
    status = pod.setdefault("status", {})
    conds = [c for c in status.get("conditions") or [] if c.get("type") != cond.get("type")]
    old = next((c for c in status.get("conditions") or [] if c.get("type") == cond.get("type")), None)
    if old is not None and old.get("status") == cond.get("status") and old.get("lastTransitionTime"):
        cond = {**cond, "lastTransitionTime": old["lastTransitionTime"]}
    conds.append(cond)
    order = ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
    conds.sort(key=lambda c: order.index(c["type"]) if c.get("type") in order else len(order))
    status["conditions"] = conds


# ----------------------------------------------------------------------------- kubelet
_LONG_RUNNING = re.compile(r"\bsleep\b|\btail\s+-f\b|\bwhile\b|\binfinity\b|\bwait\b|\bnc\s+-l", re.I)
_EXIT = re.compile(r"\bexit\s+(\d+)")


def finishes(pod: JSON) -> int | None:
    """The exit code of a ``restartPolicy: Never`` pod whose command finishes, or None (runs on)."""
    spec = pod.get("spec") or {}
    if spec.get("restartPolicy") not in ("Never", "OnFailure"):
        return None
    codes = []
    for c in spec.get("containers") or []:
        words = [str(w) for w in (c.get("command") or []) + (c.get("args") or [])]
        if not words:
            return None
        text = " ".join(words)
        if _LONG_RUNNING.search(text):
            return None
        m = _EXIT.search(text)
        codes.append(int(m.group(1)) if m else 0)
    return max(codes) if codes else None


def _container_id(pod: JSON, container: str) -> str:
    return "containerd://" + hashlib.sha256(f"{pod['metadata']['uid']}/{container}".encode()).hexdigest()


class Kubelet(Reconciler):
    """All kubelets (one queue; the node is ``spec.nodeName``)."""

    name = "kubelet"
    watches = (r.PODS, r.NODES, r.SUBNETS)

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self.ua = f"kubelet/{world.config.kubernetes_version}"
        self.probes: dict[tuple[str, str, str], asyncio.Task[None]] = {}
        self.sandbox_warned: set[str] = set()

    def on_event(self, ev: WatchEvent) -> None:
        if ev.rt.key != r.PODS.key:
            return
        m = ev.object["metadata"]
        if ev.type == "DELETED":
            task = self.probes.pop((m["namespace"], m["name"], m["uid"]), None)
            if task is not None:
                task.cancel()
            self.sandbox_warned.discard(m["uid"])
            # a kubelet discards a deleted pod's logs: the sim's probe lines went with it too (they were
            # kept for the life of the world, one list per probe pod ever run)
            self.world.pod_logs.pop((m["namespace"], m["name"]), None)
            return
        if (ev.object.get("spec") or {}).get("nodeName"):
            self.queue.add(("pod", m["namespace"], m["name"]))

    def resync(self) -> None:
        for pod in self.client.iter_raw(r.PODS):
            if (pod.get("spec") or {}).get("nodeName"):
                self.queue.add(("pod", pod["metadata"]["namespace"], pod["metadata"]["name"]))

    async def handle(self, key: Key) -> None:
        pod = self.client.get(r.PODS, key[1], key[2])
        if pod is None:
            return
        if is_deleting(pod):
            await self._confirm_deletion(pod)
            return
        node = str((pod.get("spec") or {}).get("nodeName", ""))
        if not node:
            return
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            return
        if phase == "Running":
            self._maybe_start_probe(pod)
            code = finishes(pod) if PROBE_LABEL not in labels_of(pod) and not _is_launcher(pod) else None
            if code is not None:
                await complete_pod(self.world, pod, code)
            return
        spec = pod.get("spec") or {}
        if spec.get("hostNetwork"):
            ip = node_address(self.world, node)
        else:
            if not kubeovn.cni_ready(self.world, pod):
                uid = pod["metadata"]["uid"]
                if uid not in self.sandbox_warned:
                    self.sandbox_warned.add(uid)
                    # kube-ovn-cni waits for the controller, then gives up; report it once, later.
                    raise Requeue(delay=max(40 * self.world.step, 0.05))
                if annotations_of(pod).get(kubeovn.ALLOCATED) != "true":
                    sandbox = hashlib.sha256(uid.encode()).hexdigest()
                    await self.world.record_event(
                        pod,
                        "Warning",
                        "FailedCreatePodSandBox",
                        "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup "
                        f'network for sandbox "{sandbox}": plugin type="kube-ovn" failed (add): RPC failed; '
                        f"request ip return 500 no address allocated to pod {key[1]}/{key[2]} provider ovn, "
                        "please see kube-ovn-controller logs to find errors",
                        component="kubelet",
                        user_agent=self.ua,
                        host=node,
                    )
                return
            await kubeovn.cni_add(self.world, pod, node)
            ip = kubeovn.pod_ip(pod)
        await self._start(pod, node, ip)

    def manages(self, node: str) -> bool:
        """Whether ``node`` is one of the simulated cluster's (kwok ``need()``): only their pods are ours."""
        obj = self.client.get(r.NODES, "", node) if node else None
        return obj is not None and labels_of(obj).get(SIMULATED_LABEL) == "true"

    async def _confirm_deletion(self, pod: JSON) -> None:
        """A terminating pod on a node this kubelet runs: its containers are stopped, so delete it with grace
        0, as the kubelet does once a pod's containers have exited (kwok ``pod-delete`` stage). The store of
        ``--backend sim`` deletes pods at once; a real apiserver keeps them Terminating until this."""
        meta = pod["metadata"]
        if meta.get("deletionGracePeriodSeconds") == 0:
            return  # already confirmed (what remains are finalizers, not ours)
        if not self.manages(str((pod.get("spec") or {}).get("nodeName") or "")):
            return
        await api.delete_quietly(
            self.client.as_agent(self.ua),
            r.PODS,
            meta["namespace"],
            meta["name"],
            uid=meta.get("uid"),
            grace_seconds=0,
        )

    async def _start(self, pod: JSON, node: str, ip: str) -> None:
        host_ip = node_address(self.world, node)
        now = now_rfc3339()

        def run(obj: JSON) -> None:
            status = obj.setdefault("status", {})
            status.update(
                {
                    "phase": "Running",
                    "hostIP": host_ip,
                    "hostIPs": [{"ip": host_ip}],
                    "podIP": ip,
                    # every family of the pod's address (a dual-stack subnet: v4 then v6)
                    "podIPs": [{"ip": a} for a in kubeovn.pod_ips(obj)] or [{"ip": ip}],
                    "startTime": status.get("startTime") or now,
                    "qosClass": _qos_class(obj),
                }
            )
            for ctype in (
                "PodReadyToStartContainers",
                "Initialized",
                "Ready",
                "ContainersReady",
                "PodScheduled",
            ):
                _set_pod_condition(
                    obj, {"type": ctype, "status": "True", "lastProbeTime": None, "lastTransitionTime": now}
                )
            status["containerStatuses"] = [
                {
                    "name": c.get("name", ""),
                    "image": c.get("image", ""),
                    "imageID": f"{c.get('image', '')}@sha256:"
                    + hashlib.sha256(str(c.get("image")).encode()).hexdigest(),
                    "containerID": _container_id(obj, str(c.get("name", ""))),
                    "ready": True,
                    "started": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": now}},
                    "lastState": {},
                }
                for c in (obj.get("spec") or {}).get("containers") or []
            ]

        updated = await api.mutate(
            self.client.as_agent(self.ua),
            r.PODS,
            pod["metadata"]["namespace"],
            pod["metadata"]["name"],
            run,
            subresource="status",
        )
        if updated is None:
            return
        await self.world.record_event(
            updated,
            "Normal",
            "Started",
            "Started container "
            + ",".join(c.get("name", "") for c in (pod.get("spec") or {}).get("containers") or []),
            component="kubelet",
            user_agent=self.ua,
            host=node,
        )
        self.queue.add(("pod", pod["metadata"]["namespace"], pod["metadata"]["name"]))

    # probes ------------------------------------------------------------------
    def _maybe_start_probe(self, pod: JSON) -> None:
        if PROBE_LABEL not in labels_of(pod):
            return
        m = pod["metadata"]
        key = (m["namespace"], m["name"], m["uid"])
        if key in self.probes:
            return
        self.probes[key] = asyncio.get_running_loop().create_task(self._probe(key), name=f"probe-{m['name']}")

    async def _probe(self, key: tuple[str, str, str]) -> None:
        ns, name, uid = key
        world = self.world
        try:
            pod = self.client.get(r.PODS, ns, name)
            if pod is None:
                return
            ann = annotations_of(pod)
            target = ann.get(PROBE_TARGET, "").strip()
            interval_ms = max(_int(ann.get(PROBE_INTERVAL_MS), DEFAULT_PROBE_INTERVAL_MS), 10)
            count = _int(ann.get(PROBE_COUNT), 0)
            duration = _int(ann.get(PROBE_DURATION_MS), 0)
            if not count and duration:
                count = max(math.ceil(duration / interval_ms), 1)
            lines = world.pod_logs.setdefault((ns, name), [])
            if not target:
                lines.append(f"{now_rfc3339_nano()} error: annotation {PROBE_TARGET} is missing")
                await complete_pod(world, pod, 2)
                return
            seq = replies = 0
            while not count or seq < count:
                await asyncio.sleep(interval_ms / 1000)
                current = self.client.get(r.PODS, ns, name)
                if current is None or current["metadata"]["uid"] != uid or is_deleting(current):
                    return
                seq += 1
                ok = reachable(world, current, target)
                replies += ok
                lines.append(f"{now_rfc3339_nano()} {'reply' if ok else 'no reply'} from {target} seq={seq}")
            lines.append(f"--- {target} probe statistics: {seq} transmitted, {replies} received")
            current = self.client.get(r.PODS, ns, name)
            if current is not None and current["metadata"]["uid"] == uid:
                await complete_pod(world, current, 0 if replies else 1)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            world.record_error(f"probe {ns}/{name}", exc)


def _int(value: str | None, default: int) -> int:
    try:
        return int(str(value).strip()) if value not in (None, "") else default
    except ValueError:
        return default


def _is_launcher(pod: JSON) -> bool:
    return labels_of(pod).get("kubevirt.io") == "virt-launcher"


def _qos_class(pod: JSON) -> str:
    containers = (pod.get("spec") or {}).get("containers") or []
    reqs = [(c.get("resources") or {}) for c in containers]
    if not any(x.get("requests") or x.get("limits") for x in reqs):
        return "BestEffort"
    if all(
        (x.get("limits") or {}) and (x.get("requests") or x.get("limits")) == x.get("limits") for x in reqs
    ):
        return "Guaranteed"
    return "Burstable"


def subnet_vpc(world: World, subnet: str) -> str:
    obj = world.client.get(r.SUBNETS, "", subnet)
    return str(((obj or {}).get("spec") or {}).get("vpc") or kubeovn.DEFAULT_VPC)


def reachable(world: World, probe: JSON, target: str) -> bool:
    """Whether ``target`` answers the probe pod now (see the module docstring)."""
    now = time.monotonic()
    if any(start <= now < end for start, end in world.blackouts.get(target, [])):
        return False
    probe_subnet = annotations_of(probe).get(kubeovn.LOGICAL_SWITCH, kubeovn.DEFAULT_SUBNET)
    vpc = subnet_vpc(world, probe_subnet)
    for pod in world.client.iter_raw(r.PODS):
        if pod["metadata"]["uid"] == probe["metadata"]["uid"] or is_deleting(pod):
            continue
        if (pod.get("status") or {}).get("phase") != "Running":
            continue
        ann = pod.get("metadata", {}).get("annotations") or {}
        if ann.get(kubeovn.ALLOCATED) != "true":
            continue
        if target not in str(ann.get(kubeovn.IP_ADDRESS, "")).split(","):
            continue
        if subnet_vpc(world, str(ann.get(kubeovn.LOGICAL_SWITCH, kubeovn.DEFAULT_SUBNET))) == vpc:
            return True
    return False


async def complete_pod(world: World, pod: JSON, exit_code: int, reason: str = "") -> None:
    """The kubelet records that every container of ``pod`` exited (``Succeeded`` iff ``exit_code == 0``)."""
    ua = f"kubelet/{world.config.kubernetes_version}"
    now = now_rfc3339()
    reason = reason or ("Completed" if exit_code == 0 else "Error")

    def finish(obj: JSON) -> None:
        status = obj.setdefault("status", {})
        if status.get("phase") in ("Succeeded", "Failed"):
            return
        status["phase"] = "Succeeded" if exit_code == 0 else "Failed"
        for ctype in ("Ready", "ContainersReady", "PodReadyToStartContainers"):
            _set_pod_condition(
                obj,
                {
                    "type": ctype,
                    "status": "False",
                    "reason": "PodCompleted",
                    "lastProbeTime": None,
                    "lastTransitionTime": now,
                },
            )
        statuses: list[dict[str, Any]] = []
        for cs in status.get("containerStatuses") or []:
            started = ((cs.get("state") or {}).get("running") or {}).get("startedAt", now)
            statuses.append(
                {
                    **cs,
                    "ready": False,
                    "started": False,
                    "state": {
                        "terminated": {
                            "exitCode": exit_code,
                            "reason": reason,
                            "startedAt": started,
                            "finishedAt": now,
                            "containerID": cs.get("containerID", ""),
                        }
                    },
                }
            )
        status["containerStatuses"] = statuses

    with contextlib.suppress(ApiError):
        await api.mutate(
            world.client.as_agent(ua),
            r.PODS,
            pod["metadata"]["namespace"],
            pod["metadata"]["name"],
            finish,
            subresource="status",
        )


def pod_log_text(world: World, pod: JSON) -> str:
    """``pods/log`` text: probe lines, component logs, or a short container log."""
    m = pod["metadata"]
    lines = world.pod_logs.get((m["namespace"], m["name"]))
    if lines is not None:
        return "".join(line + "\n" for line in lines)
    component = labels_of(pod).get("app") or labels_of(pod).get("kubevirt.io") or ""
    if component in world.logs:
        return "".join(line + "\n" for line in world.logs[component])
    if _is_launcher(pod):
        return (
            '{"component":"virt-launcher","level":"info","msg":"Domain started.","pos":"manager.go",'
            f'"timestamp":"{now_rfc3339()}"}}\n'
        )
    return ""
