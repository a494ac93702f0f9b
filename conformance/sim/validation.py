"""What kube-apiserver checks on every request before a write reaches storage, for the simulated API
server's HTTP layer (``server.py``): the bearer token, the body's size and media type, YAML alias
expansion, the JSON types of ``metadata`` and ``ValidateObjectMetaAccessor``. Answers are the real
server's ``Status`` objects (reason and code):

* another bearer token → 401 ``Unauthorized`` (``message: Unauthorized``); no credentials at all → the
  request is ``system:anonymous``'s (``--anonymous-auth``): the health checks and ``/version`` are
  answered, anything else is 403 ``Forbidden`` with RBAC's message;
* a body over 3 MiB (``MaxRequestBodyBytes``) → 413 ``RequestEntityTooLarge`` ``Request entity too large:
  limit is 3145728``;
* a write in another media type than JSON/YAML (protobuf for the few built-in kinds ``server.py``
  decodes; the patch types for PATCH) → 415 ``UnsupportedMediaType`` ``the body of the request was in an
  unknown format - accepted media types include: …`` (``negotiation.NewUnsupportedMediaTypeError``);
* YAML whose aliases expand beyond the 3 MiB body limit (a "billion laughs") → 400 ``BadRequest``
  ``… yaml: document contains excessive aliasing`` (go-yaml's guard), found without expanding it;
* ``metadata.name``/``namespace``/``generateName`` not strings, ``labels``/``annotations`` not maps of
  strings, ``ownerReferences``/``finalizers`` not lists → 400 ``BadRequest`` ``<Kind> in version "<v>"
  cannot be handled as a <Kind>: json: cannot unmarshal …`` (the typed decoder's answer);
* ``ValidateObjectMetaAccessor`` (``k8s.io/apimachinery/pkg/api/validation/objectmeta.go``) → 422
  ``Invalid`` ``<Kind>[.<group>] "<name>" is invalid: <field>: <error>`` with ``details.causes``: names and
  generateName per kind (DNS-1123 subdomain; Namespace a DNS-1123 label; Service a DNS-1035 label),
  the namespace a DNS-1123 label, label keys and values, annotation keys and their 256 KiB total,
  ownerReferences' apiVersion/kind/name/uid and a single controller, finalizer names.

Messages are apimachinery's (``pkg/util/validation/validation.go``: ``RegexError``, ``MaxLenError``;
``pkg/util/validation/field/errors.go``: ``ErrorBody``); label-key wording is the pre-``content``
package one (apimachinery ≤ v0.34).
"""

from __future__ import annotations

import hmac
import json
import re
from dataclasses import dataclass
from typing import Any

import yaml

from .store import ApiError, ResourceType

JSON = dict[str, Any]

#: ``MaxRequestBodyBytes`` of kube-apiserver (``--max-resource-write-bytes`` default).
MAX_BODY = 3 * 1024 * 1024
#: ``TotalAnnotationSizeLimitB``.
TOTAL_ANNOTATION_SIZE = 256 * (1 << 10)
#: Paths answered without a token (kube-apiserver's ``system:public-info-viewer`` health checks).
PUBLIC_ROOTS = frozenset({"healthz", "readyz", "livez"})
#: Media types a create/update/delete body may have; "" means JSON (the first supported type).
OBJECT_MEDIA_TYPES = ("application/json", "application/yaml", "application/vnd.kubernetes.protobuf")


# ----------------------------------------------------------------------------- requests
def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def check_token(authorization: str, token: str) -> None:
    """401 unless ``Authorization`` is ``Bearer <token>`` (compared in constant time)."""
    scheme, _, given = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise unauthorized()


#: Non-resource paths kube-apiserver serves to anyone, unauthenticated callers too (the
#: ``system:public-info-viewer`` ClusterRole bound to ``system:unauthenticated``).
PUBLIC_INFO_PATHS = frozenset({"/version", "/version/"})
ANONYMOUS = "system:anonymous"


def anonymous_forbidden(method: str, path: str, watch: bool = False) -> ApiError:
    """403 for a request without credentials: kube-apiserver (``--anonymous-auth``, on by default)
    authenticates it as ``system:anonymous`` and RBAC denies it, with RBAC's wording."""
    parts = [p for p in path.split("/") if p]
    rest: list[str] = []
    group = ""
    if parts[:1] == ["api"] and len(parts) >= 2:
        rest = parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    namespace = ""
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not rest:
        verb = {"GET": "get", "HEAD": "get", "POST": "post", "PUT": "put", "PATCH": "patch",
                "DELETE": "delete"}.get(method, method.lower())
        return ApiError(403, "Forbidden", f'forbidden: User "{ANONYMOUS}" cannot {verb} path "{path}"', details={})
    resource, name = rest[0], rest[1] if len(rest) > 1 else ""
    verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, "")
    if not verb:
        if method == "DELETE":
            verb = "delete" if name else "deletecollection"
        else:
            verb = "watch" if watch else "get" if name else "list"
    scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    what = f'{resource} "{name}"' if name else resource
    where = f'resource "{resource}"' + (f' in API group "{group}"')
    return ApiError(403, "Forbidden", f'{what} is forbidden: User "{ANONYMOUS}" cannot {verb} {where} {scope}',
                    details={"name": name, "group": group, "kind": resource} if name else
                    {"group": group, "kind": resource})


def too_large(limit: int = MAX_BODY) -> ApiError:
    return ApiError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {limit}")


def unsupported_media_type(accepted: tuple[str, ...] | list[str]) -> ApiError:
    return ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted "
                                                 f"media types include: {', '.join(accepted)}")


def check_object_media_type(content_type: str) -> None:
    """415 for a create/update/delete body that is neither JSON nor YAML (nor protobuf)."""
    if content_type not in ("", *OBJECT_MEDIA_TYPES) and not content_type.endswith("+json"):
        raise unsupported_media_type(OBJECT_MEDIA_TYPES)


class _SizedLoader(yaml.SafeLoader):
    pass


def _expanded_size(node: yaml.Node, limit: int) -> int:
    """The size of the document ``node`` once its aliases are expanded, without expanding it (an alias
    is the same node object, so each node is measured once); stops counting past ``limit``."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def measure(n: yaml.Node) -> int:
        key = id(n)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise ApiError.bad_request("the request body is not valid application/yaml: yaml: a recursive "
                                       "alias cannot be represented as JSON")
        active.add(key)
        if isinstance(n, yaml.ScalarNode):
            size = len(str(n.value)) + 2
        elif isinstance(n, yaml.SequenceNode):
            size = 2
            for child in n.value:
                size += measure(child) + 1
                if size > limit:
                    break
        elif isinstance(n, yaml.MappingNode):
            size = 2
            for k, v in n.value:
                size += measure(k) + measure(v) + 2
                if size > limit:
                    break
        else:  # pragma: no cover - the composer makes only these three
            size = 0
        active.discard(key)
        sizes[key] = size
        return size

    return measure(node)


def load_yaml(raw: bytes, content_type: str = "application/yaml", *, limit: int = MAX_BODY) -> Any:
    """Decode a YAML body (one document); 400 when it is not YAML, when its aliases would expand beyond
    ``limit`` bytes, or when it nests too deeply."""
    try:
        loader = _SizedLoader(raw.decode("utf-8"))
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            if _expanded_size(node, limit) > limit:
                raise ApiError.bad_request(f"the request body is not valid {content_type}: yaml: document "
                                           f"contains excessive aliasing (its aliases expand beyond the "
                                           f"{limit}-byte limit of a request body)")
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except (ValueError, yaml.YAMLError) as err:
        raise ApiError.bad_request(f"the request body is not valid {content_type}: {err}") from None
    except RecursionError:
        raise ApiError.bad_request(f"the request body is not valid {content_type}: it nests too deeply") from None


def load_json(raw: bytes, content_type: str = "application/json") -> Any:
    try:
        return json.loads(raw)
    except ValueError as err:
        raise ApiError.bad_request(f"the request body is not valid {content_type or 'JSON'}: {err}") from None
    except RecursionError:
        raise ApiError.bad_request(f"the request body is not valid {content_type or 'JSON'}: "
                                   "it nests too deeply") from None


# ----------------------------------------------------------------------------- field errors
_OMIT = object()


@dataclass(frozen=True)
class FieldError:
    """``field.Error``: type (``FieldValueInvalid``…), field path, bad value and detail."""

    type: str
    field: str
    value: Any = _OMIT
    detail: str = ""

    _WORDS = {"FieldValueRequired": "Required value", "FieldValueInvalid": "Invalid value",
              "FieldValueForbidden": "Forbidden", "FieldValueTooLong": "Too long",
              "FieldValueDuplicate": "Duplicate value", "FieldValueNotSupported": "Unsupported value"}

    def body(self) -> str:
        """``ErrorBody``: ``Invalid value: "X": <detail>``, ``Required value: <detail>``…"""
        word = self._WORDS[self.type]
        if self.type in ("FieldValueRequired", "FieldValueForbidden", "FieldValueTooLong") or self.value is _OMIT:
            text = word
        elif isinstance(self.value, str):
            text = f"{word}: {_go_quote(self.value)}"
        elif isinstance(self.value, bool):
            text = f"{word}: {'true' if self.value else 'false'}"
        else:
            text = f"{word}: {self.value}"
        return f"{text}: {self.detail}" if self.detail else text

    def __str__(self) -> str:
        return f"{self.field}: {self.body()}"


def _go_quote(text: str) -> str:
    """Go's ``%q`` for the strings names are made of."""
    return json.dumps(text, ensure_ascii=False)


def invalid(rt: ResourceType, name: str, errors: list[FieldError]) -> ApiError:
    """``errors.NewInvalid``: 422 ``Invalid`` with ``details.causes`` (duplicates dropped, as
    ``ToAggregate``)."""
    unique = list(dict.fromkeys(errors))
    qualified = f"{rt.kind}.{rt.group}" if rt.group else rt.kind
    text = str(unique[0]) if len(unique) == 1 else "[" + ", ".join(str(e) for e in unique) + "]"
    causes = [{"reason": e.type, "message": e.body(), "field": e.field} for e in unique]
    details: JSON = {"name": name, "kind": rt.kind, "causes": causes}
    if rt.group:
        details["group"] = rt.group
    return ApiError(422, "Invalid", f"{qualified} {_go_quote(name)} is invalid: {text}", details=details)


# ----------------------------------------------------------------------------- apimachinery's checks
def max_len_error(length: int) -> str:
    return f"must be no more than {length} characters"


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    out = msg + " (e.g. "
    for i, example in enumerate(examples):
        if i > 0:
            out += " or "
        out += f"'{example}', "
    return out + f"regex used for validation is '{fmt}')"


_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
                      "must start and end with an alphanumeric character")
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
                          "or '.', and must start and end with an alphanumeric character")
_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_LABEL_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
                      "alphabetic character, and end with an alphanumeric character")
_QNAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QNAME_MSG = ("must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
              "alphanumeric character")
_LABEL_VALUE_FMT = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?"
_LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
                    "'.', and must start and end with an alphanumeric character")

_DNS1123_LABEL = re.compile(f"^{_DNS1123_LABEL_FMT}$")
_DNS1123_SUBDOMAIN = re.compile(f"^{_DNS1123_SUBDOMAIN_FMT}$")
_DNS1035_LABEL = re.compile(f"^{_DNS1035_LABEL_FMT}$")
_QNAME = re.compile(f"^{_QNAME_FMT}$")
_LABEL_VALUE = re.compile(f"^{_LABEL_VALUE_FMT}$")


def is_dns1123_label(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append(max_len_error(63))
    if not _DNS1123_LABEL.match(value):
        if _DNS1123_SUBDOMAIN.match(value):
            errs.append("must not contain dots")
        else:
            errs.append(regex_error(_DNS1123_LABEL_MSG, _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def is_dns1123_subdomain(value: str) -> list[str]:
    errs = []
    if len(value) > 253:
        errs.append(max_len_error(253))
    if not _DNS1123_SUBDOMAIN.match(value):
        errs.append(regex_error(_DNS1123_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def is_dns1035_label(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append(max_len_error(63))
    if not _DNS1035_LABEL.match(value):
        errs.append(regex_error(_DNS1035_LABEL_MSG, _DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


def is_qualified_name(value: str) -> list[str]:
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + m for m in is_dns1123_subdomain(prefix))
    else:
        return ["a qualified name " + regex_error(_QNAME_MSG, _QNAME_FMT, "MyName", "my.name", "123-abc")
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part " + max_len_error(63))
    if name and not _QNAME.match(name):
        errs.append("name part " + regex_error(_QNAME_MSG, _QNAME_FMT, "MyName", "my.name", "123-abc"))
    return errs


def is_label_value(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append(max_len_error(63))
    if not _LABEL_VALUE.match(value):
        errs.append(regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def _mask_trailing_dash(name: str) -> str:
    """``maskTrailingDash``: a generateName prefix may end in '-'."""
    return name[:-1] + "a" if len(name) > 1 and name.endswith("-") else name


#: Name rules per resource (``ValidateNameFunc``); every other kind (custom resources included: the
#: apiextensions handler uses ``NameIsDNSSubdomain``) names objects with DNS-1123 subdomains.
_NAME_RULES = {("", "namespaces"): is_dns1123_label, ("", "services"): is_dns1035_label}


def name_errors(rt: ResourceType, name: str, *, prefix: bool = False) -> list[str]:
    check = _NAME_RULES.get((rt.group, rt.plural), is_dns1123_subdomain)
    return check(_mask_trailing_dash(name) if prefix else name)


# ----------------------------------------------------------------------------- metadata
_GO_TYPES = {str: "string", bool: "bool", int: "number", float: "number", list: "array", dict: "object"}


def _type_error(rt: ResourceType, field: str, value: Any, want: str) -> ApiError:
    got = "null" if value is None else _GO_TYPES.get(type(value), type(value).__name__)
    version = rt.version
    return ApiError.bad_request(f"{rt.kind} in version {_go_quote(version)} cannot be handled as a {rt.kind}: "
                                f"json: cannot unmarshal {got} into Go struct field ObjectMeta.{field} of type "
                                f"{want}")


def check_metadata_types(rt: ResourceType, obj: JSON) -> None:
    """400 when ``metadata`` fields do not have the types ``ObjectMeta`` declares (what decoding the body
    into the typed object rejects; for custom resources the schema's ``metadata`` coercion does)."""
    meta = obj.get("metadata")
    if meta is None:
        return
    if not isinstance(meta, dict):
        raise ApiError.bad_request(
            f"{rt.kind} in version {_go_quote(rt.version)} cannot be handled as a {rt.kind}: json: cannot "
            f"unmarshal {_GO_TYPES.get(type(meta), type(meta).__name__)} into Go struct field "
            f"{rt.kind}.metadata of type v1.ObjectMeta")
    for key in ("name", "generateName", "namespace", "uid", "resourceVersion"):
        if key in meta and meta[key] is not None and not isinstance(meta[key], str):
            raise _type_error(rt, f"metadata.{key}", meta[key], "string")
    for key in ("labels", "annotations"):
        value = meta.get(key)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise _type_error(rt, f"metadata.{key}", value, "map[string]string")
        for item in value.values():
            if item is not None and not isinstance(item, str):
                raise _type_error(rt, f"metadata.{key}", item, "string")
    finalizers = meta.get("finalizers")
    if finalizers is not None:
        if not isinstance(finalizers, list):
            raise _type_error(rt, "metadata.finalizers", finalizers, "[]string")
        for item in finalizers:
            if not isinstance(item, str):
                raise _type_error(rt, "metadata.finalizers", item, "string")
    refs = meta.get("ownerReferences")
    if refs is not None:
        if not isinstance(refs, list):
            raise _type_error(rt, "metadata.ownerReferences", refs, "[]v1.OwnerReference")
        for ref in refs:
            if not isinstance(ref, dict):
                raise _type_error(rt, "metadata.ownerReferences", ref, "v1.OwnerReference")
            for key in ("apiVersion", "kind", "name", "uid"):
                if ref.get(key) is not None and not isinstance(ref[key], str):
                    raise _type_error(rt, f"metadata.ownerReferences.{key}", ref[key], "string")
            for key in ("controller", "blockOwnerDeletion"):
                if ref.get(key) is not None and not isinstance(ref[key], bool):
                    raise _type_error(rt, f"metadata.ownerReferences.{key}", ref[key], "bool")


def validate_metadata(rt: ResourceType, obj: JSON, *, creating: bool) -> None:
    """``ValidateObjectMetaAccessor`` (create) or its update form (the immutable fields are the
    store's business): 400 for wrong types, 422 ``Invalid`` listing every field error."""
    check_metadata_types(rt, obj)
    meta: JSON = obj.get("metadata") or {}
    for key in ("labels", "annotations"):  # a JSON null value decodes to "" in a map[string]string
        if isinstance(meta.get(key), dict):
            meta[key] = {k: "" if v is None else v for k, v in meta[key].items()}
    errors: list[FieldError] = []
    name = meta.get("name") or ""
    generate = meta.get("generateName") or ""
    if creating and generate:
        errors.extend(FieldError("FieldValueInvalid", "metadata.generateName", generate, m)
                      for m in name_errors(rt, generate, prefix=True))
        if not name:  # the server generates the name first, then validates both (as kube-apiserver)
            candidate = generate[:58] + "xxxxx"
            errors.extend(FieldError("FieldValueInvalid", "metadata.name", candidate, m)
                          for m in name_errors(rt, candidate))
    if not name:
        if creating and not generate:
            errors.append(FieldError("FieldValueRequired", "metadata.name",
                                     detail="name or generateName is required"))
    else:
        errors.extend(FieldError("FieldValueInvalid", "metadata.name", name, m) for m in name_errors(rt, name))
    namespace = meta.get("namespace") or ""
    if rt.namespaced and namespace:
        errors.extend(FieldError("FieldValueInvalid", "metadata.namespace", namespace, m)
                      for m in is_dns1123_label(namespace))
    for key, value in (meta.get("labels") or {}).items():
        errors.extend(FieldError("FieldValueInvalid", "metadata.labels", key, m) for m in is_qualified_name(key))
        errors.extend(FieldError("FieldValueInvalid", "metadata.labels", value or "", m)
                      for m in is_label_value(value or ""))
    annotations = meta.get("annotations") or {}
    for key in annotations:
        errors.extend(FieldError("FieldValueInvalid", "metadata.annotations", key, m)
                      for m in is_qualified_name(key.lower()))
    if sum(len(k.encode()) + len((v or "").encode()) for k, v in annotations.items()) > TOTAL_ANNOTATION_SIZE:
        errors.append(FieldError("FieldValueTooLong", "metadata.annotations", "",
                                 f"must have at most {TOTAL_ANNOTATION_SIZE} bytes"))
    controller = ""
    for ref in meta.get("ownerReferences") or []:
        api_version = str(ref.get("apiVersion") or "")
        version = api_version.rsplit("/", 1)[-1] if api_version else ""
        if not version:
            errors.append(FieldError("FieldValueInvalid", "metadata.ownerReferences.apiVersion", api_version,
                                     "version must not be empty"))
        for key in ("kind", "name", "uid"):
            if not ref.get(key):
                errors.append(FieldError("FieldValueInvalid", f"metadata.ownerReferences.{key}", "",
                                         f"{key} must not be empty"))
        if api_version == "v1" and ref.get("kind") == "Event":
            errors.append(FieldError("FieldValueInvalid", "metadata.ownerReferences", _OMIT,
                                     "/v1, Kind=Event is disallowed from being an owner"))
        if ref.get("controller") is True:
            current = f"{ref.get('kind') or ''}/{ref.get('name') or ''}"
            if controller:
                errors.append(FieldError(
                    "FieldValueInvalid", "metadata.ownerReferences", _OMIT,
                    f'Only one reference can have Controller set to true. Found "true" in references for '
                    f"{controller} and {current}"))
            else:
                controller = current
    for finalizer in meta.get("finalizers") or []:
        errors.extend(FieldError("FieldValueInvalid", "metadata.finalizers", finalizer, m)
                      for m in is_qualified_name(finalizer))
    if errors:
        raise invalid(rt, name or generate, errors)


# ----------------------------------------------------------------------------- selectors
#: Field selector labels kube-apiserver supports beyond ``metadata.name``/``metadata.namespace``, per
#: resource (each registry's ``GetAttrs``/``SelectableFields``; custom resources: none, as the Kube-OVN
#: and KubeVirt CRDs declare no ``selectableFields``).
FIELD_LABELS: dict[tuple[str, str], frozenset[str]] = {
    ("", "pods"): frozenset({"spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
                             "spec.hostNetwork", "status.phase", "status.podIP", "status.podIPs",
                             "status.nominatedNodeName"}),
    ("", "events"): frozenset({"involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                               "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
                               "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"}),
    ("", "namespaces"): frozenset({"status.phase"}),
    ("", "nodes"): frozenset({"spec.unschedulable"}),
    ("", "services"): frozenset({"spec.clusterIP", "spec.type"}),
    ("apps", "replicasets"): frozenset({"status.replicas"}),
}
_SELECTOR_OPS = re.compile(r"^\s*(!?)\s*([^\s!=<>(),]+)\s*(?:(==|!=|=)\s*([^\s!=<>(),]*)"
                           r"|\s+(in|notin)\s*\(([^()]*)\))?\s*$")


def check_label_selector(selector: str) -> None:
    """400 ``BadRequest`` for a label selector kube-apiserver cannot parse (``labels.Parse``): every
    term is ``key``, ``!key``, ``key=v``, ``key==v``, ``key!=v``, ``key in (…)`` or ``key notin (…)``
    with a qualified-name key and label values."""
    from .store import _split_selector

    for term in _split_selector(selector):
        if not term.strip():
            if selector.strip():
                raise ApiError.bad_request(f"unable to parse requirement: found ',', expected: identifier "
                                           f"(label selector {selector!r})")
            continue
        m = _SELECTOR_OPS.match(term)
        if m is None:
            bad = next((ch for ch in term.strip() if ch in "!=<>(),") , term.strip()[:1])
            raise ApiError.bad_request(f"unable to parse requirement: found '{bad}', expected: identifier")
        negate, key, op, value, set_op, values = m.groups()
        if negate and (op or set_op):
            raise ApiError.bad_request(f"unable to parse requirement: found '{op or set_op}', expected: "
                                       "',' or 'end of string'")
        problems = is_qualified_name(key)
        vals = [value] if op else [v.strip() for v in (values or "").split(",")] if set_op else []
        for v in vals:
            problems += is_label_value(v or "")
        if problems:
            raise ApiError.bad_request(f"unable to parse requirement: {problems[0]}")


def check_field_selector(rt: ResourceType, selector: str) -> None:
    """400 ``BadRequest`` ``field label not supported: <f>`` for a field kube-apiserver does not select on."""
    supported = FIELD_LABELS.get(rt.key, frozenset())
    for term in selector.split(","):
        term = term.strip()
        if not term:
            continue
        key = re.split(r"!=|==|=", term, maxsplit=1)[0].strip()
        if key not in ("metadata.name", "metadata.namespace") and key not in supported:
            raise ApiError.bad_request(f"field label not supported: {key}")
