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

    @property
    def ip_cr(self) -> str:
        return assertions.ip_cr_name(self.name, self.namespace)

    def __str__(self) -> str:
        return f"VM {self.namespace}/{self.name} ({self.ip})"


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

    @property
    def message(self) -> str:
        if self.denied:
            return f"denied as expected: {self.text}"
        return (f"expected a webhook denial; the challenger was admitted ({self.text}); "
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


def _pod_ip_ok(pod: JSON, ip: str) -> bool:
    anns = (pod.get("metadata") or {}).get("annotations") or {}
    return str(anns.get(templates.ALLOCATED_ANNOTATION)) == "true" and ip in {
        a.strip() for a in str(anns.get(templates.IP_ANNOTATION) or "").split(",")}


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

    def take_ip(self, subnet: str = templates.DEFAULT_SUBNET) -> str:
        ip = self.addresses.take(subnet)
        self.record.addresses(ip)
        return ip

    # ---- VMs ---------------------------------------------------------------------------------------

    def create_vm(self, namespace: str, name: str, ip: str, subnet: str | None = templates.DEFAULT_SUBNET, *,
                  run_strategy: str = "Always", annotations: dict[str, str] | None = None) -> VM:
        with allure.step(f"create VM {namespace}/{name} requesting {ip} in {subnet or '(namespace subnet)'}"):
            body = templates.render_vm(name=name, namespace=namespace, ip=ip, subnet=subnet,
                                       run_id=self.kube.run_id, run_strategy=run_strategy,
                                       annotations=annotations)
            _attach("VirtualMachine manifest", body)
            self.record.addresses(ip)
            self.kube.create_vm(namespace, body)
            return VM(name=name, namespace=namespace, ip=ip, subnet=subnet)

    def launcher_pods(self, namespace: str, vmi_uid: str) -> list[JSON]:
        """Pods controlled by the VMI with this uid (never found by labels)."""
        return [p for p in self.kube.list_pods(namespace) if _owned_by(p, vmi_uid)]

    def wait_vm_running(self, vm: VM, *, not_uid: str | None = None, timeout: float | None = None,
                        after: str = "") -> VM:
        """VMI Running (with ``not_uid``: the VMI that follows VMI ``not_uid``, the first other uid seen),
        its launcher pod — found by controller ownerReference uid — Running and allocated ``vm.ip``.
        A webhook denial seen meanwhile is a warning when the VM gets there, and the failure text when
        it does not. A follower replaced in turn before it ran fails: the VM was restarted again."""
        timeout = timeout if timeout is not None else self.t_vm(T_RUNNING)
        deadline = time.monotonic() + timeout
        denials: list[str] = []
        follower: list[str] = []
        label = f"{vm} to run{' ' + after if after else ''}"
        with allure.step(f"wait for {label}"):
            def vmi_ready(objects: dict[str, JSON]) -> JSON | None:
                vmi = objects.get(f"{vm.namespace}/{vm.name}")
                if vmi is None:
                    return None
                denial = _webhook_denial_on_vmi(vmi, self.webhook, vm.ip)
                if denial and denial not in denials:
                    denials.append(denial)
                uid = vmi["metadata"].get("uid")
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

            try:
                vmi = waits.watch_until(self.kube, VMIS, vm.namespace, vmi_ready, timeout=timeout,
                                        name=vm.name, what=f"VMI {vm.namespace}/{vm.name} Running"
                                             + (f" with a uid other than {not_uid}" if not_uid else ""))
                uid = vmi["metadata"]["uid"]
                node = str((vmi.get("status") or {}).get("nodeName") or "")

                def launcher_ready(objects: dict[str, JSON]) -> JSON | None:
                    for pod in objects.values():
                        if _owned_by(pod, uid) and (pod.get("status") or {}).get("phase") == "Running" \
                                and _pod_ip_ok(pod, vm.ip) and not pod["metadata"].get("deletionTimestamp") \
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
                                             f"and {vm.ip}")
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

    def _denial_events(self, vm: VM) -> list[str]:
        out = []
        try:
            for ev in self.kube.events_for(vm.namespace, "VirtualMachineInstance", vm.name):
                msg = str(ev.get("message") or "")
                if ev.get("reason") == "FailedCreate" and assertions.is_webhook_denial(
                        msg, self.webhook, vm.ip):
                    out.append(f"event FailedCreate: {msg}")
        except ApiException:
            pass
        return out

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

            vmim = waits.wait_for(self.kube, VMIMS, vm.namespace, mig, done, self.t_vm(T_MIGRATION),
                                  what=f"VMIM {mig} to finish (Succeeded)")
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
                                   and _pod_ip_ok(p, vm.ip)), None),
                timeout=self.t_vm(T_RUNNING),
                what=f"the target launcher pod of {vm} on {target}, Running with {vm.ip} allocated")
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
        (bounded by 30 s times the timeout scale, at least 2 s); on expiry warn and continue."""
        with allure.step(f"dryRun probe for {ip} until {expect}"):
            res = waits.wait_dry_run(self.kube, namespace, ip, subnet, expect, self.t(T_DRY_RUN),
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

    def reachable(self, vm: VM) -> ProbeResult:
        """One-shot reachability: probe pods (3 pings each) until one gets a reply, bounded by the
        boot timeout; AssertionError when none does."""
        with allure.step(f"{vm} answers ping"):
            deadline = time.monotonic() + self.t_vm(T_REACH)
            last: list[ProbeResult] = []

            def attempt() -> bool:
                res = self._probe(vm.namespace, vm.ip, vm.subnet, count=3,
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
                raise AssertionError(f"expected {vm} to answer ping at the end; {len(last)} probe(s) got no "
                                     f"reply (last log: {' | '.join(tail) or 'empty'})")
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
            if pod is None or not _pod_ip_ok(pod, holder.ip):
                problems.append(f"launcher pod {holder.launcher} lost {holder.ip}: {waits.summarize(pod)}")
        cr = self.kube.get_ip(holder.ip_cr)
        if cr is None:
            problems.append(f"IP CR {holder.ip_cr} is gone")
        else:
            problems.extend(before.differences(assertions.IPIdentity.from_cr(cr)))
        return problems

    def _admitted(self, namespace: str, challenger: str, kind: str, ip: str, holder: VM) -> str:
        self.record.admitted_challenger(ip)
        with allure.step(f"admitted challenger {kind} {namespace}/{challenger}: what happened next"):
            then = assertions.admitted_then(self.kube, namespace, challenger, kind, ip, holder.ip_cr,
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
                          holder_running: bool = True) -> Challenge:
        """A VM requesting the holder's IP (or created by ``create``, e.g. a clone): its VMI must show
        the webhook's denial, no launcher pod."""
        started = time.monotonic()
        subnet = holder.subnet if subnet is None else subnet
        before = assertions.snapshot_ip(self.kube, holder.name, holder.namespace)
        dry = self.dry_run_until(namespace, holder.ip, subnet, "denied")
        if create is None:
            self.create_vm(namespace, name, holder.ip, subnet)
        else:
            create()
        with allure.step(f"VMI {namespace}/{name} shows the webhook's denial"):
            outcome = assertions.vmi_denial(self.kube, namespace, name, holder.ip, self.webhook,
                                            self.t(T_DECIDE))
            _attach("VMI outcome", outcome.text)
        if outcome.outcome == "denied":
            result = Challenge(True, outcome.text, dry_run=dry)
        elif outcome.outcome == "admitted":
            then = self._admitted(namespace, name, "vm", holder.ip, holder)
            result = Challenge(False, outcome.text, admitted_then=then, dry_run=dry)
        else:
            then = self._admitted(namespace, name, "vm", holder.ip, holder)
            result = Challenge(False, "no webhook denial and no launcher pod within the timeout: "
                               f"{outcome.text}", admitted_then=then, dry_run=dry)
        result.holder_problems = self.holder_intact(holder, before, running=holder_running)
        result.duration_s = round(time.monotonic() - started, 3)
        return result

    def judge(self, case: str, result: Challenge, *, requirement: str | None = None) -> None:
        """Record the challenge as a case (with ``admitted_then``) and fail on admission or holder harm."""
        message = result.message
        if result.holder_problems:
            message += "; the holder was affected: " + "; ".join(result.holder_problems)
        ok = result.denied and not result.holder_problems
        self.record.case(case, "passed" if ok else "failed", message=None if ok else message,
                         admitted_then=result.admitted_then, duration_s=result.duration_s,
                         requirement=requirement)
