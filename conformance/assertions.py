"""What counts as a denial, an unchanged IP CR, a takeover, a duplicate.

A denial counts only when the text contains ``admission webhook "<name>" denied the request`` and the
requested IP (never the full wording, which changes between releases); for pods the suite creates
itself the HTTP code must also be 403 or 400. A 500, ``failed calling webhook``, a quota or a
PodSecurity denial never counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any

from kubernetes.client.exceptions import ApiException

from . import waits
from .addresses import ip_cr_addresses
from .kube import EVENTS, JSON, PODS, VMIS, Kube, api_code, describe_error
from .templates import ALLOCATED_ANNOTATION, IP_ANNOTATION, MAC_ANNOTATION, SWITCH_ANNOTATION

VM_POD_TYPE = "VirtualMachine"
#: Texts that disqualify a "denial": the webhook was not reached or something else said no.
_NOT_A_DENIAL = (
    "failed calling webhook",
    "exceeded quota",
    "forbidden: exceeded",
    "violates podsecurity",
    "podsecurity",
    "internal error occurred",
)


def _ip_pattern(ip: str) -> re.Pattern[str]:
    # the IP as a whole token: not part of a longer address (10.16.0.1 vs 10.16.0.15)
    return re.compile(r"(?<![\w.:])" + re.escape(ip) + r"(?![\w:]|\.\d)")


def is_webhook_denial(text: str, webhook_name: str, ip: str, code: int | None = None) -> bool:
    """Whether ``text`` is the named webhook denying a request for ``ip``.

    ``code`` (when known) must be 400 or 403."""
    if not text or not webhook_name or not ip:
        return False
    if code is not None and code not in (400, 403):
        return False
    lowered = text.lower()
    if any(marker in lowered for marker in _NOT_A_DENIAL):
        return False
    phrase = re.compile(r"admission webhook\s*\"" + re.escape(webhook_name) + r"\"\s*denied the request",
                        re.IGNORECASE)
    return bool(phrase.search(text)) and bool(_ip_pattern(ip).search(text))


def denial_text(exc: BaseException) -> str:
    return describe_error(exc)


def assert_denied_pod_create(exc: BaseException | None, webhook_name: str, ip: str, what: str) -> str:
    """``exc`` (None = admitted) must be the webhook's 403/400 denial for ``ip``; returns its text."""
    if exc is None:
        raise AssertionError(f"expected the create of {what} requesting {ip} to be denied by webhook "
                             f"\"{webhook_name}\"; it was admitted")
    code = api_code(exc) if isinstance(exc, ApiException) else None
    text = describe_error(exc)
    if not is_webhook_denial(text, webhook_name, ip, code=code if code is not None else -1):
        raise AssertionError(f"expected the create of {what} requesting {ip} to be denied by webhook "
                             f"\"{webhook_name}\" (HTTP 403/400 naming {ip}); got {text}")
    return text


# --------------------------------------------------------------------------------------------------
# VM challengers: the denial shows on the VMI


@dataclass
class VmiOutcome:
    #: ``denied`` (the webhook's denial on the VMI), ``admitted`` (a launcher pod exists / VMI
    #: scheduled), or ``undecided`` (neither within the timeout).
    outcome: str
    text: str


def _synchronized_failure(vmi: JSON) -> str | None:
    for cond in (vmi.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Synchronized" and str(cond.get("status")) == "False":
            return f"{cond.get('reason')}: {cond.get('message')}"
    return None


def _vmi_admitted(vmi: JSON) -> bool:
    status = vmi.get("status") or {}
    return bool(status.get("activePods")) or status.get("phase") in ("Scheduling", "Scheduled", "Running")


def vmi_denial(kube: Kube, namespace: str, vm: str, ip: str, webhook_name: str, timeout: float) -> VmiOutcome:
    """Follow VMI ``vm`` until it shows the webhook's denial for ``ip`` (condition
    ``Synchronized=False``/``FailedCreate`` or a ``FailedCreate`` event) or gets a launcher pod."""
    seen: dict[str, str] = {}

    def evaluate(objects: dict[str, JSON]) -> VmiOutcome | None:
        vmi = objects.get(f"{namespace}/{vm}")
        if vmi is None:
            return None
        failure = _synchronized_failure(vmi)
        if failure:
            seen["condition"] = failure
            if "FailedCreate" in failure and is_webhook_denial(failure, webhook_name, ip):
                return VmiOutcome("denied", f"VMI condition Synchronized=False {failure}")
        if _vmi_admitted(vmi):
            return VmiOutcome("admitted", f"VMI {namespace}/{vm} {waits.summarize(vmi)}")
        return None

    try:
        return waits.watch_until(kube, VMIS, namespace, evaluate, timeout=timeout, name=vm,
                                 what=f"VMI {namespace}/{vm} to show webhook \"{webhook_name}\" denying {ip}")
    except waits.WaitTimeout as exc:
        for ev in reversed(kube.events_for(namespace, "VirtualMachineInstance", vm)):
            msg = str(ev.get("message") or "")
            if ev.get("reason") == "FailedCreate" and is_webhook_denial(msg, webhook_name, ip):
                return VmiOutcome("denied", f"VMI event FailedCreate: {msg}")
        return VmiOutcome("undecided", str(exc))


# --------------------------------------------------------------------------------------------------
# IP CR identity


@dataclass(frozen=True)
class IPIdentity:
    """The fields of IP CR ``<vm>.<ns>`` that must not change across legitimate operations."""

    name: str
    uid: str
    ip_address: str
    v4_ip_address: str
    v6_ip_address: str
    mac_address: str
    pod_name: str
    pod_type: str
    namespace: str
    subnet: str

    @classmethod
    def from_cr(cls, cr: JSON) -> IPIdentity:
        spec = cr.get("spec") or {}
        meta = cr.get("metadata") or {}
        return cls(name=str(meta.get("name")), uid=str(meta.get("uid")),
                   ip_address=str(spec.get("ipAddress") or ""),
                   v4_ip_address=str(spec.get("v4IpAddress") or ""),
                   v6_ip_address=str(spec.get("v6IpAddress") or ""),
                   mac_address=str(spec.get("macAddress") or ""), pod_name=str(spec.get("podName") or ""),
                   pod_type=str(spec.get("podType") or ""), namespace=str(spec.get("namespace") or ""),
                   subnet=str(spec.get("subnet") or ""))

    def differences(self, other: IPIdentity) -> list[str]:
        out = []
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if a != b:
                out.append(f"{f.name}: {a!r} -> {b!r}")
        return out


def ip_cr_name(vm: str, namespace: str) -> str:
    return f"{vm}.{namespace}"


def expected_identity_problems(ident: IPIdentity, vm: str, namespace: str, ip: str,
                               subnet: str | None) -> list[str]:
    """What is wrong with a VM's IP CR on its own (podName, podType, namespace, address, subnet)."""
    out = []
    if ident.pod_name != vm:
        out.append(f"podName {ident.pod_name!r} (expected {vm!r})")
    if ident.pod_type != VM_POD_TYPE:
        out.append(f"podType {ident.pod_type!r} (expected {VM_POD_TYPE!r})")
    if ident.namespace != namespace:
        out.append(f"namespace {ident.namespace!r} (expected {namespace!r})")
    held = {part for field in (ident.ip_address, ident.v4_ip_address, ident.v6_ip_address)
            for part in field.split(",") if part}
    if ip not in held:
        out.append(f"ipAddress {ident.ip_address!r} (expected {ip!r})")
    if subnet and ident.subnet != subnet:
        out.append(f"subnet {ident.subnet!r} (expected {subnet!r})")
    return out


def snapshot_ip(kube: Kube, vm: str, namespace: str) -> IPIdentity:
    name = ip_cr_name(vm, namespace)
    cr = kube.get_ip(name)
    if cr is None:
        raise AssertionError(f"expected IP CR {name} of VM {namespace}/{vm} to exist; it does not")
    return IPIdentity.from_cr(cr)


def snapshot_named(kube: Kube, name: str, what: str) -> IPIdentity:
    """IP CR ``name`` (e.g. an attachment's ``<vm>.<ns>.<provider>``); AssertionError when it is absent."""
    cr = kube.get_ip(name)
    if cr is None:
        raise AssertionError(f"expected IP CR {name} of {what} to exist; it does not")
    return IPIdentity.from_cr(cr)


def assert_same_named_identity(kube: Kube, before: IPIdentity, after_what: str) -> IPIdentity:
    """IP CR ``before.name`` is the same object with the same fields after ``after_what``."""
    after = snapshot_named(kube, before.name, f"the VM after {after_what}")
    diffs = before.differences(after)
    if diffs:
        raise AssertionError(f"expected IP CR {before.name} to be unchanged after {after_what}; changed: "
                             + "; ".join(diffs))
    return after


def assert_same_identity(kube: Kube, before: IPIdentity, vm: str, namespace: str,
                         after_what: str) -> IPIdentity:
    """IP CR ``<vm>.<ns>`` is the same object (name, uid) with the same fields as ``before``."""
    after = snapshot_ip(kube, vm, namespace)
    diffs = before.differences(after)
    if diffs:
        raise AssertionError(f"expected IP CR {before.name} to be unchanged after {after_what}; changed: "
                             + "; ".join(diffs))
    return after


# --------------------------------------------------------------------------------------------------
# Admitted challengers: what happened next


def _pod_identity(pod: JSON) -> tuple[str, str, str]:
    """(namespace, workload kind, workload name): the VMI owner for launcher pods, else the pod."""
    meta = pod.get("metadata") or {}
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == "VirtualMachineInstance" and ref.get("controller") \
                and str(ref.get("apiVersion", "")).startswith("kubevirt.io/"):
            # the VMI by name: a restarted VM (new VMI uid) is still the same workload
            return str(meta.get("namespace")), "vmi", str(ref.get("name"))
    return str(meta.get("namespace")), "pod", str(meta.get("name"))


def _workload_name(identity: tuple[str, str, str]) -> str:
    return identity[2]


def _allocated_with(pod: JSON, ip: str) -> bool:
    """The pod is allocated ``ip``, on the pod network or on an attachment network
    (``<provider>.kubernetes.io/ip_address`` with ``<provider>.kubernetes.io/allocated``)."""
    anns = (pod.get("metadata") or {}).get("annotations") or {}
    for key, value in anns.items():
        if not key.endswith("kubernetes.io/ip_address"):
            continue
        provider = key[: -len("kubernetes.io/ip_address")]
        if str(anns.get(provider + "kubernetes.io/allocated")) == "true" and ip in {
                a.strip() for a in str(value or "").split(",")}:
            return True
    return False


def _challenger_pods(pods: list[JSON], name: str, kind: str) -> list[JSON]:
    if kind == "pod":
        return [p for p in pods if p["metadata"].get("name") == name]
    return [p for p in pods if _workload_name(_pod_identity(p)) == name and _pod_identity(p)[1] == "vmi"]


def admitted_then(kube: Kube, namespace: str, challenger: str, kind: str, ip: str, holder_ip_cr: str,
                  window: float) -> str:
    """Classify what became of an admitted challenger (``kind`` ``pod`` or ``vm``):

    ``took-over-address`` (it is allocated ``ip``, or the holder's IP CR now names it),
    ``blocked-by-ipam`` (an AcquireAddressFailed/AddressConflict event, never allocated),
    ``unallocated`` otherwise. Follows the namespace's Events (every step of a pod's life writes one:
    scheduled, refused by IPAM, sandbox failed, started, killed, collected) for up to ``window``,
    looking at the challenger's pods on each: an allocation, an IPAM refusal, or a plain pod gone or
    terminating without either (e.g. garbage-collected for a forged owner) is a definitive answer and
    ends the wait; the state is judged once more at the end of the window."""
    def refused(pod_names: set[str], events: list[JSON]) -> bool:
        for ev in events:
            inv = ev.get("involvedObject") or {}
            text = f"{ev.get('reason')} {ev.get('message')}"
            if inv.get("name") in pod_names and ("AcquireAddressFailed" in text or "AddressConflict" in text):
                return True
        return False

    def taken_over() -> bool:
        cr = kube.get_ip(holder_ip_cr)
        spec = (cr or {}).get("spec") or {}
        return spec.get("podName") == challenger and spec.get("namespace") == namespace

    def judge(events: list[JSON], final: bool) -> str | None:
        mine = _challenger_pods(kube.list_pods(namespace), challenger, kind)
        if any(_allocated_with(p, ip) for p in mine) or taken_over():
            return "took-over-address"
        if refused({p["metadata"]["name"] for p in mine} | {challenger}, events):
            return "blocked-by-ipam"
        live = [p for p in mine if not (p.get("metadata") or {}).get("deletionTimestamp")]
        # A plain pod was created (admitted) before this is called and lists read the API server, not a
        # cache: no live pod means it is gone or going without an allocation - also when it was collected
        # before the first look (a GC faster than this process, seen on a loaded machine).
        if final or (kind == "pod" and not live):
            return "unallocated"
        return None

    try:
        return waits.watch_until(kube, EVENTS, namespace, lambda objects: judge(list(objects.values()), False),
                                 timeout=window,
                                 what=f"{kind} {namespace}/{challenger} to be allocated {ip} or refused by IPAM",
                                 describe=lambda objects: f"{len(objects)} events in {namespace}")
    except waits.WaitTimeout:
        pass
    return judge(kube.list(EVENTS, namespace), True) or "unallocated"


def _allocated_mac(pod: JSON) -> str | None:
    anns = (pod.get("metadata") or {}).get("annotations") or {}
    if str(anns.get(ALLOCATED_ANNOTATION)) != "true":
        return None
    return str(anns.get(MAC_ANNOTATION) or "").lower()


def mac_admitted_then(kube: Kube, namespace: str, challenger: str, mac: str, window: float) -> tuple[str, str]:
    """What became of an admitted VM challenger requesting ``mac``, and the evidence: ``took-over-mac``
    (a launcher pod of it is allocated with that MAC), ``allocated-other-mac`` (allocated, another MAC),
    ``refused-by-ipam`` (an ``AcquireAddressFailed``/``AddressConflict`` Event on a launcher pod of it,
    none allocated) or ``unallocated`` (neither within ``window``). The Events are watched: the first
    refusal or allocation ends the wait."""
    mac = mac.lower()

    def launchers() -> list[JSON]:
        return _challenger_pods(kube.list_pods(namespace), challenger, "vm")

    def allocated() -> tuple[str, str] | None:
        for pod in launchers():
            got = _allocated_mac(pod)
            if got is not None:
                then = "took-over-mac" if got == mac else "allocated-other-mac"
                return then, f"launcher pod {pod['metadata']['name']} allocated with MAC {got or '(none)'}"
        return None

    def evaluate(objects: dict[str, JSON]) -> tuple[str, str] | None:
        done = allocated()
        if done is not None:
            return done
        names = {p["metadata"]["name"] for p in launchers()}
        for ev in objects.values():
            inv = ev.get("involvedObject") or {}
            text = f"{ev.get('reason')}: {ev.get('message')}"
            if inv.get("kind") == "Pod" and inv.get("name") in names and (
                    "AcquireAddressFailed" in text or "AddressConflict" in text):
                return "refused-by-ipam", f"Event on pod {inv.get('name')}: {text}"
        return None

    try:
        result: tuple[str, str] = waits.watch_until(
            kube, EVENTS, namespace, evaluate, timeout=window,
            what=f"VM {namespace}/{challenger} refused by IPAM or allocated")
    except waits.WaitTimeout as exc:
        return allocated() or ("unallocated", f"neither an IPAM refusal nor an allocation: {exc}")
    if result[0] == "refused-by-ipam":
        late = allocated()  # the refusal is final only if nothing was allocated meanwhile
        if late is not None:
            return late
    return result


# --------------------------------------------------------------------------------------------------
# state.no-duplicate-ips


def duplicate_ip_findings(kube: Kube, addresses: list[str], exempt: set[str]) -> list[str]:
    """Duplicates among ``addresses`` (minus ``exempt``): two workloads with allocated pods sharing an
    address in one subnet (pods controlled by the same VMI count as one), and IP CRs of those
    addresses naming a workload other than the one holding the address."""
    wanted = {a for a in addresses if a} - set(exempt or ())
    if not wanted:
        return []
    holders: dict[tuple[str, str], dict[tuple[str, str, str], list[str]]] = {}
    for pod in kube.list(PODS, None):
        anns = (pod.get("metadata") or {}).get("annotations") or {}
        if str(anns.get(ALLOCATED_ANNOTATION)) != "true":
            continue
        pod_addrs = {a.strip() for a in str(anns.get(IP_ANNOTATION) or "").split(",") if a.strip()}
        for addr in pod_addrs & wanted:
            subnet = str(anns.get(SWITCH_ANNOTATION) or "")
            ident = _pod_identity(pod)
            holders.setdefault((subnet, addr), {}).setdefault(ident, []).append(
                f"{pod['metadata'].get('namespace')}/{pod['metadata'].get('name')}")
    findings: list[str] = []
    for (subnet, addr), idents in sorted(holders.items()):
        if len(idents) > 1:
            who = "; ".join(f"{i[1]} {i[0]}/{_workload_name(i)} (pods {', '.join(sorted(p))})"
                            for i, p in sorted(idents.items()))
            findings.append(f"address {addr} in subnet {subnet or '?'} is allocated to {len(idents)} "
                            f"workloads: {who}")
    for cr in kube.list_ips():
        spec = cr.get("spec") or {}
        subnet = str(spec.get("subnet") or "")
        for addr in ip_cr_addresses(cr) & wanted:
            idents = holders.get((subnet, addr), {})
            if len(idents) != 1:
                continue  # nobody holds it (stopped VM) or already reported as a duplicate
            (ident,) = idents
            ns, _kind, _ = ident
            workload = _workload_name(ident)
            if spec.get("podName") != workload or (spec.get("namespace") and spec.get("namespace") != ns):
                findings.append(f"IP CR {cr['metadata']['name']} for {addr} names {spec.get('namespace')}/"
                                f"{spec.get('podName')} but the address is held by {ns}/{workload}")
    return findings


def fmt_obj(obj: Any) -> str:
    return waits.summarize(obj) if isinstance(obj, dict) else str(obj)
