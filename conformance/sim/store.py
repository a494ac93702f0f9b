"""In-memory object store of the simulated cluster.

Everything the simulated cluster knows lives here: objects as plain JSON dicts, one global
resourceVersion counter, a bounded event history for watch resume (``410 Gone`` below it), the
admission chain and the audit log. The HTTP server (``server.py``) and the controllers
(``controllers/``) both go through this API; neither keeps state of its own.

It is *not* thread-safe: every call must come from the event loop that owns the store (the HTTP
handlers and the controllers all run on that loop). Reads return deep copies, so callers may mutate
what they get without touching the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

JSON = dict[str, Any]

#: The API server's alphabet for ``generateName`` suffixes (k8s.io/apimachinery util/rand).
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
#: ``generateName`` bases longer than this are truncated (apiserver storage/names/generate.go).
MAX_GENERATE_BASE = 58
#: How many watch events are kept for resume; older resourceVersions answer 410 Gone.
DEFAULT_HISTORY = 5000

EventType = Literal["ADDED", "MODIFIED", "DELETED"]


def now_rfc3339() -> str:
    """The current time as the API server writes timestamps (RFC 3339, seconds, UTC, ``Z``)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def copy_obj(obj: JSON) -> JSON:
    """A deep copy of one JSON object."""
    return {k: deepcopy_json(v) for k, v in obj.items()}


def deepcopy_json(value: Any) -> Any:
    """A fast deep copy for JSON-shaped data (dicts, lists and scalars only)."""
    if isinstance(value, dict):
        return {k: deepcopy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [deepcopy_json(v) for v in value]
    return value


@dataclass(frozen=True)
class ResourceType:
    """One served resource: what discovery lists and what the store keys objects by."""

    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()  # e.g. ("status",), ("log",)
    verbs: tuple[str, ...] = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
    singular: str = ""
    categories: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str]:
        return (self.group, self.plural)

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"


class ApiError(Exception):
    """An error the API server answers with a ``Status`` object."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        details: JSON | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details or {}
        self.retry_after = retry_after

    def status(self) -> JSON:
        body: JSON = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body

    @classmethod
    def not_found(cls, rt: ResourceType, name: str) -> ApiError:
        res = f"{rt.plural}.{rt.group}" if rt.group else rt.plural
        return cls(404, "NotFound", f'{res} "{name}" not found',
                   details={"name": name, "group": rt.group, "kind": rt.plural})

    @classmethod
    def already_exists(cls, rt: ResourceType, name: str) -> ApiError:
        res = f"{rt.plural}.{rt.group}" if rt.group else rt.plural
        return cls(409, "AlreadyExists", f'{res} "{name}" already exists',
                   details={"name": name, "group": rt.group, "kind": rt.plural})

    @classmethod
    def conflict(cls, rt: ResourceType, name: str, why: str) -> ApiError:
        res = f"{rt.plural}.{rt.group}" if rt.group else rt.plural
        return cls(409, "Conflict", f'Operation cannot be fulfilled on {res} "{name}": {why}',
                   details={"name": name, "group": rt.group, "kind": rt.plural})

    @classmethod
    def invalid(cls, rt: ResourceType, name: str, why: str) -> ApiError:
        return cls(422, "Invalid", f'{rt.kind} "{name}" is invalid: {why}',
                   details={"name": name, "group": rt.group, "kind": rt.kind})

    @classmethod
    def bad_request(cls, message: str) -> ApiError:
        return cls(400, "BadRequest", message)


@dataclass(frozen=True)
class WatchEvent:
    rv: int
    type: EventType
    rt: ResourceType
    object: JSON  # a snapshot; never mutate


@dataclass(frozen=True)
class AdmissionRequest:
    """What a validating admission step sees (a trimmed ``AdmissionReview.request``)."""

    operation: Literal["CREATE", "UPDATE", "DELETE"]
    rt: ResourceType
    namespace: str
    name: str
    object: JSON | None  # the new object (name filled, generateName resolved)
    old_object: JSON | None
    dry_run: bool
    user_agent: str


#: A validating admission step: raise ``ApiError`` to deny, return to admit.
Validator = Callable[[AdmissionRequest], None]


@dataclass
class AuditEntry:
    time: str
    verb: str  # create | update | patch | delete | deletecollection | subresource verbs (start, stop, ...)
    resource: str  # "<plural>.<group>" or "<plural>" for core
    namespace: str
    name: str
    user_agent: str
    path: str = ""
    code: int = 0
    dry_run: bool = False

    def as_json(self) -> JSON:
        return {
            "time": self.time, "verb": self.verb, "resource": self.resource,
            "namespace": self.namespace, "name": self.name, "userAgent": self.user_agent,
            "path": self.path, "code": self.code, "dryRun": self.dry_run,
        }


def _match_labels(labels: dict[str, str], selector: str) -> bool:
    """Equality- and set-based label selector, as ``kubectl -l`` and the client send it."""
    if not selector:
        return True
    for raw in _split_selector(selector):
        term = raw.strip()
        if not term:
            continue
        if " notin " in term or " in " in term:
            key, op, rest = (term.partition(" notin ") if " notin " in term else term.partition(" in "))
            values = {v.strip() for v in rest.strip().strip("()").split(",")}
            present = key.strip() in labels and labels[key.strip()] in values
            if (op.strip() == "in") != present:
                return False
        elif "!=" in term:
            key, _, value = term.partition("!=")
            if labels.get(key.strip()) == value.strip():
                return False
        elif "==" in term or "=" in term:
            key, _, value = term.partition("==") if "==" in term else term.partition("=")
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


def _split_selector(selector: str) -> list[str]:
    """Split on commas that are not inside a ``(…)`` value set."""
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _field_value(obj: JSON, path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    return "" if cur is None else str(cur)


def _match_fields(obj: JSON, selector: str) -> bool:
    if not selector:
        return True
    for term in selector.split(","):
        term = term.strip()
        if not term:
            continue
        if "!=" in term:
            key, _, value = term.partition("!=")
            if _field_value(obj, key.strip()) == value.strip():
                return False
        else:
            key, _, value = term.partition("==") if "==" in term else term.partition("=")
            if _field_value(obj, key.strip()) != value.strip():
                return False
    return True


def _spec_finalizers(rt: ResourceType, obj: JSON) -> bool:
    """A namespace's ``spec.finalizers`` (``kubernetes``) hold its deletion like metadata finalizers."""
    return rt.key == ("", "namespaces") and bool((obj.get("spec") or {}).get("finalizers"))


def matches(obj: JSON, label_selector: str = "", field_selector: str = "") -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    return _match_labels(labels, label_selector) and _match_fields(obj, field_selector)


#: ``list`` is shadowed by ``Store.list`` inside the class body (for type checkers).
_EventList = list[WatchEvent]


@dataclass
class _Subscriber:
    queue: asyncio.Queue[WatchEvent | None]
    rt: ResourceType | None  # None: every type (controllers)
    namespace: str


@dataclass
class Store:
    """The cluster state. See the module docstring for the threading rule."""

    history_size: int = DEFAULT_HISTORY
    rng: random.Random = field(default_factory=random.Random)
    types: dict[tuple[str, str], ResourceType] = field(default_factory=dict)
    _objects: dict[tuple[str, str], dict[tuple[str, str], JSON]] = field(default_factory=dict)
    _rv: int = 1
    _history: deque[WatchEvent] = field(default_factory=deque)
    _subscribers: list[_Subscriber] = field(default_factory=list)
    validators: list[Validator] = field(default_factory=list)
    audit: list[AuditEntry] = field(default_factory=list)
    #: Called with every AuditEntry as it is recorded (the server writes the JSON-lines file).
    audit_sinks: list[Callable[[AuditEntry], None]] = field(default_factory=list)
    #: Records of when a condition became true in the sim, for the lag benchmark (name -> monotonic).
    marks: dict[str, float] = field(default_factory=dict)

    # ----------------------------------------------------------------- registry
    def register(self, rt: ResourceType) -> None:
        self.types[rt.key] = rt
        self._objects.setdefault(rt.key, {})

    def type_for(self, group: str, plural: str) -> ResourceType:
        try:
            return self.types[(group, plural)]
        except KeyError:
            raise ApiError(404, "NotFound", f"the server could not find the requested resource "
                                             f"({plural}.{group or 'core'})") from None

    def type_by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group = api_version.rpartition("/")[0]
        for rt in self.types.values():
            if rt.group == group and rt.kind == kind:
                return rt
        return None

    @property
    def resource_version(self) -> int:
        return self._rv

    @property
    def oldest_resource_version(self) -> int:
        return self._history[0].rv if self._history else self._rv

    # ----------------------------------------------------------------- reads
    def get(self, rt: ResourceType, namespace: str, name: str) -> JSON | None:
        obj = self._objects[rt.key].get((namespace if rt.namespaced else "", name))
        return copy_obj(obj) if obj is not None else None

    def require(self, rt: ResourceType, namespace: str, name: str) -> JSON:
        obj = self.get(rt, namespace, name)
        if obj is None:
            raise ApiError.not_found(rt, name)
        return obj

    def list(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
    ) -> tuple[list[JSON], int]:
        items = []
        for (ns, _name), obj in sorted(self._objects[rt.key].items()):
            if namespace and rt.namespaced and ns != namespace:
                continue
            if matches(obj, label_selector, field_selector):
                items.append(deepcopy_json(obj))
        return items, self._rv

    def iter_raw(self, rt: ResourceType) -> Iterable[JSON]:
        """Stored objects without copying: read-only use by controllers and the webhook view."""
        return list(self._objects[rt.key].values())

    # ----------------------------------------------------------------- writes
    def _audit(self, verb: str, rt: ResourceType, namespace: str, name: str, user_agent: str,
               path: str = "", code: int = 200, dry_run: bool = False) -> None:
        resource = f"{rt.plural}.{rt.group}" if rt.group else rt.plural
        entry = AuditEntry(now_rfc3339(), verb, resource, namespace, name, user_agent, path, code, dry_run)
        self.audit.append(entry)
        for sink in self.audit_sinks:
            sink(entry)

    def record_audit(self, verb: str, rt: ResourceType, namespace: str, name: str, user_agent: str,
                     path: str = "", code: int = 200, dry_run: bool = False) -> None:
        """For the HTTP layer: record a request that did not reach a store write (denied, 4xx)."""
        self._audit(verb, rt, namespace, name, user_agent, path, code, dry_run)

    def _next_rv(self) -> int:
        self._rv += 1
        return self._rv

    def _emit(self, etype: EventType, rt: ResourceType, obj: JSON, rv: int) -> None:
        snapshot = deepcopy_json(obj)
        event = WatchEvent(rv, etype, rt, snapshot)
        self._history.append(event)
        while len(self._history) > self.history_size:
            self._history.popleft()
        for sub in list(self._subscribers):
            if sub.rt is not None and sub.rt.key != rt.key:
                continue
            ns = obj.get("metadata", {}).get("namespace", "")
            if sub.namespace and ns != sub.namespace:
                continue
            sub.queue.put_nowait(event)

    def generate_name(self, base: str) -> str:
        return base[:MAX_GENERATE_BASE] + "".join(self.rng.choice(NAME_ALPHABET) for _ in range(5))

    def _admit(self, req: AdmissionRequest) -> None:
        for validator in self.validators:
            validator(req)

    def create(
        self,
        rt: ResourceType,
        obj: JSON,
        *,
        namespace: str = "",
        user_agent: str,
        dry_run: bool = False,
        path: str = "",
    ) -> JSON:
        """Create ``obj`` (generateName resolved, uid/resourceVersion/creationTimestamp set).

        Runs the admission chain first; with ``dry_run`` nothing is stored and no event is sent.
        """
        obj = deepcopy_json(obj)
        meta = obj.setdefault("metadata", {})
        obj.setdefault("apiVersion", rt.api_version)
        obj.setdefault("kind", rt.kind)
        if rt.namespaced:
            ns = meta.get("namespace") or namespace
            if not ns:
                raise ApiError.bad_request("the namespace of the object is required")
            if namespace and meta.get("namespace") and meta["namespace"] != namespace:
                raise ApiError.bad_request("the namespace of the provided object does not match "
                                           "the namespace sent on the request")
            meta["namespace"] = ns
        else:
            ns = ""
            meta.pop("namespace", None)
        if not meta.get("name"):
            if meta.get("generateName"):
                for _ in range(10):
                    candidate = self.generate_name(meta["generateName"])
                    if (ns, candidate) not in self._objects[rt.key]:
                        meta["name"] = candidate
                        break
            else:
                raise ApiError.invalid(rt, "", "metadata.name: Required value: name or generateName is required")
        name = meta["name"]
        if rt.namespaced and rt.key != ("", "namespaces"):
            ns_obj = self._objects[("", "namespaces")].get(("", ns))
            if ns_obj is None:
                raise ApiError(404, "NotFound", f'namespaces "{ns}" not found',
                               details={"name": ns, "kind": "namespaces"})
            if ns_obj.get("metadata", {}).get("deletionTimestamp"):
                raise ApiError(403, "Forbidden", f'{rt.plural} "{name}" is forbidden: unable to create new '
                               f"content in namespace {ns} because it is being terminated")
        if (ns, name) in self._objects[rt.key]:
            raise ApiError.already_exists(rt, name)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        meta.setdefault("generation", 1)
        meta.pop("resourceVersion", None)
        meta.pop("deletionTimestamp", None)
        self._admit(AdmissionRequest("CREATE", rt, ns, name, deepcopy_json(obj), None, dry_run, user_agent))
        if dry_run:
            meta["resourceVersion"] = str(self._rv)
            self._audit("create", rt, ns, name, user_agent, path, 201, dry_run=True)
            return obj
        rv = self._next_rv()
        meta["resourceVersion"] = str(rv)
        self._objects[rt.key][(ns, name)] = obj
        self._audit("create", rt, ns, name, user_agent, path, 201)
        self._emit("ADDED", rt, obj, rv)
        return copy_obj(obj)

    def update(
        self,
        rt: ResourceType,
        obj: JSON,
        *,
        user_agent: str,
        subresource: str = "",
        check_rv: bool = True,
        verb: str = "update",
        path: str = "",
        dry_run: bool = False,
    ) -> JSON:
        """Replace an object. ``subresource="status"`` keeps the stored spec/metadata; a plain update
        keeps the stored status (for kinds that have a status subresource). A stale resourceVersion
        answers 409 Conflict when ``check_rv``."""
        obj = deepcopy_json(obj)
        meta = obj.setdefault("metadata", {})
        ns = meta.get("namespace", "") if rt.namespaced else ""
        name = meta.get("name", "")
        current = self._objects[rt.key].get((ns, name))
        if current is None:
            raise ApiError.not_found(rt, name)
        sent_rv = meta.get("resourceVersion")
        if check_rv and sent_rv and sent_rv != current["metadata"]["resourceVersion"]:
            raise ApiError.conflict(rt, name, "the object has been modified; please apply your changes "
                                              "to the latest version and try again")
        reject_like_apiserver(rt, obj, current, subresource=subresource, check_rv=check_rv)
        cur_meta = current["metadata"]
        if subresource == "status":
            new = copy_obj(current)
            if "status" in obj:
                new["status"] = obj["status"]
            else:
                new.pop("status", None)
        else:
            new = obj
            new.setdefault("apiVersion", rt.api_version)
            new.setdefault("kind", rt.kind)
            for keep in ("uid", "creationTimestamp", "deletionTimestamp", "namespace", "generation"):
                if keep in cur_meta:
                    new["metadata"][keep] = cur_meta[keep]
                else:
                    new["metadata"].pop(keep, None)
            if "status" in rt.subresources and subresource != _BINDING:  # pods/binding writes both
                if "status" in current:
                    new["status"] = current["status"]
                else:
                    new.pop("status", None)
            if {k: v for k, v in new.items() if k not in ("metadata", "status")} != \
                    {k: v for k, v in current.items() if k not in ("metadata", "status")}:
                new["metadata"]["generation"] = int(cur_meta.get("generation", 1)) + 1
        if not rt.namespaced:
            new["metadata"].pop("namespace", None)
        if new == current:
            # A no-op write does not bump the resourceVersion (as the real API server).
            self._audit(verb, rt, ns, name, user_agent, path, 200, dry_run)
            return copy_obj(current)
        self._admit(AdmissionRequest("UPDATE", rt, ns, name, deepcopy_json(new), deepcopy_json(current),
                                     dry_run, user_agent))
        if dry_run:
            self._audit(verb, rt, ns, name, user_agent, path, 200, dry_run)
            return new
        # Finalizers removed from an object being deleted may complete the deletion.
        if cur_meta.get("deletionTimestamp") and not new["metadata"].get("finalizers") \
                and not _spec_finalizers(rt, new):
            rv = self._next_rv()
            new["metadata"]["resourceVersion"] = str(rv)
            del self._objects[rt.key][(ns, name)]
            self._audit(verb, rt, ns, name, user_agent, path, 200)
            self._emit("DELETED", rt, new, rv)
            return copy_obj(new)
        rv = self._next_rv()
        new["metadata"]["resourceVersion"] = str(rv)
        self._objects[rt.key][(ns, name)] = new
        self._audit(verb, rt, ns, name, user_agent, path, 200)
        self._emit("MODIFIED", rt, new, rv)
        return copy_obj(new)

    def mutate(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        fn: Callable[[JSON], JSON | None],
        *,
        user_agent: str,
        subresource: str = "",
    ) -> JSON | None:
        """Read-modify-write for controllers: ``fn`` edits a copy in place (or returns a new one).
        Returns the stored result, or None when the object is gone."""
        current = self.get(rt, namespace, name)
        if current is None:
            return None
        result = fn(current)
        new = current if result is None else result
        return self.update(rt, new, user_agent=user_agent, subresource=subresource, check_rv=False)

    def delete(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        *,
        user_agent: str,
        propagation: Literal["Background", "Foreground", "Orphan"] = "Background",
        dry_run: bool = False,
        path: str = "",
        preconditions_uid: str | None = None,
    ) -> JSON:
        """Delete an object. With finalizers (or Foreground propagation) it only gets a
        deletionTimestamp; the garbage collector removes dependents (see ``controllers/gc.py``)."""
        ns = namespace if rt.namespaced else ""
        current = self._objects[rt.key].get((ns, name))
        if current is None:
            raise ApiError.not_found(rt, name)
        if preconditions_uid and current["metadata"].get("uid") != preconditions_uid:
            raise ApiError.conflict(rt, name, f"Precondition failed: UID in precondition: {preconditions_uid}, "
                                              f"UID in object meta: {current['metadata'].get('uid')}")
        self._admit(AdmissionRequest("DELETE", rt, ns, name, None, deepcopy_json(current), dry_run, user_agent))
        if dry_run:
            self._audit("delete", rt, ns, name, user_agent, path, 200, True)
            return copy_obj(current)
        meta = current["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if propagation == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        if propagation == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
        if finalizers or _spec_finalizers(rt, current):
            if not meta.get("deletionTimestamp"):
                new = deepcopy_json(current)
                new["metadata"]["deletionTimestamp"] = now_rfc3339()
                new["metadata"]["deletionGracePeriodSeconds"] = 0
                if finalizers:
                    new["metadata"]["finalizers"] = finalizers
                if rt.key == ("", "namespaces"):
                    new.setdefault("status", {})["phase"] = "Terminating"
                rv = self._next_rv()
                new["metadata"]["resourceVersion"] = str(rv)
                self._objects[rt.key][(ns, name)] = new
                self._audit("delete", rt, ns, name, user_agent, path, 200)
                self._emit("MODIFIED", rt, new, rv)
                return copy_obj(new)
            self._audit("delete", rt, ns, name, user_agent, path, 200)
            return copy_obj(current)
        rv = self._next_rv()
        gone = copy_obj(current)
        gone["metadata"]["resourceVersion"] = str(rv)
        if not gone["metadata"].get("deletionTimestamp"):
            gone["metadata"]["deletionTimestamp"] = now_rfc3339()
        del self._objects[rt.key][(ns, name)]
        self._audit("delete", rt, ns, name, user_agent, path, 200)
        self._emit("DELETED", rt, gone, rv)
        return gone

    # ----------------------------------------------------------------- watch
    def subscribe(self, rt: ResourceType | None = None, namespace: str = "") -> _Subscriber:
        sub = _Subscriber(asyncio.Queue(), rt, namespace)
        self._subscribers.append(sub)
        return sub

    def unsubscribe(self, sub: _Subscriber) -> None:
        with contextlib.suppress(ValueError):
            self._subscribers.remove(sub)

    def events_since(self, rt: ResourceType | None, namespace: str, since_rv: int) -> _EventList:
        """Events after ``since_rv`` still in history; ``410 Gone`` if ``since_rv`` is too old."""
        if self._history and since_rv < self._history[0].rv - 1:
            raise ApiError(410, "Expired", f"too old resource version: {since_rv} "
                                           f"({self._history[0].rv - 1})")
        out = []
        for ev in self._history:
            if ev.rv <= since_rv:
                continue
            if rt is not None and ev.rt.key != rt.key:
                continue
            if namespace and ev.object.get("metadata", {}).get("namespace", "") != namespace:
                continue
            out.append(ev)
        return out

    async def watch(
        self,
        rt: ResourceType | None,
        namespace: str = "",
        since_rv: int | None = None,
    ) -> AsyncIterator[WatchEvent]:
        """Events for ``rt`` (every type when None) from ``since_rv`` on, as long as the caller
        iterates. Without ``since_rv`` only new events are sent."""
        sub = self.subscribe(rt, namespace)
        try:
            if since_rv is not None:
                backlog = self.events_since(rt, namespace, since_rv)
                last = since_rv
                for old in backlog:
                    last = old.rv
                    yield old
            else:
                last = self._rv
            while True:
                ev = await sub.queue.get()
                if ev is None:
                    return
                if ev.rv <= last:
                    continue
                last = ev.rv
                yield ev
        finally:
            self.unsubscribe(sub)

    def mark(self, name: str) -> None:
        """Record the moment a named condition became true (benchmarks read it)."""
        self.marks.setdefault(name, time.monotonic())


# --------------------------------------------------------------------- what a real apiserver refuses
#: API groups served by kube-apiserver itself: their objects accept an update without a resourceVersion
#: (``AllowUnconditionalUpdate``); custom resources do not (apiextensions ``customResourceStrategy``).
BUILTIN_GROUPS = frozenset({
    "", "apps", "batch", "autoscaling", "policy", "admissionregistration.k8s.io", "apiextensions.k8s.io",
    "apiregistration.k8s.io", "rbac.authorization.k8s.io", "networking.k8s.io", "storage.k8s.io",
    "coordination.k8s.io", "events.k8s.io", "discovery.k8s.io", "scheduling.k8s.io", "node.k8s.io",
    "certificates.k8s.io", "flowcontrol.apiserver.k8s.io",
})
#: Subresources that may set a pod's ``spec.nodeName`` (only pods/binding).
_BINDING = "binding"


def reject_like_apiserver(rt: ResourceType, new: JSON, current: JSON, *, subresource: str,
                          check_rv: bool) -> None:
    """Refuse the updates kube-apiserver refuses, so a client of the in-process store cannot get away with
    what would fail over HTTP: a custom resource updated without ``metadata.resourceVersion`` (422), and a
    pod whose ``spec.nodeName`` is changed by an update (422: binding is ``POST pods/{name}/binding``).

    ``check_rv=False`` is the store's own unconditional write (``Store.mutate``: garbage collector,
    namespace controller - kube-controller-manager's jobs), which is not an API request."""
    name = str((new.get("metadata") or {}).get("name", ""))
    if check_rv and rt.group not in BUILTIN_GROUPS and not (new.get("metadata") or {}).get("resourceVersion"):
        raise ApiError.invalid(rt, name, "metadata.resourceVersion: Invalid value: 0x0: must be specified "
                                         "for an update")
    if rt.key == ("", "pods") and subresource not in ("status", _BINDING):
        old_node = (current.get("spec") or {}).get("nodeName") or ""
        new_node = (new.get("spec") or {}).get("nodeName") or ""
        if old_node != new_node:
            raise ApiError.invalid(rt, name, "spec: Forbidden: pod updates may not change fields other than "
                                             "`spec.containers[*].image`,`spec.initContainers[*].image`,"
                                             "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions "
                                             "to existing tolerations),`spec.terminationGracePeriodSeconds` "
                                             f"(spec.nodeName: {old_node!r} -> {new_node!r}; bind with "
                                             "POST pods/{name}/binding)")


def bind_pod(store: Store, binding: JSON, *, namespace: str, name: str, user_agent: str, path: str = "",
             dry_run: bool = False) -> JSON:
    """``POST pods/{name}/binding`` (pkg/registry/core/pod/storage ``BindingREST``): set ``spec.nodeName``
    to ``binding.target.name`` and the ``PodScheduled=True`` condition in one write (one event); 409 when the pod is
    already bound, 404 when it is gone. Returns the ``Status`` the API server answers (201)."""
    target = (binding.get("target") or {}) if isinstance(binding, dict) else {}
    node = str(target.get("name") or "")
    if not node:
        raise ApiError.invalid(_POD_TYPE, name, "target.name: Required value")
    rt = store.type_for("", "pods")
    path = path or f"/api/v1/namespaces/{namespace}/pods/{name}/binding"  # audit: a create on the subresource
    pod = store.require(rt, namespace, name)
    uid = ((binding.get("metadata") or {}).get("uid"))
    if uid and pod["metadata"].get("uid") != uid:
        raise ApiError.conflict(rt, name, f"Precondition failed: UID in precondition: {uid}, "
                                          f"UID in object meta: {pod['metadata'].get('uid')}")
    if pod["metadata"].get("deletionTimestamp"):
        raise ApiError.conflict(rt, name, "pod is being deleted, cannot be assigned to a host")
    bound = (pod.get("spec") or {}).get("nodeName")
    if bound:
        raise ApiError.conflict(rt, name, f"pod {name} is already assigned to node \"{bound}\"")
    pod.setdefault("spec", {})["nodeName"] = node
    for key, value in ((binding.get("metadata") or {}).get("annotations") or {}).items():
        pod["metadata"].setdefault("annotations", {})[key] = value
    conds = [c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") != "PodScheduled"]
    conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                  "lastTransitionTime": now_rfc3339()})
    status = pod.setdefault("status", {})
    status["conditions"] = conds
    # kube-apiserver defaults a new pod's phase to Pending at creation; the store does not, so binding does.
    status.setdefault("phase", "Pending")
    store.update(rt, pod, user_agent=user_agent, subresource=_BINDING, check_rv=False, verb="create", path=path,
                 dry_run=dry_run)
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}


_POD_TYPE = ResourceType("", "v1", "Pod", "pods", True)
