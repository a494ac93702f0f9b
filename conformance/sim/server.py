"""The simulated cluster's Kubernetes API server: an aiohttp application over a :class:`Store`.

Served, for every registered :class:`ResourceType`:

- discovery (``/api``, ``/api/v1``, ``/apis``, ``/apis/<g>``, ``/apis/<g>/<v>``), ``/version``,
  ``/healthz``, ``/readyz``, ``/livez`` and OpenAPI v3 (``openapi.py``);
- GET/LIST (label and field selectors, Table and PartialObjectMetadata output), WATCH (``?watch=1``
  and legacy ``/watch/`` paths; resume from a resourceVersion, ``ERROR 410 Expired`` when it is too
  old, bookmarks, ``timeoutSeconds``), POST, PUT, PATCH (``patch.py``), DELETE and deletecollection
  with DeleteOptions, ``?dryRun=All`` on every write, the ``status`` subresource, ``pods/log``,
  ``namespaces/<n>/finalize``;
- virt-api's ``PUT /apis/subresources.kubevirt.io/<v1|v1alpha3>/namespaces/<ns>/virtualmachines/<name>/
  <start|stop|restart|migrate>`` (delegated to ``world.vm_action``).

Every failure is a ``Status`` body. Admission denials raised by the store's validators pass through
unchanged. Every mutating request is in the audit log: successful writes are recorded by the store;
requests that failed before a write (denied, 404, 409, injected faults) are recorded here with
their code (``0`` for a dropped connection).

Server-side apply (``application/apply-patch+yaml``) is an approximation: see ``patch.py``. How far
these answers agree with kube-apiserver's is measured by ``conformance/envtest/apidiff.py``; the known
differences are in ``docs/sim-api-differences.md``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from aiohttp import web

from . import patch as patching
from . import validation
from .config import SimConfig
from .faults import Fault, FaultInjector, is_faultable
from .openapi import SUBRESOURCE_VERSIONS, OpenApiCache
from .resources import (
    DEPLOYMENTS,
    IPS,
    NAMESPACES,
    NODES,
    PODS,
    SERVICES,
    SUBNETS,
    SUBRESOURCE_GROUP,
    VM_ACTIONS,
    VMIMS,
    VMIS,
    VMS,
)
from .store import (
    JSON,
    ApiError,
    ResourceType,
    Store,
    WatchEvent,
    _Subscriber,
    bind_pod,
    deepcopy_json,
    matches,
    now_rfc3339,
)

log = logging.getLogger("conformance.sim.server")

#: The name a failed create is audited under (from the request body).
_AUDIT_NAME: Any = (web.RequestKey("kovc_audit_name", str) if hasattr(web, "RequestKey")  # aiohttp >= 3.12
                    else "kovc_audit_name")
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Watches without ``timeoutSeconds`` end after this long (the real server picks 30-60 minutes).
DEFAULT_WATCH_TIMEOUT = 1800.0
#: How often an idle watch with ``allowWatchBookmarks`` gets a BOOKMARK event, seconds.
BOOKMARK_INTERVAL = 1.0
#: Kinds whose immediate DELETE answers the deleted object (their registries' ``ReturnDeletedObject``);
#: every other kind, custom resources included, answers a ``Status`` (measured against kube-apiserver).
_OBJECT_ON_DELETE = frozenset({PODS.key, SERVICES.key})
#: The options kind kube-apiserver names in a 422 about a bad ``dryRun``, per method.
_OPTIONS_KIND = {"POST": "CreateOptions", "PUT": "UpdateOptions", "PATCH": "PatchOptions", "DELETE": "DeleteOptions"}


class World(Protocol):
    """What the server needs from ``conformance.sim.world`` (behaviour, written separately)."""

    async def vm_action(self, store: Store, config: SimConfig, namespace: str, name: str, action: str,
                        body: JSON, user_agent: str) -> JSON: ...

    def pod_log(self, store: Store, namespace: str, name: str) -> str: ...


@dataclass(frozen=True)
class Target:
    """A resource request, parsed from the URL."""

    rt: ResourceType
    namespace: str  # "" for cluster-scoped types and all-namespace collections
    name: str  # "" for a collection
    sub: str  # "", "status", "log", "finalize"
    legacy_watch: bool = False


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=json.dumps(body).encode(), status=status, headers=headers,
                        content_type="application/json")


def status_response(err: ApiError) -> web.Response:
    headers = {}
    if err.retry_after is not None:
        headers["Retry-After"] = str(max(0, math.ceil(err.retry_after)))
    return json_response(err.status(), err.code, headers)


def _not_found_path() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource")


class PageNotFound(ApiError):
    """A path no handler is registered for (an unknown group or version, a namespaced path of a
    cluster-scoped resource): kube-apiserver's mux answers a plain-text ``404 page not found``, not a
    ``Status``."""

    def __init__(self) -> None:
        super().__init__(404, "NotFound", "404 page not found")


def _method_not_allowed(method: str, path: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed",
                    f"the server does not allow this method on the requested resource ({method} {path})")


# --------------------------------------------------------------------------- tables
def human_duration(seconds: float) -> str:
    """A duration as ``kubectl get`` prints ages (k8s.io/apimachinery duration.HumanDuration)."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    return f"{hours // 24 // 365}y"


def _age(obj: JSON) -> str:
    ts = obj.get("metadata", {}).get("creationTimestamp")
    if not ts:
        return "<unknown>"
    try:
        created = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "<unknown>"
    return human_duration((datetime.now(UTC) - created).total_seconds())


def _dig(obj: Any, *path: str | int) -> Any:
    cur = obj
    for part in path:
        if isinstance(part, int):
            if not isinstance(cur, list) or len(cur) <= part:
                return None
            cur = cur[part]
        else:
            if not isinstance(cur, dict):
                return None
            cur = cur.get(part)
    return cur


def _field(*path: str | int, default: Any = "") -> Callable[[JSON], Any]:
    def get(obj: JSON) -> Any:
        value = _dig(obj, *path)
        return default if value is None else value
    return get


def _condition(ctype: str) -> Callable[[JSON], Any]:
    def get(obj: JSON) -> Any:
        for cond in _dig(obj, "status", "conditions") or []:
            if isinstance(cond, dict) and cond.get("type") == ctype:
                return cond.get("status", "")
        return ""
    return get


def _pod_ready(obj: JSON) -> str:
    total = len(_dig(obj, "spec", "containers") or [])
    statuses = _dig(obj, "status", "containerStatuses") or []
    ready = sum(1 for cs in statuses if isinstance(cs, dict) and cs.get("ready"))
    return f"{ready}/{total}"


def _pod_status(obj: JSON) -> str:
    if _dig(obj, "metadata", "deletionTimestamp"):
        return "Terminating"
    return str(_dig(obj, "status", "reason") or _dig(obj, "status", "phase") or "Pending")


def _pod_restarts(obj: JSON) -> int:
    return sum(int(cs.get("restartCount", 0)) for cs in _dig(obj, "status", "containerStatuses") or []
               if isinstance(cs, dict))


def _node_status(obj: JSON) -> str:
    ready = _condition("Ready")(obj)
    text = "Ready" if ready == "True" else "NotReady" if ready in ("False", "") else "Unknown"
    if _dig(obj, "spec", "unschedulable"):
        text += ",SchedulingDisabled"
    return text


def _node_roles(obj: JSON) -> str:
    prefix = "node-role.kubernetes.io/"
    roles = sorted(k[len(prefix):] for k in (_dig(obj, "metadata", "labels") or {}) if k.startswith(prefix))
    return ",".join(roles) or "<none>"


def _service_ports(obj: JSON) -> str:
    ports = _dig(obj, "spec", "ports") or []
    text = ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in ports if isinstance(p, dict))
    return text or "<none>"


#: (name, type, priority, extractor)
Column = tuple[str, str, int, Callable[[JSON], Any]]

_NAME: Column = ("Name", "string", 0, _field("metadata", "name"))
_AGE: Column = ("Age", "string", 0, _age)

COLUMNS: dict[tuple[str, str], list[Column]] = {
    PODS.key: [_NAME, ("Ready", "string", 0, _pod_ready), ("Status", "string", 0, _pod_status),
               ("Restarts", "integer", 0, _pod_restarts), _AGE,
               ("IP", "string", 1, _field("status", "podIP", default="<none>")),
               ("Node", "string", 1, _field("spec", "nodeName", default="<none>"))],
    NODES.key: [_NAME, ("Status", "string", 0, _node_status), ("Roles", "string", 0, _node_roles), _AGE,
                ("Version", "string", 0, _field("status", "nodeInfo", "kubeletVersion"))],
    NAMESPACES.key: [_NAME, ("Status", "string", 0, _field("status", "phase")), _AGE],
    SERVICES.key: [_NAME, ("Type", "string", 0, _field("spec", "type", default="ClusterIP")),
                   ("Cluster-IP", "string", 0, _field("spec", "clusterIP", default="<none>")),
                   ("External-IP", "string", 0, lambda o: "<none>"),
                   ("Port(s)", "string", 0, _service_ports), _AGE],
    DEPLOYMENTS.key: [_NAME,
                      ("Ready", "string", 0, lambda o: f"{_dig(o, 'status', 'readyReplicas') or 0}/"
                                                       f"{_dig(o, 'spec', 'replicas') or 0}"),
                      ("Up-to-date", "integer", 0, _field("status", "updatedReplicas", default=0)),
                      ("Available", "integer", 0, _field("status", "availableReplicas", default=0)), _AGE],
    VMS.key: [_NAME, _AGE, ("Status", "string", 0, _field("status", "printableStatus")),
              ("Ready", "string", 0, _condition("Ready"))],
    VMIS.key: [_NAME, _AGE, ("Phase", "string", 0, _field("status", "phase")),
               ("IP", "string", 0, _field("status", "interfaces", 0, "ipAddress")),
               ("NodeName", "string", 0, _field("status", "nodeName")),
               ("Ready", "string", 0, _condition("Ready"))],
    VMIMS.key: [_NAME, ("Phase", "string", 0, _field("status", "phase")),
                ("VMI", "string", 0, _field("spec", "vmiName")), _AGE],
    IPS.key: [_NAME, ("V4IP", "string", 0, _field("spec", "v4IpAddress")),
              ("V6IP", "string", 0, _field("spec", "v6IpAddress")),
              ("Mac", "string", 0, _field("spec", "macAddress")),
              ("Node", "string", 0, _field("spec", "nodeName")),
              ("Subnet", "string", 0, _field("spec", "subnet"))],
    SUBNETS.key: [_NAME, ("Provider", "string", 0, _field("spec", "provider")),
                  ("Vpc", "string", 0, _field("spec", "vpc")),
                  ("Protocol", "string", 0, _field("spec", "protocol")),
                  ("CIDR", "string", 0, _field("spec", "cidrBlock")),
                  ("Private", "boolean", 0, _field("spec", "private", default=False)),
                  ("NAT", "boolean", 0, _field("spec", "natOutgoing", default=False)),
                  ("Default", "boolean", 0, _field("spec", "default", default=False)),
                  ("V4Used", "number", 0, _field("status", "v4usingIPs", default=0)),
                  ("V4Available", "number", 0, _field("status", "v4availableIPs", default=0))],
}


def _partial(obj: JSON) -> JSON:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": deepcopy_json(obj.get("metadata", {}))}


def to_table(rt: ResourceType, items: list[JSON], rv: int | str, include_object: str = "Metadata",
             *, with_columns: bool = True) -> JSON:
    columns = COLUMNS.get(rt.key, [_NAME, _AGE])
    rows = []
    for obj in items:
        row: JSON = {"cells": [col[3](obj) for col in columns]}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = _partial(obj)
        rows.append(row)
    table: JSON = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": str(rv)},
                   "columnDefinitions": [], "rows": rows}
    if with_columns:
        table["columnDefinitions"] = [
            {"name": name, "type": type_, "format": "name" if name == "Name" else "", "description": name,
             "priority": prio}
            for name, type_, prio, _ in columns
        ]
    return table


Representation = Literal["json", "table", "partial"]


def wanted_representation(request: web.BaseRequest) -> Representation:
    """The first Accept alternative the server can produce (JSON is always acceptable)."""
    for alternative in request.headers.get("Accept", "").split(","):
        media, *params = (p.strip() for p in alternative.split(";"))
        opts = {k.strip(): v.strip() for k, _, v in (p.partition("=") for p in params)}
        if opts.get("g") == "meta.k8s.io" and opts.get("v") == "v1":
            if opts.get("as") == "Table":
                return "table"
            if opts.get("as") in ("PartialObjectMetadata", "PartialObjectMetadataList"):
                return "partial"
            continue
        if media in ("application/json", "*/*", "application/*", "") and "as" not in opts:
            return "json"
    return "json"


# --------------------------------------------------------------------------- protobuf request bodies
#: kubectl 1.32 sends built-in kinds created by its generators (``kubectl create namespace|configmap|
#: serviceaccount``) in protobuf. Those few kinds are decoded (the wire format of ``generated.proto``);
#: any other protobuf body answers 415 and clients fall back to JSON manifests (``kubectl apply -f``).
PROTOBUF = "application/vnd.kubernetes.protobuf"
_PB_MAGIC = b"k8s\x00"

#: "string" | "int" | "bool" | "bytes" | "time" | ("msg", schema) | ("map", kind) | ("list", kind)
PbKind = Any
PbSchema = dict[int, tuple[str, PbKind]]

_PB_OWNER: PbSchema = {1: ("kind", "string"), 3: ("name", "string"), 4: ("uid", "string"),
                       5: ("apiVersion", "string"), 6: ("controller", "bool"),
                       7: ("blockOwnerDeletion", "bool")}
_PB_META: PbSchema = {
    1: ("name", "string"), 2: ("generateName", "string"), 3: ("namespace", "string"), 5: ("uid", "string"),
    6: ("resourceVersion", "string"), 7: ("generation", "int"), 8: ("creationTimestamp", "time"),
    11: ("labels", ("map", "string")), 12: ("annotations", ("map", "string")),
    13: ("ownerReferences", ("list", ("msg", _PB_OWNER))), 14: ("finalizers", ("list", "string")),
}
_PB_OBJECT_REF: PbSchema = {1: ("kind", "string"), 2: ("namespace", "string"), 3: ("name", "string"),
                            4: ("uid", "string"), 5: ("apiVersion", "string")}
PB_KINDS: dict[tuple[str, str], PbSchema] = {
    ("v1", "Namespace"): {1: ("metadata", ("msg", _PB_META)),
                          2: ("spec", ("msg", {1: ("finalizers", ("list", "string"))})),
                          3: ("status", ("msg", {1: ("phase", "string")}))},
    ("v1", "ConfigMap"): {1: ("metadata", ("msg", _PB_META)), 2: ("data", ("map", "string")),
                          3: ("binaryData", ("map", "bytes")), 4: ("immutable", "bool")},
    ("v1", "ServiceAccount"): {1: ("metadata", ("msg", _PB_META)),
                               2: ("secrets", ("list", ("msg", _PB_OBJECT_REF))),
                               3: ("imagePullSecrets", ("list", ("msg", {1: ("name", "string")}))),
                               4: ("automountServiceAccountToken", "bool")},
}


def _unsupported_body(ctype: str) -> ApiError:
    return ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                                                 "accepted media types include: application/json, "
                                                 f"application/yaml (got {ctype})")


def _pb_fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs: ints for varint/fixed fields, bytes for length-delimited ones."""
    out: list[tuple[int, int | bytes]] = []
    i = 0

    def varint() -> int:
        nonlocal i
        shift = value = 0
        while True:
            if i >= len(buf):
                raise ApiError.bad_request("truncated protobuf body")
            byte = buf[i]
            i += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7

    while i < len(buf):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            out.append((number, varint()))
        elif wire == 2:
            size = varint()
            out.append((number, buf[i:i + size]))
            i += size
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            out.append((number, int.from_bytes(buf[i:i + width], "little")))
            i += width
        else:
            raise ApiError.bad_request(f"unsupported protobuf wire type {wire}")
    return out


def _pb_value(kind: PbKind, raw: int | bytes) -> Any:
    if kind == "string":
        return raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
    if kind == "bytes":
        return base64.b64encode(raw if isinstance(raw, bytes) else b"").decode()
    if kind == "int":
        return raw if isinstance(raw, int) else 0
    if kind == "bool":
        return bool(raw)
    if kind == "time":
        seconds = dict(_pb_fields(raw)).get(1, 0) if isinstance(raw, bytes) else 0
        stamp = datetime.fromtimestamp(int(seconds), UTC) if isinstance(seconds, int) and seconds else None
        return stamp.strftime("%Y-%m-%dT%H:%M:%SZ") if stamp else None
    if isinstance(kind, tuple) and kind[0] == "msg" and isinstance(raw, bytes):
        return _pb_message(raw, kind[1])
    raise ApiError.bad_request(f"unexpected protobuf value for {kind!r}")


def _pb_message(buf: bytes, schema: PbSchema) -> JSON:
    """Decode a message; empty values are dropped (as ``omitempty`` in the JSON form)."""
    out: JSON = {}
    for number, raw in _pb_fields(buf):
        if number not in schema:
            continue
        name, kind = schema[number]
        if isinstance(kind, tuple) and kind[0] == "map":
            entry = dict(_pb_fields(raw)) if isinstance(raw, bytes) else {}
            out.setdefault(name, {})[_pb_value("string", entry.get(1, b""))] = _pb_value(kind[1],
                                                                                         entry.get(2, b""))
        elif isinstance(kind, tuple) and kind[0] == "list":
            out.setdefault(name, []).append(_pb_value(kind[1], raw))
        else:
            value = _pb_value(kind, raw)
            if value not in (None, "", 0, False, {}):
                out[name] = value
    return out


def decode_protobuf(raw: bytes) -> JSON:
    """The JSON form of a protobuf-encoded built-in object (see :data:`PB_KINDS`); 415 otherwise."""
    if not raw.startswith(_PB_MAGIC):
        raise _unsupported_body(PROTOBUF)
    envelope = dict(_pb_fields(raw[len(_PB_MAGIC):]))
    type_meta = envelope.get(1, b"")
    types = dict(_pb_fields(type_meta)) if isinstance(type_meta, bytes) else {}
    api_version = _pb_value("string", types.get(1, b""))
    kind = _pb_value("string", types.get(2, b""))
    schema = PB_KINDS.get((api_version, kind))
    body = envelope.get(2, b"")
    if schema is None or not isinstance(body, bytes):
        raise _unsupported_body(f"{PROTOBUF} ({api_version} {kind})")
    return {"apiVersion": api_version, "kind": kind, **_pb_message(body, schema)}


# --------------------------------------------------------------------------- the server
def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


def options_invalid(kind: str, field_name: str, detail: str, cause: str = "FieldValueNotSupported") -> ApiError:
    """422 about a request option (``CreateOptions.meta.k8s.io "" is invalid: dryRun: …``)."""
    return ApiError(422, "Invalid", f'{kind}.meta.k8s.io "" is invalid: {field_name}: {detail}',
                    details={"group": "meta.k8s.io", "kind": kind,
                             "causes": [{"reason": cause, "message": detail, "field": field_name}]})


def _dry_run(values: list[str], method: str = "POST") -> bool:
    bad = [v for v in values if v != "All"]
    if bad:
        listed = ", ".join(json.dumps(v) for v in values)
        raise options_invalid(_OPTIONS_KIND.get(method, "CreateOptions"), "dryRun",
                              f'Unsupported value: [{listed}]: supported values: "All"')
    return bool(values)


class ApiServer:
    """Request handling; :meth:`app` builds the aiohttp application."""

    def __init__(self, store: Store, config: SimConfig, *, world: World | None = None,
                 faults: FaultInjector | None = None, token: str | None = None) -> None:
        self.store = store
        #: The bearer token every request but the health checks must carry (None: no authentication).
        self.token = token
        self.config = config
        self.world = world
        self.faults = faults
        self._openapi: OpenApiCache | None = None
        self._openapi_types: frozenset[tuple[str, str]] = frozenset()
        self._watches: dict[int, _Subscriber] = {}
        self.requests = 0
        #: Called with one JSON document per request answered (``SimConfig.record_requests``).
        self.recorder: Callable[[JSON], None] | None = None

    # ------------------------------------------------------------------ app
    def app(self) -> web.Application:
        app = web.Application(client_max_size=validation.MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def _on_shutdown(self, _app: web.Application) -> None:
        self.close_watches()

    def close_watches(self) -> None:
        """End every open watch stream (server shutdown)."""
        for sub in list(self._watches.values()):
            sub.queue.put_nowait(None)

    # ------------------------------------------------------------------ entry
    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        response = await self._handle(request)
        if self.recorder is not None:
            await self._record(request, response)
        return response

    async def _record(self, request: web.Request, response: web.StreamResponse) -> None:
        """One request and its answer for :attr:`recorder`: what a replay needs to send it again and
        to map the answered object's uid/resourceVersion onto another server's."""
        try:
            raw = await request.read() if request.body_exists else b""
        except Exception:
            raw = b""
        entry: JSON = {"method": request.method, "path": request.path, "query": request.query_string,
                       "contentType": request.headers.get("Content-Type", ""),
                       "accept": request.headers.get("Accept", ""),
                       "userAgent": request.headers.get("User-Agent", ""), "code": response.status}
        if raw:
            try:
                entry["body"] = raw.decode("utf-8")
            except UnicodeDecodeError:
                entry["bodyBase64"] = base64.b64encode(raw).decode()
        answer = getattr(response, "body", None)
        if isinstance(answer, bytes) and response.content_type == "application/json":
            try:
                doc = json.loads(answer)
            except ValueError:
                doc = None
            if isinstance(doc, dict):
                found = doc.get("metadata")
                meta: JSON = found if isinstance(found, dict) else {}
                entry["kind"] = doc.get("kind", "")
                if doc.get("kind") == "Status":
                    entry["reason"] = doc.get("reason", "")
                for key in ("uid", "resourceVersion", "name"):
                    if meta.get(key):
                        entry[key] = meta[key]
        else:
            entry["stream"] = True
        self.recorder(entry)  # type: ignore[misc]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            root = request.path.strip("/").split("/", 1)[0]
            if self.token is not None and root not in validation.PUBLIC_ROOTS:
                authorization = request.headers.get("Authorization")
                if authorization is not None:
                    validation.check_token(authorization, self.token)
                elif request.path not in validation.PUBLIC_INFO_PATHS:
                    raise validation.anonymous_forbidden(request.method, request.path,
                                                         _truthy(request.query.get("watch")))
            return await self._route(request)
        except PageNotFound:
            return web.Response(text="404 page not found\n", status=404, content_type="text/plain")
        except ApiError as err:
            return status_response(err)
        except web.HTTPRequestEntityTooLarge:
            return status_response(validation.too_large())
        except RecursionError:
            return status_response(ApiError.bad_request("the request body nests too deeply"))
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as err:  # a bug: log it, answer a Status, keep serving
            log.exception("internal error serving %s %s", request.method, request.path_qs)
            return status_response(ApiError(500, "InternalError", f"Internal error occurred: {err!r}"))

    async def _route(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        parts = [p for p in path.split("/") if p]
        if parts and parts[0] in ("healthz", "readyz", "livez"):
            return web.Response(text="ok", content_type="text/plain")
        if parts == ["version"]:
            return json_response(self.version())
        if parts and parts[0] == "openapi":
            return self._openapi_response(parts)
        if not parts or parts[0] not in ("api", "apis"):
            raise PageNotFound()
        if parts[0] == "api":
            if len(parts) == 1:
                return json_response(self.api_versions(request))
            if parts[1] != "v1":
                raise PageNotFound()
            if len(parts) == 2:
                return json_response(self.resource_list("", "v1"))
            return await self._serve_resource(request, "", "v1", parts[2:])
        if len(parts) == 1:
            return json_response(self.api_groups())
        group = parts[1]
        if group not in self._groups():
            raise PageNotFound()
        if len(parts) == 2:
            return json_response(self.api_group(group))
        version = parts[2]
        if version not in self._groups()[group]:
            raise PageNotFound()
        if len(parts) == 3:
            return json_response(self.resource_list(group, version))
        if group == SUBRESOURCE_GROUP:
            return await self._serve_vm_action(request, version, parts[3:])
        return await self._serve_resource(request, group, version, parts[3:])

    # ------------------------------------------------------------------ discovery
    def version(self) -> JSON:
        raw = self.config.kubernetes_version
        numbers = raw.lstrip("v").split(".")
        return {
            "major": numbers[0] if numbers else "1",
            "minor": numbers[1] if len(numbers) > 1 else "0",
            "emulationMajor": numbers[0] if numbers else "1",
            "emulationMinor": numbers[1] if len(numbers) > 1 else "0",
            "gitVersion": f"{raw}+kovc-sim",
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z",
            "goVersion": "go1.25.0",
            "compiler": "gc",
            "platform": "linux/amd64",
        }

    def _groups(self) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for rt in self.store.types.values():
            if rt.group and rt.version not in groups.setdefault(rt.group, []):
                groups[rt.group].append(rt.version)
        groups[SUBRESOURCE_GROUP] = list(SUBRESOURCE_VERSIONS)
        return groups

    def api_versions(self, request: web.BaseRequest) -> JSON:
        host = request.host or f"{self.config.host}:{self.config.port}"
        return {"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]}

    @staticmethod
    def _group_json(group: str, versions: list[str]) -> JSON:
        gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"name": group, "versions": gvs, "preferredVersion": gvs[0]}

    def api_groups(self) -> JSON:
        return {"kind": "APIGroupList", "apiVersion": "v1",
                "groups": [self._group_json(g, vs) for g, vs in self._groups().items()]}

    def api_group(self, group: str) -> JSON:
        versions = self._groups().get(group)
        if not versions:
            raise _not_found_path()
        return {"kind": "APIGroup", "apiVersion": "v1", **self._group_json(group, versions)}

    def resource_list(self, group: str, version: str) -> JSON:
        resources: list[JSON] = []
        if group == SUBRESOURCE_GROUP:
            if version not in SUBRESOURCE_VERSIONS:
                raise _not_found_path()
            for action in VM_ACTIONS:
                resources.append({"name": f"virtualmachines/{action}", "singularName": "", "namespaced": True,
                                  "kind": "VirtualMachine", "verbs": ["update"]})
        else:
            rts = [rt for rt in self.store.types.values() if rt.group == group and rt.version == version]
            if not rts:
                raise _not_found_path()
            for rt in rts:
                entry: JSON = {"name": rt.plural, "singularName": rt.singular or rt.kind.lower(),
                               "namespaced": rt.namespaced, "kind": rt.kind, "verbs": list(rt.verbs)}
                if rt.short_names:
                    entry["shortNames"] = list(rt.short_names)
                if rt.categories:
                    entry["categories"] = list(rt.categories)
                resources.append(entry)
                for sub in rt.subresources:
                    verbs = ["get"] if sub == "log" else ["get", "patch", "update"]
                    resources.append({"name": f"{rt.plural}/{sub}", "singularName": "",
                                      "namespaced": rt.namespaced, "kind": rt.kind, "verbs": verbs})
                if rt.key == NAMESPACES.key:
                    resources.append({"name": "namespaces/finalize", "singularName": "", "namespaced": False,
                                      "kind": "Namespace", "verbs": ["update"]})
        return {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": f"{group}/{version}" if group else version, "resources": resources}

    def _openapi_response(self, parts: list[str]) -> web.Response:
        if len(parts) < 2 or parts[1] != "v3":
            raise _not_found_path()
        keys = frozenset(self.store.types)
        if self._openapi is None or keys != self._openapi_types:
            self._openapi = OpenApiCache(self.store.types.values())
            self._openapi_types = keys
        if len(parts) == 2:
            return json_response(self._openapi.index())
        doc = self._openapi.get("/".join(parts[2:]))
        if doc is None:
            raise _not_found_path()
        return web.Response(body=doc, content_type="application/json")

    # ------------------------------------------------------------------ resources
    def parse_target(self, group: str, version: str, rest: list[str]) -> Target:
        legacy_watch = False
        if rest and rest[0] == "watch":
            legacy_watch, rest = True, rest[1:]
        namespace = ""
        if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise _not_found_path()
        rt = self.store.type_for(group, rest[0])
        if rt.version != version:
            raise _not_found_path()
        if namespace and not rt.namespaced:
            raise PageNotFound()
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        if sub and sub not in rt.subresources and not (sub == "finalize" and rt.key == NAMESPACES.key) \
                and not (sub == "binding" and rt.key == PODS.key):
            raise _not_found_path()
        if name and rt.namespaced and not namespace:
            raise _not_found_path()
        return Target(rt, namespace, name, sub, legacy_watch)

    @staticmethod
    def _verb(method: str, t: Target) -> str:
        if method == "POST":
            return "create"
        if method == "PUT":
            return "update"
        if method == "PATCH":
            return "patch"
        return "delete" if t.name else "deletecollection"

    async def _serve_resource(self, request: web.Request, group: str, version: str,
                              rest: list[str]) -> web.StreamResponse:
        t = self.parse_target(group, version, rest)
        method = request.method
        query = request.query
        watching = method == "GET" and not t.sub and (t.legacy_watch or _truthy(query.get("watch")))
        fault: Fault | None = None
        watch_cut: float | None = None
        if self.faults is not None and self.faults.enabled and is_faultable(request.path):
            if watching:
                watch_cut = self.faults.watch_cut()
            else:
                fault = self.faults.decide(mutating=method in MUTATING)
        if fault is not None and fault.when == "before":
            if method in MUTATING:
                self._audit_failure(request, t, self._fault_code(fault))
            return self._fault_response(request, fault)
        if watching:
            return await self._watch(request, t, watch_cut)
        if method == "GET":
            response: web.StreamResponse = self._get(request, t)
        elif method in MUTATING:
            try:
                response = await self._mutate(request, t)
            except ApiError as err:
                self._audit_failure(request, t, err.code)
                raise
        else:
            raise _method_not_allowed(method, request.path)
        if fault is not None:  # after the write
            return self._fault_response(request, fault)
        return response

    def _audit_failure(self, request: web.Request, t: Target, code: int) -> None:
        dry = "All" in request.query.getall("dryRun", [])
        self.store.record_audit(self._verb(request.method, t), t.rt, t.namespace,
                                t.name or request.get(_AUDIT_NAME, ""),
                                request.headers.get("User-Agent", ""), request.path_qs, code, dry)

    # ------------------------------------------------------------------ faults
    @staticmethod
    def _fault_code(fault: Fault) -> int:
        return {"error": 500, "throttle": 429}.get(fault.kind, 0)

    def _fault_response(self, request: web.Request, fault: Fault) -> web.Response:
        if fault.kind == "throttle":
            after = self.faults.retry_after if self.faults is not None else 1
            return status_response(ApiError(
                429, "TooManyRequests", "the server has received too many requests and has asked us to try "
                "again later", details={"retryAfterSeconds": after}, retry_after=after))
        if fault.kind == "error":
            return status_response(ApiError(500, "InternalError", "Internal error occurred: etcdserver: "
                                            "request timed out (simulated fault)"))
        if request.transport is not None:  # drop: close without an answer
            request.transport.close()
        return web.Response(status=500)

    # ------------------------------------------------------------------ reads
    def _get(self, request: web.Request, t: Target) -> web.StreamResponse:
        store, rt = self.store, t.rt
        if t.name:
            obj = store.require(rt, t.namespace, t.name)
            if t.sub == "log":
                text = self.world.pod_log(store, t.namespace, t.name) if self.world is not None else ""
                return web.Response(text=text, content_type="text/plain")
            if t.sub == "finalize":
                raise _method_not_allowed("GET", request.path)
            return self._render(request, rt, obj)
        label_selector, field_selector = request.query.get("labelSelector", ""), request.query.get("fieldSelector", "")
        validation.check_label_selector(label_selector)
        validation.check_field_selector(rt, field_selector)
        items, rv = store.list(rt, t.namespace or None, label_selector, field_selector)
        return self._render_list(request, rt, items, rv)

    def _render(self, request: web.Request, rt: ResourceType, obj: JSON, status: int = 200) -> web.Response:
        rep = wanted_representation(request)
        if rep == "table" and request.method == "GET":
            return json_response(to_table(rt, [obj], obj.get("metadata", {}).get("resourceVersion", ""),
                                          request.query.get("includeObject", "Metadata")), status)
        if rep == "partial" and request.method == "GET":
            return json_response(_partial(obj), status)
        return json_response(obj, status)

    def _render_list(self, request: web.Request, rt: ResourceType, items: list[JSON],
                     rv: int) -> web.Response:
        rep = wanted_representation(request)
        if rep == "table":
            return json_response(to_table(rt, items, rv, request.query.get("includeObject", "Metadata")))
        if rep == "partial":
            return json_response({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                                  "metadata": {"resourceVersion": str(rv)},
                                  "items": [_partial(o) for o in items]})
        return json_response({"kind": rt.list_kind, "apiVersion": rt.api_version,
                              "metadata": {"resourceVersion": str(rv)}, "items": items})

    # ------------------------------------------------------------------ writes
    @staticmethod
    async def _read(request: web.Request) -> bytes:
        """The body, at most ``MAX_BODY`` bytes (413 ``RequestEntityTooLarge`` otherwise)."""
        if (request.content_length or 0) > validation.MAX_BODY:
            raise validation.too_large()
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise validation.too_large() from None

    @classmethod
    async def _body(cls, request: web.Request, *, required: bool = True) -> Any:
        raw = await cls._read(request)
        if not raw.strip():
            if required:
                raise ApiError.bad_request("the request body is empty")
            return None
        ctype = request.content_type if request.headers.get("Content-Type") else ""
        if ctype == PROTOBUF:
            return decode_protobuf(raw)
        if "protobuf" in ctype or "cbor" in ctype:
            raise _unsupported_body(ctype)
        validation.check_object_media_type(ctype)
        if "yaml" in ctype:
            return validation.load_yaml(raw, ctype)
        return validation.load_json(raw, ctype)

    @staticmethod
    def _check_kind(rt: ResourceType, obj: Any) -> JSON:
        if not isinstance(obj, dict):
            raise ApiError.bad_request(f"the request body must be a {rt.kind} object")
        api_version = obj.get("apiVersion")
        if api_version and api_version != rt.api_version:
            raise ApiError.bad_request(f"the API version in the data ({api_version}) does not match the "
                                       f"expected API version ({rt.api_version})")
        kind = obj.get("kind")
        if kind and kind != rt.kind:
            raise ApiError.bad_request(f"the kind in the data ({kind}) does not match the expected kind "
                                       f"({rt.kind})")
        meta = obj.get("metadata")
        if meta is not None and not isinstance(meta, dict):
            raise ApiError.bad_request("metadata must be an object")
        return obj

    async def _mutate(self, request: web.Request, t: Target) -> web.StreamResponse:
        method = request.method
        ua = request.headers.get("User-Agent", "")
        dry = _dry_run(request.query.getall("dryRun", []), method)
        path = request.path_qs
        store, rt = self.store, t.rt
        if method == "POST" and t.sub == "binding" and t.name:
            binding = await self._body(request)
            if not isinstance(binding, dict):
                raise ApiError.bad_request("the request body must be a Binding object")
            request[_AUDIT_NAME] = t.name
            return json_response(bind_pod(store, binding, namespace=t.namespace, name=t.name, user_agent=ua,
                                          path=path, dry_run=dry), 201)
        if method == "POST":
            if t.name or t.sub:
                raise _method_not_allowed(method, request.path)
            if rt.namespaced and not t.namespace:
                raise _method_not_allowed(method, request.path)
            obj = self._check_kind(rt, await self._body(request))
            validation.check_metadata_types(rt, obj)
            meta = obj.get("metadata") or {}
            request[_AUDIT_NAME] = meta.get("name") or meta.get("generateName") or ""
            if rt.namespaced and not meta.get("namespace"):
                obj.setdefault("metadata", {})["namespace"] = t.namespace
            validation.validate_metadata(rt, obj, creating=True)
            if rt.key == NAMESPACES.key:
                obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
                obj["status"] = {"phase": "Active"}
            created = store.create(rt, obj, namespace=t.namespace, user_agent=ua, dry_run=dry, path=path)
            return json_response(created, 201)
        if method == "DELETE":
            if t.sub:
                raise _method_not_allowed(method, request.path)
            options = await self._body(request, required=False) or {}
            if not isinstance(options, dict):
                raise ApiError.bad_request("DeleteOptions must be an object")
            dry = dry or _dry_run(options.get("dryRun") or [], "DELETE")
            if not t.name:
                return self._delete_collection(request, t, options, ua, dry)
            return self._delete_one(t, options, request.query, ua, dry, path)
        if not t.name:
            raise _method_not_allowed(method, request.path)
        if t.sub == "log":
            raise _method_not_allowed(method, request.path)
        if method == "PUT":
            obj = self._check_kind(rt, await self._body(request))
            validation.check_metadata_types(rt, obj)
            meta = obj.setdefault("metadata", {})
            if meta.get("name") and meta["name"] != t.name:
                raise ApiError.bad_request(f"the name of the object ({meta['name']}) does not match the name "
                                           f"on the URL ({t.name})")
            meta["name"] = t.name
            if rt.namespaced:
                if meta.get("namespace") and meta["namespace"] != t.namespace:
                    raise ApiError.bad_request("the namespace of the provided object does not match the "
                                               "namespace sent on the request")
                meta["namespace"] = t.namespace
            if t.sub == "finalize":
                current = store.require(rt, t.namespace, t.name)
                if meta.get("resourceVersion"):
                    current["metadata"]["resourceVersion"] = meta["resourceVersion"]
                wanted = (obj.get("spec") or {}).get("finalizers") or []
                current.setdefault("spec", {})["finalizers"] = list(wanted)
                obj = current
            validation.validate_metadata(rt, obj, creating=False)
            updated = store.update(rt, obj, user_agent=ua, subresource="status" if t.sub == "status" else "",
                                   path=path, dry_run=dry)
            return json_response(updated, 200)
        # PATCH
        ctype = request.content_type
        raw = await self._read(request)
        if ctype == patching.APPLY_PATCH:
            if not request.query.get("fieldManager"):
                raise options_invalid("PatchOptions", "fieldManager", "Required value: is required for apply patch",
                                      "FieldValueRequired")
            body = validation.load_yaml(raw, ctype)
            if not isinstance(body, dict) or not body.get("apiVersion") or not body.get("kind"):
                api_version = str(body.get("apiVersion") or "") if isinstance(body, dict) else ""
                kind = str(body.get("kind") or "") if isinstance(body, dict) else ""
                group, _, version = api_version.rpartition("/")
                raise ApiError.bad_request(f"invalid object type: {group}/{version}, Kind={kind}")
        else:
            body = patching.parse_body(ctype, raw) if ctype in patching.PATCH_TYPES else None
        existing = store.get(rt, t.namespace, t.name)
        if existing is None:
            if ctype == patching.APPLY_PATCH and not t.sub:
                obj = self._check_kind(rt, body)
                validation.check_metadata_types(rt, obj)
                meta = obj.setdefault("metadata", {})
                meta.setdefault("name", t.name)
                if rt.namespaced:
                    meta.setdefault("namespace", t.namespace)
                validation.validate_metadata(rt, obj, creating=True)
                obj["metadata"].pop("managedFields", None)
                patching.apply_ownership(None, obj, body, request.query["fieldManager"], True, rt, now_rfc3339())
                created = store.create(rt, obj, namespace=t.namespace, user_agent=ua, dry_run=dry, path=path)
                return json_response(created, 201)
            if ctype in patching.PATCH_TYPES:
                raise ApiError.not_found(rt, t.name)
        patched = patching.apply_patch(existing or {}, ctype, body, rt)
        if ctype == patching.APPLY_PATCH and existing is not None:
            patched.setdefault("metadata", {})["managedFields"] = (existing.get("metadata") or {}).get("managedFields")
            patching.apply_ownership(existing, patched, body, request.query["fieldManager"],
                                     _truthy(request.query.get("force")), rt, now_rfc3339())
        pmeta = patched.get("metadata")
        if not isinstance(pmeta, dict):
            raise ApiError.invalid(rt, t.name, "metadata: Required value")
        if pmeta.get("name") != t.name:
            raise ApiError.bad_request(f"the name of the object ({pmeta.get('name')}) does not match the name on "
                                       f"the URL ({t.name})")
        if rt.namespaced and pmeta.get("namespace") != t.namespace:
            raise ApiError.bad_request("the namespace of the provided object does not match the namespace sent "
                                       "on the request")
        validation.validate_metadata(rt, patched, creating=False)
        updated = store.update(rt, patched, user_agent=ua, subresource="status" if t.sub == "status" else "",
                               verb="patch", path=path, dry_run=dry)
        return json_response(updated, 200)

    @staticmethod
    def _propagation(options: JSON, query: Any) -> Literal["Background", "Foreground", "Orphan"]:
        policy = options.get("propagationPolicy") or query.get("propagationPolicy")
        if policy is None:
            orphan = options.get("orphanDependents")
            if orphan is None and "orphanDependents" in query:
                orphan = _truthy(query.get("orphanDependents"))
            policy = "Orphan" if orphan else "Background"
        if policy not in ("Background", "Foreground", "Orphan"):
            raise options_invalid("DeleteOptions", "propagationPolicy",
                                  f'Unsupported value: {json.dumps(policy)}: supported values: "Foreground", '
                                  '"Background", "Orphan", "nil"')
        return policy  # type: ignore[no-any-return]

    def _delete_one(self, t: Target, options: JSON, query: Any, ua: str, dry: bool,
                    path: str) -> web.Response:
        store, rt = self.store, t.rt
        propagation = self._propagation(options, query)
        preconditions = options.get("preconditions") or {}
        rv = preconditions.get("resourceVersion")
        if rv:
            current = store.require(rt, t.namespace, t.name)
            if current["metadata"].get("resourceVersion") != rv:
                raise ApiError.conflict(rt, t.name, f"Precondition failed: ResourceVersion in precondition: "
                                                    f"{rv}, ResourceVersion in object meta: "
                                                    f"{current['metadata'].get('resourceVersion')}")
        result = store.delete(rt, t.namespace, t.name, user_agent=ua, propagation=propagation, dry_run=dry,
                              path=path, preconditions_uid=preconditions.get("uid"))
        if dry or store.get(rt, t.namespace, t.name) is not None:
            return json_response(result, 200)
        if rt.key not in _OBJECT_ON_DELETE:
            meta = result.get("metadata", {})
            return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                  "details": {"name": t.name, "group": rt.group, "kind": rt.plural,
                                              "uid": meta.get("uid", "")}}, 200)
        return json_response(result, 200)

    def _delete_collection(self, request: web.Request, t: Target, options: JSON, ua: str,
                           dry: bool) -> web.Response:
        store, rt = self.store, t.rt
        if rt.namespaced and not t.namespace:
            raise _method_not_allowed("DELETE", request.path)
        propagation = self._propagation(options, request.query)
        items, _ = store.list(rt, t.namespace or None, request.query.get("labelSelector", ""),
                              request.query.get("fieldSelector", ""))
        deleted = []
        for obj in items:
            meta = obj["metadata"]
            try:
                deleted.append(store.delete(rt, meta.get("namespace", ""), meta["name"], user_agent=ua,
                                            propagation=propagation, dry_run=dry, path=request.path_qs))
            except ApiError as err:
                if err.code != 404:
                    raise
        store.record_audit("deletecollection", rt, t.namespace, "", ua, request.path_qs, 200, dry)
        return json_response({"kind": rt.list_kind, "apiVersion": rt.api_version,
                              "metadata": {"resourceVersion": str(store.resource_version)}, "items": deleted})

    # ------------------------------------------------------------------ virt-api subresources
    async def _serve_vm_action(self, request: web.Request, version: str,
                               rest: list[str]) -> web.StreamResponse:
        if version not in SUBRESOURCE_VERSIONS:
            raise _not_found_path()
        if len(rest) != 5 or rest[0] != "namespaces" or rest[2] != "virtualmachines" \
                or rest[4] not in VM_ACTIONS:
            raise _not_found_path()
        if request.method != "PUT":
            raise _method_not_allowed(request.method, request.path)
        namespace, name, action = rest[1], rest[3], rest[4]
        ua = request.headers.get("User-Agent", "")
        fault: Fault | None = None
        if self.faults is not None and self.faults.enabled:
            fault = self.faults.decide(mutating=True)
        def audit(code: int, dry: bool = False) -> None:
            self.store.record_audit(action, VMS, namespace, name, ua, request.path_qs, code, dry)

        if fault is not None and fault.when == "before":
            audit(self._fault_code(fault))
            return self._fault_response(request, fault)
        try:
            body = await self._body(request, required=False) or {}
            if not isinstance(body, dict):
                raise ApiError.bad_request(f"the {action} options must be an object")
            dry = _dry_run(body.get("dryRun") or []) or _dry_run(request.query.getall("dryRun", []))
            if self.world is None:
                raise ApiError(503, "ServiceUnavailable", "the server is currently unable to handle the "
                               f"request (put virtualmachines.{SUBRESOURCE_GROUP} {name})")
            result = await self.world.vm_action(self.store, self.config, namespace, name, action, body, ua)
        except ApiError as err:
            audit(err.code, "All" in request.query.getall("dryRun", []))
            raise
        audit(202, dry)
        if fault is not None:
            return self._fault_response(request, fault)
        if result is None or result == {}:
            return web.Response(status=202)
        return json_response(result, 202)

    # ------------------------------------------------------------------ watch
    async def _watch(self, request: web.Request, t: Target, cut: float | None) -> web.StreamResponse:
        store, rt = self.store, t.rt
        query = request.query
        label_selector = query.get("labelSelector", "")
        field_selector = query.get("fieldSelector", "")
        validation.check_label_selector(label_selector)
        validation.check_field_selector(rt, field_selector)
        if t.legacy_watch and t.name:
            by_name = f"metadata.name={t.name}"
            field_selector = f"{field_selector},{by_name}" if field_selector else by_name
        try:
            timeout = float(query.get("timeoutSeconds") or DEFAULT_WATCH_TIMEOUT)
        except ValueError:
            raise ApiError.bad_request(f"invalid timeoutSeconds {query.get('timeoutSeconds')!r}") from None
        if cut is not None:
            timeout = min(timeout, cut)
        bookmarks = _truthy(query.get("allowWatchBookmarks"))
        initial_events = _truthy(query.get("sendInitialEvents"))
        table = wanted_representation(request) == "table"
        include = query.get("includeObject", "Metadata")
        rv_param = query.get("resourceVersion", "")
        since: int | None = None
        if rv_param not in ("", "0"):
            try:
                since = int(rv_param)
            except ValueError:
                raise ApiError.bad_request(f"invalid resource version {rv_param!r}") from None

        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout, 0.0)
        sub = store.subscribe(rt, t.namespace)
        self._watches[id(sub)] = sub
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        first_table = True

        async def send(etype: str, obj: JSON) -> None:
            nonlocal first_table
            if table and etype not in ("ERROR", "BOOKMARK"):
                obj = to_table(rt, [obj], obj.get("metadata", {}).get("resourceVersion", ""), include,
                               with_columns=first_table)
                first_table = False
            await response.write(json.dumps({"type": etype, "object": obj}).encode() + b"\n")

        def translate(ev: WatchEvent) -> tuple[str, JSON] | None:
            """kube-apiserver's ``cacheWatcher.convertToWatchEvent``: whether the object matches the
            selectors now and whether it matched before this event decide the type; an object that stops
            matching is DELETED (its previous content with the event's resourceVersion), one that starts
            matching is ADDED - exact for a resumed watch too, as every event carries the previous object."""
            obj = ev.object
            before = ev.prev if ev.prev is not None else (obj if ev.type == "DELETED" else None)
            cur_ok = ev.type != "DELETED" and matches(obj, label_selector, field_selector)
            old_ok = before is not None and matches(before, label_selector, field_selector)
            if cur_ok:
                return ("MODIFIED" if old_ok else "ADDED"), obj
            if not old_ok:
                return None
            if ev.type == "DELETED":
                return "DELETED", obj
            assert before is not None
            gone = {**before, "metadata": {**(before.get("metadata") or {}), "resourceVersion": str(ev.rv)}}
            return "DELETED", gone

        def bookmark(rv: int, initial_end: bool = False) -> JSON:
            meta: JSON = {"resourceVersion": str(rv)}
            if initial_end:
                meta["annotations"] = {"k8s.io/initial-events-end": "true"}
            return {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta}

        try:
            await response.prepare(request)
            if since is None:
                items, last = store.list(rt, t.namespace or None, label_selector, field_selector)
                for obj in items:
                    await send("ADDED", obj)
                if initial_events and bookmarks:
                    await send("BOOKMARK", bookmark(last, initial_end=True))
            else:
                try:
                    backlog = store.events_since(rt, t.namespace, since)
                except ApiError as err:
                    await send("ERROR", err.status())
                    return response
                last = since
                for ev in backlog:
                    last = ev.rv
                    out = translate(ev)
                    if out is not None:
                        await send(*out)
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                wait = min(remaining, BOOKMARK_INTERVAL) if bookmarks else remaining
                try:
                    item = await asyncio.wait_for(sub.queue.get(), wait)
                except TimeoutError:
                    if bookmarks and sub.queue.empty() and deadline - loop.time() > 0:
                        await send("BOOKMARK", bookmark(max(last, store.resource_version)))
                    continue
                if item is None:
                    break
                if item.rv <= last:
                    continue
                last = item.rv
                out = translate(item)
                if out is not None:
                    await send(*out)
        except (ConnectionResetError, ConnectionError):
            return response
        except Exception:  # a bug once streaming: log it and end the stream (the status is already sent)
            log.exception("internal error in watch %s", request.path_qs)
            return response
        finally:
            store.unsubscribe(sub)
            self._watches.pop(id(sub), None)
        try:
            await response.write_eof()
        except (ConnectionResetError, ConnectionError):
            pass
        return response
