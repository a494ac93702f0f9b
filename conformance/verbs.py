"""The actions scenarios are written in: create a VM, restart it, migrate it, challenge its address…

Each action is an Allure step with attachments (the manifest sent, the objects seen, denial texts),
waits on watches (``conformance.waits``), and uses only the Kubernetes API through
:class:`~conformance.kube.Kube`. Timeouts are the spec's numbers multiplied by ``--timeout-scale``.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import allure
import tenacity
from kubernetes.client.exceptions import ApiException

from . import assertions, names, templates, waits
from .addresses import AddressPool
from .kube import JSON, PODS, VM_CLONES, VMIMS, VMIS, VMS, Kube, api_code, describe_error, is_infrastructure

#: Base timeouts (seconds, before --timeout-scale).
#: VM waits (times the emulation factor, Settings.vm_timeout): upstream's e2e gives a VM 2 min to be ready
#: after create and 3 min after a start (kube-ovn test/e2e/framework/framework.go L43,
#: virtual-machine.go L79-85 at v1.16.2).
T_RUNNING = 120.0       # VMI Running + launcher pod allocated (create)
T_RESTART = 180.0       # the same after a restart, start or launcher-pod deletion
T_GONE = 120.0          # an object deleted
T_MIGRATION = 180.0     # a VMIM to succeed
T_REACH = 180.0         # the guest answering ping (boot under emulation)
T_DECIDE = 60.0         # a VM challenger's VMI to show a denial or a launcher pod
T_DRY_RUN = 30.0        # the dryRun cache probe (the spec's 30 s)
T_ADMITTED_WINDOW = 15.0  # watching an admitted challenger before deleting it
T_PROBE = 60.0          # a one-shot probe pod to finish
#: state.ip-released-on-delete's bound, part of its statement: fixed, never scaled by --timeout-scale.
IP_RELEASE_BOUND = 120.0
#: A webhook denial of the same pod create still current this long after it was first seen (and answered
#: more than once) is a definitive answer: it ends the wait instead of the timeout. Long enough on a real
#: cluster to ride out the webhook's stale informer cache (the spec's 30 s, as the dryRun probe); scaled
#: with --timeout-scale like every other wait.
T_DENIAL_GRACE = 30.0

#: An echo reply: busybox ``64 bytes from 10.16.0.5: seq=0 ttl=64 time=0.4 ms`` (a real cluster) or the
#: simulated kubelet's ``<time> reply from 10.16.0.5 seq=0`` (never its ``no reply from …`` lines).
_PING_REPLY = re.compile(r"(?<!no )(?:bytes|reply) from (?P<ip>[0-9a-fA-F.:]+?):? .*?seq=(?P<seq>\d+)")


class _Recorder(Protocol):
    def warn(self, text: str) -> None: ...
    def addresses(self, *ips: str) -> None: ...
    def admitted_challenger(self, ip: str) -> None: ...
    def case(self, name: str, outcome: str, *, message: str | None = None, admitted_then: str | None = None,
             duration_s: float | None = None, requirement: str | None = None) -> None: ...


class _Settings(Protocol):
    webhook_name: str
    timeout_scale: float

    def timeout(self, seconds: float, minimum: float = 2.0) -> float: ...
    def vm_timeout(self, seconds: float) -> float: ...
    def fixed(self, seconds: float) -> float: ...


def _attach(name: str, obj: Any) -> None:
    try:
        body = obj if isinstance(obj, str) else json.dumps(obj, indent=2, sort_keys=True, default=str)
        allure.attach(body, name=name,
                      attachment_type=allure.attachment_type.TEXT if isinstance(obj, str)
                      else allure.attachment_type.JSON)
    except Exception:  # attachments are diagnostics; never fail a scenario over them
        pass


@dataclass
class VM:
    """A VM the scenario drives, and what the suite last saw of it."""

    name: str
    namespace: str
    ip: str
    subnet: str | None
    vmi_uid: str = ""
    launcher: str = ""
    node: str = ""
    #: The IPv6 half of a dual-stack static address (``ovn.kubernetes.io/ip_address`` ``<ip>,<ipv6>``).
    ipv6: str = ""
    #: A static MAC (``ovn.kubernetes.io/mac_address``), lower case.
    mac: str = ""
    #: A second interface on a Kube-OVN attachment network with a static address there.
    attachment: templates.Attachment | None = None

    @property
    def primary(self) -> str:
        """The address a webhook denial of its launcher pod names: the pod-network IPv4, else (a VM whose
        only static address is on an attachment network) the attachment's."""
        return self.ip or (self.attachment.ip if self.attachment else "")

    @property
    def ip_cr(self) -> str:
        return assertions.ip_cr_name(self.name, self.namespace)

    @property
    def addresses(self) -> tuple[str, ...]:
        """Every static pod-network address the VM requests (IPv4, then IPv6 when dual-stack)."""
        return tuple(a for a in (self.ip, self.ipv6) if a)

    @property
    def requested(self) -> str:
        """The value of its ``ovn.kubernetes.io/ip_address``."""
        return ",".join(self.addresses)

    def __str__(self) -> str:
        extra = [self.requested] if self.requested else []
        if self.mac:
            extra.append(f"MAC {self.mac}")
        if self.attachment:
            extra.append(f"{self.attachment.ip} on {self.attachment.nad_namespace}/{self.attachment.nad}")
        return f"VM {self.namespace}/{self.name} ({', '.join(extra) or 'dynamic address'})"


@dataclass
class Challenge:
    """How a challenger fared: denied (the webhook's denial for the IP) or admitted."""

    denied: bool
    text: str
    admitted_then: str | None = None
    dry_run: waits.DryRunResult | None = None
    holder_problems: list[str] = field(default_factory=list)
    #: From the dryRun probe to the verdict on the challenger, seconds.
    duration_s: float = 0.0
    #: What the requirement accepts as stopping the challenger.
    expected: str = "a webhook denial"

    @property
    def message(self) -> str:
        if self.denied:
            return f"{'denied' if self.expected == 'a webhook denial' else 'stopped'} as expected: {self.text}"
        return (f"expected {self.expected}; the challenger was admitted ({self.text}); "
                f"then: {self.admitted_then}")


@dataclass
class ProbeResult:
    target: str
    sent: int
    replies: list[int]
    interval_ms: int
    log: str

    @property
    def reachable(self) -> bool:
        return bool(self.replies)

    def longest_gap_s(self) -> float:
        """The longest interval without a reply, from the first reply on (leading misses are the
        probe's own start-up), trailing misses included."""
        if not self.replies:
            return math.inf
        seqs = sorted(set(self.replies))
        worst = 1
        for a, b in itertools.pairwise(seqs):
            worst = max(worst, b - a)
        worst = max(worst, self.sent - seqs[-1])
        return worst * self.interval_ms / 1000.0


def parse_ping_log(text: str, target: str) -> list[int]:
    """Sequence numbers of echo replies from ``target`` in a busybox ``ping`` log."""
    out = []
    for m in _PING_REPLY.finditer(text):
        if m.group("ip").rstrip(":") == target:
            out.append(int(m.group("seq")))
    return out


def _owned_by(pod: JSON, uid: str) -> bool:
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == "VirtualMachineInstance" and ref.get("uid") == uid:
            return True
    return False


def _pod_ip_ok(pod: JSON, ip: str, *more: str, mac: str = "") -> bool:
    """The pod is allocated every address given (and ``mac`` when given)."""
    anns = (pod.get("metadata") or {}).get("annotations") or {}
    held = {a.strip() for a in str(anns.get(templates.IP_ANNOTATION) or "").split(",")}
    if mac and str(anns.get(templates.MAC_ANNOTATION) or "").lower() != mac.lower():
        return False
    return str(anns.get(templates.ALLOCATED_ANNOTATION)) == "true" and {ip, *more} <= held


def _pod_holds(pod: JSON, vm: VM) -> bool:
    """The launcher pod is allocated the VM's static address(es), MAC and attachment address."""
    anns = (pod.get("metadata") or {}).get("annotations") or {}
    if vm.addresses:
        if not _pod_ip_ok(pod, *vm.addresses, mac=vm.mac):
            return False
    elif str(anns.get(templates.ALLOCATED_ANNOTATION)) != "true":
        return False
    att = vm.attachment
    if att is not None:
        held = {a.strip() for a in str(anns.get(att.ip_key) or "").split(",")}
        return str(anns.get(att.allocated_key)) == "true" and att.ip in held
    return True


@dataclass
class _DenialClock:
    """A webhook denial of one VMI's pod creates, followed over time (see :data:`T_DENIAL_GRACE`)."""

    grace: float
    uid: str = ""
    text: str = ""
    first_seen: float | None = None
    count: int = 0  # the denial Event's count when first seen (migrations: the evidence is the Event)
    next_check: float = 0.0

    def saw(self, uid: str, text: str, count: int = 0) -> None:
        if self.first_seen is None or uid != self.uid:
            self.uid, self.text, self.count = uid, text, count
            self.first_seen = self.next_check = time.monotonic()
            self.next_check += self.grace

    def clear(self, uid: str | None = None) -> None:
        if uid is None or uid == self.uid:
            self.first_seen = None

    def due(self) -> float | None:
        return None if self.first_seen is None else self.next_check

    def postpone(self) -> None:
        self.next_check = time.monotonic() + max(self.grace / 4, 0.05)


def _webhook_denial_on_vmi(vmi: JSON, webhook: str, ip: str) -> str | None:
    for cond in (vmi.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Synchronized" and str(cond.get("status")) == "False":
            text = f"{cond.get('reason')}: {cond.get('message')}"
            if assertions.is_webhook_denial(text, webhook, ip):
                return text
    return None


class Actions:
    """The verbs of one scenario (fixture ``act``)."""

    def __init__(self, kube: Kube, settings: _Settings, record: _Recorder, addresses: AddressPool) -> None:
        self.kube = kube
        self.settings = settings
        self.record = record
        self.addresses = addresses
        self.webhook = settings.webhook_name

    def t(self, seconds: float) -> float:
        return self.settings.timeout(seconds)

    def t_vm(self, seconds: float) -> float:
        """A VM wait (boot, restart, migration): also multiplied by the emulation factor."""
        return self.settings.vm_timeout(seconds)

    def fixed(self, seconds: float) -> float:
        """A bound stated in a requirement: on the cluster's clock, not scaled by --timeout-scale."""
        return self.settings.fixed(seconds)

    def probe_interval_ms(self) -> int:
        """200 ms (the spec's ping interval), shortened with the timeout scale (10 ms at least)."""
        return max(10, min(200, round(200 * self.settings.timeout_scale)))

    # ---- addresses ---------------------------------------------------------------------------------

    def take_ip(self, subnet: str = templates.DEFAULT_SUBNET, family: int = 4) -> str:
        ip = self.addresses.take(subnet, family)
        self.record.addresses(ip)
        return ip

    # ---- VMs ---------------------------------------------------------------------------------------

    def create_vm(self, namespace: str, name: str, ip: str, subnet: str | None = templates.DEFAULT_SUBNET, *,
                  run_strategy: str = "Always", annotations: dict[str, str] | None = None,
                  ipv6: str = "", mac: str = "", attachment: templates.Attachment | None = None) -> VM:
        """A static-IP VM; with ``ipv6`` a dual-stack one (``ip_address`` ``<ip>,<ipv6>``), with ``mac``
        a static MAC (``ovn.kubernetes.io/mac_address``), with ``attachment`` a second interface on that
        attachment network with its static address (``ip=""``: the pod network's address is dynamic)."""
        vm = VM(name=name, namespace=namespace, ip=ip, subnet=subnet, ipv6=ipv6, mac=mac.lower(),
                attachment=attachment)
        with allure.step(f"create {vm} in {subnet or '(namespace subnet)'}"):
            extra = dict(annotations or {})
            if mac:
                extra[templates.MAC_ANNOTATION] = mac
            body = templates.render_vm(name=name, namespace=namespace, ip=vm.requested or None, subnet=subnet,
                                       run_id=self.kube.run_id, run_strategy=run_strategy,
                                       annotations=extra, attachment=attachment)
            _attach("VirtualMachine manifest", body)
            self.record.addresses(*vm.addresses, *([attachment.ip] if attachment else []))
            self.kube.create_vm(namespace, body)
            return vm

    def launcher_pods(self, namespace: str, vmi_uid: str) -> list[JSON]:
        """Pods controlled by the VMI with this uid (never found by labels)."""
        return [p for p in self.kube.list_pods(namespace) if _owned_by(p, vmi_uid)]

    def wait_vm_running(self, vm: VM, *, not_uid: str | None = None, timeout: float | None = None,
                        after: str = "", denial_grace: float | None = None) -> VM:
        """VMI Running (with ``not_uid``: the VMI that follows VMI ``not_uid``, the first other uid seen),
        its launcher pod — found by controller ownerReference uid — Running and allocated ``vm.ip``.
        A webhook denial seen meanwhile is a warning when the VM gets there, and the failure text when
        it does not; a denial that is definitive (:data:`T_DENIAL_GRACE`, or ``denial_grace`` seconds for
        an operation that may legitimately be denied longer, e.g. until the previous VM's IP CR is
        released) fails at once instead of waiting out the timeout. A follower replaced in turn before it
        ran fails: the VM was restarted again."""
        timeout = timeout if timeout is not None else self.t_vm(T_RUNNING)
        deadline = time.monotonic() + timeout
        denials: list[str] = []
        follower: list[str] = []
        clock = _DenialClock(self.denial_grace() if denial_grace is None else denial_grace)
        label = f"{vm} to run{' ' + after if after else ''}"
        with allure.step(f"wait for {label}"):
            def vmi_ready(objects: dict[str, JSON]) -> JSON | None:
                vmi = objects.get(f"{vm.namespace}/{vm.name}")
                if vmi is None:
                    return None
                uid = vmi["metadata"].get("uid")
                denial = _webhook_denial_on_vmi(vmi, self.webhook, vm.primary)
                if denial and denial not in denials:
                    denials.append(denial)
                if denial:
                    clock.saw(str(uid), denial)
                else:
                    clock.clear(str(uid))
                if not_uid and uid == not_uid:
                    return None
                if not_uid and not follower:
                    follower.append(str(uid))
                elif not_uid and uid != follower[0]:
                    raise AssertionError(
                        f"expected {label}: VMI {vm.namespace}/{vm.name} uid {follower[0]}, which followed "
                        f"uid {not_uid}, was replaced by uid {uid} before it ran — the VM was restarted "
                        "more than once")
                if (vmi.get("status") or {}).get("phase") == "Running" and not vmi["metadata"].get(
                        "deletionTimestamp"):
                    return vmi
                return None

            what = f"VMI {vm.namespace}/{vm.name} Running" + (f" with a uid other than {not_uid}" if not_uid
                                                              else "")
            try:
                vmi = self._until_definitive(
                    lambda left: waits.watch_until(self.kube, VMIS, vm.namespace, vmi_ready, timeout=left,
                                                   name=vm.name, what=what),
                    deadline, timeout, clock, lambda: self._definitive_vmi_denial(vm, clock), label)
                uid = vmi["metadata"]["uid"]
                node = str((vmi.get("status") or {}).get("nodeName") or "")

                def launcher_ready(objects: dict[str, JSON]) -> JSON | None:
                    for pod in objects.values():
                        if _owned_by(pod, uid) and (pod.get("status") or {}).get("phase") == "Running" \
                                and _pod_holds(pod, vm) and not pod["metadata"].get("deletionTimestamp") \
                                and (not node or (pod.get("spec") or {}).get("nodeName") in (node, None, "")):
                            return pod
                    return None

                def describe(objects: dict[str, JSON]) -> str:
                    mine = [p for p in objects.values() if _owned_by(p, uid)]
                    if not mine:
                        return f"no pod controlled by VMI uid {uid}"
                    return "; ".join(f"pod {p['metadata']['name']} {waits.summarize(p)}" for p in mine)

                pod = waits.watch_until(self.kube, PODS, vm.namespace, launcher_ready,
                                        timeout=max(deadline - time.monotonic(), 1.0), describe=describe,
                                        what=f"the launcher pod of VMI {vm.namespace}/{vm.name} (uid {uid}) "
                                             f"Running with {templates.ALLOCATED_ANNOTATION}=true "
                                             f"and {vm.requested}" + (f", MAC {vm.mac}" if vm.mac else ""))
            except waits.WaitTimeout as exc:
                denials.extend(self._denial_events(vm))
                if denials:
                    raise AssertionError(
                        f"expected {label}; the webhook denied its launcher pod until the timeout: "
                        f"{denials[-1]}\n{exc}") from None
                raise AssertionError(f"expected {label}\n{exc}") from None
            if denials:
                when = f" {after}" if after else ""
                self.record.warn(f"{vm}: transient webhook denial before it ran{when}: {denials[0]}")
            vm.vmi_uid = uid
            vm.launcher = pod["metadata"]["name"]
            vm.node = str((pod.get("spec") or {}).get("nodeName") or node)
            _attach("VMI", vmi)
            _attach("launcher pod", pod)
            return vm

    def denial_grace(self) -> float:
        """:data:`T_DENIAL_GRACE` scaled (at least 0.5 s, so a scaled-down run still sees the denial
        answered more than once)."""
        return self.settings.timeout(T_DENIAL_GRACE, minimum=0.5)

    def _until_definitive(self, wait: Callable[[float], Any], deadline: float, timeout: float,
                          clock: _DenialClock, definitive: Callable[[], str | None], label: str) -> Any:
        """Run ``wait(seconds_left)`` in slices that end when ``clock`` says ``definitive()`` is due; when
        it answers (a denial repeated over the grace period), fail at once with that evidence. At the
        deadline the last slice's :class:`~conformance.waits.WaitTimeout` is raised with the full
        timeout."""
        while True:
            now = time.monotonic()
            left = deadline - now
            due = clock.due()
            if due is None:  # no denial seen yet: look again after one grace period at the latest
                due = now + clock.grace
            if due < deadline:
                slice_ = max(due - now, 0.0)
                try:
                    return wait(max(slice_, 0.01))
                except waits.WaitTimeout:
                    evidence = definitive()
                    if evidence:
                        raise AssertionError(
                            f"expected {label}; the webhook denied its pod again and again for "
                            f"{clock.grace:.1f}s, a definitive answer (not waiting out the {timeout:.1f}s "
                            f"timeout): {evidence}") from None
                    continue
            try:
                return wait(max(left, 0.01))
            except waits.WaitTimeout as exc:
                raise waits.WaitTimeout(exc.what, exc.ref, exc.last_seen, exc.events, timeout, exc.note) from None

    def _definitive_vmi_denial(self, vm: VM, clock: _DenialClock) -> str | None:
        """Evidence that the webhook's denial of ``vm``'s launcher pod is definitive: the VMI still
        carries ``Synchronized=False`` with the denial ``grace`` seconds after it was first seen, and
        the ``FailedCreate`` Event says the create was denied more than once. None otherwise (the
        clock is postponed or cleared)."""
        if clock.first_seen is None or time.monotonic() < clock.next_check:
            return None
        vmi = self.kube.get_vmi(vm.namespace, vm.name)
        if vmi is None or str(vmi["metadata"].get("uid")) != clock.uid:
            clock.clear()
            return None
        current = _webhook_denial_on_vmi(vmi, self.webhook, vm.primary)
        if current is None or (vmi.get("status") or {}).get("phase") == "Running":
            clock.clear()
            return None
        count, event = self._denial_event(vm, clock.uid)
        if count < 2:
            clock.postpone()
            return None
        return (f"VMI {vm.namespace}/{vm.name} (uid {clock.uid}) condition Synchronized=False {current}; "
                f"Event FailedCreate x{count}: {event}")

    def _definitive_migration_denial(self, vm: VM, clock: _DenialClock) -> str | None:
        """Evidence that the webhook's denial of ``vm``'s migration target pod is definitive: the
        ``FailedCreate`` Event on the VMI carrying the denial was counted up again over the grace
        period since it was first seen (the migration controller kept retrying and kept being denied)."""
        uid = vm.vmi_uid or str(self.kube.require(VMIS, vm.namespace, vm.name)["metadata"]["uid"])
        count, event = self._denial_event(vm, uid)
        if count == 0:
            clock.clear()
            return None
        if clock.first_seen is None:
            clock.saw(uid, event, count)
            return None
        if time.monotonic() < clock.next_check:
            return None
        if count <= clock.count:
            clock.postpone()
            return None
        return (f"VMI {vm.namespace}/{vm.name} (uid {uid}) Event FailedCreate x{count} (x{clock.count} "
                f"{clock.grace:.1f}s earlier): {event}")

    def _denial_events(self, vm: VM) -> list[str]:
        out = []
        try:
            for ev in self.kube.events_for(vm.namespace, "VirtualMachineInstance", vm.name):
                msg = str(ev.get("message") or "")
                if ev.get("reason") == "FailedCreate" and assertions.is_webhook_denial(
                        msg, self.webhook, vm.primary):
                    out.append(f"event FailedCreate: {msg}")
        except ApiException:
            pass
        return out

    def _denial_event(self, vm: VM, uid: str) -> tuple[int, str]:
        """How many times the ``FailedCreate`` Events on VMI ``vm`` (this uid) say the webhook denied a
        pod for ``vm.ip`` (their counts summed), and the latest message; (0, "") when there is none or
        the events are unreadable."""
        total, last = 0, ""
        try:
            for ev in self.kube.events_for(vm.namespace, "VirtualMachineInstance", vm.name, uid=uid):
                msg = str(ev.get("message") or "")
                if ev.get("reason") == "FailedCreate" and assertions.is_webhook_denial(msg, self.webhook, vm.primary):
                    total += int(ev.get("count") or 1)
                    last = msg
        except ApiException:
            pass
        return total, last

    def restart(self, vm: VM) -> VM:
        with allure.step(f"restart {vm} through the subresource API"):
            old = vm.vmi_uid or self.kube.require(VMIS, vm.namespace, vm.name)["metadata"]["uid"]
            self.kube.vm_action(vm.namespace, vm.name, "restart", vmi_uid=old)
            return self.wait_vm_running(vm, not_uid=old, timeout=self.t_vm(T_RESTART), after="after restart")

    def stop(self, vm: VM) -> None:
        with allure.step(f"stop {vm}"):
            self.kube.vm_action(vm.namespace, vm.name, "stop")
            waits.wait_gone(self.kube, VMIS, vm.namespace, vm.name, self.t(T_GONE),
                            what=f"VMI {vm.namespace}/{vm.name} to be gone after stop")
            if vm.launcher:
                waits.wait_gone(self.kube, PODS, vm.namespace, vm.launcher, self.t(T_GONE),
                                what=f"launcher pod {vm.namespace}/{vm.launcher} to be gone after stop")
            vm.vmi_uid, vm.launcher, vm.node = "", "", ""

    def start(self, vm: VM) -> VM:
        with allure.step(f"start {vm}"):
            self.kube.vm_action(vm.namespace, vm.name, "start")
            return self.wait_vm_running(vm, timeout=self.t_vm(T_RESTART), after="after start")

    def delete_launcher_pod(self, vm: VM) -> VM:
        with allure.step(f"delete the launcher pod {vm.launcher} of {vm}"):
            old_uid, old_pod = vm.vmi_uid, vm.launcher
            if not old_pod:
                raise AssertionError(f"{vm}: no launcher pod known; wait for it to run first")
            self.kube.delete_pod(vm.namespace, old_pod)
            waits.wait_gone(self.kube, PODS, vm.namespace, old_pod, self.t(T_GONE))
            return self.wait_vm_running(vm, not_uid=old_uid, timeout=self.t_vm(T_RESTART),
                                        after="after its launcher pod was deleted")

    def migrate(self, vm: VM, name: str | None = None) -> tuple[str, str]:
        """Live-migrate through a VMIM with a deterministic name; returns (source, target) nodes."""
        mig = name or names.child(vm.name, f"mig-{names.rand(4)}")
        with allure.step(f"live-migrate {vm} (VMIM {mig})"):
            source = vm.node or str((self.kube.require(VMIS, vm.namespace, vm.name).get("status") or {}).get(
                "nodeName") or "")
            self.kube.create_vmim(vm.namespace, mig, vm.name)

            def done(obj: JSON) -> bool:
                return (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed")

            timeout = self.t_vm(T_MIGRATION)
            clock = _DenialClock(self.denial_grace())
            vmim = self._until_definitive(
                lambda left: waits.wait_for(self.kube, VMIMS, vm.namespace, mig, done, left,
                                            what=f"VMIM {mig} to finish (Succeeded)"),
                time.monotonic() + timeout, timeout, clock,
                lambda: self._definitive_migration_denial(vm, clock), f"VMIM {vm.namespace}/{mig} to succeed")
            _attach("VMIM", vmim)
            if vmim["status"]["phase"] != "Succeeded":
                events = waits.last_events(self.kube, vm.namespace, "VirtualMachineInstance", vm.name)
                raise AssertionError(f"expected VMIM {vm.namespace}/{mig} to succeed; it failed: "
                                     f"{waits.summarize(vmim)}; VMI events: {'; '.join(events) or 'none'}")

            def moved(obj: JSON) -> bool:
                st = obj.get("status") or {}
                ms = st.get("migrationState") or {}
                return bool(st.get("nodeName")) and st.get("nodeName") != source and bool(ms.get("completed"))

            vmi = waits.wait_for(self.kube, VMIS, vm.namespace, vm.name, moved, self.t_vm(T_MIGRATION),
                                 what=f"VMI {vm.namespace}/{vm.name} on a node other than {source} with "
                                      "migrationState.completed")
            target = str(vmi["status"]["nodeName"])
            vm.node = target
            pod = waits.watch_until(
                self.kube, PODS, vm.namespace,
                lambda objs: next((p for p in objs.values() if _owned_by(p, vm.vmi_uid)
                                   and (p.get("spec") or {}).get("nodeName") == target
                                   and (p.get("status") or {}).get("phase") == "Running"
                                   and _pod_holds(p, vm)), None),
                timeout=self.t_vm(T_RUNNING),
                what=f"the target launcher pod of {vm} on {target}, Running with {vm.requested} allocated")
            vm.launcher = pod["metadata"]["name"]
            return source, target

    def delete_vm(self, vm: VM, *, wait_ip_gone: bool = True, timeout: float | None = None) -> None:
        with allure.step(f"delete {vm}" + (" and wait for its IP CR to be gone" if wait_ip_gone else "")):
            self.kube.delete_vm(vm.namespace, vm.name)
            if wait_ip_gone:
                waits.wait_gone(self.kube, "IP", None, vm.ip_cr, timeout or self.t(T_GONE),
                                what=f"IP CR {vm.ip_cr} to be released after deleting {vm}")

    def clone_vm(self, namespace: str, source: str, target: str) -> str:
        """Create a VirtualMachineClone (no annotationFilters) and wait for it to finish."""
        name = names.child(target, "clone")
        with allure.step(f"clone VM {namespace}/{source} into {target} (no annotationFilters)"):
            body = self.kube.create_vm_clone(namespace, name, source, target)
            _attach("VirtualMachineClone", body)
            clone = waits.wait_for(self.kube, VM_CLONES, namespace, name,
                                   lambda o: (o.get("status") or {}).get("phase") in ("Succeeded", "Failed"),
                                   self.t(T_RUNNING), what=f"VirtualMachineClone {name} to finish")
            if clone["status"]["phase"] != "Succeeded":
                raise AssertionError(f"expected VirtualMachineClone {namespace}/{name} to succeed: "
                                     f"{waits.summarize(clone)}")
            waits.wait_for(self.kube, VMS, namespace, target, lambda o: True, self.t(T_RUNNING),
                           what=f"the cloned VM {namespace}/{target}")
            return name

    def keep_through(self, vm: VM, before: assertions.IPIdentity,
                     operations: list[tuple[str, Callable[[], object]]], *,
                     migration: str = "live migration",
                     attachment_before: assertions.IPIdentity | None = None) -> None:
        """Each operation in turn; after each the same IP CR (and the same attachment IP CR as
        ``attachment_before``), the launcher pod allocated every static address, and the VM answering at
        its IPv4, each operation reported as a case. After a failed operation the VM's state is unknown: the rest are
        reported as not attempted. The ``migration`` operation is skipped (with the reason, as a warning)
        without two schedulable nodes. AssertionError naming every failure."""
        failures: list[str] = []
        for op, do in operations:
            if failures:
                self.record.case(op, "skipped", message=f"not attempted: {failures[0].split(':', 1)[0]} "
                                 "failed first")
                continue
            if op == migration:
                nodes = self.kube.schedulable_vm_nodes()
                if len(nodes) < 2:
                    why = ("live migration needs two nodes labelled kubevirt.io/schedulable=true without "
                           f"NoSchedule taints; found {len(nodes)} ({', '.join(nodes) or 'none'})")
                    self.record.case(op, "skipped", message=why)
                    self.record.warn(f"{op} of {vm} not run: {why}")
                    continue
            started = time.monotonic()
            try:
                do()
                assertions.assert_same_identity(self.kube, before, vm.name, vm.namespace, op)
                if attachment_before is not None:
                    assertions.assert_same_named_identity(self.kube, attachment_before, op)
                if vm.ip:
                    # IPv4 only: KubeVirt's bridge binding serves the guest its address by DHCPv4 alone, so
                    # a guest never configures the IPv6 half; the IP CR and the launcher pod carry it
                    self.reachable(vm)
            except AssertionError as exc:
                failures.append(f"{op}: {exc}")
                self.record.case(op, "failed", message=str(exc), duration_s=time.monotonic() - started)
                continue
            self.record.case(op, "passed", duration_s=time.monotonic() - started)
        assert not failures, "\n".join(failures)

    # ---- plain pods and probes ---------------------------------------------------------------------

    def create_pod(self, namespace: str, name: str, ip: str | None,
                   subnet: str | None = templates.DEFAULT_SUBNET, *, labels: dict[str, str] | None = None,
                   annotations: dict[str, str] | None = None,
                   owner_references: list[JSON] | None = None,
                   dry_run: bool = False) -> tuple[JSON | None, ApiException | None]:
        """Create a plain pod; returns (object, None) when admitted or (None, error) when refused."""
        with allure.step(f"{'dryRun ' if dry_run else ''}create pod {namespace}/{name} requesting {ip}"):
            body = templates.render_pod(name=name, namespace=namespace, ip=ip, subnet=subnet,
                                        run_id=self.kube.run_id, labels=labels, annotations=annotations,
                                        owner_references=owner_references)
            _attach("Pod manifest", body)
            if ip:
                self.record.addresses(ip)
            try:
                return self.kube.create_pod(namespace, body, dry_run=dry_run), None
            except ApiException as exc:
                _attach("answer", describe_error(exc))
                return None, exc

    def dry_run_pod(self, namespace: str, ip: str, subnet: str | None = templates.DEFAULT_SUBNET
                    ) -> tuple[Literal["admitted", "denied", "other"], str]:
        """One ``dryRun=All`` plain pod requesting ``ip``: admitted, denied by the webhook, or other."""
        with allure.step(f"dryRun pod requesting {ip}"):
            answer, text = waits.dry_run_answer(self.kube, namespace, ip, subnet, webhook_name=self.webhook,
                                                name=f"dry-{names.rand(6)}")
            _attach("answer", text)
            return answer, text

    def dry_run_until(self, namespace: str, ip: str, subnet: str | None,
                      expect: Literal["denied", "admitted"]) -> waits.DryRunResult:
        """The webhook reads IP CRs from a cache: repeat a dryRun probe until it answers ``expect``
        (bounded by 30 s times the timeout scale, at least 0.5 s); on expiry warn and continue."""
        with allure.step(f"dryRun probe for {ip} until {expect}"):
            # the same stale-cache ride-out as a definitive denial (T_DENIAL_GRACE = T_DRY_RUN), with its
            # 0.5 s floor: a scaled-down run does not wait 2 s for an answer the webhook keeps giving
            res = waits.wait_dry_run(self.kube, namespace, ip, subnet, expect,
                                     self.settings.timeout(T_DRY_RUN, minimum=0.5),
                                     webhook_name=self.webhook, name=f"dry-{names.rand(6)}")
            if not res.reached:
                self.record.warn(res.warning(ip, subnet or "(namespace subnet)"))
            return res

    def _probe(self, namespace: str, target: str, subnet: str | None, *, count: int, interval_ms: int,
               node: str | None, timeout: float) -> ProbeResult:
        name = f"probe-{names.rand(8)}"
        body = templates.render_probe(name=name, namespace=namespace, target=target, run_id=self.kube.run_id,
                                      interval_ms=interval_ms, count=count, subnet=subnet, node_name=node)
        self.kube.create_pod(namespace, body)
        try:
            waits.wait_for(self.kube, PODS, namespace, name,
                           lambda p: (p.get("status") or {}).get("phase") in ("Succeeded", "Failed"),
                           timeout, what=f"probe pod {name} (ping {target}) to finish")
            log = self.kube.pod_log(namespace, name)
        finally:
            self.kube.delete_pod(namespace, name, grace_period=0)
        return ProbeResult(target=target, sent=count, replies=parse_ping_log(log, target),
                           interval_ms=interval_ms, log=log)

    def reachable(self, vm: VM, address: str | None = None) -> ProbeResult:
        """One-shot reachability of ``address`` (default the VM's IPv4): probe pods (3 pings each) until
        one gets a reply, bounded by the boot timeout; AssertionError when none does."""
        target = address or vm.ip
        with allure.step(f"{vm} answers ping at {target}"):
            deadline = time.monotonic() + self.t_vm(T_REACH)
            last: list[ProbeResult] = []

            def attempt() -> bool:
                res = self._probe(vm.namespace, target, vm.subnet, count=3,
                                  interval_ms=self.probe_interval_ms(), node=None,
                                  timeout=max(deadline - time.monotonic(), self.t(T_PROBE)))
                last.append(res)
                return res.reachable

            ok = tenacity.Retrying(retry=tenacity.retry_if_result(lambda r: not r),
                                   stop=lambda rs: time.monotonic() >= deadline,
                                   wait=tenacity.wait_exponential(multiplier=0.2, max=5.0),
                                   retry_error_callback=lambda rs: False)(attempt)
            if last:
                _attach("probe log", last[-1].log)
            if not ok:
                tail = last[-1].log.strip().splitlines()[-3:] if last else []
                raise AssertionError(f"expected {vm} to answer ping at {target} at the end; {len(last)} "
                                     f"probe(s) got no reply (last log: {' | '.join(tail) or 'empty'})")
            return last[-1]

    def continuous_probe(self, vm: VM, node: str, window: float,
                         during: Callable[[], tuple[str, str]], interval_ms: int = 200
                         ) -> tuple[ProbeResult, tuple[str, str]]:
        """Ping ``vm`` every ``interval_ms`` from a probe pinned to ``node`` for ``window`` seconds
        while ``during()`` runs (a migration); returns the probe result and ``during``'s value."""
        count = max(3, math.ceil(window * 1000 / interval_ms))
        name = f"probe-{names.rand(8)}"
        with allure.step(f"continuous probe of {vm} from {node}, every {interval_ms} ms, {count} pings"):
            body = templates.render_probe(name=name, namespace=vm.namespace, target=vm.ip,
                                          run_id=self.kube.run_id, interval_ms=interval_ms, count=count,
                                          subnet=vm.subnet, node_name=node)
            self.kube.create_pod(vm.namespace, body)
            try:
                waits.wait_for(self.kube, PODS, vm.namespace, name,
                               lambda p: (p.get("status") or {}).get("phase") in ("Running", "Succeeded",
                                                                                    "Failed"),
                               self.t(T_PROBE), what=f"probe pod {name} to start")
                value = during()
                pod = self.kube.require(PODS, vm.namespace, name)
                if (pod.get("status") or {}).get("phase") != "Running":
                    raise AssertionError(f"probe pod {name} ended before the migration finished "
                                         f"({waits.summarize(pod)}): the window of {window:.1f}s was "
                                         "too short")
                waits.wait_for(self.kube, PODS, vm.namespace, name,
                               lambda p: (p.get("status") or {}).get("phase") in ("Succeeded", "Failed"),
                               window + self.t(T_PROBE), what=f"probe pod {name} to finish")
                log = self.kube.pod_log(vm.namespace, name)
            finally:
                self.kube.delete_pod(vm.namespace, name, grace_period=0)
            _attach("probe log", log)
            return (ProbeResult(target=vm.ip, sent=count, replies=parse_ping_log(log, vm.ip),
                                interval_ms=interval_ms, log=log), value)

    # ---- challenges (deny.*) -----------------------------------------------------------------------

    def holder_intact(self, holder: VM, before: assertions.IPIdentity, *,
                      running: bool = True) -> list[str]:
        """What changed for the holder: VMI uid, phase and launcher pod (when ``running``), and the
        IP CR identity."""
        problems = []
        vmi = self.kube.get_vmi(holder.namespace, holder.name) if running else None
        if not running:
            pass
        elif vmi is None:
            problems.append(f"VMI {holder.namespace}/{holder.name} is gone")
        else:
            if holder.vmi_uid and vmi["metadata"].get("uid") != holder.vmi_uid:
                problems.append(f"VMI uid changed {holder.vmi_uid} -> {vmi['metadata'].get('uid')}")
            if (vmi.get("status") or {}).get("phase") != "Running":
                problems.append(f"VMI not Running: {waits.summarize(vmi)}")
        if running and holder.launcher:
            pod = self.kube.get_pod(holder.namespace, holder.launcher)
            if pod is None or not _pod_holds(pod, holder):
                problems.append(f"launcher pod {holder.launcher} lost {holder.requested}"
                                + (f" or MAC {holder.mac}" if holder.mac else "") + f": {waits.summarize(pod)}")
        cr = self.kube.get_ip(holder.ip_cr)
        if cr is None:
            problems.append(f"IP CR {holder.ip_cr} is gone")
        else:
            problems.extend(before.differences(assertions.IPIdentity.from_cr(cr)))
        if holder.attachment is not None:
            name = holder.attachment.ip_cr(holder.name, holder.namespace)
            att = self.kube.get_ip(name)
            if att is None or holder.attachment.ip not in assertions.IPIdentity.from_cr(att).ip_address.split(","):
                problems.append(f"attachment IP CR {name} no longer holds {holder.attachment.ip}: "
                                f"{waits.summarize(att)}")
        return problems

    def _admitted(self, namespace: str, challenger: str, kind: str, ip: str, holder: VM) -> str:
        self.record.admitted_challenger(ip)
        holder_cr = (holder.attachment.ip_cr(holder.name, holder.namespace)
                     if holder.attachment is not None and ip == holder.attachment.ip else holder.ip_cr)
        with allure.step(f"admitted challenger {kind} {namespace}/{challenger}: what happened next"):
            then = assertions.admitted_then(self.kube, namespace, challenger, kind, ip, holder_cr,
                                            self.t(T_ADMITTED_WINDOW))
            if kind == "vm":
                self.kube.delete_vm(namespace, challenger)
            else:
                self.kube.delete_pod(namespace, challenger, grace_period=0)
            _attach("admitted_then", then)
            return then

    def challenge_with_pod(self, holder: VM, namespace: str, name: str, *, subnet: str | None = None,
                           labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None,
                           owner_references: list[JSON] | None = None,
                           holder_running: bool = True) -> Challenge:
        """A plain pod requesting the holder's IP (after the dryRun probe is denied)."""
        started = time.monotonic()
        subnet = holder.subnet if subnet is None else subnet
        before = assertions.snapshot_ip(self.kube, holder.name, holder.namespace)
        dry = self.dry_run_until(namespace, holder.ip, subnet, "denied")
        _pod, exc = self.create_pod(namespace, name, holder.ip, subnet, labels=labels,
                                    annotations=annotations, owner_references=owner_references)
        if exc is not None:
            if is_infrastructure(exc):  # no answer from the cluster: no verdict on the challenge either
                raise exc
            code = api_code(exc)
            text = describe_error(exc)
            if assertions.is_webhook_denial(text, self.webhook, holder.ip, code=code):
                result = Challenge(True, text, dry_run=dry)
            else:
                result = Challenge(False, f"refused, but not by the webhook for {holder.ip}: {text}",
                                   admitted_then="not-created", dry_run=dry)
        else:
            then = self._admitted(namespace, name, "pod", holder.ip, holder)
            result = Challenge(False, f"pod {namespace}/{name} was created", admitted_then=then, dry_run=dry)
        result.holder_problems = self.holder_intact(holder, before, running=holder_running)
        result.duration_s = round(time.monotonic() - started, 3)
        return result

    def challenge_with_vm(self, holder: VM, namespace: str, name: str, *, subnet: str | None = None,
                          create: Callable[[], None] | None = None,
                          holder_running: bool = True, disputed: str | None = None,
                          ip: str | None = None, ipv6: str = "",
                          attachment: templates.Attachment | None = None) -> Challenge:
        """A VM requesting the holder's IP (or created by ``create``, e.g. a clone): its VMI must show
        the webhook's denial, no launcher pod. ``disputed`` is the holder's address at stake (default its
        IPv4); the challenger requests ``ip`` (default ``disputed``) and ``ipv6`` (e.g. its own IPv4 and
        the holder's IPv6). With ``attachment`` the challenger requests that attachment address (and a
        dynamic pod-network one); no dryRun probe precedes it - a probe pod on an attachment network is no
        plain pod, and a released webhook never reads the key, so no probe would ever be denied."""
        started = time.monotonic()
        subnet = holder.subnet if subnet is None else subnet
        disputed = disputed or holder.primary
        before = assertions.snapshot_ip(self.kube, holder.name, holder.namespace)
        dry = None if attachment is not None else self.dry_run_until(namespace, disputed, subnet, "denied")
        if create is None and attachment is not None:
            self.create_vm(namespace, name, "", None, attachment=attachment)
        elif create is None:
            self.create_vm(namespace, name, ip or disputed, subnet, ipv6=ipv6)
        else:
            create()
        with allure.step(f"VMI {namespace}/{name} shows the webhook's denial"):
            outcome = assertions.vmi_denial(self.kube, namespace, name, disputed, self.webhook,
                                            self.t(T_DECIDE))
            _attach("VMI outcome", outcome.text)
        if outcome.outcome == "denied":
            result = Challenge(True, outcome.text, dry_run=dry)
        elif outcome.outcome == "admitted":
            then = self._admitted(namespace, name, "vm", disputed, holder)
            result = Challenge(False, outcome.text, admitted_then=then, dry_run=dry)
        else:
            then = self._admitted(namespace, name, "vm", disputed, holder)
            result = Challenge(False, "no webhook denial and no launcher pod within the timeout: "
                               f"{outcome.text}", admitted_then=then, dry_run=dry)
        result.holder_problems = self.holder_intact(holder, before, running=holder_running)
        result.duration_s = round(time.monotonic() - started, 3)
        return result

    def challenge_mac(self, holder: VM, namespace: str, name: str) -> Challenge:
        """A VM with its own free IP requesting the holder's static MAC. It must never run holding the MAC:
        either the webhook denies it (the denial names the MAC), or it is admitted and IPAM refuses it
        (``AcquireAddressFailed``/``AddressConflict`` on its launcher pod, never allocated); ``admitted_then``
        says which (``refused-by-ipam``, ``took-over-mac``, ``allocated-other-mac``, ``unallocated``)."""
        started = time.monotonic()
        before = assertions.snapshot_ip(self.kube, holder.name, holder.namespace)
        vm = self.create_vm(namespace, name, self.take_ip(holder.subnet or templates.DEFAULT_SUBNET),
                            holder.subnet, mac=holder.mac)
        with allure.step(f"{vm}: denied at admission or refused by IPAM"):
            outcome = assertions.vmi_denial(self.kube, namespace, name, holder.mac, self.webhook,
                                            self.t(T_DECIDE))
            _attach("VMI outcome", outcome.text)
        if outcome.outcome == "denied":
            result = Challenge(True, outcome.text)
        else:
            then, evidence = assertions.mac_admitted_then(self.kube, namespace, name, holder.mac,
                                                          self.t(T_ADMITTED_WINDOW))
            self.kube.delete_vm(namespace, name)
            _attach("admitted_then", f"{then}: {evidence}")
            ok = then in ("refused-by-ipam", "allocated-other-mac")
            text = (f"admitted by the webhook, then {then}: {evidence}" if ok else
                    f"VMI {namespace}/{name} was admitted ({outcome.text}) and then {then}: {evidence}")
            result = Challenge(ok, text, admitted_then=then,
                               expected="a webhook denial, or an IPAM refusal with an event")
        result.holder_problems = self.holder_intact(holder, before)
        result.duration_s = round(time.monotonic() - started, 3)
        return result

    def judge(self, case: str, result: Challenge, *, requirement: str | None = None) -> None:
        """Record the challenge as a case (with ``admitted_then``) and fail on admission or holder harm."""
        message = result.message
        if result.holder_problems:
            message += "; the holder was affected: " + "; ".join(result.holder_problems)
        ok = result.denied and not result.holder_problems
        # an admitted challenger that was stopped later (deny.mac-collision: refused by IPAM) keeps its
        # evidence: the report says how it was stopped
        self.record.case(case, "passed" if ok else "failed", message=None if ok and not result.admitted_then
                         else message,
                         admitted_then=result.admitted_then, duration_s=result.duration_s,
                         requirement=requirement)
