"""The suite's only door to the cluster: a thin, retrying Kubernetes API client working on JSON dicts.

Scenarios and verbs talk to the cluster exclusively through :class:`Kube` (never through a backend).
Every request carries the user agent ``kovc/<version>``; every object the suite creates carries the
label ``kovc.io/run=<run id>``. Transient failures (HTTP 500/502/503/504, 429 honouring
``Retry-After``, dropped connections, timeouts) are retried with tenacity; a create that is retried
after a dropped connection and then meets ``409 AlreadyExists`` succeeds when the stored object
carries the create's own one-time id (annotation ``kovc.io/create-id``: that earlier attempt did reach the
server); any other 409 is a real conflict, even with an object of the same run.

All objects are plain JSON dicts (as the API server sends them), whatever the kind: the same code
then works for core kinds, KubeVirt and Kube-OVN custom resources. Errors are the kubernetes client's
own :class:`~kubernetes.client.exceptions.ApiException` subclasses with ``status``, ``reason`` and
``body`` preserved; :func:`api_message` and :func:`api_reason` read the ``Status`` inside.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import logging
import re
import secrets
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import tenacity
import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException

from . import CREATED_ANNOTATION, RUN_LABEL, USER_AGENT

#: A one-time id on every object the suite creates: a retried create that meets 409 AlreadyExists knows
#: by it whether the stored object is its own earlier attempt.
CREATE_ID_ANNOTATION = "kovc.io/create-id"

JSON = dict[str, Any]
JSONList = list[JSON]
T = TypeVar("T")

log = logging.getLogger(__name__)

#: HTTP codes retried for any request.
RETRYABLE_CODES = frozenset({429, 500, 502, 503, 504})
#: Upper bound of a single ``Retry-After`` honoured (seconds).
MAX_RETRY_AFTER = 10.0
#: Connect timeout of every request, seconds; read timeouts are per call.
CONNECT_TIMEOUT = 10.0
#: Read timeout of non-watch requests, seconds.
READ_TIMEOUT = 60.0


@dataclass(frozen=True)
class Kind:
    """One API resource the suite touches."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
            if sub:
                base += f"/{sub}"
        return base


NAMESPACES = Kind("", "v1", "namespaces", "Namespace", False)
PODS = Kind("", "v1", "pods", "Pod", True)
EVENTS = Kind("", "v1", "events", "Event", True)
NODES = Kind("", "v1", "nodes", "Node", False)
DEPLOYMENTS = Kind("apps", "v1", "deployments", "Deployment", True)
VWCS = Kind("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations",
            "ValidatingWebhookConfiguration", False)
VMS = Kind("kubevirt.io", "v1", "virtualmachines", "VirtualMachine", True)
VMIS = Kind("kubevirt.io", "v1", "virtualmachineinstances", "VirtualMachineInstance", True)
VMIMS = Kind("kubevirt.io", "v1", "virtualmachineinstancemigrations", "VirtualMachineInstanceMigration", True)
VM_CLONES = Kind("clone.kubevirt.io", "v1beta1", "virtualmachineclones", "VirtualMachineClone", True)
IPS = Kind("kubeovn.io", "v1", "ips", "IP", False)
SUBNETS = Kind("kubeovn.io", "v1", "subnets", "Subnet", False)
VPCS = Kind("kubeovn.io", "v1", "vpcs", "Vpc", False)
#: Multus's NetworkAttachmentDefinition (served only where Multus is installed).
NADS = Kind("k8s.cni.cncf.io", "v1", "network-attachment-definitions", "NetworkAttachmentDefinition", True)

KINDS: dict[str, Kind] = {
    k.kind: k for k in (NAMESPACES, PODS, EVENTS, NODES, DEPLOYMENTS, VWCS, VMS, VMIS, VMIMS, VM_CLONES,
                        IPS, SUBNETS, VPCS, NADS)
}
#: Short aliases accepted wherever a kind is named by string.
ALIASES: dict[str, Kind] = {
    "ns": NAMESPACES, "namespace": NAMESPACES, "pod": PODS, "event": EVENTS, "node": NODES,
    "deployment": DEPLOYMENTS, "vwc": VWCS, "vm": VMS, "vmi": VMIS, "vmim": VMIMS, "vmclone": VM_CLONES,
    "ip": IPS, "subnet": SUBNETS, "vpc": VPCS, "nad": NADS, "net-attach-def": NADS,
}

VM_ACTIONS = ("start", "stop", "restart", "migrate")
SUBRESOURCE_PATH = "/apis/subresources.kubevirt.io/v1/namespaces/{ns}/virtualmachines/{name}/{action}"


def kind_of(kind: Kind | str) -> Kind:
    if isinstance(kind, Kind):
        return kind
    found = KINDS.get(kind) or ALIASES.get(kind.lower())
    if found is None:
        raise ValueError(f"unknown kind {kind!r}: known kinds are {', '.join(sorted(KINDS))}")
    return found


# --------------------------------------------------------------------------------------------------
# Errors


def api_status(exc: BaseException) -> JSON:
    """The ``Status`` object inside an ApiException body ({} when the body is not one)."""
    body = getattr(exc, "body", None)
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and body.strip().startswith("{"):
        try:
            data = json.loads(body)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}
    return {}


def api_message(exc: BaseException) -> str:
    """The server's message for a failed request (Status.message, else the raw body or reason)."""
    status = api_status(exc)
    if status.get("message"):
        return str(status["message"])
    body = getattr(exc, "body", None)
    if body:
        return body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    return str(getattr(exc, "reason", "") or exc)


def api_reason(exc: BaseException) -> str:
    """The Status reason (``AlreadyExists``, ``Forbidden``…), else the HTTP reason phrase."""
    return str(api_status(exc).get("reason") or getattr(exc, "reason", "") or "")


def api_code(exc: BaseException) -> int:
    return int(getattr(exc, "status", 0) or 0)


_SSL_DETAIL = re.compile(r"\[SSL: [A-Z_]+\] (?P<text>[^(\n]*?)\s*(?:\(_ssl\.c:\d+\))?\s*$", re.MULTILINE)


def transport_error(exc: BaseException) -> str | None:
    """What went wrong below HTTP — TLS (``TLS: certificate verify failed: self-signed certificate``) or
    the connection — for an error that never got an HTTP answer; None when the server answered.

    The kubernetes client turns a urllib3 SSL or connection failure into ``ApiException(status=0)``
    whose reason holds the original text; ``str()`` of it starts with a bare ``(0)``."""
    if isinstance(exc, ApiException):
        if api_code(exc):
            return None
        text = str(getattr(exc, "reason", "") or "")
    else:
        text = str(exc)
    match = _SSL_DETAIL.search(text)
    if match:
        return f"TLS: {match.group('text').strip()}"
    if "SSLError" in text or isinstance(exc, (urllib3.exceptions.SSLError, ssl.SSLError)):
        lines = [ln for ln in text.splitlines() if ln.strip() and ln.strip() != "SSLError"]
        return f"TLS: {lines[-1].strip() if lines else 'handshake failed'}"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else type(exc).__name__


def describe_error(exc: BaseException) -> str:
    """One line: ``HTTP 403 Forbidden: <message>``, or for a request that got no HTTP answer what
    failed below it (``no answer from the API: TLS: certificate verify failed: …``)."""
    if isinstance(exc, ApiException):
        if not api_code(exc):
            return f"no answer from the API: {transport_error(exc)}"
        return f"HTTP {api_code(exc)} {api_reason(exc)}: {api_message(exc)}"
    return f"{type(exc).__name__}: {exc}"


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, ApiException) and api_code(exc) == 404


def is_transient(exc: BaseException) -> bool:
    """Errors worth retrying for any request: server overload/failure and broken connections."""
    if isinstance(exc, ApiException):
        code = api_code(exc)
        # status 0: the client could not even get a response (SSL error, ...)
        return code in RETRYABLE_CODES or code == 0
    return isinstance(exc, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError))


class InfrastructureError(RuntimeError):
    """The suite could not get past the path to the cluster (API 5xx, throttling, dropped connections,
    timeouts) — no answer about conformance: the requirement is reported as **error**, never failed."""


def is_infrastructure(exc: BaseException) -> bool:
    """Whether ``exc`` is a failure of the path to the cluster rather than an answer from it: an
    :class:`InfrastructureError`, or a transient error (:func:`is_transient`) that outlived the retries.
    An expired wait (``waits.WaitTimeout``, a TimeoutError) is an observation, not one of these."""
    if isinstance(exc, InfrastructureError):
        return True
    from .waits import WaitTimeout  # waits imports kube

    return is_transient(exc) and not isinstance(exc, WaitTimeout)


def _retry_after(exc: BaseException | None) -> float | None:
    headers = getattr(exc, "headers", None)
    if not headers:
        return None
    try:
        value = headers.get("Retry-After")
    except AttributeError:
        return None
    if value is None:
        return None
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER)
    except ValueError:
        return None


class _WaitRetryAfter(tenacity.wait.wait_base):
    """Honour ``Retry-After`` when the server sent one, else exponential back-off with jitter."""

    def __init__(self, fallback: tenacity.wait.wait_base) -> None:
        self.fallback = fallback

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        after = _retry_after(exc)
        if after is not None:
            return after
        return float(self.fallback(retry_state))


def retrying(
    is_retryable: Callable[[BaseException], bool] = is_transient,
    *,
    attempts: int = 8,
    max_delay: float = 60.0,
    max_wait: float = 4.0,
) -> tenacity.Retrying:
    """The suite's retry policy: bounded attempts and total delay, Retry-After honoured."""
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_retryable),
        stop=tenacity.stop_after_attempt(attempts) | tenacity.stop_after_delay(max_delay),
        wait=_WaitRetryAfter(tenacity.wait_exponential_jitter(multiplier=0.05, max=max_wait, jitter=0.1)),
        reraise=True,
        before_sleep=lambda rs: log.debug("retrying after %s",
                                          rs.outcome.exception() if rs.outcome else None),
    )


# --------------------------------------------------------------------------------------------------
# The client


class Kube:
    """A retrying client on JSON dicts, built from a kubeconfig (and optional context)."""

    def __init__(
        self,
        kubeconfig: str,
        context: str | None,
        *,
        run_id: str,
        user_agent: str = USER_AGENT,
        pool_size: int = 32,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.context = context
        self.run_id = run_id
        configuration = k8s_client.Configuration()
        k8s_config.load_kube_config(config_file=kubeconfig, context=context,  # type: ignore[no-untyped-call]
                                    client_configuration=configuration, persist_config=False)
        configuration.connection_pool_maxsize = pool_size
        configuration.retries = False
        self.api: k8s_client.ApiClient = k8s_client.ApiClient(configuration)
        self.api.user_agent = user_agent
        self._lock = threading.Lock()

    def close(self) -> None:
        self.api.close()  # type: ignore[no-untyped-call]

    # ---- raw requests --------------------------------------------------------------------------

    def _serialize(self, method: str, path: str, query: list[tuple[str, Any]] | None,
                   body: Any, content_type: str | None) -> tuple[str, str, dict[str, str], Any]:
        headers: dict[str, str] = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        method_, url, headers_, body_, _post = self.api.param_serialize(
            method=method, resource_path=path, query_params=query or [], header_params=headers,
            body=body, auth_settings=["BearerToken"])
        return method_, url, headers_, body_

    def _once(self, method: str, path: str, *, query: list[tuple[str, Any]] | None = None,
              body: Any = None, content_type: str | None = None, raw: bool = False,
              read_timeout: float = READ_TIMEOUT) -> Any:
        method_, url, headers, body_ = self._serialize(method, path, query, body, content_type)
        resp = self.api.call_api(method_, url, header_params=headers, body=body_,
                                 _request_timeout=(CONNECT_TIMEOUT, read_timeout))
        data = resp.read()  # type: ignore[no-untyped-call]
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data or "")
        if not 200 <= resp.status <= 299:
            ApiException.from_response(http_resp=resp, body=text, data=None)  # raises
        if raw:
            return text
        if not text:
            return {}
        try:
            return json.loads(text)
        except ValueError:
            return text

    def request(self, method: str, path: str, *, query: list[tuple[str, Any]] | None = None,
                body: Any = None, content_type: str | None = None, raw: bool = False,
                retry: Callable[[BaseException], bool] = is_transient) -> Any:
        """One API request with the retry policy; returns the decoded JSON (or text when ``raw``)."""
        for attempt in retrying(retry):
            with attempt:
                return self._once(method, path, query=query, body=body, content_type=content_type, raw=raw)
        raise AssertionError("unreachable")  # pragma: no cover

    # ---- generic verbs -------------------------------------------------------------------------

    def _labelled(self, body: JSON, *, marked: bool = False) -> JSON:
        body = json.loads(json.dumps(body))  # never mutate the caller's manifest
        labels = body.setdefault("metadata", {}).setdefault("labels", {}) or {}
        labels[RUN_LABEL] = self.run_id
        body["metadata"]["labels"] = labels
        if marked:  # namespaces and cluster-scoped objects: kovc's creation marker (see kovc cleanup)
            annotations = body["metadata"].setdefault("annotations", {}) or {}
            annotations[CREATED_ANNOTATION] = self.run_id
            body["metadata"]["annotations"] = annotations
        return body

    def create(self, kind: Kind | str, namespace: str | None, body: JSON, *, dry_run: bool = False) -> JSON:
        """Create an object (labelled with the run id); ``dry_run`` sends ``dryRun=All``.

        A create retried after a transient failure that meets 409 AlreadyExists returns the stored
        object when it carries this create's one-time id (the earlier attempt reached the server); an
        object of the same name stored by anything else - this run included - is a real conflict."""
        k = kind_of(kind)
        body = self._labelled(body, marked=not k.namespaced)
        create_id = secrets.token_hex(8)
        if not dry_run:
            annotations = body["metadata"].setdefault("annotations", {}) or {}
            annotations[CREATE_ID_ANNOTATION] = create_id
            body["metadata"]["annotations"] = annotations
        body.setdefault("apiVersion", k.api_version)
        body.setdefault("kind", k.kind)
        name = body["metadata"].get("name")
        if not name:
            raise ValueError(f"{k.kind} manifest without metadata.name: the suite never uses generateName")
        query = [("dryRun", "All")] if dry_run else []
        path = k.path(namespace)
        attempts = 0
        for attempt in retrying():
            with attempt:
                attempts += 1
                try:
                    return dict(self._once("POST", path, query=query, body=body))
                except ApiException as exc:
                    if api_code(exc) == 409 and attempts > 1 and not dry_run:
                        stored = self.get(k, namespace, name)
                        if stored is not None and (stored["metadata"].get("annotations") or {}).get(
                                CREATE_ID_ANNOTATION) == create_id:
                            log.info("create of %s %s/%s retried: already stored by this run",
                                     k.kind, namespace, name)
                            return stored
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def get(self, kind: Kind | str, namespace: str | None, name: str) -> JSON | None:
        """The object, or None when it does not exist."""
        k = kind_of(kind)
        try:
            return dict(self.request("GET", k.path(namespace, name)))
        except ApiException as exc:
            if is_not_found(exc):
                return None
            raise

    def require(self, kind: Kind | str, namespace: str | None, name: str) -> JSON:
        obj = self.get(kind, namespace, name)
        if obj is None:
            k = kind_of(kind)
            where = f"{namespace}/{name}" if namespace else name
            raise AssertionError(f"expected {k.kind} {where} to exist; it does not")
        return obj

    def list_with_version(self, kind: Kind | str, namespace: str | None = None, *, label_selector: str = "",
                          field_selector: str = "") -> tuple[JSONList, str]:
        """Items and the list's resourceVersion (to start a watch from)."""
        k = kind_of(kind)
        query: list[tuple[str, Any]] = []
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        data = self.request("GET", k.path(namespace), query=query)
        items = [dict(i) for i in data.get("items") or []]
        for item in items:  # list items omit apiVersion/kind
            item.setdefault("apiVersion", k.api_version)
            item.setdefault("kind", k.kind)
        return items, str((data.get("metadata") or {}).get("resourceVersion") or "")

    def list(self, kind: Kind | str, namespace: str | None = None, *, label_selector: str = "",
             field_selector: str = "") -> JSONList:
        return self.list_with_version(kind, namespace, label_selector=label_selector,
                                      field_selector=field_selector)[0]

    def delete(self, kind: Kind | str, namespace: str | None, name: str, *,
               grace_period: int | None = None, propagation: str | None = "Background") -> bool:
        """Delete; False when the object was already gone (404, also on a retried delete)."""
        k = kind_of(kind)
        body: JSON = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace_period is not None:
            body["gracePeriodSeconds"] = grace_period
        if propagation:
            body["propagationPolicy"] = propagation
        try:
            self.request("DELETE", k.path(namespace, name), body=body)
        except ApiException as exc:
            if is_not_found(exc):
                return False
            raise
        return True

    def patch(self, kind: Kind | str, namespace: str | None, name: str, patch: Any, *,
              patch_type: str = "merge") -> JSON:
        """Patch with ``merge`` (merge-patch), ``json`` (JSON patch) or ``strategic``."""
        k = kind_of(kind)
        content_type = {
            "merge": "application/merge-patch+json",
            "json": "application/json-patch+json",
            "strategic": "application/strategic-merge-patch+json",
        }[patch_type]
        return dict(self.request("PATCH", k.path(namespace, name), body=patch, content_type=content_type))

    def watch(self, kind: Kind | str, namespace: str | None, *, resource_version: str,
              field_selector: str = "", label_selector: str = "", timeout_seconds: int = 30,
              read_timeout: float | None = None, deadline: float | None = None) -> Iterator[JSON]:
        """One watch request (``kubernetes.watch.Watch``) from ``resource_version``.

        Yields ``{"type", "object"}`` events; ends when the server closes the stream after
        ``timeout_seconds``, or at ``deadline`` (``time.monotonic()``), whichever comes first: the
        server's ``timeoutSeconds`` is whole seconds and a read timeout counts from the last byte, so
        a wait of 1.5 s would otherwise end after 2 s (the connection is shut down from a timer at the
        deadline). Raises ApiException(410) when the version is too old (relist), urllib3 errors on a
        broken connection or when no byte arrives within ``read_timeout``."""
        k = kind_of(kind)
        path = k.path(namespace)
        cut = threading.Event()
        timers: list[threading.Timer] = []

        def shut(response: Any) -> None:
            cut.set()
            try:
                response.shutdown()
            except Exception:  # already closed or finished: nothing left to cut
                pass

        def list_fn(*, watch: bool = True, _preload_content: bool = False,
                    resource_version: str = "", timeout_seconds: int = 30) -> Any:
            query: list[tuple[str, Any]] = [("watch", "true"), ("allowWatchBookmarks", "true"),
                                            ("timeoutSeconds", timeout_seconds)]
            if resource_version:
                query.append(("resourceVersion", resource_version))
            if field_selector:
                query.append(("fieldSelector", field_selector))
            if label_selector:
                query.append(("labelSelector", label_selector))
            method_, url, headers, _ = self._serialize("GET", path, query, None, None)
            rt = read_timeout if read_timeout is not None else timeout_seconds + 5
            resp = self.api.call_api(method_, url, header_params=headers,
                                     _request_timeout=(CONNECT_TIMEOUT, rt))
            if not 200 <= resp.status <= 299:
                data = resp.read()  # type: ignore[no-untyped-call]
                text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
                ApiException.from_response(http_resp=resp, body=text, data=None)
            response = resp.response
            if deadline is not None and hasattr(response, "shutdown"):  # urllib3 >= 2.3
                timer = threading.Timer(max(deadline - time.monotonic(), 0.0), shut, args=(response,))
                timer.daemon = True
                timers.append(timer)
                timer.start()
            return response

        w = k8s_watch.Watch()  # type: ignore[no-untyped-call]
        w._api_client = self.api  # decode errors with our client, not a fresh default one
        try:
            stream = w.stream(list_fn, resource_version=resource_version, timeout_seconds=timeout_seconds)  # type: ignore[no-untyped-call]
            for event in stream:
                if cut.is_set():
                    return
                if not isinstance(event, dict):
                    continue
                obj = event.get("raw_object", event.get("object"))
                yield {"type": event.get("type"), "object": obj}
        except Exception:
            if cut.is_set():  # the read the deadline interrupted
                return
            raise
        finally:
            for timer in timers:
                timer.cancel()
            w.stop()  # type: ignore[no-untyped-call]

    # ---- typed helpers -------------------------------------------------------------------------

    def create_namespace(self, name: str, labels: dict[str, str] | None = None) -> JSON:
        return self.create(NAMESPACES, None, {"metadata": {"name": name, "labels": dict(labels or {})}})

    def delete_namespace(self, name: str) -> bool:
        return self.delete(NAMESPACES, None, name)

    def create_pod(self, namespace: str, body: JSON, *, dry_run: bool = False) -> JSON:
        return self.create(PODS, namespace, body, dry_run=dry_run)

    def get_pod(self, namespace: str, name: str) -> JSON | None:
        return self.get(PODS, namespace, name)

    def list_pods(self, namespace: str | None = None, *, label_selector: str = "") -> JSONList:
        return self.list(PODS, namespace, label_selector=label_selector)

    def delete_pod(self, namespace: str, name: str, *, grace_period: int | None = None) -> bool:
        return self.delete(PODS, namespace, name, grace_period=grace_period)

    def pod_log(self, namespace: str, name: str, container: str | None = None) -> str:
        query = [("container", container)] if container else []
        return str(self.request("GET", PODS.path(namespace, name, "log"), query=query, raw=True))

    def events_for(self, namespace: str | None, kind: str, name: str, uid: str | None = None) -> JSONList:
        """Events whose involvedObject is this object (kind and name, and uid when given), oldest first."""
        if not namespace:
            return []
        out: JSONList = []
        for ev in self.list(EVENTS, namespace):
            inv = ev.get("involvedObject") or ev.get("regarding") or {}
            if inv.get("name") != name or (inv.get("kind") and inv.get("kind") != kind):
                continue
            if uid and inv.get("uid") and inv.get("uid") != uid:
                continue
            out.append(ev)
        out.sort(key=lambda e: (str(e.get("lastTimestamp") or e.get("eventTime") or
                                    (e.get("metadata") or {}).get("creationTimestamp") or ""),
                                int(str((e.get("metadata") or {}).get("resourceVersion") or 0) or 0)))
        return out

    def create_vm(self, namespace: str, body: JSON) -> JSON:
        return self.create(VMS, namespace, body)

    def get_vm(self, namespace: str, name: str) -> JSON | None:
        return self.get(VMS, namespace, name)

    def patch_vm(self, namespace: str, name: str, patch: JSON) -> JSON:
        return self.patch(VMS, namespace, name, patch)

    def delete_vm(self, namespace: str, name: str) -> bool:
        return self.delete(VMS, namespace, name)

    def get_vmi(self, namespace: str, name: str) -> JSON | None:
        return self.get(VMIS, namespace, name)

    def create_vmim(self, namespace: str, name: str, vmi: str) -> JSON:
        return self.create(VMIMS, namespace, {"metadata": {"name": name}, "spec": {"vmiName": vmi}})

    def get_vmim(self, namespace: str, name: str) -> JSON | None:
        return self.get(VMIMS, namespace, name)

    def create_vm_clone(self, namespace: str, name: str, source: str, target: str) -> JSON:
        """A VirtualMachineClone of VM ``source`` into ``target``, without annotationFilters."""
        body = {"metadata": {"name": name},
                "spec": {"source": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": source},
                         "target": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": target}}}
        return self.create(VM_CLONES, namespace, body)

    def api_group_served(self, group: str, version: str | None = None) -> bool:
        """Whether discovery lists ``group`` (and ``version`` when given)."""
        data = self.request("GET", "/apis")
        for g in data.get("groups") or []:
            if g.get("name") == group:
                if version is None:
                    return True
                return any(v.get("version") == version for v in g.get("versions") or [])
        return False

    def clone_api_available(self) -> bool:
        return self.api_group_served(VM_CLONES.group, VM_CLONES.version)

    def get_ip(self, name: str) -> JSON | None:
        return self.get(IPS, None, name)

    def list_ips(self) -> JSONList:
        return self.list(IPS)

    def get_subnet(self, name: str) -> JSON | None:
        return self.get(SUBNETS, None, name)

    def list_subnets(self) -> JSONList:
        return self.list(SUBNETS)

    def create_subnet(self, body: JSON) -> JSON:
        return self.create(SUBNETS, None, body)

    def delete_subnet(self, name: str) -> bool:
        return self.delete(SUBNETS, None, name)

    def create_vpc(self, body: JSON) -> JSON:
        return self.create(VPCS, None, body)

    def delete_vpc(self, name: str) -> bool:
        return self.delete(VPCS, None, name)

    def list_vwcs(self) -> JSONList:
        return self.list(VWCS)

    def list_nodes(self) -> JSONList:
        return self.list(NODES)

    def list_deployments(self, namespace: str | None = None) -> JSONList:
        return self.list(DEPLOYMENTS, namespace)

    def schedulable_vm_nodes(self) -> builtins.list[str]:
        """Nodes labelled ``kubevirt.io/schedulable=true`` without NoSchedule/NoExecute taints."""
        out: builtins.list[str] = []
        for node in self.list_nodes():
            labels = node["metadata"].get("labels") or {}
            if labels.get("kubevirt.io/schedulable") != "true":
                continue
            taints = (node.get("spec") or {}).get("taints") or []
            if any(t.get("effect") in ("NoSchedule", "NoExecute") for t in taints):
                continue
            if (node.get("spec") or {}).get("unschedulable"):
                continue
            out.append(node["metadata"]["name"])
        return sorted(out)

    def vm_state(self, namespace: str, name: str, *, migrations: bool = False) -> VMState:
        """What a VM action can change, read now (the VM, its VMI and, with ``migrations``, its VMIMs)."""
        vm = self.get(VMS, namespace, name)
        vmi = self.get(VMIS, namespace, name)
        vmims: frozenset[str] = frozenset()
        if migrations:
            vmims = frozenset(str(m["metadata"]["name"]) for m in self.list(VMIMS, namespace)
                              if (m.get("spec") or {}).get("vmiName") == name)
        return VMState.of(vm, vmi, vmims)

    def vm_action(self, namespace: str, name: str, action: str, body: JSON | None = None, *,
                  vmi_uid: str | None = None) -> None:
        """PUT ``subresources.kubevirt.io/v1 …/virtualmachines/<name>/<action>`` (start, stop, restart,
        migrate), exactly once in effect.

        Transient errors, "stop/start already underway" and patch conflicts (409) are retried, but an
        attempt whose answer was lost (a dropped connection, a 5xx after the write) may have been
        applied: every retry first reads the VM and stops when the action already took effect (see
        :meth:`VMState.shows`), so a restart is never issued twice. ``vmi_uid`` is the VMI a restart
        or stop is about (default: the one read before the first attempt)."""
        if action not in VM_ACTIONS:
            raise ValueError(f"unknown VM action {action!r}: expected one of {', '.join(VM_ACTIONS)}")
        path = SUBRESOURCE_PATH.format(ns=namespace, name=name, action=action)
        before = self.vm_state(namespace, name, migrations=action == "migrate")
        if vmi_uid:
            before = dataclasses.replace(before, vmi_uid=vmi_uid)

        def retryable(exc: BaseException) -> bool:
            if is_transient(exc):
                return True
            if isinstance(exc, ApiException) and api_code(exc) == 409:
                msg = api_message(exc).lower()
                # Only the transient 409s: a pending stop/start, or a stale object in virt-api's patch.
                # "VM is already running" / "VM is not running" are final answers, never retried.
                return "already underway" in msg or "has been modified" in msg
            return False

        for attempt in retrying(retryable):
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    now = self.vm_state(namespace, name, migrations=action == "migrate")
                    if now.shows(action, before):
                        log.info("%s of VM %s/%s retried: the earlier attempt took effect", action,
                                 namespace, name)
                        return
                self._once("PUT", path, body=body if body is not None else {})
                return


def run_strategy(vm: JSON) -> str:
    """The VM's run strategy (``spec.runStrategy``, else the deprecated ``spec.running``)."""
    spec = vm.get("spec") or {}
    if spec.get("runStrategy"):
        return str(spec["runStrategy"])
    return "Always" if spec.get("running") else "Halted"


@dataclass(frozen=True)
class VMState:
    """What a VM action changes: the run strategy, pending state-change requests, the VMI's uid and
    whether it is final or deleting, and the names of the VMI's migrations."""

    exists: bool
    strategy: str = ""
    #: ``(action, uid)`` of ``status.stateChangeRequests`` (uid "" when the request names none).
    requests: tuple[tuple[str, str], ...] = ()
    vmi_uid: str | None = None
    vmi_active: bool = False
    vmi_deleting: bool = False
    migrations: frozenset[str] = frozenset()

    @classmethod
    def of(cls, vm: JSON | None, vmi: JSON | None, migrations: frozenset[str] = frozenset()) -> VMState:
        if vm is None:
            return cls(exists=False)
        requests = tuple((str(r.get("action") or ""), str(r.get("uid") or ""))
                         for r in (vm.get("status") or {}).get("stateChangeRequests") or [])
        uid = str(vmi["metadata"].get("uid") or "") if vmi is not None else None
        deleting = vmi is not None and bool(vmi["metadata"].get("deletionTimestamp"))
        active = vmi is not None and not deleting and (vmi.get("status") or {}).get("phase") not in (
            "Succeeded", "Failed")
        return cls(exists=True, strategy=run_strategy(vm), requests=requests, vmi_uid=uid, vmi_active=active,
                   vmi_deleting=deleting, migrations=migrations)

    def shows(self, action: str, before: VMState) -> bool:
        """Whether this state (read after an attempt) shows ``action`` applied since ``before``.

        restart: a ``Stop`` request for the earlier VMI is pending, or that VMI is being deleted, gone
        or replaced; stop: the strategy became ``Halted``, or a new ``Stop`` request for the
        earlier VMI is pending; start: the strategy left ``Halted``, a new ``Start`` request is
        pending, or another VMI is active; migrate: a new VirtualMachineInstanceMigration exists."""
        if not (self.exists and before.exists):
            return False
        new_requests = set(self.requests) - set(before.requests)
        if action == "restart":
            if before.vmi_uid is None:
                return False  # nothing to restart: the server answers 409, never retried
            return ("Stop", before.vmi_uid) in self.requests or self.vmi_uid != before.vmi_uid \
                or (self.vmi_deleting and not before.vmi_deleting)
        if action == "stop":
            if before.strategy != "Halted" and self.strategy == "Halted":
                return True
            return before.vmi_uid is not None and ("Stop", before.vmi_uid) in new_requests
        if action == "start":
            if before.strategy == "Halted" and self.strategy != "Halted":
                return True
            if any(a == "Start" for a, _ in new_requests):
                return True
            return self.vmi_active and self.vmi_uid != before.vmi_uid
        if action == "migrate":
            return bool(self.migrations - before.migrations)
        return False
