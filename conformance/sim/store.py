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
import ipaddress
import json
import random
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from .index import IndexFn as IndexFn
from .index import ObjectIndex
from .index import ObjKey as ObjKey
from .index import TypeKey as TypeKey
from .index import field_value as field_value

JSON = dict[str, Any]

#: The API server's alphabet for ``generateName`` suffixes (k8s.io/apimachinery util/rand).
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
#: ``generateName`` bases longer than this are truncated (apiserver storage/names/generate.go).
MAX_GENERATE_BASE = 58
#: How many watch events are kept for resume; older resourceVersions answer 410 Gone.
DEFAULT_HISTORY = 5000
#: Watch history older than this (seconds) is dropped once more than DEFAULT_HISTORY_FLOOR events are kept
#: (kube-apiserver's watch cache keeps at least ``eventFreshDuration``, 75 s, of events).
DEFAULT_HISTORY_SECONDS = 75.0
DEFAULT_HISTORY_FLOOR = 500
#: How many audit entries the store keeps in memory (the ``--audit-log`` file keeps every one).
DEFAULT_AUDIT = 10000
#: Seconds an Event lives after its last write (kube-apiserver ``--event-ttl``, default 1h).
DEFAULT_EVENT_TTL = 3600.0

EventType = Literal["ADDED", "MODIFIED", "DELETED"]


def _load_malloc_trim() -> Callable[[int], int] | None:
    try:
        import ctypes
        import ctypes.util

        name = ctypes.util.find_library("c")
        if not name:
            return None
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
        return trim
    except (OSError, AttributeError, ImportError):
        return None


_MALLOC_TRIM: Callable[[int], int] | bool | None = False


def release_memory() -> None:
    """Hand freed heap pages back to the OS (glibc ``malloc_trim``; a no-op elsewhere). The garbage
    collector calls it when the store has been idle for a second, so a simulated cluster that shrinks
    (VMs deleted, Events expired) shrinks in RSS too."""
    global _MALLOC_TRIM
    if _MALLOC_TRIM is False:
        _MALLOC_TRIM = _load_malloc_trim()
    if callable(_MALLOC_TRIM):
        _MALLOC_TRIM(0)


_NOW: tuple[int, str] = (0, "")


def now_rfc3339() -> str:
    """The current time as the API server writes timestamps (RFC 3339, seconds, UTC, ``Z``); formatted
    once per second (every write stamps objects, Events and audit entries with it)."""
    global _NOW
    second = int(time.time())
    if _NOW[0] != second:
        _NOW = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return _NOW[1]


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
    at: float = field(default_factory=time.monotonic, compare=False)
    #: The object before this event (MODIFIED, DELETED): a watch with a selector tells from it whether the
    #: object matched before, as kube-apiserver's watch cache does (``cacheWatcher.convertToWatchEvent``).
    prev: JSON | None = field(default=None, compare=False)


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


def _match_fields(obj: JSON, selector: str) -> bool:
    if not selector:
        return True
    for term in selector.split(","):
        term = term.strip()
        if not term:
            continue
        if "!=" in term:
            key, _, value = term.partition("!=")
            if field_value(obj, key.strip()) == value.strip():
                return False
        else:
            key, _, value = term.partition("==") if "==" in term else term.partition("=")
            if field_value(obj, key.strip()) != value.strip():
                return False
    return True


def _name_selected(field_selector: str) -> str | None:
    """``X`` when the field selector is exactly ``metadata.name=X`` (or ``==``), else None."""
    if not field_selector or "," in field_selector or "!=" in field_selector:
        return None
    key, _, value = field_selector.partition("==") if "==" in field_selector else field_selector.partition("=")
    return value.strip() if key.strip() == "metadata.name" else None


def _spec_finalizers(rt: ResourceType, obj: JSON) -> bool:
    """A namespace's ``spec.finalizers`` (``kubernetes``) hold its deletion like metadata finalizers."""
    return rt.key == ("", "namespaces") and bool((obj.get("spec") or {}).get("finalizers"))


def matches(obj: JSON, label_selector: str = "", field_selector: str = "") -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    return _match_labels(labels, label_selector) and _match_fields(obj, field_selector)


#: ``list`` is shadowed by ``Store.list`` inside the class body (for type checkers).
_EventList = list[WatchEvent]
_JSONList = list[JSON]


@dataclass
class _Subscriber:
    queue: asyncio.Queue[WatchEvent | None]
    rt: ResourceType | None  # None: every type (controllers)
    namespace: str



@dataclass
class Store:
    """The cluster state. See the module docstring for the threading rule.

    Every read and write costs what it touches, not the size of the world: objects are indexed by
    namespace, by uid, by the uids their ownerReferences name (:meth:`by_owner`, for the garbage
    collector and controllers) and by any index a caller registers (:meth:`add_index` /
    :meth:`by_index`); a watch resumes at its resourceVersion without scanning the history; an event
    reaches only the subscribers of its type. Events (``core/v1``) expire ``event_ttl`` seconds after
    their last write, as kube-apiserver's ``--event-ttl`` does; the audit list keeps the last
    ``audit_size`` entries (the audit-log file keeps all)."""

    history_size: int = DEFAULT_HISTORY
    history_seconds: float = DEFAULT_HISTORY_SECONDS
    history_floor: int = DEFAULT_HISTORY_FLOOR
    rng: random.Random = field(default_factory=random.Random)
    types: dict[tuple[str, str], ResourceType] = field(default_factory=dict)
    _rv: int = 1
    _history: deque[WatchEvent] = field(default_factory=deque)
    _subscribers: list[_Subscriber] = field(default_factory=list)
    validators: list[Validator] = field(default_factory=list)
    audit_size: int = DEFAULT_AUDIT
    audit: deque[AuditEntry] = field(default_factory=deque)
    #: Seconds an object of these types lives after its last write (Events: ``event_ttl``).
    ttl: dict[TypeKey, float] = field(default_factory=dict)
    event_ttl: float = DEFAULT_EVENT_TTL
    #: Called with every AuditEntry as it is recorded (the server writes the JSON-lines file).
    audit_sinks: list[Callable[[AuditEntry], None]] = field(default_factory=list)
    #: Records of when a condition became true in the sim, for the lag benchmark (name -> monotonic).
    marks: dict[str, float] = field(default_factory=dict)
    #: Objects and their indexes (maintained by _put/_drop, the only places that change objects); the
    #: same implementation backs the HTTP transport's watch cache.
    _index: ObjectIndex = field(default_factory=ObjectIndex)
    _objects: dict[TypeKey, dict[ObjKey, JSON]] = field(init=False, repr=False)
    _typed_subscribers: dict[TypeKey | None, list[_Subscriber]] = field(default_factory=dict)
    _expiry: deque[tuple[float, TypeKey, ObjKey, str]] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self.audit = deque(self.audit, maxlen=self.audit_size)
        #: type -> key -> object: the index's own buckets (read here, written only through the index)
        self._objects = self._index.objects

    # ----------------------------------------------------------------- registry
    def register(self, rt: ResourceType) -> None:
        self.types[rt.key] = rt
        self._index.register(rt.key)
        if rt.key == ("", "events") and self.event_ttl > 0:
            self.ttl.setdefault(rt.key, self.event_ttl)

    # ----------------------------------------------------------------- indexes
    def _put(self, rt: ResourceType, key: ObjKey, obj: JSON) -> None:
        """Store ``obj`` under ``key`` (replacing what was there) and keep every index current."""
        self._index.put(rt.key, key, obj)
        ttl = self.ttl.get(rt.key)
        if ttl:
            rv = str(obj.get("metadata", {}).get("resourceVersion", ""))
            self._expiry.append((time.monotonic() + ttl, rt.key, key, rv))

    def _drop(self, rt: ResourceType, key: ObjKey) -> None:
        """Remove the object stored under ``key`` and its index entries."""
        self._index.drop(rt.key, key)

    def add_index(self, rt: ResourceType, name: str, fn: IndexFn) -> None:
        """Index objects of ``rt`` by the keys ``fn(obj)`` returns (idempotent per ``name``); read with
        :meth:`by_index`. ``fn`` must depend on the object only."""
        self._index.add_index(rt.key, name, fn)

    def by_index(self, rt: ResourceType, name: str, value: str) -> list[JSON]:
        """Stored objects of ``rt`` that index ``name`` files under ``value`` (read-only, sorted by
        namespace/name). ``KeyError`` when no such index was added."""
        return self._index.by_index(rt.key, name, value)

    def count_index(self, rt: ResourceType, name: str, value: str) -> int:
        """How many stored objects of ``rt`` index ``name`` files under ``value``."""
        return self._index.count(rt.key, name, value)

    def by_field(self, rt: ResourceType, path: str, value: str) -> list[JSON]:
        """Stored objects of ``rt`` whose field ``path`` (dotted, as a field selector; missing = "")
        equals ``value`` (read-only, sorted). The index is built on first use and kept current."""
        return self._index.by_field(rt.key, path, value)

    def by_uid(self, uid: str) -> tuple[ResourceType, JSON] | None:
        """The stored object with this uid and its type (read-only), or None."""
        found = self._index.by_uid(uid)
        return None if found is None else (self.types[found[0]], found[1])

    def by_owner(self, owner_uid: str, rt: ResourceType | None = None) -> list[JSON]:
        """Stored objects (of ``rt``, or any type) whose ownerReferences name ``owner_uid`` (read-only,
        sorted by type, namespace and name)."""
        return [obj for _t, obj in self._index.by_owner(owner_uid, None if rt is None else rt.key)]

    def owners_typed(self, owner_uid: str) -> list[tuple[ResourceType, JSON]]:
        """Like :meth:`by_owner` (every type), with each dependent's type."""
        return [(self.types[t], obj) for t, obj in self._index.by_owner(owner_uid)]

    def _trim_history(self, now: float) -> None:
        history = self._history
        while len(history) > self.history_size:
            history.popleft()
        horizon = now - self.history_seconds
        while len(history) > self.history_floor and history[0].at < horizon:
            history.popleft()

    def expire(self, now: float | None = None) -> int:
        """Delete the objects whose time to live has passed (Events); returns how many. Runs on every
        create and from the garbage collector's loop (so an idle store expires them too)."""
        now = time.monotonic() if now is None else now
        self._trim_history(now)
        gone = 0
        while self._expiry and self._expiry[0][0] <= now:
            _deadline, tkey, key, rv = self._expiry.popleft()
            obj = self._objects.get(tkey, {}).get(key)
            if obj is None or str(obj.get("metadata", {}).get("resourceVersion", "")) != rv:
                continue  # deleted, or written again since (a later entry holds its new deadline)
            rt = self.types[tkey]
            new_rv = self._next_rv()
            gone_obj = copy_obj(obj)
            gone_obj["metadata"]["resourceVersion"] = str(new_rv)
            self._drop(rt, key)
            self._emit("DELETED", rt, gone_obj, new_rv, obj)
            gone += 1
        return gone

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
        objects = self._objects[rt.key]
        keys: Iterable[ObjKey]
        if namespace and rt.namespaced:
            keys = ((namespace, n) for n in self._index.names_in(rt.key, namespace))
        else:
            keys = sorted(objects)
        name = _name_selected(field_selector)
        if name is not None:  # metadata.name=X (every single-object wait): no scan
            if not rt.namespaced or namespace:
                keys = [k for k in ((namespace if rt.namespaced else "", name),) if k in objects]
            else:
                keys = [k for k in keys if k[1] == name]
        items = []
        for key in keys:
            obj = objects[key]
            if matches(obj, label_selector, field_selector):
                items.append(deepcopy_json(obj))
        return items, self._rv

    def in_namespace(self, rt: ResourceType, namespace: str) -> _JSONList:
        """Stored objects of ``rt`` in ``namespace`` (read-only, by name; no scan of other namespaces)."""
        return self._index.in_namespace(rt.key, namespace)

    def iter_raw(self, rt: ResourceType) -> Iterable[JSON]:
        """Stored objects without copying: read-only use by controllers and the webhook view."""
        return list(self._objects[rt.key].values())

    # ----------------------------------------------------------------- writes
    def _audit(self, verb: str, rt: ResourceType, namespace: str, name: str, user_agent: str,
               path: str = "", code: int = 200, dry_run: bool = False) -> None:
        resource = f"{rt.plural}.{rt.group}" if rt.group else rt.plural
        entry = AuditEntry(now_rfc3339(), verb, resource, namespace, name, user_agent, path, code, dry_run)
        if self.audit.maxlen != self.audit_size:
            self.audit = deque(self.audit, maxlen=self.audit_size)
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

    def _emit(self, etype: EventType, rt: ResourceType, obj: JSON, rv: int, prev: JSON | None = None) -> None:
        # The stored object is never changed in place (every write stores a new dict), so the watch
        # event shares it (and the previous one) instead of copying it; subscribers and history treat
        # both as read-only.
        event = WatchEvent(rv, etype, rt, obj, prev=prev)
        self._history.append(event)
        self._trim_history(event.at)
        ns = obj.get("metadata", {}).get("namespace", "")
        for group in (self._typed_subscribers.get(rt.key), self._typed_subscribers.get(None)):
            for sub in list(group or ()):
                if sub.namespace and ns != sub.namespace:
                    continue
                sub.queue.put_nowait(event)

    def _allocate_cluster_ip(self, rt: ResourceType, obj: JSON) -> None:
        """A new Service's ``clusterIP``/``clusterIPs`` from :data:`SERVICE_CIDR` (the first free address
        after the ``kubernetes`` Service's), as kube-apiserver's allocator gives one; headless
        (``None``), ExternalName and already-set addresses are left alone."""
        spec = obj.get("spec")
        if not isinstance(spec, dict) or spec.get("type") == "ExternalName" or spec.get("clusterIP"):
            return
        used = {str((o.get("spec") or {}).get("clusterIP")) for o in self._objects[rt.key].values()}
        hosts = SERVICE_CIDR.hosts()
        next(hosts)  # the `kubernetes` Service's
        for host in hosts:
            ip = str(host)
            if ip not in used:
                spec["clusterIP"] = ip
                spec["clusterIPs"] = [ip]
                return
        raise ApiError(500, "InternalError", f"Internal error occurred: failed to allocate a serviceIP: range "
                                             f"{SERVICE_CIDR} is full")

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
        if self._expiry:
            self.expire()
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
                why = f"unable to create new content in namespace {ns} because it is being terminated"
                raise ApiError(403, "Forbidden", f'{rt.plural} "{name}" is forbidden: {why}',
                               details={"name": name, "group": rt.group, "kind": rt.plural,
                                        "causes": [{"reason": "NamespaceTerminating", "message": why,
                                                    "field": "metadata.namespace"}]})
        if (ns, name) in self._objects[rt.key]:
            raise ApiError.already_exists(rt, name)
        default_like_apiserver(rt, obj, creating=True)
        if rt.key == ("", "services"):
            self._allocate_cluster_ip(rt, obj)
        validate_pod_spec(rt, obj)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        meta.setdefault("generation", 1)
        meta.pop("resourceVersion", None)
        meta.pop("deletionTimestamp", None)
        self._admit(AdmissionRequest("CREATE", rt, ns, name, deepcopy_json(obj), None, dry_run, user_agent))
        if dry_run:  # kube-apiserver answers a dry-run create without a resourceVersion
            self._audit("create", rt, ns, name, user_agent, path, 201, dry_run=True)
            return obj
        rv = self._next_rv()
        meta["resourceVersion"] = str(rv)
        self._put(rt, (ns, name), obj)
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
        copy: bool = True,
    ) -> JSON:
        """Replace an object. ``subresource="status"`` keeps the stored spec/metadata; a plain update
        keeps the stored status (for kinds that have a status subresource). A stale resourceVersion
        answers 409 Conflict when ``check_rv``. ``copy=False``: the caller hands ``obj`` over and never
        touches it again (it may become the stored object)."""
        if copy:
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
        if subresource not in ("status", _BINDING):
            default_like_apiserver(rt, obj, creating=False, current=current)
        reject_like_apiserver(rt, obj, current, subresource=subresource, check_rv=check_rv)
        cur_meta = current["metadata"]
        if subresource == "status":
            # Stored objects are never changed in place: share every part but the metadata.
            new = {**current, "metadata": dict(current["metadata"])}
            if rt.key == ("", "pods"):
                # pods/status writes the request's metadata but the owner references and the deletion
                # timestamp (``podStatusStrategy.PrepareForUpdate``; measured: a label dropped from a
                # status update is dropped by kube-apiserver too)
                new["metadata"] = {**{k: v for k, v in meta.items() if k not in _POD_STATUS_KEEPS},
                                   **{k: v for k, v in cur_meta.items() if k in _POD_STATUS_KEEPS}}
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
        if "resourceVersion" in cur_meta:  # compared below, then set anew
            new["metadata"]["resourceVersion"] = cur_meta["resourceVersion"]
        if new == current:
            # A no-op write does not bump the resourceVersion (as the real API server).
            self._audit(verb, rt, ns, name, user_agent, path, 200, dry_run)
            return copy_obj(current)
        # Validators read, never write (only pod CREATE reaches user-supplied webhook policies, with a copy).
        self._admit(AdmissionRequest("UPDATE", rt, ns, name, new, current,
                                     dry_run, user_agent))
        if dry_run:
            self._audit(verb, rt, ns, name, user_agent, path, 200, dry_run)
            return copy_obj(new)
        # Finalizers removed from an object being deleted may complete the deletion.
        if cur_meta.get("deletionTimestamp") and not new["metadata"].get("finalizers") \
                and not _spec_finalizers(rt, new):
            rv = self._next_rv()
            new["metadata"]["resourceVersion"] = str(rv)
            self._drop(rt, (ns, name))
            self._audit(verb, rt, ns, name, user_agent, path, 200)
            self._emit("DELETED", rt, new, rv, current)
            return copy_obj(new)
        rv = self._next_rv()
        new["metadata"]["resourceVersion"] = str(rv)
        self._put(rt, (ns, name), new)
        self._audit(verb, rt, ns, name, user_agent, path, 200)
        self._emit("MODIFIED", rt, new, rv, current)
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
        return self.update(rt, new, user_agent=user_agent, subresource=subresource, check_rv=False,
                           copy=result is not None)

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
        self._admit(AdmissionRequest("DELETE", rt, ns, name, None, current, dry_run, user_agent))
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
                self._put(rt, (ns, name), new)
                self._audit("delete", rt, ns, name, user_agent, path, 200)
                self._emit("MODIFIED", rt, new, rv, current)
                return copy_obj(new)
            self._audit("delete", rt, ns, name, user_agent, path, 200)
            return copy_obj(current)
        rv = self._next_rv()
        gone = copy_obj(current)
        gone["metadata"]["resourceVersion"] = str(rv)
        if not gone["metadata"].get("deletionTimestamp"):
            gone["metadata"]["deletionTimestamp"] = now_rfc3339()
        self._drop(rt, (ns, name))
        self._audit("delete", rt, ns, name, user_agent, path, 200)
        self._emit("DELETED", rt, gone, rv, current)
        return gone

    # ----------------------------------------------------------------- watch
    def subscribe(self, rt: ResourceType | None = None, namespace: str = "") -> _Subscriber:
        sub = _Subscriber(asyncio.Queue(), rt, namespace)
        self._subscribers.append(sub)
        self._typed_subscribers.setdefault(rt.key if rt is not None else None, []).append(sub)
        return sub

    def unsubscribe(self, sub: _Subscriber) -> None:
        with contextlib.suppress(ValueError):
            self._subscribers.remove(sub)
        with contextlib.suppress(ValueError, KeyError):
            self._typed_subscribers[sub.rt.key if sub.rt is not None else None].remove(sub)

    def events_since(self, rt: ResourceType | None, namespace: str, since_rv: int) -> _EventList:
        """Events after ``since_rv`` still in history; ``410 Gone`` if ``since_rv`` is too old."""
        if self._history and since_rv < self._history[0].rv - 1:
            raise ApiError(410, "Expired", f"too old resource version: {since_rv} "
                                           f"({self._history[0].rv - 1})")
        out = []
        # Every resourceVersion in the history is one event, in order: start where since_rv ends.
        start = max(since_rv - self._history[0].rv + 1, 0) if self._history else 0
        if start and (start > len(self._history) or self._history[start - 1].rv != since_rv):
            start = 0  # not contiguous after all: scan (never wrong, only slower)
        for i in range(start, len(self._history)):
            ev = self._history[i]
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
#: The metadata a ``pods/status`` write keeps from the stored pod (the rest comes from the request).
_POD_STATUS_KEEPS = frozenset({"uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                               "ownerReferences", "generation", "namespace", "name", "resourceVersion"})
#: Subresources that may set a pod's ``spec.nodeName`` (only pods/binding).
_BINDING = "binding"


_POD_IMMUTABLE_DETAIL = ("pod updates may not change fields other than `spec.containers[*].image`,"
                         "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only "
                         "additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be "
                         "set to 1 if it was previously negative)")


def _pod_spec_mutable_masked(spec: Any) -> Any:
    """A pod spec without the fields an update may change (``ValidatePodUpdate``)."""
    if not isinstance(spec, dict):
        return spec
    out = {k: deepcopy_json(v) for k, v in spec.items()
           if k not in ("activeDeadlineSeconds", "terminationGracePeriodSeconds", "tolerations")}
    for key in ("containers", "initContainers"):
        for c in out.get(key) or []:
            if isinstance(c, dict):
                c.pop("image", None)
    return out


def reject_like_apiserver(rt: ResourceType, new: JSON, current: JSON, *, subresource: str,
                          check_rv: bool) -> None:
    """Refuse the updates kube-apiserver refuses, so a client of the in-process store cannot get away with
    what would fail over HTTP: a custom resource updated without ``metadata.resourceVersion`` (422), a
    finalizer added to an object being deleted (422), and a pod update that changes more of its spec than
    the images, ``activeDeadlineSeconds``, ``terminationGracePeriodSeconds`` and added tolerations (422;
    ``spec.nodeName`` included: binding is ``POST pods/{name}/binding``).

    ``check_rv=False`` is the store's own unconditional write (``Store.mutate``: garbage collector,
    namespace controller - kube-controller-manager's jobs), which is not an API request."""
    from .validation import FieldError, invalid

    name = str((new.get("metadata") or {}).get("name", ""))
    if check_rv and rt.group not in BUILTIN_GROUPS and not (new.get("metadata") or {}).get("resourceVersion"):
        raise invalid(rt, name, [FieldError("FieldValueInvalid", "metadata.resourceVersion", 0,
                                            "must be specified for an update")])
    if (current.get("metadata") or {}).get("deletionTimestamp") and subresource != "status":
        old = set((current.get("metadata") or {}).get("finalizers") or [])
        added = [f for f in (new.get("metadata") or {}).get("finalizers") or [] if f not in old]
        if added:
            listed = ", ".join(json.dumps(f) for f in added)
            raise invalid(rt, name, [FieldError("FieldValueForbidden", "metadata.finalizers", detail=(
                f"no new finalizers can be added if the object is being deleted, found new finalizers "
                f"[]string{{{listed}}}"))])
    if rt.key == ("", "pods") and subresource not in ("status", _BINDING):
        old_spec, new_spec = current.get("spec") or {}, new.get("spec") or {}
        old_tol = [t for t in old_spec.get("tolerations") or []]
        new_tol = new_spec.get("tolerations") or []
        if _pod_spec_mutable_masked(old_spec) != _pod_spec_mutable_masked(new_spec) \
                or any(t not in new_tol for t in old_tol):
            detail = _POD_IMMUTABLE_DETAIL
            old_node, new_node = old_spec.get("nodeName") or "", new_spec.get("nodeName") or ""
            if old_node != new_node:  # kovc's hint (kube-apiserver's message ends with a diff of the specs)
                detail += f" (spec.nodeName: {old_node!r} -> {new_node!r}; bind with POST pods/{{name}}/binding)"
            raise invalid(rt, name, [FieldError("FieldValueForbidden", "spec", detail=detail)])


def validate_pod_spec(rt: ResourceType, obj: JSON) -> None:
    """The part of ``ValidatePodCreate`` a client meets first: containers are required, and each one
    needs a name (a DNS-1123 label, unique) and an image (422 ``Invalid`` with every field error)."""
    if rt.key != ("", "pods"):
        return
    from .validation import FieldError, invalid, is_dns1123_label

    errors: list[FieldError] = []
    spec = obj.get("spec")
    containers = spec.get("containers") if isinstance(spec, dict) else None
    if not containers:
        errors.append(FieldError("FieldValueRequired", "spec.containers"))
    seen: set[str] = set()
    for key in ("initContainers", "containers"):
        for i, c in enumerate((spec or {}).get(key) or [] if isinstance(spec, dict) else []):
            where = f"spec.{key}[{i}]"
            c = c if isinstance(c, dict) else {}
            cname = c.get("name") or ""
            if not cname:
                errors.append(FieldError("FieldValueRequired", f"{where}.name"))
            else:
                errors.extend(FieldError("FieldValueInvalid", f"{where}.name", cname, m)
                              for m in is_dns1123_label(str(cname)))
                if cname in seen:
                    errors.append(FieldError("FieldValueDuplicate", f"{where}.name", cname))
                seen.add(str(cname))
            if not c.get("image"):
                errors.append(FieldError("FieldValueRequired", f"{where}.image"))
    if errors:
        raise invalid(rt, str((obj.get("metadata") or {}).get("name") or ""), errors)


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


# --------------------------------------------------------------------- what a real apiserver fills in
#: The tolerations kube-apiserver's ``DefaultTolerationSeconds`` admission plugin adds to every pod.
DEFAULT_TOLERATIONS = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
)
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
#: The Service address range of the simulated cluster (kubeadm's and kind's default ``--service-cluster-ip-range``).
SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/16")


def _image_pull_policy(image: str) -> str:
    """``SetDefaults_Container``: Always for ``:latest`` or an untagged image, else IfNotPresent."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else ""
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def pod_qos_class(spec: JSON) -> str:
    """``qos.GetPodQOS``: BestEffort without requests/limits, Guaranteed when every container's cpu and
    memory limits are set and equal its requests, Burstable otherwise."""
    containers = [c for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])
                  if isinstance(c, dict)]
    any_set = False
    guaranteed = bool(containers)
    for c in containers:
        res = c.get("resources") or {}
        limits, requests = res.get("limits") or {}, res.get("requests") or {}
        if limits or requests:
            any_set = True
        for key in ("cpu", "memory"):
            if key not in limits or str(requests.get(key, limits[key])) != str(limits[key]):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def default_like_apiserver(rt: ResourceType, obj: JSON, *, creating: bool, current: JSON | None = None) -> None:
    """Fill in, in place, what kube-apiserver's defaulting (``SetDefaults_*``), create strategy and default
    admission plugins fill in: a pod's spec defaults; its tolerations (``DefaultTolerationSeconds``, on
    create and update); its priority (``Priority``: on update the stored one is kept); on create its
    status (``Pending`` and the QoS class; whatever status the client sent is dropped, as
    ``podStrategy.PrepareForCreate``); a namespace's ``kubernetes.io/metadata.name`` label; a Service's type,
    session affinity, IP family, traffic policy and port protocol/targetPort (its address: ``Store.create``)."""
    if rt.key == ("", "namespaces"):
        name = (obj.get("metadata") or {}).get("name")
        if name:
            labels = obj.setdefault("metadata", {}).get("labels")
            obj["metadata"]["labels"] = {**(labels if isinstance(labels, dict) else {}), NAMESPACE_NAME_LABEL: name}
        return
    if rt.key == ("", "services"):
        sspec = obj.get("spec")
        if isinstance(sspec, dict):
            sspec.setdefault("type", "ClusterIP")
            if sspec["type"] != "ExternalName":
                sspec.setdefault("sessionAffinity", "None")
                sspec.setdefault("ipFamilies", ["IPv4"])
                sspec.setdefault("ipFamilyPolicy", "SingleStack")
                sspec.setdefault("internalTrafficPolicy", "Cluster")
            for port in sspec.get("ports") or []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")
                    if "port" in port:
                        port.setdefault("targetPort", port["port"])
        return
    if rt.key != ("", "pods"):
        return
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    for key in ("containers", "initContainers"):
        for c in spec.get(key) or []:
            if not isinstance(c, dict):
                continue
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            if isinstance(c.get("image"), str) and c["image"]:
                c.setdefault("imagePullPolicy", _image_pull_policy(c["image"]))
            c.setdefault("resources", {})
            for port in c.get("ports") or []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")
    if creating:
        spec.setdefault("priority", 0)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    elif current is not None:
        for key in ("priority", "preemptionPolicy"):
            if key not in spec and key in (current.get("spec") or {}):
                spec[key] = current["spec"][key]
    given = spec.get("tolerations")
    tolerations: list[Any] = given if isinstance(given, list) else []
    for default in DEFAULT_TOLERATIONS:
        if not any(isinstance(t, dict) and t.get("key") == default["key"]
                   and t.get("effect") in ("", None, "NoExecute") for t in tolerations):
            tolerations.append(dict(default))
    spec["tolerations"] = tolerations
    if creating:
        obj["status"] = {"phase": "Pending", "qosClass": pod_qos_class(spec)}
