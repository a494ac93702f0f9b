"""Kube-OVN's validating webhook ``pod-ip-validating.kube-ovn.io`` as the simulated API server runs it.

The frame is upstream's ``PodCreateHook`` (``kubeovn/kube-ovn@v1.16.2:pkg/webhook/static_ip.go`` L104-155);
only the *conflict decision* is pluggable (``conformance.sim.policies``), so one simulated cluster can
model every released behaviour and candidate fixes:

1. no ``ovn.kubernetes.io/ip_address`` and no ``ovn.kubernetes.io/ip_pool`` → admit (L114-116);
2. ``policy.bypass(pod)`` when the policy defines it → admit. This is upstream's ``allowLiveMigration``
   (L117-119), which runs *before* any validation;
3. ``util.ValidatePodNetwork`` (``pkg/util/validator.go`` L271+, :func:`validate_pod_network`) →
   ``ctrlwebhook.Errored(400)`` (L141-144);
4. ``policy(pod, ip_crs, view)``: ``None`` admits, a string is ``ctrlwebhook.Denied(msg)`` → HTTP 403.

The API server wraps a rejection as ``admission webhook "pod-ip-validating.kube-ovn.io" denied the
request: <msg>`` (``k8s.io/apiserver/pkg/admission/plugin/webhook/errors/statuserror.go``
``ToStatusErr``). ``Denied`` carries reason ``Forbidden`` (controller-runtime >= v0.15.0); releases built
with an older controller-runtime (v1.10.x, v1.11.0-v1.11.16) put the denial text itself in
``Status.reason`` and the API server copies it into the message (``ToStatusErr`` uses the reason when
the message is empty), so the client sees ``reason`` = the text and the same message
(``review_pod(text_in_reason=True)``). ``Errored`` sets only code and message, so the
400 Status has an empty ``reason`` - as on a real cluster. The webhook declares ``sideEffects: None``,
so ``dryRun=All`` requests are validated the same way.

Policies
--------
A policy is any callable ``policy(pod, ip_crs, view) -> str | None`` (positional):

* ``pod`` - the Pod as JSON (namespace filled in, ``generateName`` already resolved);
* ``ip_crs`` - every stored ``ips.kubeovn.io`` object as JSON (``metadata.creationTimestamp`` RFC 3339);
* ``view`` - a :class:`WebhookView`, read-only lookups of VMIs, namespaces and subnets.

It may also define ``bypass(pod) -> bool`` (checked before ``ValidatePodNetwork``, as upstream's
``allowLiveMigration``). :func:`load_policy` accepts a built-in name (``policies.BUILTIN``) or any
importable ``module:attr`` (``attr`` may be dotted; a class is instantiated without arguments).
"""

from __future__ import annotations

import importlib
import ipaddress
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from . import resources as r
from .store import AdmissionRequest, ApiError, Store, Validator, deepcopy_json

if TYPE_CHECKING:
    from .api import Reader

JSON = dict[str, Any]

#: The ValidatingWebhookConfiguration and its pod entry (yamls/webhook.yaml).
WEBHOOK_CONFIGURATION = "kube-ovn-webhook"
WEBHOOK_NAME = "pod-ip-validating.kube-ovn.io"

IP_ADDRESS_ANNOTATION = "ovn.kubernetes.io/ip_address"
#: ``util.IPAddressAnnotationTemplate`` = ``%s.kubernetes.io/ip_address``: ``<provider>.`` + this.
ATTACHMENT_IP_SUFFIX = "kubernetes.io/ip_address"
IP_POOL_ANNOTATION = "ovn.kubernetes.io/ip_pool"
MAC_ADDRESS_ANNOTATION = "ovn.kubernetes.io/mac_address"
CIDR_ANNOTATION = "ovn.kubernetes.io/cidr"
LOGICAL_SWITCH_ANNOTATION = "ovn.kubernetes.io/logical_switch"
INGRESS_RATE_ANNOTATION = "ovn.kubernetes.io/ingress_rate"
EGRESS_RATE_ANNOTATION = "ovn.kubernetes.io/egress_rate"
DEFAULT_SUBNET = "ovn-default"


@runtime_checkable
class WebhookView(Protocol):
    """Read-only lookups a conflict policy may use (the webhook's informer cache).

    Every method returns deep copies (or plain strings); nothing a policy does can change the cluster.
    """

    def vmi(self, namespace: str, name: str) -> JSON | None:
        """The VirtualMachineInstance ``namespace/name`` (with ``metadata.uid``), or None."""
        ...

    def namespace(self, name: str) -> JSON | None:
        """The Namespace ``name``, or None."""
        ...

    def subnet(self, name: str) -> JSON | None:
        """The ``subnets.kubeovn.io`` object ``name``, or None."""
        ...

    def subnets(self) -> list[JSON]:
        """Every Subnet, sorted by name."""
        ...

    def namespace_subnets(self, namespace: str) -> list[str]:
        """Names of the subnets bound to ``namespace`` (their ``spec.namespaces`` lists it), sorted;
        empty when none is (then Kube-OVN uses ``ovn-default``)."""
        ...


class ConflictPolicy(Protocol):
    """``policy(pod, ip_crs, view)``: a denial message, or None to admit. ``ip_crs`` are the IP CRs
    that hold one of the pod's requested addresses (any subnet), plus any whose IPv6 address has
    upper-case letters (:func:`candidate_ip_crs`) - a conflict is always about the same address."""

    def __call__(self, pod: JSON, ip_crs: list[JSON], view: WebhookView, /) -> str | None: ...


class PolicyError(ValueError):
    """A webhook policy name that cannot be loaded; the message is one line for the user."""


def denial_message(message: str) -> str:
    """The message the API server returns for a webhook rejection (``ToStatusErr``)."""
    return f'admission webhook "{WEBHOOK_NAME}" denied the request: {message}'


def effective_subnet(pod: JSON, view: WebhookView) -> str:
    """The subnet Kube-OVN's controller allocates the pod from (``getPodDefaultSubnet``): the
    ``ovn.kubernetes.io/logical_switch`` annotation, else the first subnet bound to the pod's namespace,
    else ``ovn-default``. (The *released* webhook instead uses ``ovn-default`` whenever the annotation is
    missing, ``static_ip.go`` L158-161.)"""
    annotations = pod.get("metadata", {}).get("annotations") or {}
    if annotations.get(LOGICAL_SWITCH_ANNOTATION):
        return str(annotations[LOGICAL_SWITCH_ANNOTATION])
    bound = view.namespace_subnets(pod.get("metadata", {}).get("namespace", ""))
    return bound[0] if bound else DEFAULT_SUBNET


# ----------------------------------------------------------------------------- Go net helpers
def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``net.ParseIP``: None for anything that is not a bare address (no zone, no prefix)."""
    if "%" in text:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def parse_cidr(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """``net.ParseCIDR`` (host bits allowed): the network, or None."""
    if "/" not in text or "%" in text:
        return None
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def check_protocol(address: str) -> str:
    """``util.CheckProtocol``: ``IPv4``, ``IPv6``, ``Dual`` or ``""``."""
    if not address:
        return ""
    parts = address.split(",")
    if len(parts) == 2:
        a, b = (parse_ip(p.split("/")[0]) for p in parts)
        if a is None or b is None:
            return ""
        if a.version != b.version:
            return "Dual"
        return ""
    ip = parse_ip(address.split("/")[0])
    if ip is None:
        return ""
    return "IPv4" if ip.version == 4 else "IPv6"


def split_string_ip(ip_str: str) -> tuple[str, str]:
    """``util.SplitStringIP``: (v4, v6) of an IP CR's ``spec.ipAddress``."""
    proto = check_protocol(ip_str)
    if proto == "Dual":
        v4 = v6 = ""
        for part in ip_str.split(","):
            if check_protocol(part) == "IPv4":
                v4 = part
            else:
                v6 = part
        return v4, v6
    if proto == "IPv4":
        return ip_str, ""
    if proto == "IPv6":
        return "", ip_str
    return "", ""


def cidr_contains_ip(cidr_str: str, ip_str: str) -> bool:
    """``util.CIDRContainIP`` (``pkg/util/net.go`` L148+)."""
    if not cidr_str:
        return False
    cidrs = cidr_str.split(",")
    ips = ip_str.split(",")
    if len(cidrs) == 1:
        for ip in ips:
            if check_protocol(cidr_str) != check_protocol(ip):
                return False
    for cidr in cidrs:
        net = parse_cidr(cidr)
        if net is None:
            return False
        for ip in ips:
            if check_protocol(cidr) != check_protocol(ip):
                continue
            addr = parse_ip(ip)
            if addr is None:
                return False
            if addr not in net:
                return False
    return True


_MAC_RE = re.compile(
    r"^(?:[0-9A-Fa-f]{2}(?P<sep>[:-])[0-9A-Fa-f]{2}(?:(?P=sep)[0-9A-Fa-f]{2}){4}"
    r"|[0-9A-Fa-f]{2}(?P<sep2>[:-])[0-9A-Fa-f]{2}(?:(?P=sep2)[0-9A-Fa-f]{2}){6}"
    r"|[0-9A-Fa-f]{2}(?P<sep3>[:-])[0-9A-Fa-f]{2}(?:(?P=sep3)[0-9A-Fa-f]{2}){18}"
    r"|[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}"
    r"|[0-9A-Fa-f]{4}(?:\.[0-9A-Fa-f]{4}){3}"
    r"|[0-9A-Fa-f]{4}(?:\.[0-9A-Fa-f]{4}){9})$"
)


def parse_mac(text: str) -> bool:
    """``net.ParseMAC`` accepts 6-, 8- or 20-byte addresses with ``:``/``-`` or dotted groups."""
    return bool(_MAC_RE.match(text))


def _aggregate(errors: list[str]) -> str | None:
    """``utilerrors.NewAggregate(errs).Error()``: one message, or ``[a, b]`` (duplicates dropped)."""
    if not errors:
        return None
    seen: list[str] = []
    for e in errors:
        if e not in seen:
            seen.append(e)
    if len(seen) == 1:
        return seen[0]
    return "[" + ", ".join(seen) + "]"


def validate_pod_network(annotations: dict[str, str]) -> str | None:
    """``util.ValidatePodNetwork`` (v1.16.2 ``pkg/util/validator.go`` L271-361): the error text, or None.

    The same checks exist in every modelled release (v1.10.8 … v1.16.2) for the annotations the suite
    uses (``ip_address``, ``cidr``, ``mac_address``, ``ip_pool``)."""
    errors: list[str] = []
    ip_address = annotations.get(IP_ADDRESS_ANNOTATION, "")
    if ip_address:
        for ip in ip_address.split(","):
            if "/" in ip:
                if parse_cidr(ip) is None:
                    errors.append(f"{ip} is not a valid {IP_ADDRESS_ANNOTATION}")
                    continue
            elif parse_ip(ip) is None:
                errors.append(f"{ip} is not a valid {IP_ADDRESS_ANNOTATION}")
                continue
            cidr_str = annotations.get(CIDR_ANNOTATION, "")
            if cidr_str:
                if any(parse_cidr(block) is None for block in cidr_str.split(",")):
                    errors.append(f"invalid cidr {cidr_str}")
                    continue
                if not cidr_contains_ip(cidr_str, ip):
                    errors.append(f"{ip} not in cidr {cidr_str}")
                    continue
    mac = annotations.get(MAC_ADDRESS_ANNOTATION, "")
    if mac and not parse_mac(mac):
        errors.append(f"{mac} is not a valid {MAC_ADDRESS_ANNOTATION}")
    ip_pool = annotations.get(IP_POOL_ANNOTATION, "")
    if ip_pool and (";" in ip_pool or "," in ip_pool or parse_ip(ip_pool) is not None):
        for ips in ip_pool.split(";"):
            found = False
            for ip in ips.split(","):
                if parse_ip(ip.strip()) is None:
                    errors.append(f"{ip} in {IP_POOL_ANNOTATION} is not a valid address")
                cidr_str = annotations.get(CIDR_ANNOTATION, "")
                if cidr_str:
                    if cidr_contains_ip(cidr_str, ip):
                        found = True
                        break
                else:
                    found = True
                    break
            if not found:
                errors.append(f"{ips} not in cidr {annotations.get(CIDR_ANNOTATION, '')}")
    for key in (INGRESS_RATE_ANNOTATION, EGRESS_RATE_ANNOTATION):
        value = annotations.get(key, "")
        if value and not re.fullmatch(r"[+-]?\d+", value):
            errors.append(f"{value} is not a valid {key}")
    return _aggregate(errors)


# ----------------------------------------------------------------------------- policy loading
def load_policy(name: str) -> ConflictPolicy:
    """A built-in policy by name, or ``module:attr``; :class:`PolicyError` (one line) otherwise."""
    from . import policies

    if name in policies.BUILTIN:
        return policies.BUILTIN[name]
    known = ", ".join(sorted(policies.BUILTIN))
    if ":" not in name:
        raise PolicyError(f"unknown webhook policy {name!r}: expected one of {known}, or module:attr")
    module_name, _, attr = name.partition(":")
    if not module_name or not attr:
        raise PolicyError(f"malformed webhook policy {name!r}: expected module:attr, e.g. pkg.mod:check")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # any import failure is the user's input problem
        raise PolicyError(f"cannot load webhook policy {name!r}: {type(exc).__name__}: {exc}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise PolicyError(f"cannot load webhook policy {name!r}: {module_name} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if isinstance(obj, type):
        try:
            obj = obj()
        except Exception as exc:
            raise PolicyError(f"cannot load webhook policy {name!r}: {type(exc).__name__}: {exc}") from None
    if not callable(obj):
        raise PolicyError(f"webhook policy {name!r} is not callable")
    policy: ConflictPolicy = obj
    return policy


# ----------------------------------------------------------------------------- the frame
def review_pod(pod: JSON, ip_crs: list[JSON], view: WebhookView, policy: ConflictPolicy, *,
               text_in_reason: bool = False) -> ApiError | None:
    """Run ``PodCreateHook`` on ``pod``: None admits, else the ApiError the API server answers
    (``text_in_reason``: a release built with controller-runtime < v0.15.0, see the module doc)."""
    annotations: dict[str, str] = dict(pod.get("metadata", {}).get("annotations") or {})
    # L114-116 (v1.16.2): neither ip_address nor ip_pool admits - whatever attachment addresses the pod has;
    # a policy that declares ``checks_attachments`` (reference) is asked about those too
    attachments = bool(getattr(policy, "checks_attachments", False)) and any(
        annotations.get(k) for k in attachment_ip_keys(annotations))
    if not annotations.get(IP_ADDRESS_ANNOTATION) and not annotations.get(IP_POOL_ANNOTATION) and not attachments:
        return None
    bypass: Callable[[JSON], bool] | None = getattr(policy, "bypass", None)
    if bypass is not None and bypass(pod):
        return None
    invalid = validate_pod_network(annotations)
    if invalid is not None:
        return ApiError(400, "", denial_message(invalid))
    message = policy(pod, ip_crs, view)
    if message is None:
        return None
    return ApiError(403, message if text_in_reason else "Forbidden", denial_message(message))


#: The store index of IP CRs by address (``candidate_ip_crs``); ``_V6_UPPER`` files those whose IPv6
#: part has upper-case letters (v1.13.0+ denies on any such IP CR of the subnet, whatever the address).
IP_ADDRESS_INDEX = "kovc.io/ip-address"
_V6_UPPER = "!v6-upper-case"


def _ip_cr_addresses(ip_cr: JSON) -> list[str]:
    v4, v6 = split_string_ip(str((ip_cr.get("spec") or {}).get("ipAddress", "")))
    keys = [a for a in (v4, v6) if a]
    if v6 != v6.lower():
        keys.append(_V6_UPPER)
    return keys


def attachment_ip_keys(annotations: dict[str, Any]) -> list[str]:
    """The ``<provider>.kubernetes.io/ip_address`` keys of attachment networks (``util.IPAddressAnnotationTemplate``
    with a provider other than ``ovn``), sorted."""
    return sorted(k for k in annotations if k.endswith("." + ATTACHMENT_IP_SUFFIX) and k != IP_ADDRESS_ANNOTATION)


def _requested_addresses(pod: JSON) -> set[str]:
    """Every form of every address the pod's ``ip_address``/``ip_pool`` annotations name: as written
    and as ``net.ParseIP``/``net.ParseCIDR`` print it (what the policies compare)."""
    annotations = pod.get("metadata", {}).get("annotations") or {}
    out: set[str] = set()
    # the attachment networks' static addresses too (``<provider>.kubernetes.io/ip_address``): only a policy
    # that checks them (``reference``) compares them; the released ones read ip_address/ip_pool only
    keys = [IP_ADDRESS_ANNOTATION, IP_POOL_ANNOTATION, *attachment_ip_keys(annotations)]
    for key in keys:
        for raw in str(annotations.get(key) or "").replace(";", ",").split(","):
            text = raw.strip()
            if not text:
                continue
            out.add(text)
            head = text.split("/")[0] if parse_cidr(text) is not None else text
            ip = parse_ip(head)
            if ip is not None:
                out.add(str(ip))
    return out


def candidate_ip_crs(source: Reader | Store, pod: JSON) -> list[JSON]:
    """The IP CRs a conflict policy can find against ``pod`` (copies, sorted by name): those holding
    one of its requested addresses, plus those with an upper-case IPv6 address. A conflict is always
    about the same address, so the decision is that of the whole list. The cost follows the pod, not
    the number of IP CRs: an address index (``IP_ADDRESS_INDEX``) kept current on every write, in the
    store or in the HTTP transport's watch cache (one :class:`~conformance.sim.index.ObjectIndex`)."""
    wanted = (*_requested_addresses(pod), _V6_UPPER)
    found: dict[str, JSON] = {}
    for address in wanted:
        if isinstance(source, Store):
            source.add_index(r.IPS, IP_ADDRESS_INDEX, _ip_cr_addresses)
            hits = source.by_index(r.IPS, IP_ADDRESS_INDEX, address)
        else:
            hits = source.by_index(r.IPS, IP_ADDRESS_INDEX, _ip_cr_addresses, address)
        for ip_cr in hits:
            found.setdefault(str(ip_cr["metadata"]["name"]), ip_cr)
    return [deepcopy_json(found[name]) for name in sorted(found)]


def make_pod_validator(
    policy: ConflictPolicy, view: WebhookView, list_ip_crs: Callable[[JSON], list[JSON]], *,
    text_in_reason: bool = False, policy_name: str = "", on_raise: Callable[[str, JSON], None] | None = None,
) -> Validator:
    """A store validator for Pod CREATE (``rules: pods CREATE`` of yamls/webhook.yaml). Pods labelled
    ``app=kube-ovn-webhook`` are excluded by the configuration's objectSelector. ``list_ip_crs(pod)``
    gives the IP CRs the policy sees (:func:`candidate_ip_crs`).

    A policy that raises is a broken model, not a webhook decision: ``on_raise(text, pod)`` is told
    (the world records it so the run is declared invalid) and the pod is refused as controller-runtime
    answers a handler that panicked (``RecoverPanic``: ``Errored(500, "panic: … [recovered]")``)."""

    def validate(req: AdmissionRequest) -> None:
        if req.operation != "CREATE" or req.rt.key != ("", "pods") or req.object is None:
            return
        labels = req.object.get("metadata", {}).get("labels") or {}
        if labels.get("app") == "kube-ovn-webhook":
            return
        try:
            error = review_pod(req.object, list_ip_crs(req.object), view, policy, text_in_reason=text_in_reason)
        except Exception as exc:  # any exception of a (user's) policy
            text = f"webhook policy {policy_name or policy!r} raised {type(exc).__name__}: {exc}"
            if on_raise is not None:
                on_raise(text, req.object)
            raise ApiError(500, "", denial_message(f"panic: {text} [recovered]")) from None
        if error is not None:
            raise error

    return validate


def validate_cidr_conflict(subnet: JSON, subnets: list[JSON]) -> str | None:
    """``util.ValidateCidrConflict`` (v1.16.2 ``pkg/util/validator.go``): overlapping CIDRs in the same
    VPC (and VLAN) conflict; other VPCs may reuse them."""
    spec = subnet.get("spec") or {}
    name = subnet.get("metadata", {}).get("name", "")
    for other in subnets:
        ospec = other.get("spec") or {}
        oname = other.get("metadata", {}).get("name", "")
        if (
            ospec.get("vpc", "") != spec.get("vpc", "")
            or ospec.get("vlan", "") != spec.get("vlan", "")
            or oname == name
        ):
            continue
        if _cidr_overlap(str(ospec.get("cidrBlock", "")), str(spec.get("cidrBlock", ""))):
            return (
                f"subnet {name} cidr {spec.get('cidrBlock', '')} is conflict with subnet {oname} "
                f"cidr {ospec.get('cidrBlock', '')}"
            )
    return None


def _cidr_overlap(a: str, b: str) -> bool:
    for x in a.split(","):
        for y in b.split(","):
            nx, ny = parse_cidr(x), parse_cidr(y)
            if nx is not None and ny is not None and nx.version == ny.version and nx.overlaps(ny):  # type: ignore[arg-type]
                return True
    return False


def make_subnet_validator(list_subnets: Callable[[], list[JSON]]) -> Validator:
    """``SubnetCreateHook``/``SubnetUpdateHook`` (``pkg/webhook/subnet.go``): a CIDR conflict inside one
    VPC answers ``Errored(409)``."""

    def validate(req: AdmissionRequest) -> None:
        if (
            req.operation not in ("CREATE", "UPDATE")
            or req.rt.key != ("kubeovn.io", "subnets")
            or req.object is None
        ):
            return
        conflict = validate_cidr_conflict(req.object, list_subnets())
        if conflict is not None:
            raise ApiError(409, "", denial_message(conflict))

    return validate
