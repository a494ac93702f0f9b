"""Deliberately faulty webhook policies: the suite must catch each with the requirement it breaks.

This is mutation testing of the conformance suite itself. Each policy here has the signature of
``conformance.sim.policies`` (``policy(pod, ip_crs, view) -> str | None``) and is loaded with
``--sim-webhook-policy conformance.sim.mutants:<name>``. ``docs/verdict-derivation.md`` lists the
requirement that must fail for each; ``tests/verdicts/`` asserts it.

Two are blunt (admit everything, deny every static IP), one is correct but worded differently (the
suite must never depend on the wording), and the rest are *well-meaning fixes that go wrong* — the
kinds of patch a reviewer could plausibly merge for issue #4803.
"""

from __future__ import annotations

import re
import time
from typing import Any

from .policies import (
    IP_ADDRESS_ANNOTATION,
    POD_TYPE_VM,
    PodNameEquality,
    Reference,
    conflict_message,
)
from .store import NAME_ALPHABET
from .webhook import WebhookView

JSON = dict[str, Any]

_LAUNCHER_RE = re.compile(rf"^virt-launcher-(?P<vm>.+)-[{NAME_ALPHABET}]{{5}}$")


def _static_ip(pod: JSON) -> str:
    return str((pod.get("metadata", {}).get("annotations") or {}).get(IP_ADDRESS_ANNOTATION, ""))


def admit_all(pod: JSON, ip_crs: list[JSON], view: WebhookView, /) -> str | None:
    """Admits every pod: a webhook that checks nothing (but still runs ``ValidatePodNetwork``, so
    ``env.webhook-live`` passes). Every ``deny.*`` requirement must fail."""
    return None


def deny_all_static(pod: JSON, ip_crs: list[JSON], view: WebhookView, /) -> str | None:
    """Denies every pod that asks for a static address. Every ``allow.*`` requirement must fail."""
    ip = _static_ip(pod)
    return f"annotation static-ip {ip} is not allowed: static addresses are disabled" if ip else None


_REFERENCE = Reference()
_CRD_RE = re.compile(r"ip crd (?P<crd>\S+?),")
_DISPUTED_RE = re.compile(r"static-ip (?P<ip>\S+) is conflict")


def reworded_reference(pod: JSON, ip_crs: list[JSON], view: WebhookView, /) -> str | None:
    """The reference decision, with a denial worded nothing like upstream's (it still names the
    address and the owner). The suite must give exactly the reference's outcomes: it may only rely on
    the webhook's name and the requested IP, never on the wording."""
    message = _REFERENCE(pod, ip_crs, view)
    if message is None:
        return None
    m = _CRD_RE.search(message)
    owner = m.group("crd") if m else "another workload"
    disputed = _DISPUTED_RE.search(message)  # the address at stake (an attachment network's, too)
    meta = pod.get("metadata", {})
    return (f"refusing pod {meta.get('namespace')}/{meta.get('name')}: address "
            f"{disputed.group('ip') if disputed else _static_ip(pod)} already belongs to {owner}")


#: Like the reference, it is asked about pods whose only static address is an attachment network's.
reworded_reference.checks_attachments = True  # type: ignore[attr-defined]


class _LauncherPrefix(PodNameEquality):
    """v1.13.0 plus "a launcher pod of the VM is ``virt-launcher-<podName>-…``": admits any pod whose
    name starts with ``virt-launcher-<podName>-``. Wrong twice: VM ``web-1``'s launcher
    (``virt-launcher-web-1-xxxxx``) starts with ``virt-launcher-web-`` (``deny.name-prefix``), and any plain
    pod can take that name (``deny.spoofed-launcher``)."""

    name = "launcher_prefix"

    def allowed(self, name: str, ip_cr: JSON) -> bool:
        pod_name = str((ip_cr.get("spec") or {}).get("podName", ""))
        return name == pod_name or name.startswith(f"virt-launcher-{pod_name}-")


class _LauncherNameParse(PodNameEquality):
    """v1.13.0 plus "parse the VM name out of the launcher pod's name": strips ``virt-launcher-`` and
    the 5-character random suffix, then compares strictly. Right about prefixes, wrong about trust: a
    plain pod named like a launcher is admitted (``deny.spoofed-launcher``)."""

    name = "launcher_name_parse"

    def effective_name(self, pod: JSON) -> str:
        name = str(pod.get("metadata", {}).get("name", ""))
        m = _LAUNCHER_RE.match(name)
        return m.group("vm") if m else name


class _OwnerKindOnly(PodNameEquality):
    """"Pods created by KubeVirt are fine": admits any pod controlled by *some*
    VirtualMachineInstance, without comparing which. Every VM challenger is admitted
    (``deny.other-vm``, ``deny.clone``, ``deny.stopped-vm-ip``, ``deny.name-prefix``)."""

    name = "owner_kind_only"

    def __call__(self, pod: JSON, ip_crs: list[JSON], view: WebhookView, /) -> str | None:
        for owner in pod.get("metadata", {}).get("ownerReferences") or []:
            if owner.get("kind") == "VirtualMachineInstance" and \
                    str(owner.get("apiVersion", "")).startswith("kubevirt.io/"):
                return None
        return super().__call__(pod, ip_crs, view)


def skip_stopped_holders(pod: JSON, ip_crs: list[JSON], view: WebhookView, /) -> str | None:
    """The reference policy, but "stale" IP CRs are ignored: a ``VirtualMachine`` IP CR whose VM has no
    VMI right now (the VM is stopped) is skipped. keep-vm-ip exists precisely so a stopped VM keeps its
    address, so ``deny.stopped-vm-ip`` must fail."""
    live = []
    for ip_cr in ip_crs:
        spec = ip_cr.get("spec") or {}
        if spec.get("podType") == POD_TYPE_VM and \
                view.vmi(str(spec.get("namespace", "")), str(spec.get("podName", ""))) is None:
            continue
        live.append(ip_cr)
    return _REFERENCE(pod, live, view)


class _StaleCacheReference:
    """The reference decision behind an informer cache that lags: for :attr:`window` seconds after the
    webhook first reviews a launcher pod of a VMI (by uid), an IP CR already holding the requested
    address - the VM's own, from its previous launcher pod - is taken for someone else's and the pod is
    denied as a conflict; afterwards the cache has caught up. A *correct* webhook: the suite must give
    exactly the reference's outcomes (a transient denial shorter than the suite's grace period is a
    warning, never a verdict)."""

    name = "stale_cache_reference"
    checks_attachments = True
    #: Seconds the cache stays stale per VMI (shorter than the suite's denial grace at any timeout scale).
    window = 0.25

    def __init__(self) -> None:
        self._first: dict[str, float] = {}

    def __call__(self, pod: JSON, ip_crs: list[JSON], view: WebhookView, /) -> str | None:
        decision = _REFERENCE(pod, ip_crs, view)
        if decision is not None:
            return decision
        owner = next((o for o in pod.get("metadata", {}).get("ownerReferences") or []
                      if o.get("controller") and o.get("kind") == "VirtualMachineInstance"), None)
        ip = _static_ip(pod)
        if owner is None or not ip:
            return None
        now = time.monotonic()
        if now - self._first.setdefault(str(owner.get("uid", "")), now) >= self.window:
            return None
        held = next((cr for cr in ip_crs if ip in str((cr.get("spec") or {}).get("ipAddress", "")).split(",")),
                    None)
        return conflict_message(ip, held) if held is not None else None


launcher_prefix = _LauncherPrefix()
launcher_name_parse = _LauncherNameParse()
owner_kind_only = _OwnerKindOnly()
stale_cache_reference = _StaleCacheReference()

#: name -> the requirement IDs that must fail (MUST ones first), as docs/verdict-derivation.md says.
EXPECTED_FAILURES: dict[str, tuple[str, ...]] = {
    "admit_all": ("deny.other-vm", "deny.pod-takes-vm-ip", "deny.name-prefix", "deny.stopped-vm-ip",
                  "deny.clone", "deny.spoofed-launcher"),
    "deny_all_static": ("allow.restart", "allow.stop-start", "allow.launcher-pod-deleted"),
    "reworded_reference": (),
    "stale_cache_reference": (),
    "launcher_prefix": ("deny.name-prefix", "deny.spoofed-launcher"),
    "launcher_name_parse": ("deny.spoofed-launcher",),
    "owner_kind_only": ("deny.other-vm", "deny.clone", "deny.stopped-vm-ip", "deny.name-prefix"),
    "skip_stopped_holders": ("deny.stopped-vm-ip",),
}

__all__ = ["EXPECTED_FAILURES", "admit_all", "conflict_message", "deny_all_static", "launcher_name_parse",
           "launcher_prefix", "owner_kind_only", "reworded_reference", "skip_stopped_holders",
           "stale_cache_reference"]
