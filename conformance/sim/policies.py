"""The webhook conflict policies the simulated cluster can run (see ``webhook.py`` for the frame).

Each built-in is modelled line by line on the upstream code it names; line numbers refer to
``kubeovn/kube-ovn@<tag>:pkg/webhook/static_ip.go`` unless another file is named. All released
policies share upstream's ``validateIPConflict``/``checkIPConflict`` skeleton (:class:`_Released`):

* the subnet compared is ``ovn.kubernetes.io/logical_switch``, or ``ovn-default`` when the annotation is
  missing (v1.16.2 L158-161) - *not* the namespace-bound subnet the controller would use;
* ``ip_address`` and then ``ip_pool`` (when it is an address list) are checked (L163-180);
* every address of the annotation is compared with every IP CR whose ``spec.subnet`` equals that subnet
  (L196-198), on the v4 or v6 part of ``spec.ipAddress`` (L200, L207);
* the first mismatch denies with ``annotation static-ip %s is conflict with ip crd %s, ip %s``
  (L213); the namespace is never compared.

What differs between releases is the *effective name* compared with ``spec.podName``, the *allow rule*
and the *bypass*; each class documents its own.

Not modelled (outside what the suite exercises): ``ip_pool`` naming an IPPool CR (the sim serves no
IPPools, so such a pod is denied with ``ippool %q not found`` as v1.12.2+ would with a missing pool), the
v1.10.x/v1.11.0-1 behaviour of admitting any pod that carries ``ip_pool`` before validation, and the
workload hooks (Deployments, StatefulSets, ...).
"""

from __future__ import annotations

import json
from typing import Any

from .webhook import (
    ATTACHMENT_IP_SUFFIX,
    DEFAULT_SUBNET,
    IP_ADDRESS_ANNOTATION,
    IP_POOL_ANNOTATION,
    LOGICAL_SWITCH_ANNOTATION,
    ConflictPolicy,
    WebhookView,
    attachment_ip_keys,
    effective_subnet,
    parse_cidr,
    parse_ip,
    split_string_ip,
)

JSON = dict[str, Any]

__all__ = [
    "BUILTIN",
    "CONFLICT_FORMAT",
    "IP_ADDRESS_ANNOTATION",
    "IP_POOL_ANNOTATION",
    "LOGICAL_SWITCH_ANNOTATION",
    "MIGRATION_JOB_NAME_ANNOTATION",
    "POD_TYPE_VM",
    "ForwardContainment",
    "OwnerEquality",
    "PodNameEquality",
    "PodNameEqualityMultusBypass",
    "Reference",
    "ReverseContainment",
    "conflict_message",
]

MIGRATION_JOB_NAME_ANNOTATION = "kubevirt.io/migrationJobName"
ATTACHMENT_NETWORK_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
DEFAULT_NETWORK_ANNOTATION = "v1.multus-cni.io/default-network"
LIVE_MIGRATION_ANNOTATION_TEMPLATE = "{provider}.kubernetes.io/allow_live_migration"
POD_TYPE_VM = "VirtualMachine"
CONFLICT_FORMAT = "annotation static-ip {ip} is conflict with ip crd {crd}, ip {crd_ip}"


def conflict_message(ip: str, ip_cr: JSON) -> str:
    """Upstream's denial text (``checkIPConflict``, identical in every release)."""
    return CONFLICT_FORMAT.format(
        ip=ip,
        crd=ip_cr.get("metadata", {}).get("name", ""),
        crd_ip=(ip_cr.get("spec") or {}).get("ipAddress", ""),
    )


def _annotations(pod: JSON) -> dict[str, str]:
    return dict(pod.get("metadata", {}).get("annotations") or {})


def _go_ip_string(ip: str) -> str | None:
    """``checkIPConflict`` L185-193 (v1.16.2): ``net.ParseCIDR`` for ``a/b``, else ``net.ParseIP(TrimSpace(ip))``;
    the ``.String()`` form, or None when it does not parse."""
    if "/" in ip:
        if parse_cidr(ip) is None:
            return None
        head = parse_ip(ip.split("/")[0])
        return str(head) if head is not None else None
    addr = parse_ip(ip.strip())
    return str(addr) if addr is not None else None


def _pool_is_address_list(pool: str) -> bool:
    """``validateIPConflict`` (v1.12.2+): a pool without ``,`` that is not an IP names an IPPool CR."""
    return "," in pool or parse_ip(pool) is not None


class _Released:
    """The shared ``validateIPConflict`` + ``checkIPConflict`` skeleton of every released webhook."""

    name = ""
    #: v1.13.0+ checks IP CRs for upper-case IPv6 (``ContainsUppercase``, v1.13.0 L192-195).
    checks_v6_uppercase = True

    def effective_name(self, pod: JSON) -> str:
        return str(pod.get("metadata", {}).get("name", ""))

    def allowed(self, name: str, ip_cr: JSON) -> bool:
        return name == str((ip_cr.get("spec") or {}).get("podName", ""))

    def bypass(self, pod: JSON) -> bool:
        return False

    def __call__(self, pod: JSON, ip_crs: list[JSON], view: WebhookView, /) -> str | None:
        annotations = _annotations(pod)
        name = self.effective_name(pod)
        anno_subnet = annotations.get(LOGICAL_SWITCH_ANNOTATION) or DEFAULT_SUBNET
        ip_address = annotations.get(IP_ADDRESS_ANNOTATION, "")
        if ip_address:
            denied = self._check(ip_address, anno_subnet, name, ip_crs)
            if denied:
                return denied
        ip_pool = annotations.get(IP_POOL_ANNOTATION, "")
        if ip_pool:
            if not _pool_is_address_list(ip_pool):
                return f'ippool "{ip_pool}" not found'
            denied = self._check(ip_pool, anno_subnet, name, ip_crs)
            if denied:
                return denied
        return None

    def _check(self, ip_address: str, anno_subnet: str, name: str, ip_crs: list[JSON]) -> str | None:
        for raw in ip_address.split(","):
            ip = _go_ip_string(raw)
            if ip is None:
                return f"invalid static ip/ippool annotation value: {ip_address}"
            for ip_cr in ip_crs:
                spec = ip_cr.get("spec") or {}
                if anno_subnet and spec.get("subnet", "") != anno_subnet:
                    continue
                v4, v6 = split_string_ip(str(spec.get("ipAddress", "")))
                if self.checks_v6_uppercase and v6 != v6.lower():
                    return f"v6 ip address {v6} can not contain upper case"
                if ip in (v4, v6) and not self.allowed(name, ip_cr):
                    return conflict_message(ip, ip_cr)
        return None


class PodNameEqualityMultusBypass(_Released):
    """``pod-name-equality-multus-bypass``: Kube-OVN v1.10.8 … v1.12.35 (PR #2188 ``159fd9f02``).

    Which upstream line decides what (v1.12.35; v1.10.8 has the same lines at L73-183):

    * effective name = the **pod name**: ``validateIP(..., o.GetName(), ...)`` (L121);
    * allow rule = ``if name == ipCr.Spec.PodName`` (L218): a launcher pod ``virt-launcher-<vm>-xxxxx``
      never equals the VM-named IP CR, so a static-IP VM restart is denied (#4803);
    * bypass = ``allowLiveMigration`` (L124-154): only for multus attachments listed in
      ``k8s.v1.cni.cncf.io/networks`` / ``v1.multus-cni.io/default-network`` whose provider
      ``<nad>.<ns>.ovn`` carries ``<nad>.<ns>.ovn.kubernetes.io/allow_live_migration: "true"``
      (``util.LiveMigrationAnnotationTemplate``); there is **no** ``kubevirt.io/migrationJobName``
      bypass, so pod-network migration targets are denied;
    * no upper-case IPv6 check (added in v1.13.0).
    """

    name = "pod-name-equality-multus-bypass"
    checks_v6_uppercase = False

    def bypass(self, pod: JSON) -> bool:
        annotations = _annotations(pod)
        namespace = str(pod.get("metadata", {}).get("namespace", ""))
        networks: list[tuple[str, str]] = []
        for key in (DEFAULT_NETWORK_ANNOTATION, ATTACHMENT_NETWORK_ANNOTATION):
            parsed = parse_networks(annotations.get(key, ""), namespace)
            if parsed is None:
                return False  # L129-132/L139-142: a parse error returns false
            networks.extend(parsed)
        for nad, nad_ns in networks:
            provider = f"{nad}.{nad_ns}.ovn"
            if annotations.get(LIVE_MIGRATION_ANNOTATION_TEMPLATE.format(provider=provider)) == "true":
                return True
        return False


def parse_networks(value: str, default_namespace: str) -> list[tuple[str, str]] | None:
    """``util.ParsePodNetworkAnnotation``: (name, namespace) pairs; None on a parse error."""
    if not value:
        return []
    out: list[tuple[str, str]] = []
    if any(c in value for c in '[{"'):
        try:
            items = json.loads(value)
        except ValueError:
            return None
        if not isinstance(items, list):
            return None
        for item in items:
            if not isinstance(item, dict):
                return None
            out.append((str(item.get("name", "")), str(item.get("namespace") or default_namespace)))
        return out
    for raw in value.split(","):
        item = raw.strip()
        parts = item.split("/")
        if len(parts) > 2:
            return None
        ns, rest = (parts[0].strip(), parts[1]) if len(parts) == 2 else ("", parts[0])
        name = rest.split("@")[0].strip()
        out.append((name, ns or default_namespace))
    return out


class PodNameEquality(_Released):
    """``pod-name-equality``: Kube-OVN v1.13.0 (PR #4191 ``f9e53dc59`` replaced the multus bypass).

    v1.13.0 lines:

    * effective name = the **pod name** (``validateIP(..., o.GetName(), ...)``, L120);
    * allow rule = ``if name == ipCR.Spec.PodName`` (L198) - a static-IP VM restart is denied (#4803);
    * bypass = ``allowLiveMigration`` (L123-128): the mere presence of ``kubevirt.io/migrationJobName``
      (``util.MigrationJobAnnotation``), whatever its value and whoever sets it;
    * IP CRs with upper-case IPv6 deny with ``v6 ip address %s can not contain upper case`` (L192-195).
    """

    name = "pod-name-equality"

    def bypass(self, pod: JSON) -> bool:
        return MIGRATION_JOB_NAME_ANNOTATION in _annotations(pod)


class ReverseContainment(PodNameEquality):
    """``reverse-containment``: Kube-OVN v1.13.1 … v1.13.14 and v1.14.0 … v1.14.4 (PR #4807, ``ac81ac29f``,
    backported as ``67f5a1ebc``).

    v1.13.1 lines (v1.14.4 identical):

    * effective name = the **pod name** (L120);
    * allow rule = ``name == ipCR.Spec.PodName || ipCR.Spec.PodType == util.VM &&
      strings.Contains(ipCR.Spec.PodName, name)`` (L200): the *pod name* must be contained in the IP CR's
      podName - backwards for launcher pods (``virt-launcher-web-xxxxx`` is never inside ``web``), so VM
      restarts stay denied, while a plain pod ``web`` may take VM ``web-1``'s address (#5569 review);
    * bypass = ``kubevirt.io/migrationJobName`` present (L123-128).
    """

    name = "reverse-containment"

    def allowed(self, name: str, ip_cr: JSON) -> bool:
        spec = ip_cr.get("spec") or {}
        pod_name = str(spec.get("podName", ""))
        return name == pod_name or (spec.get("podType") == POD_TYPE_VM and name in pod_name)


class OwnerEquality(PodNameEquality):
    """``owner-equality``: Kube-OVN v1.13.15, v1.14.5+, v1.15.x, v1.16.x (PR #5569, ``e35b0fa89``;
    backports ``05c3d27b7``/``8bc76be74``).

    v1.16.2 lines:

    * effective name = the first ownerReference with ``Kind == util.KindVirtualMachineInstance`` and an
      apiVersion with prefix ``kubevirt.io/`` (L120-129), else the pod name - *any* such reference counts,
      controller or not, and its uid and namespace are never checked;
    * allow rule = ``if name == ipCR.Spec.PodName`` (L210): strict equality, namespace ignored;
    * bypass = ``kubevirt.io/migrationJobName`` present (L133-138).

    (v1.13.15 and v1.14.5+ test the prefix ``"kubevirt.io"`` without the slash, L123; the difference only
    matters for made-up apiVersions such as ``kubevirt.io.example/v1`` and is not modelled.)
    """

    name = "owner-equality"

    def effective_name(self, pod: JSON) -> str:
        for owner in pod.get("metadata", {}).get("ownerReferences") or []:
            if owner.get("kind") == "VirtualMachineInstance" and str(owner.get("apiVersion", "")).startswith(
                "kubevirt.io/"
            ):
                return str(owner.get("name", ""))
        return str(pod.get("metadata", {}).get("name", ""))


class ForwardContainment(PodNameEquality):
    """``forward-containment``: never released. The fix public write-ups describe for #4803 - "the pod
    name contains the IP CR podName" - i.e. ``name == podName || strings.Contains(name, ipCR.Spec.PodName)``
    with ``name`` = the pod name (the arguments of PR #4807's ``Contains`` swapped).

    It admits restarts (``virt-launcher-web-xxxxx`` contains ``web``) but also the prefix false matches
    PR #5569's review warns about: VM ``web-1``'s launcher pod contains ``web``, so it may take VM ``web``'s
    address. Bypass as released: ``kubevirt.io/migrationJobName`` present.
    """

    name = "forward-containment"

    def allowed(self, name: str, ip_cr: JSON) -> bool:
        pod_name = str((ip_cr.get("spec") or {}).get("podName", ""))
        return name == pod_name or pod_name in name


class Reference:
    """``reference``: a fully conformant webhook (what the suite's requirements describe).

    * subnet = the one the controller allocates from (:func:`webhook.effective_subnet`: ``logical_switch``
      annotation, else the namespace-bound subnet, else ``ovn-default``), so namespace-bound subnets are
      protected too;
    * an IP CR of podType ``VirtualMachine`` admits only a pod whose **controller** ownerReference is a
      ``kubevirt.io/`` VirtualMachineInstance named like the IP CR's ``spec.podName``, in the IP CR's
      ``spec.namespace``, whose uid matches the live VMI (looked up through the view) - launcher pods of
      that VM (restarts, stop/start, migration targets) pass; spoofed names, labels, copied or forged
      ownerReferences (another namespace, stale uid, ``controller: false``) do not;
    * any other IP CR admits only a pod with the same name in the same namespace;
    * no annotation-only bypass: ``kubevirt.io/migrationJobName`` changes nothing;
    * attachment networks' static addresses (``<provider>.kubernetes.io/ip_address``) are checked the same
      way against the IP CRs of the provider's subnet (no released webhook reads them).

    Denials use upstream's message format (``annotation static-ip %s is conflict with ip crd %s, ip %s``).

    With keep-vm-ip off, the IP CR of a launcher pod is named after the pod (``podName`` = the pod name),
    so only that pod name passes - a migration target or a restarted launcher then needs its old IP CR
    to be gone first, as IPAM (keyed by pod name) requires anyway.
    """

    name = "reference"
    #: the frame asks it about pods whose only static addresses are attachment ones
    checks_attachments = True

    def __call__(self, pod: JSON, ip_crs: list[JSON], view: WebhookView, /) -> str | None:
        meta = pod.get("metadata", {})
        annotations = _annotations(pod)
        subnet = effective_subnet(pod, view)
        addresses: list[str] = []
        for key in (IP_ADDRESS_ANNOTATION, IP_POOL_ANNOTATION):
            value = annotations.get(key, "")
            if not value:
                continue
            if key == IP_POOL_ANNOTATION and not _pool_is_address_list(value):
                return f'ippool "{value}" not found'
            for raw in value.replace(";", ",").split(","):
                ip = _go_ip_string(raw)
                if ip is None:
                    return f"invalid static ip/ippool annotation value: {value}"
                addresses.append(ip)
        checks = [(ip, subnet) for ip in addresses]
        # attachment networks: <provider>.kubernetes.io/ip_address against the IP CRs of the provider's
        # subnet (<provider>.kubernetes.io/logical_switch, else the subnet whose spec.provider is it) - which
        # no released webhook reads
        for key in attachment_ip_keys(annotations):
            provider = key[: -len("." + ATTACHMENT_IP_SUFFIX)]
            att_subnet = annotations.get(f"{provider}.kubernetes.io/logical_switch", "") or next(
                (str(s["metadata"]["name"]) for s in view.subnets()
                 if (s.get("spec") or {}).get("provider") == provider), "")
            for raw in str(annotations[key]).split(","):
                ip = _go_ip_string(raw)
                if ip is None:
                    return f"invalid static ip annotation {key} value: {annotations[key]}"
                checks.append((ip, att_subnet))
        for ip, where in checks:
            for ip_cr in ip_crs:
                spec = ip_cr.get("spec") or {}
                if spec.get("subnet", "") != where:
                    continue
                if ip not in split_string_ip(str(spec.get("ipAddress", ""))):
                    continue
                if not self._owns(meta, spec, view):
                    return conflict_message(ip, ip_cr)
        return None

    @staticmethod
    def _owns(meta: JSON, spec: JSON, view: WebhookView) -> bool:
        namespace = str(meta.get("namespace", ""))
        if namespace != spec.get("namespace", ""):
            return False
        if spec.get("podType") == POD_TYPE_VM:
            controller = next((o for o in meta.get("ownerReferences") or [] if o.get("controller")), None)
            if (
                controller is None
                or controller.get("kind") != "VirtualMachineInstance"
                or not str(controller.get("apiVersion", "")).startswith("kubevirt.io/")
            ):
                return False
            if controller.get("name") != spec.get("podName"):
                return False
            vmi = view.vmi(namespace, str(controller.get("name", "")))
            return vmi is not None and vmi.get("metadata", {}).get("uid") == controller.get("uid")
        return bool(meta.get("name") == spec.get("podName"))


#: The built-in policies by name.
BUILTIN: dict[str, ConflictPolicy] = {
    p.name: p
    for p in (
        PodNameEqualityMultusBypass(),
        PodNameEquality(),
        ReverseContainment(),
        OwnerEquality(),
        ForwardContainment(),
        Reference(),
    )
}
