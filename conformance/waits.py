"""Watch-based waits: list once, then follow a watch from the list's resourceVersion until a
predicate holds or a deadline passes. No fixed sleeps: the only pauses are tenacity back-offs
between reconnects (and between re-issued dryRun probes, which test a cache and must re-ask).

A wait that expires raises :class:`WaitTimeout` (a ``TimeoutError``) whose message says what was
expected, on which object, what was last seen (phase, conditions, annotations…) and the object's
last events.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

import tenacity
from kubernetes.client.exceptions import ApiException

from . import templates
from .kube import JSON, InfrastructureError, Kind, Kube, api_code, describe_error, is_transient, kind_of

T = TypeVar("T")

DEFAULT_WEBHOOK = "pod-ip-validating.kube-ovn.io"
#: Annotations worth showing in a summary.
_SHOWN_ANNOTATION_PREFIXES = ("ovn.kubernetes.io/", "kubevirt.io/migrationJobName",
                              "kubevirt.io/allow-pod-bridge")


class WaitTimeout(TimeoutError):
    """A wait expired. ``str()`` is the full failure text."""

    def __init__(self, what: str, ref: str, last_seen: str, events: list[str], timeout: float,
                 note: str = "") -> None:
        self.what = what
        self.ref = ref
        self.last_seen = last_seen
        self.events = events
        self.timeout = timeout
        self.note = note
        lines = [f"timed out after {timeout:.1f}s waiting for {what}", f"  on: {ref}",
                 f"  last seen: {last_seen}"]
        if note:
            lines.append(f"  note: {note}")
        lines.append("  last events: " + ("; ".join(events) if events else "none"))
        super().__init__("\n".join(lines))


# --------------------------------------------------------------------------------------------------
# Summaries


def ref_of(kind: Kind | str, namespace: str | None, name: str | None) -> str:
    k = kind_of(kind)
    if name is None:
        return f"{k.kind}s in {namespace}" if namespace else f"{k.kind}s"
    return f"{k.kind} {namespace}/{name}" if namespace else f"{k.kind} {name}"


def summarize(obj: JSON | None) -> str:
    """A one-line summary of an object: phase, readiness, conditions, key annotations, spec hints."""
    if obj is None:
        return "absent"
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    spec = obj.get("spec") or {}
    parts: list[str] = []
    if meta.get("uid"):
        parts.append(f"uid={meta['uid']}")
    if meta.get("deletionTimestamp"):
        parts.append("terminating")
    if isinstance(status, dict):
        for key in ("phase", "printableStatus", "ready", "created", "nodeName"):
            if key in status:
                parts.append(f"{key}={status[key]}")
        conds = status.get("conditions") or []
        if conds:
            shown = []
            for c in conds[:6]:
                text = f"{c.get('type')}={c.get('status')}"
                if c.get("reason"):
                    text += f"/{c['reason']}"
                if c.get("message"):
                    text += f" ({str(c['message'])[:240]})"
                shown.append(text)
            parts.append("conditions=[" + ", ".join(shown) + "]")
        ms = status.get("migrationState")
        if isinstance(ms, dict):
            parts.append(f"migration={ms.get('sourceNode')}->{ms.get('targetNode')} "
                         f"completed={ms.get('completed')} failed={ms.get('failed')}")
    if isinstance(spec, dict):
        if "runStrategy" in spec:
            parts.append(f"runStrategy={spec['runStrategy']}")
        if spec.get("nodeName"):
            parts.append(f"spec.nodeName={spec['nodeName']}")
        for key in ("podName", "podType", "namespace", "subnet", "ipAddress", "macAddress", "cidrBlock"):
            if key in spec and obj.get("kind") in ("IP", "Subnet"):
                parts.append(f"{key}={spec[key]}")
    anns = meta.get("annotations") or {}
    shown_anns = {k: v for k, v in anns.items() if k.startswith(_SHOWN_ANNOTATION_PREFIXES)}
    if shown_anns:
        parts.append("annotations={" + ", ".join(f"{k}={v}" for k, v in sorted(shown_anns.items())) + "}")
    return " ".join(parts) if parts else "present (no status)"


def format_event(ev: JSON) -> str:
    count = ev.get("count")
    suffix = f" (x{count})" if count and count > 1 else ""
    text = ev.get("message") or ev.get("note") or ""
    return f"{ev.get('type', '?')} {ev.get('reason', '?')}: {text}{suffix}"


def last_events(kube: Kube, namespace: str | None, kind: str, name: str | None, n: int = 5) -> list[str]:
    """The last ``n`` events of an object as text (never raises: this feeds failure messages)."""
    if not name or not namespace:
        return []
    try:
        return [format_event(e) for e in kube.events_for(namespace, kind, name)[-n:]]
    except Exception as exc:  # diagnostics must not mask the real failure
        return [f"(events unavailable: {describe_error(exc)})"]


# --------------------------------------------------------------------------------------------------
# The watch loop


def _reconnectable(exc: BaseException) -> bool:
    return is_transient(exc) and not isinstance(exc, WaitTimeout)


def _key(obj: JSON) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name')}"


class _Follower:
    """Keeps a local copy of the watched objects, resuming from the last resourceVersion."""

    def __init__(self, kube: Kube, kind: Kind, namespace: str | None, field_selector: str,
                 label_selector: str, deadline: float) -> None:
        self.kube = kube
        self.kind = kind
        self.namespace = namespace
        self.field_selector = field_selector
        self.label_selector = label_selector
        self.deadline = deadline
        self.objects: dict[str, JSON] = {}
        self.rv = ""
        self.relist = True
        self.relists = 0
        self.reconnects = 0

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, evaluate: Callable[[dict[str, JSON]], T | None]) -> tuple[bool, T | None]:
        """Follow until ``evaluate`` returns non-None (True, value) or the deadline (False, None)."""
        while True:
            if self.relist:
                items, self.rv = self.kube.list_with_version(
                    self.kind, self.namespace, field_selector=self.field_selector,
                    label_selector=self.label_selector)
                self.objects = {_key(o): o for o in items}
                self.relist = False
                self.relists += 1
                value = evaluate(self.objects)
                if value is not None:
                    return True, value
            remaining = self.remaining()
            if remaining <= 0:
                return False, None
            try:
                for event in self.kube.watch(
                        self.kind, self.namespace, resource_version=self.rv,
                        field_selector=self.field_selector, label_selector=self.label_selector,
                        timeout_seconds=max(1, math.ceil(remaining)), read_timeout=remaining + 0.1,
                        deadline=self.deadline):
                    obj = event.get("object") or {}
                    rv = (obj.get("metadata") or {}).get("resourceVersion")
                    if rv:
                        self.rv = str(rv)
                    etype = event.get("type")
                    if etype == "BOOKMARK":
                        continue
                    if etype == "DELETED":
                        self.objects.pop(_key(obj), None)
                    elif etype in ("ADDED", "MODIFIED"):
                        self.objects[_key(obj)] = obj
                    value = evaluate(self.objects)
                    if value is not None:
                        return True, value
                    if self.remaining() <= 0:
                        return False, None
            except ApiException as exc:
                if api_code(exc) == 410:  # too old: list again
                    self.relist = True
                    continue
                raise
            except Exception as exc:
                if self.remaining() <= 0 and _reconnectable(exc):
                    return False, None  # a read timeout at the deadline: just expired
                raise


def watch_until(
    kube: Kube,
    kind: Kind | str,
    namespace: str | None,
    evaluate: Callable[[dict[str, JSON]], T | None],
    *,
    timeout: float,
    what: str,
    name: str | None = None,
    label_selector: str = "",
    field_selector: str = "",
    describe: Callable[[dict[str, JSON]], str] | None = None,
) -> T:
    """Follow ``kind`` objects (one named object, or a selection) until ``evaluate(objects)`` returns
    a value other than None; ``objects`` maps ``<ns>/<name>`` to the latest copy.

    Raises :class:`WaitTimeout` at the deadline, with ``describe(objects)`` (default: the summary of
    the named object) and the named object's last events in the message."""
    k = kind_of(kind)
    if name is not None and not field_selector:
        field_selector = f"metadata.name={name}"
    deadline = time.monotonic() + timeout
    follower = _Follower(kube, k, namespace, field_selector, label_selector, deadline)
    note = ""
    retry = tenacity.Retrying(
        retry=tenacity.retry_if_exception(_reconnectable),
        stop=lambda rs: time.monotonic() >= deadline,
        wait=tenacity.wait_exponential_jitter(multiplier=0.05, max=2.0, jitter=0.05),
        reraise=True,
    )
    try:
        for attempt in retry:
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    follower.reconnects += 1
                done, value = follower.run(evaluate)
                if done:
                    return value  # type: ignore[return-value]
    except Exception as exc:
        if not _reconnectable(exc):
            raise
        # The API failed as the deadline came: one last list (with the client's own retries) tells
        # what the condition is now; when even that fails, the wait could not observe anything
        # definitive and the suite could not get past the API: an infrastructure error, not a timeout.
        try:
            follower.relist = True
            done, value = follower.run(evaluate)
        except Exception as last:
            if not _reconnectable(last):
                raise
            raise InfrastructureError(
                f"waiting for {what} on {ref_of(k, namespace, name)}: the API was unreachable at the "
                f"deadline ({timeout:.1f}s): {describe_error(last)}") from last
        if done:
            return value  # type: ignore[return-value]
        note = f"the API failed at the deadline ({describe_error(exc)}); a last list succeeded"
    if describe is not None:
        seen = describe(follower.objects)
    else:
        seen = summarize(follower.objects.get(f"{namespace or ''}/{name}")) if name else \
            f"{len(follower.objects)} object(s): " + "; ".join(
                f"{key} {summarize(o)}" for key, o in sorted(follower.objects.items())[:5])
    raise WaitTimeout(what, ref_of(k, namespace, name), seen, last_events(kube, namespace, k.kind, name),
                      timeout, note)


def wait_for(kube: Kube, kind: Kind | str, namespace: str | None, name: str,
             predicate: Callable[[JSON], bool], timeout: float, what: str) -> JSON:
    """The object once ``predicate(obj)`` holds (the object exists), else :class:`WaitTimeout`."""
    key = f"{namespace or ''}/{name}"

    def evaluate(objects: dict[str, JSON]) -> JSON | None:
        obj = objects.get(key)
        return obj if obj is not None and predicate(obj) else None

    return watch_until(kube, kind, namespace, evaluate, timeout=timeout, what=what, name=name)


def wait_gone(kube: Kube, kind: Kind | str, namespace: str | None, name: str, timeout: float,
              what: str | None = None) -> None:
    """Return once the object no longer exists, else :class:`WaitTimeout`."""
    key = f"{namespace or ''}/{name}"
    k = kind_of(kind)
    watch_until(kube, k, namespace, lambda objs: True if key not in objs else None, timeout=timeout,
                what=what or f"{ref_of(k, namespace, name)} to be deleted", name=name)


# --------------------------------------------------------------------------------------------------
# The dryRun probe (the webhook reads IP CRs from an informer cache)


@dataclass
class DryRunResult:
    expect: Literal["denied", "admitted"]
    reached: bool
    attempts: int
    elapsed_s: float
    #: ``admitted`` or the last error as ``HTTP <code> <reason>: <message>``.
    last: str

    def warning(self, ip: str, subnet: str) -> str:
        return (f"dryRun probe for {ip} in {subnet} was not {self.expect} within {self.elapsed_s:.1f}s "
                f"({self.attempts} attempts; last answer: {self.last}); continuing anyway")


def dry_run_answer(kube: Kube, namespace: str, ip: str, subnet: str | None, *, webhook_name: str,
                   name: str) -> tuple[Literal["admitted", "denied", "other"], str]:
    """One ``dryRun=All`` plain-pod create requesting ``ip``: admitted, denied by the webhook
    (for ``ip``), or other (any other error)."""
    from .assertions import is_webhook_denial  # assertions imports waits

    body = templates.render_pod(name=name, namespace=namespace, ip=ip, subnet=subnet, run_id=kube.run_id)
    try:
        kube.create_pod(namespace, body, dry_run=True)
    except ApiException as exc:
        text = describe_error(exc)
        if api_code(exc) in (400, 403) and is_webhook_denial(text, webhook_name, ip):
            return "denied", text
        return "other", text
    return "admitted", "admitted"


def wait_dry_run(kube: Kube, namespace: str, ip: str, subnet: str | None,
                 expect: Literal["denied", "admitted"], timeout: float, *,
                 webhook_name: str = DEFAULT_WEBHOOK, name: str | None = None) -> DryRunResult:
    """Re-issue a ``dryRun=All`` plain pod requesting ``ip`` until the answer is ``expect``.

    Paced by exponential back-off (tenacity), bounded by ``timeout`` (the caller passes
    ``settings.timeout(30, minimum=0.5)``). Never raises on expiry: the result says whether it was
    reached, so the caller warns and continues."""
    if expect not in ("denied", "admitted"):
        raise ValueError(f"expect must be 'denied' or 'admitted', not {expect!r}")
    probe_name = name or f"dry-{ip.replace('.', '-').replace(':', '-')}"[:40].rstrip("-")
    start = time.monotonic()
    attempts = 0
    last = ""

    def once() -> bool:
        nonlocal attempts, last
        attempts += 1
        answer, last = dry_run_answer(kube, namespace, ip, subnet, webhook_name=webhook_name, name=probe_name)
        return answer == expect

    retry = tenacity.Retrying(
        retry=tenacity.retry_if_result(lambda ok: not ok),
        stop=tenacity.stop_after_delay(timeout),
        wait=tenacity.wait_exponential(multiplier=0.05, min=0.05, max=1.0),
        retry_error_callback=lambda rs: False,
    )
    reached = bool(retry(once))
    return DryRunResult(expect=expect, reached=reached, attempts=attempts,
                        elapsed_s=time.monotonic() - start, last=last)
