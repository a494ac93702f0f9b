"""OpenAPI v3 documents of the simulated API server (``/openapi/v3`` and its group-versions).

The schemas are permissive (``type: object`` with ``x-kubernetes-preserve-unknown-fields``): the
simulated server does not validate bodies against them. What matters is the shape kubectl reads:

- every kind has a schema carrying ``x-kubernetes-group-version-kind``;
- the POST (collection) and PATCH/PUT (item) operations carry ``x-kubernetes-group-version-kind``
  and declare the ``fieldValidation`` query parameter, so ``kubectl apply`` uses server-side field
  validation and never needs ``/openapi/v2`` in protobuf (see kubectl-notes.md);
- PATCH declares the content types the server accepts (strategic merge only for built-in kinds), so
  ``kubectl apply`` picks strategic merge for built-ins and JSON merge patch for custom resources.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from .patch import CR_PATCH_TYPES
from .resources import SUBRESOURCE_GROUP, VM_ACTIONS
from .store import JSON, ResourceType

SUBRESOURCE_VERSIONS = ("v1", "v1alpha3")


def gv_path(group: str, version: str) -> str:
    """``api/v1`` for the core group, ``apis/<group>/<version>`` otherwise (no leading slash)."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


def schema_name(rt: ResourceType, kind: str | None = None) -> str:
    """The OpenAPI definition name, as the real server spells it."""
    kind = kind or rt.kind
    if rt.group == "":
        return f"io.k8s.api.core.{rt.version}.{kind}"
    if rt.group in ("apps", "admissionregistration.k8s.io"):
        return f"io.k8s.api.{rt.group.split('.')[0]}.{rt.version}.{kind}"
    reversed_group = ".".join(reversed(rt.group.split(".")))
    return f"{reversed_group}.{rt.version}.{kind}"


def _gvk(rt: ResourceType, kind: str | None = None) -> JSON:
    return {"group": rt.group, "version": rt.version, "kind": kind or rt.kind}


def _query(name: str, description: str, type_: str = "string") -> JSON:
    return {"name": name, "in": "query", "description": description,
            "schema": {"type": type_, "uniqueItems": True}}


_DRY_RUN = _query("dryRun", "When present, indicates that modifications should not be persisted. "
                            "Valid values are: - All: all dry run stages will be processed")
_FIELD_MANAGER = _query("fieldManager", "fieldManager is a name associated with the actor or entity "
                                        "that is making these changes.")
_FIELD_VALIDATION = _query("fieldValidation", "fieldValidation instructs the server on how to handle objects "
                                              "in the request containing unknown or duplicate fields. "
                                              "Valid values are: Ignore, Warn, Strict.")
_PRETTY = _query("pretty", "If 'true', then the output is pretty printed.")
_LIST_PARAMS = [
    _query("labelSelector", "A selector to restrict the list of returned objects by their labels."),
    _query("fieldSelector", "A selector to restrict the list of returned objects by their fields."),
    _query("resourceVersion", "resourceVersion sets a constraint on what resource versions a request "
                              "may be served from."),
    _query("timeoutSeconds", "Timeout for the list/watch call.", "integer"),
    _query("watch", "Watch for changes to the described resources.", "boolean"),
    _query("allowWatchBookmarks", "allowWatchBookmarks requests watch events with type \"BOOKMARK\".",
           "boolean"),
    _query("limit", "limit is a maximum number of responses to return for a list call.", "integer"),
    _query("continue", "The continue option should be set when retrieving more results from the server."),
]
_DELETE_PARAMS = [
    _DRY_RUN,
    _query("gracePeriodSeconds", "The duration in seconds before the object should be deleted.", "integer"),
    _query("propagationPolicy", "Whether and how garbage collection will be performed: "
                                "'Orphan', 'Background' or 'Foreground'."),
]


def _ref(name: str) -> JSON:
    return {"$ref": f"#/components/schemas/{name}"}


def _body(name: str, content_types: Iterable[str] = ("application/json",)) -> JSON:
    return {"content": {ct: {"schema": _ref(name)} for ct in content_types}, "required": True}


def _responses(name: str, *codes: str) -> JSON:
    return {code: {"description": "OK" if code == "200" else "Created" if code == "201" else "Accepted",
                   "content": {"application/json": {"schema": _ref(name)}}} for code in codes}


def _op(rt: ResourceType, action: str, op_id: str, *, kind: str | None = None,
        params: list[JSON] | None = None, body: JSON | None = None, responses: JSON | None = None) -> JSON:
    op: JSON = {
        "tags": [gv_path(rt.group, rt.version).replace("/", "_")],
        "operationId": op_id,
        "parameters": params or [],
        "responses": responses or _responses(schema_name(rt, kind), "200"),
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": _gvk(rt, kind),
    }
    if body is not None:
        op["requestBody"] = body
    return op


def _kind_schema(rt: ResourceType) -> JSON:
    loose = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return {
        "description": f"{rt.kind} ({rt.api_version}) as served by the simulated cluster.",
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": dict(loose),
            "spec": dict(loose),
            "status": dict(loose),
        },
        "x-kubernetes-preserve-unknown-fields": True,
        "x-kubernetes-group-version-kind": [_gvk(rt)],
    }


def _list_schema(rt: ResourceType) -> JSON:
    return {
        "description": f"{rt.list_kind} is a list of {rt.kind}.",
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "items": {"type": "array", "items": _ref(schema_name(rt))},
            "metadata": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        },
        "x-kubernetes-group-version-kind": [_gvk(rt, rt.list_kind)],
    }


def _resource_paths(rt: ResourceType) -> dict[str, JSON]:
    base = "/" + gv_path(rt.group, rt.version)
    name = schema_name(rt)
    camel = rt.kind
    scope = "Namespaced" if rt.namespaced else ""
    ns_param = [{"name": "namespace", "in": "path", "required": True, "schema": {"type": "string"}}]
    name_param = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]
    collection = f"{base}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else f"{base}/{rt.plural}"
    item = f"{collection}/{{name}}"
    # Strategic merge is accepted for built-in kinds but not advertised: kubectl would then compute
    # its patch from these (permissive) schemas and warn; without it kubectl uses its compiled-in
    # patch metadata, which is exact.
    patch_types = CR_PATCH_TYPES
    write_params = [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION, _PRETTY]
    paths: dict[str, JSON] = {
        collection: {
            "parameters": ns_param if rt.namespaced else [],
            "get": _op(rt, "list", f"list{scope}{camel}", kind=rt.list_kind, params=_LIST_PARAMS,
                       responses=_responses(schema_name(rt, rt.list_kind), "200")),
            "post": _op(rt, "post", f"create{scope}{camel}", params=write_params, body=_body(name),
                        responses=_responses(name, "200", "201", "202")),
            "delete": _op(rt, "deletecollection", f"deleteCollection{scope}{camel}",
                          params=_DELETE_PARAMS + _LIST_PARAMS[:2]),
        },
        item: {
            "parameters": (ns_param if rt.namespaced else []) + name_param,
            "get": _op(rt, "get", f"read{scope}{camel}"),
            "put": _op(rt, "put", f"replace{scope}{camel}", params=write_params, body=_body(name),
                       responses=_responses(name, "200", "201")),
            "patch": _op(rt, "patch", f"patch{scope}{camel}",
                         params=[*write_params, _query("force", "Force is going to \"force\" Apply requests.",
                                                       "boolean")],
                         body=_body(name, patch_types), responses=_responses(name, "200", "201")),
            "delete": _op(rt, "delete", f"delete{scope}{camel}", params=_DELETE_PARAMS,
                          responses=_responses(name, "200", "202")),
        },
    }
    if rt.namespaced:
        paths[f"{base}/{rt.plural}"] = {
            "get": _op(rt, "list", f"list{camel}ForAllNamespaces", kind=rt.list_kind, params=_LIST_PARAMS,
                       responses=_responses(schema_name(rt, rt.list_kind), "200")),
        }
    if "status" in rt.subresources:
        paths[f"{item}/status"] = {
            "parameters": (ns_param if rt.namespaced else []) + name_param,
            "get": _op(rt, "get", f"read{scope}{camel}Status"),
            "put": _op(rt, "put", f"replace{scope}{camel}Status", params=write_params, body=_body(name)),
            "patch": _op(rt, "patch", f"patch{scope}{camel}Status", params=write_params,
                         body=_body(name, patch_types)),
        }
    if "log" in rt.subresources:
        paths[f"{item}/log"] = {
            "parameters": ns_param + name_param,
            "get": {"operationId": f"read{scope}{camel}Log", "x-kubernetes-action": "connect",
                    "parameters": [_query("container", "The container for which to stream logs.")],
                    "responses": {"200": {"description": "OK",
                                          "content": {"text/plain": {"schema": {"type": "string"}}}}}},
        }
    return paths


def group_versions(types: Iterable[ResourceType]) -> dict[str, list[ResourceType]]:
    """Served resource types by ``gv_path``, plus the empty subresources.kubevirt.io versions."""
    out: dict[str, list[ResourceType]] = {}
    for rt in types:
        out.setdefault(gv_path(rt.group, rt.version), []).append(rt)
    for version in SUBRESOURCE_VERSIONS:
        out.setdefault(gv_path(SUBRESOURCE_GROUP, version), [])
    return out


def document(key: str, types: list[ResourceType]) -> JSON:
    """The OpenAPI v3 document of one group-version (``key`` as in :func:`gv_path`)."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for rt in types:
        paths.update(_resource_paths(rt))
        schemas[schema_name(rt)] = _kind_schema(rt)
        schemas[schema_name(rt, rt.list_kind)] = _list_schema(rt)
    if key.startswith(f"apis/{SUBRESOURCE_GROUP}/"):
        for action in VM_ACTIONS:
            paths[f"/{key}/namespaces/{{namespace}}/virtualmachines/{{name}}/{action}"] = {
                "put": {"operationId": f"v1VMI{action.capitalize()}", "x-kubernetes-action": "put",
                        "responses": {"202": {"description": "Accepted"}}},
            }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (kovc simulated cluster)", "version": "unversioned"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


class OpenApiCache:
    """Documents are computed once per served type set; the index carries their content hashes."""

    def __init__(self, types: Iterable[ResourceType]) -> None:
        self._docs: dict[str, bytes] = {}
        self._hashes: dict[str, str] = {}
        for key, rts in group_versions(types).items():
            raw = json.dumps(document(key, rts), sort_keys=True).encode()
            self._docs[key] = raw
            self._hashes[key] = hashlib.sha512(raw).hexdigest()[:64].upper()

    def index(self) -> JSON:
        return {"paths": {key: {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
                          for key, digest in self._hashes.items()}}

    def get(self, key: str) -> bytes | None:
        return self._docs.get(key.strip("/"))
