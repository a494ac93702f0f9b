"""Diagnostics of a failed requirement, collected while the cluster still holds the evidence.

The plugin calls :func:`collect` for a failed requirement *before* cleanup, with
``out_dir = <report_dir>/diagnostics/<requirement id>/``. It writes one small file per object, named
by kind and name::

    index.txt                                   what was collected, from where, and notes
    namespaces/<ns>.yaml
    virtualmachines/<ns>/<name>.yaml            (also virtualmachineinstances/, …migrations/, pods/)
    events/<ns>.yaml, events/<ns>.txt           the namespace's events (full, and one line each)
    ips/<name>.yaml                             IP CRs of the addresses and of the namespaces' workloads
    subnets/<name>.yaml                         subnets those IP CRs, pods and VMs name or contain
    validatingwebhookconfigurations/<name>.yaml the configuration(s) carrying the pod-IP webhook
    logs/<component>/<ns>.<pod>.<container>.log kube-ovn-controller, kube-ovn-webhook, virt-controller,
                                                virt-handler (tail; ``.previous.log`` after a restart)
    ovn-nb/logical-switch-ports.csv             real clusters with ``kubectl ko``: LSPs of the addresses
    errors.txt                                  every step that failed (collection never raises)

Requests go through the given ``ApiClient`` (its ``param_serialize``/``call_api``), so the same code
works against a real cluster and against the simulated one.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import yaml

from ..cluster.base import ClusterInfo

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

JSON = dict[str, Any]
T = TypeVar("T")

#: Log lines and bytes kept per container (the tail holds the failure).
LOG_TAIL_LINES = 2000
LOG_LIMIT_BYTES = 256 * 1024
#: Pods per component whose logs are kept (those on the nodes of the namespaces' pods first).
MAX_PODS_PER_COMPONENT = 4
#: Per-request timeouts (connect, read), seconds.
REQUEST_TIMEOUT = (5.0, 30.0)
#: ``kubectl ko`` timeout, seconds.
KO_TIMEOUT = 60.0
DEFAULT_WEBHOOK = "pod-ip-validating.kube-ovn.io"

#: (component, kind of its workload, ClusterInfo.extra key naming the detected ``<namespace>/<name>``,
#: default namespace). Logs come only from the pods that workload owns, in its namespace (a pod
#: elsewhere, or one merely carrying the same labels or name prefix, is never taken for it).
COMPONENTS: tuple[tuple[str, str, str, str], ...] = (
    ("kube-ovn-controller", "Deployment", "kube_ovn_controller", "kube-system"),
    ("kube-ovn-webhook", "Deployment", "kube_ovn_webhook", "kube-system"),
    ("virt-api", "Deployment", "kubevirt", "kubevirt"),
    ("virt-controller", "Deployment", "kubevirt", "kubevirt"),
    ("virt-handler", "DaemonSet", "kubevirt", "kubevirt"),
)
#: (directory, apiVersion, kind, collection path under a namespace).
NAMESPACED_KINDS: tuple[tuple[str, str, str, str], ...] = (
    ("virtualmachines", "kubevirt.io/v1", "VirtualMachine",
     "/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachines"),
    ("virtualmachineinstances", "kubevirt.io/v1", "VirtualMachineInstance",
     "/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachineinstances"),
    ("virtualmachineinstancemigrations", "kubevirt.io/v1", "VirtualMachineInstanceMigration",
     "/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachineinstancemigrations"),
    ("pods", "v1", "Pod", "/api/v1/namespaces/{ns}/pods"),
)
IPS_PATH = "/apis/kubeovn.io/v1/ips"
SUBNETS_PATH = "/apis/kubeovn.io/v1/subnets"
VWC_PATH = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
LOGICAL_SWITCH = "ovn.kubernetes.io/logical_switch"

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class DiagnosticsError(Exception):
    """One failed collection step (recorded in errors.txt, never raised to the caller)."""


def safe_name(name: str) -> str:
    """A file-name-safe form of a Kubernetes name (they are DNS-safe already; this guards the rest)."""
    cleaned = _UNSAFE.sub("_", name)[:200]
    return cleaned if cleaned not in ("", ".", "..") else f"_{cleaned}"


def _strip(obj: JSON) -> JSON:
    """The object without managedFields and the webhook's CA bundle (noise, not evidence)."""
    obj = json.loads(json.dumps(obj))
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    for hook in obj.get("webhooks") or []:
        cc = hook.get("clientConfig") if isinstance(hook, dict) else None
        if isinstance(cc, dict) and cc.get("caBundle"):
            cc["caBundle"] = f"<{len(str(cc['caBundle']))} characters elided>"
    return obj


def _name(obj: JSON) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _namespace(obj: JSON) -> str:
    return str((obj.get("metadata") or {}).get("namespace") or "")


def _ip_values(spec: JSON) -> set[str]:
    out: set[str] = set()
    for key in ("ipAddress", "v4IpAddress", "v6IpAddress"):
        for part in str(spec.get(key) or "").split(","):
            if part.strip():
                out.add(part.strip())
    return out


def _addr_key(addr: str) -> tuple[int, int, str]:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return (9, 0, addr)
    return (ip.version, int(ip), addr)


def _normalise_ip(addr: str) -> str:
    try:
        return str(ipaddress.ip_address(addr.strip()))
    except ValueError:
        return addr.strip()


class _Api:
    """Read-only GETs through an ApiClient, as JSON or text; errors as :class:`DiagnosticsError`."""

    def __init__(self, api_client: Any) -> None:
        self.client = api_client

    def get(self, path: str, query: Sequence[tuple[str, str]] = (), *,
            accept: str = "application/json") -> str:
        try:
            method, url, headers, body, post = self.client.param_serialize(
                method="GET", resource_path=path, query_params=list(query), header_params={"Accept": accept},
                auth_settings=["BearerToken"])
            resp = self.client.call_api(method, url, header_params=headers, body=body, post_params=post,
                                        _request_timeout=REQUEST_TIMEOUT)
            data = resp.read()
        except Exception as err:  # transport errors of any client library: recorded, never raised
            raise DiagnosticsError(f"GET {path}: {type(err).__name__}: {_one_line(str(err))}") from None
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data or "")
        status = int(getattr(resp, "status", 0) or 0)
        if not 200 <= status <= 299:
            raise DiagnosticsError(f"GET {path}: HTTP {status}: {_status_message(text)}")
        return text

    def get_json(self, path: str, query: Sequence[tuple[str, str]] = ()) -> JSON:
        text = self.get(path, query)
        try:
            data = json.loads(text)
        except ValueError:
            raise DiagnosticsError(f"GET {path}: answer is not JSON: {_one_line(text)[:200]}") from None
        if not isinstance(data, dict):
            raise DiagnosticsError(f"GET {path}: expected a JSON object, got {type(data).__name__}")
        return data

    def list(self, path: str, query: Sequence[tuple[str, str]] = ()) -> list[JSON]:
        items = self.get_json(path, query).get("items") or []
        return [i for i in items if isinstance(i, dict)]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _status_message(text: str) -> str:
    try:
        data = json.loads(text)
        if isinstance(data, dict) and data.get("message"):
            return _one_line(str(data["message"]))
    except ValueError:
        pass
    return _one_line(text)[:300] or "(empty answer)"


class _Collector:
    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.written: list[Path] = []
        self.errors: list[str] = []
        self.notes: list[str] = []

    def attempt(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        try:
            return fn(*args, **kwargs)
        except DiagnosticsError as err:
            self.errors.append(f"{what}: {err}")
        except Exception as err:  # collection must never fail the caller
            self.errors.append(f"{what}: {type(err).__name__}: {_one_line(str(err))}")
        return None

    def write_text(self, rel: str, text: str) -> None:
        path = self.out_dir / rel
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as err:
            self.errors.append(f"write {rel}: {err}")
            return
        self.written.append(path)

    def write_yaml(self, rel: str, obj: Any) -> None:
        try:
            text = yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, allow_unicode=True,
                                  width=120)
        except yaml.YAMLError as err:
            self.errors.append(f"serialise {rel}: {err}")
            return
        self.write_text(rel, text)


def _event_line(ev: JSON) -> str:
    when = _event_key(ev) or "-"
    obj = ev.get("involvedObject") or ev.get("regarding") or {}
    count = ev.get("count") or (ev.get("series") or {}).get("count") or 1
    message = _one_line(str(ev.get("message") or ""))
    return (f"{when} {ev.get('type') or '-'} {ev.get('reason') or '-'} "
            f"{obj.get('kind', '?')}/{obj.get('name', '?')} x{count}: {message}")


def _event_key(ev: JSON) -> str:
    return str(ev.get("lastTimestamp") or ev.get("eventTime")
               or (ev.get("metadata") or {}).get("creationTimestamp") or "")


def _subnets_named(obj: JSON) -> set[str]:
    """Subnets a pod, VM or VMI names in its ``ovn.kubernetes.io/logical_switch`` annotation(s)."""
    out: set[str] = set()
    annotation_maps = [(obj.get("metadata") or {}).get("annotations") or {}]
    template = ((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}
    annotation_maps.append(template.get("annotations") or {})
    for amap in annotation_maps:
        if not isinstance(amap, dict):
            continue
        for key, value in amap.items():
            if (key == LOGICAL_SWITCH or key.endswith("." + LOGICAL_SWITCH)) and value:
                out.add(str(value))
    return out


def _subnet_contains(subnet: JSON, addresses: Iterable[str]) -> bool:
    cidrs = str((subnet.get("spec") or {}).get("cidrBlock") or "")
    nets = []
    for cidr in cidrs.split(","):
        try:
            nets.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError:
            continue
    for addr in addresses:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            continue
        if any(ip.version == net.version and ip in net for net in nets):
            return True
    return False


def _collect_namespaces(api: _Api, col: _Collector, namespaces: Sequence[str]) -> dict[str, list[JSON]]:
    """YAML of each namespace's workloads and events; returns the objects per kind directory."""
    seen: dict[str, list[JSON]] = {kind_dir: [] for kind_dir, *_ in NAMESPACED_KINDS}
    for ns in namespaces:
        ns_q = quote(ns, safe="")
        namespace = col.attempt(f"namespace {ns}", api.get_json, f"/api/v1/namespaces/{ns_q}")
        if namespace is not None:
            col.write_yaml(f"namespaces/{safe_name(ns)}.yaml", _strip(namespace))
        for kind_dir, api_version, kind, template in NAMESPACED_KINDS:
            path = template.format(ns=ns_q)
            items = col.attempt(f"list {kind_dir} in {ns}", api.list, path)
            for item in items or []:
                item.setdefault("apiVersion", api_version)
                item.setdefault("kind", kind)
                seen[kind_dir].append(item)
                col.write_yaml(f"{kind_dir}/{safe_name(ns)}/{safe_name(_name(item))}.yaml", _strip(item))
        events = col.attempt(f"list events in {ns}", api.list, f"/api/v1/namespaces/{ns_q}/events")
        if events is not None:
            events.sort(key=_event_key)
            col.write_yaml(f"events/{safe_name(ns)}.yaml",
                           {"apiVersion": "v1", "kind": "EventList", "items": [_strip(e) for e in events]})
            col.write_text(f"events/{safe_name(ns)}.txt", "".join(_event_line(e) + "\n" for e in events))
    return seen


def _collect_ips_and_subnets(api: _Api, col: _Collector, namespaces: Sequence[str], addresses: set[str],
                             workloads: dict[str, list[JSON]]) -> None:
    subnet_names: set[str] = set()
    for items in workloads.values():
        for obj in items:
            subnet_names |= _subnets_named(obj)
    all_ips = col.attempt("list IP CRs", api.list, IPS_PATH)
    if all_ips is not None:
        wanted_ns = set(namespaces)
        kept = 0
        for ip in all_ips:
            spec = ip.get("spec") or {}
            mine = {_normalise_ip(a) for a in _ip_values(spec)} & addresses
            if mine or spec.get("namespace") in wanted_ns:
                ip.setdefault("apiVersion", "kubeovn.io/v1")
                ip.setdefault("kind", "IP")
                col.write_yaml(f"ips/{safe_name(_name(ip))}.yaml", _strip(ip))
                kept += 1
                if spec.get("subnet"):
                    subnet_names.add(str(spec["subnet"]))
        col.notes.append(f"IP CRs: {kept} of {len(all_ips)} kept (the addresses' and the namespaces' "
                         "workloads')")
    subnets = col.attempt("list subnets", api.list, SUBNETS_PATH)
    if subnets is not None:
        wanted_ns = set(namespaces)
        found = set()
        for subnet in subnets:
            name = _name(subnet)
            bound = set((subnet.get("spec") or {}).get("namespaces") or []) & wanted_ns
            if name in subnet_names or bound or _subnet_contains(subnet, addresses):
                subnet.setdefault("apiVersion", "kubeovn.io/v1")
                subnet.setdefault("kind", "Subnet")
                col.write_yaml(f"subnets/{safe_name(name)}.yaml", _strip(subnet))
                found.add(name)
        missing = sorted(subnet_names - found)
        if missing:
            col.notes.append(f"subnets named by the workloads but absent: {', '.join(missing)}")


def _collect_webhook_configuration(api: _Api, col: _Collector, info: ClusterInfo | None) -> None:
    webhook = info.webhook_name if info is not None else DEFAULT_WEBHOOK
    configs = col.attempt("list ValidatingWebhookConfigurations", api.list, VWC_PATH)
    if configs is None:
        return
    kept = [c for c in configs if any(isinstance(h, dict) and h.get("name") == webhook
                                      for h in c.get("webhooks") or [])]
    if not kept:
        col.notes.append(f"no ValidatingWebhookConfiguration carries {webhook} (webhook not installed?)")
    for config in kept:
        config.setdefault("apiVersion", "admissionregistration.k8s.io/v1")
        config.setdefault("kind", "ValidatingWebhookConfiguration")
        col.write_yaml(f"validatingwebhookconfigurations/{safe_name(_name(config))}.yaml", _strip(config))


def component_workload(component: str, key: str, default_namespace: str,
                       info: ClusterInfo | None) -> tuple[str, str]:
    """(namespace, name) of a component's workload: as the backend detected it (``info.extra``:
    ``kube_ovn_controller``/``kube_ovn_webhook`` name the Deployment, ``kubevirt`` the KubeVirt CR,
    whose namespace holds the virt-* workloads), else the standard install's."""
    ref = str(((info.extra if info is not None else None) or {}).get(key) or "")
    if "/" in ref:
        namespace, name = ref.split("/", 1)
        return (namespace, component) if key == "kubevirt" else (namespace, name)
    return default_namespace, component


def _controller_ref(pod: JSON) -> JSON | None:
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller"):
            return ref
    return None


def owned_by(api: _Api, pod: JSON, kind: str, name: str) -> bool:
    """Whether ``pod`` belongs to the workload ``kind``/``name`` of its namespace: its controller is
    the DaemonSet, or a ReplicaSet ``<name>-<pod-template-hash>`` (whose own controller, when it can be
    read, is the Deployment)."""
    ref = _controller_ref(pod)
    if ref is None:
        return False
    if kind == "DaemonSet":
        return ref.get("kind") == "DaemonSet" and ref.get("name") == name
    if ref.get("kind") != "ReplicaSet":
        return False
    rs_name = str(ref.get("name") or "")
    pod_hash = ((pod.get("metadata") or {}).get("labels") or {}).get("pod-template-hash")
    if pod_hash:
        if rs_name != f"{name}-{pod_hash}":
            return False
    elif not (rs_name.startswith(f"{name}-") and "-" not in rs_name[len(name) + 1:]):
        return False
    ns = _namespace(pod)
    try:  # the ReplicaSet's own controller, when the run may read ReplicaSets
        rs = api.get_json(f"/apis/apps/v1/namespaces/{quote(ns, safe='')}/replicasets/{quote(rs_name, safe='')}")
    except DiagnosticsError:
        return True  # not readable (RBAC, not served): the name and namespace decide
    owner = _controller_ref(rs)
    return owner is not None and owner.get("kind") == "Deployment" and owner.get("name") == name


def _collect_logs(api: _Api, col: _Collector, nodes_of_interest: set[str], info: ClusterInfo | None = None) -> None:
    listed: dict[str, list[JSON] | None] = {}
    for component, kind, key, default_namespace in COMPONENTS:
        namespace, workload = component_workload(component, key, default_namespace, info)
        if namespace not in listed:
            listed[namespace] = col.attempt(f"list pods in {namespace}", api.list,
                                            f"/api/v1/namespaces/{quote(namespace, safe='')}/pods")
        candidates = listed[namespace]
        if candidates is None:
            continue
        pods = [p for p in candidates if owned_by(api, p, kind, workload)]
        if not pods:
            col.notes.append(f"{component}: no pod of {kind} {namespace}/{workload} found")
            continue
        pods.sort(key=lambda p: ((p.get("spec") or {}).get("nodeName") not in nodes_of_interest,
                                 _namespace(p), _name(p)))
        chosen = pods[:MAX_PODS_PER_COMPONENT]
        if len(pods) > len(chosen):
            col.notes.append(f"{component}: logs of {len(chosen)} of {len(pods)} pods (those on the nodes of "
                             "the namespaces' pods first)")
        for pod in chosen:
            ns, name = _namespace(pod), _name(pod)
            statuses = (pod.get("status") or {}).get("containerStatuses") or []
            restarts = {str(s.get("name")): int(s.get("restartCount") or 0)
                        for s in statuses if isinstance(s, dict)}
            for container in (pod.get("spec") or {}).get("containers") or []:
                cname = str(container.get("name") or "")
                if not cname:
                    continue
                base = f"logs/{component}/{safe_name(ns)}.{safe_name(name)}.{safe_name(cname)}"
                for previous in (False, True):
                    if previous and not restarts.get(cname):
                        continue
                    query = [("container", cname), ("tailLines", str(LOG_TAIL_LINES)),
                             ("limitBytes", str(LOG_LIMIT_BYTES))]
                    if previous:
                        query.append(("previous", "true"))
                    path = f"/api/v1/namespaces/{quote(ns, safe='')}/pods/{quote(name, safe='')}/log"
                    what = f"logs of {ns}/{name} container {cname}" + (" (previous)" if previous else "")
                    text = col.attempt(what, api.get, path, query, accept="text/plain")
                    if text is not None:
                        col.write_text(base + (".previous.log" if previous else ".log"), text)


_ADDR_EDGE = "[0-9A-Fa-f.:]"


def _collect_ovn_nb(col: _Collector, info: ClusterInfo | None, addresses: set[str]) -> None:
    note = "ovn-nb/README.txt"
    if info is None:
        col.write_text(note, "skipped: no cluster information was given, so the cluster may be simulated\n")
        return
    if info.simulated:
        col.write_text(note, "skipped: simulated cluster (it has no OVN northbound database)\n")
        return
    kubectl, plugin = shutil.which("kubectl"), shutil.which("kubectl-ko")
    if not kubectl or not plugin:
        col.write_text(note, "skipped: `kubectl ko` is not available (the kubectl-ko plugin is not on "
                             "PATH); install it from Kube-OVN's dist/images/kubectl-ko to collect logical "
                             "switch ports\n")
        return
    if not addresses:
        col.write_text(note, "skipped: no addresses to look up\n")
        return
    env = dict(os.environ)
    env["KUBECONFIG"] = info.kubeconfig
    with tempfile.TemporaryDirectory(prefix="kovc-ko-") as tmp:
        if info.context:
            # kubectl plugins get no global flags: pin the context in a minified kubeconfig.
            minified = col.attempt("kubeconfig for kubectl ko", lambda: subprocess.run(
                [kubectl, "config", "view", "--minify", "--flatten", "--context", str(info.context)],
                env=env, capture_output=True, text=True, timeout=KO_TIMEOUT, check=True).stdout)
            if minified is None:
                return
            cfg = Path(tmp) / "kubeconfig"
            cfg.write_text(minified, encoding="utf-8")
            cfg.chmod(0o600)
            env["KUBECONFIG"] = str(cfg)
        cmd = [kubectl, "ko", "nbctl", "--format=csv", "--data=bare",
               "--columns=_uuid,name,addresses,dynamic_addresses,port_security,up,external_ids",
               "list", "logical_switch_port"]
        proc = col.attempt("kubectl ko nbctl list logical_switch_port", lambda: subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=KO_TIMEOUT, check=False))
    if proc is None:
        return
    if proc.returncode != 0:
        col.errors.append(f"kubectl ko nbctl list logical_switch_port: exit {proc.returncode}: "
                          f"{_one_line(proc.stderr)[:500]}")
        return
    lines = proc.stdout.splitlines()
    header, rows = (lines[0], lines[1:]) if lines else ("", [])
    patterns = [re.compile(f"(?<!{_ADDR_EDGE}){re.escape(a)}(?!{_ADDR_EDGE})")
                for a in sorted(addresses, key=_addr_key)]
    kept = [row for row in rows if any(p.search(row) for p in patterns)]
    col.write_text("ovn-nb/logical-switch-ports.csv", "\n".join([header, *kept]) + "\n")
    col.notes.append(f"OVN NB: {len(kept)} of {len(rows)} logical switch ports carry the addresses")


def collect(api_client: ApiClient, out_dir: Path, *, namespaces: Sequence[str], ip_addresses: Sequence[str],
            info: ClusterInfo | None) -> list[Path]:
    """Called by the plugin for a failed requirement, BEFORE cleanup, with out_dir =
    <report_dir>/diagnostics/<requirement id>/. Writes YAML of the VMs, VMIs, VMIMs, pods, IP CRs
    (those of ip_addresses and those in the namespaces' workloads), subnets involved, the namespaces'
    events, the ValidatingWebhookConfiguration(s) carrying pod-ip-validating.kube-ovn.io, logs of
    kube-ovn-controller, kube-ovn-webhook, virt-api, virt-controller, virt-handler pods where present
    (only the pods their Deployment/DaemonSet owns, in the namespace the backend detected, else
    kube-system / kubevirt), and, on real clusters only (info.simulated False),
    ``kubectl ko nbctl`` logical switch ports of the addresses when ``kubectl ko`` is available (skip
    silently with a note file otherwise). Never raises on partial failure: errors are written into an
    ``errors.txt`` in out_dir. Each file small and named by kind/name. Returns the files written."""
    col = _Collector(Path(out_dir))
    try:
        col.out_dir.mkdir(parents=True, exist_ok=True)
    except OSError:
        return []
    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    addresses = {_normalise_ip(a) for a in ip_addresses if str(a).strip()}
    api = _Api(api_client)
    workloads: dict[str, list[JSON]] = {}

    def namespaces_step() -> None:
        workloads.update(_collect_namespaces(api, col, list(namespaces)))

    def nodes() -> set[str]:
        return {str((p.get("spec") or {}).get("nodeName")) for p in workloads.get("pods", [])
                if (p.get("spec") or {}).get("nodeName")}

    steps: list[tuple[str, Callable[[], None]]] = [
        ("namespaces", namespaces_step),
        ("IP CRs and subnets",
         lambda: _collect_ips_and_subnets(api, col, list(namespaces), addresses, workloads)),
        ("webhook configuration", lambda: _collect_webhook_configuration(api, col, info)),
        ("component logs", lambda: _collect_logs(api, col, nodes(), info)),
        ("OVN northbound", lambda: _collect_ovn_nb(col, info, addresses)),
    ]
    for what, step in steps:
        col.attempt(what, step)
    cluster = "(unknown)"
    if info is not None:
        cluster = info.backend + (f" (simulated: {info.sim_model})" if info.simulated else "")
    index = [
        f"collected: {started}",
        f"cluster: {cluster}",
        f"namespaces: {', '.join(namespaces) or '(none)'}",
        f"addresses: {', '.join(sorted(addresses, key=_addr_key)) or '(none)'}",
        f"files: {len(col.written)}",
        f"errors: {len(col.errors)}" + (" (see errors.txt)" if col.errors else ""),
        *[f"note: {n}" for n in col.notes],
    ]
    if col.errors:
        col.write_text("errors.txt", "".join(e + "\n" for e in col.errors))
    col.write_text("index.txt", "\n".join(index) + "\n")
    return list(col.written)
