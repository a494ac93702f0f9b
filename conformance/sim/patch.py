"""The four PATCH flavours the Kubernetes API server accepts, applied to JSON dicts.

- ``application/merge-patch+json``: RFC 7386 JSON merge patch.
- ``application/json-patch+json``: RFC 6902 JSON patch (add, remove, replace, move, copy, test).
- ``application/strategic-merge-patch+json``: Kubernetes strategic merge patch for the built-in kinds
  the simulated cluster serves. Lists are merged by their ``patchMergeKey`` (containers by ``name``,
  Service ports by ``port``, ownerReferences by ``uid``, conditions by ``type``, ...), lists without a
  patch strategy (tolerations, args, ...) are replaced, primitive lists with the ``merge`` strategy
  (``metadata.finalizers``) are unioned. Directives: ``$patch: replace|delete`` (maps and list
  elements), ``$retainKeys``, ``$deleteFromPrimitiveList/<field>``, ``$setElementOrder/<field>``.
  Custom resources have no strategic merge: the server answers 415 (see :func:`apply_patch`).
- ``application/apply-patch+yaml`` (server-side apply) is approximated: the applied configuration
  is strategically merged (built-in kinds) or merge-patched (custom resources) into the live object;
  field ownership is kept per ``Apply`` manager in ``metadata.managedFields`` and a change to a field
  another manager applied is a 409 ``Conflict`` unless ``force=true`` (:func:`apply_ownership`); not
  modelled: ``Update`` managers (ownership by plain writes), lists owned item by item, and removal of
  fields a manager stopped applying.

Errors are :class:`~conformance.sim.store.ApiError`: 400 for malformed patches, 422 when a JSON
patch does not apply (a failed ``test`` included), as the real API server answers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import yaml

from .store import JSON, ApiError, ResourceType, deepcopy_json

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH)
CR_PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, APPLY_PATCH)

#: API groups whose kinds are compiled into the API server (strategic merge works for them).
BUILTIN_GROUPS = frozenset({"", "apps", "admissionregistration.k8s.io"})


def is_builtin(rt: ResourceType) -> bool:
    return rt.group in BUILTIN_GROUPS


# --------------------------------------------------------------------------- merge patch (RFC 7386)
def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return deepcopy_json(patch)
    result = deepcopy_json(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# --------------------------------------------------------------------------- JSON patch (RFC 6902)
class _PatchFailed(Exception):
    """A JSON patch operation that does not apply (answered 422)."""


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str):
        raise ApiError.bad_request(f"invalid JSON pointer {path!r}: not a string")
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError.bad_request(f"invalid JSON pointer {path!r}: must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(container: list[Any], token: str, *, for_add: bool, path: str) -> int:
    if token == "-" and for_add:
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise _PatchFailed(f"invalid array index {token!r} in {path}")
    idx = int(token)
    limit = len(container) if for_add else len(container) - 1
    if idx > limit:
        raise _PatchFailed(f"array index {idx} out of bounds in {path}")
    return idx


def _parent(doc: Any, tokens: list[str], path: str) -> Any:
    cur = doc
    for tok in tokens[:-1]:
        if isinstance(cur, dict):
            if tok not in cur:
                raise _PatchFailed(f"doc is missing path: {path}")
            cur = cur[tok]
        elif isinstance(cur, list):
            cur = cur[_index(cur, tok, for_add=False, path=path)]
        else:
            raise _PatchFailed(f"doc is missing path: {path}")
    return cur


def _get(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return doc
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _PatchFailed(f"doc is missing key: {path}")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, for_add=False, path=path)]
    raise _PatchFailed(f"doc is missing path: {path}")


def _add(doc: Any, path: str, value: Any) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return deepcopy_json(value)
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = deepcopy_json(value)
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, for_add=True, path=path), deepcopy_json(value))
    else:
        raise _PatchFailed(f"add operation does not apply: doc is missing path: {path}")
    return doc


def _remove(doc: Any, path: str) -> tuple[Any, Any]:
    tokens = _pointer(path)
    if not tokens:
        raise _PatchFailed("remove operation does not apply: cannot remove the whole document")
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _PatchFailed(f"remove operation does not apply: doc is missing path: {path}")
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, last, for_add=False, path=path))
    raise _PatchFailed(f"remove operation does not apply: doc is missing path: {path}")


def json_patch(target: JSON, operations: Any) -> JSON:
    """Apply an RFC 6902 patch to a copy of ``target``."""
    if not isinstance(operations, list):
        raise ApiError.bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc: Any = deepcopy_json(target)
    for i, op in enumerate(operations):
        if not isinstance(op, dict) or "op" not in op:
            raise ApiError.bad_request(f"invalid JSON patch operation #{i}: {op!r}")
        kind = op["op"]
        path: Any = op.get("path")
        src: Any = op.get("from")
        try:
            if kind == "add":
                doc = _add(doc, path, _value(op))
            elif kind == "remove":
                doc, _ = _remove(doc, path)
            elif kind == "replace":
                _get(doc, path)  # must exist
                tokens = _pointer(path)
                if not tokens:
                    doc = deepcopy_json(_value(op))
                else:
                    doc, _ = _remove(doc, path)
                    doc = _add(doc, path, _value(op))
            elif kind == "move":
                if isinstance(src, str) and isinstance(path, str) and path.startswith(src + "/"):
                    raise _PatchFailed(f"move operation does not apply: {src} is a prefix of {path}")
                doc, value = _remove(doc, src)
                doc = _add(doc, path, value)
            elif kind == "copy":
                doc = _add(doc, path, _get(doc, src))
            elif kind == "test":
                actual = _get(doc, path)
                if actual != _value(op):
                    raise _PatchFailed(f"testing value {path} failed: expected {_value(op)!r}, "
                                       f"found {actual!r}")
            else:
                raise ApiError.bad_request(f"unexpected JSON patch operation {kind!r}")
        except _PatchFailed as err:
            raise ApiError(422, "Invalid", f"the server rejected our request due to an error in our request: "
                                           f"{err}") from None
    if not isinstance(doc, dict):
        raise ApiError(422, "Invalid", "the JSON patch replaced the object by a non-object")
    return doc


def _value(op: JSON) -> Any:
    if "value" not in op:
        raise ApiError.bad_request(f"JSON patch operation {op.get('op')!r} on {op.get('path')!r} "
                                   "has no value")
    return op["value"]


# --------------------------------------------------------------------------- strategic merge patch
@dataclass(frozen=True)
class MergeList:
    """A list field with ``patchStrategy: merge``: ``key`` is its ``patchMergeKey`` (None: a list of
    scalars, unioned); ``item`` the patch metadata of its elements."""

    key: str | None
    item: dict[str, Any] = field(default_factory=dict)


Schema = dict[str, Any]  # field name -> nested Schema | MergeList; fields not listed: plain merge

_CONDITIONS = MergeList("type")
_META: Schema = {"ownerReferences": MergeList("uid"), "finalizers": MergeList(None)}
_CONTAINER: Schema = {
    "env": MergeList("name"),
    "ports": MergeList("containerPort"),
    "volumeMounts": MergeList("mountPath"),
    "volumeDevices": MergeList("devicePath"),
}
_POD_SPEC: Schema = {
    "containers": MergeList("name", _CONTAINER),
    "initContainers": MergeList("name", _CONTAINER),
    "ephemeralContainers": MergeList("name", _CONTAINER),
    "volumes": MergeList("name"),
    "imagePullSecrets": MergeList("name"),
    "hostAliases": MergeList("ip"),
    "resourceClaims": MergeList("name"),
    "schedulingGates": MergeList("name"),
}
_POD_STATUS: Schema = {"conditions": _CONDITIONS, "podIPs": MergeList("ip"), "hostIPs": MergeList("ip")}

#: Patch metadata (from the Go struct tags ``patchStrategy``/``patchMergeKey``) per built-in kind.
STRATEGIC_SCHEMAS: dict[tuple[str, str], Schema] = {
    ("", "Pod"): {"metadata": _META, "spec": _POD_SPEC, "status": _POD_STATUS},
    ("", "Service"): {"metadata": _META, "spec": {"ports": MergeList("port")},
                      "status": {"conditions": _CONDITIONS}},
    ("", "Node"): {"metadata": _META, "spec": {"podCIDRs": MergeList(None)},
                   "status": {"conditions": _CONDITIONS, "addresses": MergeList("type")}},
    ("", "Namespace"): {"metadata": _META, "status": {"conditions": _CONDITIONS}},
    ("", "ServiceAccount"): {"metadata": _META, "secrets": MergeList("name"),
                             "imagePullSecrets": MergeList("name")},
    ("", "ConfigMap"): {"metadata": _META},
    ("", "Event"): {"metadata": _META},
    ("apps", "Deployment"): {"metadata": _META,
                             "spec": {"template": {"metadata": _META, "spec": _POD_SPEC}},
                             "status": {"conditions": _CONDITIONS}},
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"): {"metadata": _META,
                                                                         "webhooks": MergeList("name")},
}


class _Delete:
    """Sentinel: a ``$patch: delete`` on a map removes the field."""


_DELETE = _Delete()


def _strip(value: Any) -> Any:
    """Drop directive keys from a value that replaces (rather than merges into) the original."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip(v) for v in value if not (isinstance(v, dict) and v.get("$patch") == "delete")]
    return value


def _merge_map(original: JSON, patch: JSON, schema: Schema) -> JSON | _Delete:
    patch = dict(patch)
    directive = patch.pop("$patch", None)
    if directive == "delete":
        return _DELETE
    if directive == "replace":
        replaced: JSON = _strip(patch)
        return replaced
    if directive is not None:
        raise ApiError.bad_request(f"unknown patch type: {directive!r} in map")
    retain = patch.pop("$retainKeys", None)
    result: JSON = deepcopy_json(original)
    orders: dict[str, list[Any]] = {}
    for key in [k for k in patch if k.startswith("$")]:
        value = patch.pop(key)
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            if isinstance(result.get(name), list) and isinstance(value, list):
                result[name] = [v for v in result[name] if v not in value]
        elif key.startswith("$setElementOrder/"):
            if isinstance(value, list):
                orders[key.split("/", 1)[1]] = value
        else:
            raise ApiError.bad_request(f"unknown strategic merge patch directive {key!r}")
    for key, value in patch.items():
        meta = schema.get(key)
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            current = result.get(key)
            merged = _merge_map(current if isinstance(current, dict) else {}, value,
                                meta if isinstance(meta, dict) else {})
            if isinstance(merged, _Delete):
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list) and isinstance(meta, MergeList):
            current = result.get(key)
            result[key] = _merge_list(current if isinstance(current, list) else [], value, meta, key)
        else:
            result[key] = _strip(value)
    for name, order in orders.items():
        meta = schema.get(name)
        if isinstance(result.get(name), list) and isinstance(meta, MergeList):
            result[name] = _reorder(result[name], order, meta.key)
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(original: list[Any], patch: list[Any], meta: MergeList, name: str) -> list[Any]:
    if meta.key is None:  # list of scalars, strategy merge: union keeping order
        if any(isinstance(v, dict) for v in patch):
            replace = [v for v in patch if isinstance(v, dict) and v.get("$patch") == "replace"]
            if replace:
                return [v for v in patch if not isinstance(v, dict)]
            raise ApiError.bad_request(f"unable to merge a list of maps into the primitive list {name!r}")
        union = list(original)
        union.extend(v for v in patch if v not in union)
        return union
    if any(isinstance(v, dict) and v.get("$patch") == "replace" for v in patch):
        return [_strip(v) for v in patch if not (isinstance(v, dict) and "$patch" in v)]
    result: list[Any] = deepcopy_json(original)
    for element in patch:
        if not isinstance(element, dict):
            raise ApiError.bad_request(f"list {name!r} is merged by {meta.key!r}: "
                                       f"element {element!r} is not a map")
        if meta.key not in element:
            raise ApiError.bad_request(f"map: {element} does not contain declared merge key: {meta.key}")
        key_value = element[meta.key]
        idx = next((i for i, cur in enumerate(result)
                    if isinstance(cur, dict) and cur.get(meta.key) == key_value), None)
        if element.get("$patch") == "delete":
            if idx is not None:
                result.pop(idx)
            continue
        if idx is None:
            merged = _merge_map({}, element, meta.item)
            if not isinstance(merged, _Delete):
                result.append(merged)
        else:
            merged = _merge_map(result[idx], element, meta.item)
            if isinstance(merged, _Delete):
                result.pop(idx)
            else:
                result[idx] = merged
    return result


def _reorder(items: list[Any], order: list[Any], key: str | None) -> list[Any]:
    def ident(v: Any) -> Any:
        return v.get(key) if key is not None and isinstance(v, dict) else v
    wanted = [ident(o) for o in order]
    ranked = sorted(enumerate(items), key=lambda iv: (wanted.index(ident(iv[1])) if ident(iv[1]) in wanted
                                                      else len(wanted) + iv[0]))
    return [v for _, v in ranked]


def strategic_merge_patch(target: JSON, patch: Any, rt: ResourceType) -> JSON:
    """Strategic merge ``patch`` into ``target`` (a built-in kind)."""
    if not isinstance(patch, dict):
        raise ApiError.bad_request("strategic merge patch must be a JSON object")
    schema = STRATEGIC_SCHEMAS.get((rt.group, rt.kind), {"metadata": _META})
    merged = _merge_map(target, patch, schema)
    if isinstance(merged, _Delete):
        raise ApiError.bad_request("a strategic merge patch cannot delete the whole object")
    return merged


# --------------------------------------------------------------------------- entry point
def parse_body(content_type: str, raw: bytes) -> Any:
    """Decode a PATCH body: JSON for the JSON flavours, YAML (a JSON superset) for apply."""
    try:
        if content_type == APPLY_PATCH:
            return yaml.safe_load(raw.decode("utf-8"))
        return json.loads(raw)
    except (ValueError, yaml.YAMLError) as err:
        raise ApiError.bad_request(f"the request body is not valid {content_type}: {err}") from None


def apply_patch(target: JSON, content_type: str, patch: Any, rt: ResourceType) -> JSON:
    """Apply a decoded ``patch`` of ``content_type`` to a copy of ``target``."""
    builtin = is_builtin(rt)
    allowed = PATCH_TYPES if builtin else CR_PATCH_TYPES
    if content_type not in allowed:
        raise ApiError(415, "UnsupportedMediaType",
                       f"the body of the request was in an unknown format - accepted media types include: "
                       f"{', '.join(allowed)}")
    if content_type == JSON_PATCH:
        return json_patch(target, patch)
    if not isinstance(patch, dict):
        raise ApiError.bad_request(f"a {content_type} body must be an object, not {type(patch).__name__}")
    if content_type == MERGE_PATCH:
        result = merge_patch(target, patch)
        assert isinstance(result, dict)
        return result
    if content_type == STRATEGIC_MERGE_PATCH or builtin:
        return strategic_merge_patch(target, patch, rt)
    result = merge_patch(target, patch)  # server-side apply on a custom resource (approximation)
    assert isinstance(result, dict)
    return result


# --------------------------------------------------------------------------- server-side apply: field ownership
FieldPath = tuple[str, ...]
#: Fields no manager owns (identity and server-set metadata).
_UNOWNED: frozenset[FieldPath] = frozenset({("apiVersion",), ("kind",), ("metadata", "name"),
                                            ("metadata", "namespace"), ("metadata", "managedFields"),
                                            ("metadata", "resourceVersion"), ("metadata", "uid"),
                                            ("metadata", "creationTimestamp"), ("metadata", "generation")})


def applied_fields(config: Any, prefix: FieldPath = ()) -> set[FieldPath]:
    """The leaf fields an applied configuration sets (maps are walked; lists and scalars are leaves:
    every list is owned as a whole, an approximation of associative lists)."""
    out: set[FieldPath] = set()
    if isinstance(config, dict) and (config or not prefix):
        for key, value in config.items():
            path = (*prefix, str(key))
            if path in _UNOWNED or (len(path) == 1 and key == "status"):
                continue
            out |= applied_fields(value, path) if isinstance(value, dict) and value else {path}
    elif prefix:
        out.add(prefix)
    return out


def fields_v1(paths: set[FieldPath]) -> JSON:
    """``fieldsV1`` (``{"f:data": {"f:k": {}}}``) of a set of leaf paths."""
    root: JSON = {}
    for path in sorted(paths):
        node = root
        for part in path:
            node = node.setdefault(f"f:{part}", {})
    return root


def from_fields_v1(doc: Any, prefix: FieldPath = ()) -> set[FieldPath]:
    out: set[FieldPath] = set()
    if not isinstance(doc, dict) or not doc:
        return {prefix} if prefix else out
    for key, value in doc.items():
        if key.startswith("f:"):
            out |= from_fields_v1(value, (*prefix, key[2:]))
        elif prefix:  # k:/v:/i: members of a list: the list as a whole
            out.add(prefix)
    return out


def _value_at(obj: Any, path: FieldPath) -> Any:
    cur = obj
    for part in path:
        if not isinstance(cur, dict) or part not in cur:
            return _ABSENT
        cur = cur[part]
    return cur


_ABSENT = object()


def apply_ownership(live: JSON | None, result: JSON, config: JSON, manager: str, force: bool, rt: ResourceType,
                    now: str) -> JSON:
    """Server-side apply's field ownership (``structured-merge-diff``, simplified): the fields ``config``
    sets that another manager owns and whose value the apply changes are conflicts (409 ``Conflict``,
    one ``FieldManagerConflict`` cause each) unless ``force``, which takes them over; afterwards
    ``manager``'s ``Apply`` entry in ``result``'s ``metadata.managedFields`` owns exactly what it applied.
    Returns ``result``. Not modelled: ownership recorded for non-apply writes (``Update`` entries), and
    removing a field its only owner stopped applying."""
    mine = applied_fields(config)
    entries = [e for e in ((live or {}).get("metadata") or {}).get("managedFields") or [] if isinstance(e, dict)]
    conflicts: list[tuple[str, FieldPath]] = []
    kept: list[JSON] = []
    for entry in entries:
        if entry.get("manager") == manager and entry.get("operation") == "Apply":
            continue
        owned = from_fields_v1(entry.get("fieldsV1"))
        clash = {p for p in owned & mine if _value_at(live, p) != _value_at(result, p)}
        conflicts += [(str(entry.get("manager", "")), p) for p in sorted(clash)]
        if force and clash:
            owned -= clash
            if not owned:
                continue
            entry = {**entry, "fieldsV1": fields_v1(owned)}
        kept.append(entry)
    if conflicts and not force:
        causes = [{"reason": "FieldManagerConflict", "message": f'conflict with "{m}"',
                   "field": "." + ".".join(p)} for m, p in conflicts]
        listed = "\n".join(f'- conflict with "{m}": .{".".join(p)}' for m, p in conflicts)
        many = len(conflicts) != 1
        raise ApiError(409, "Conflict", f"Apply failed with {len(conflicts)} conflict{'s' if many else ''}: "
                       + (f"\n{listed}" if many else listed[2:]),
                       details={"causes": causes})
    kept.append({"manager": manager, "operation": "Apply", "apiVersion": rt.api_version, "time": now,
                 "fieldsType": "FieldsV1", "fieldsV1": fields_v1(mine)})
    result.setdefault("metadata", {})["managedFields"] = kept
    return result
