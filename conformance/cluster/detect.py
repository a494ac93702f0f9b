"""What a cluster runs, read through the API: shared by the ``existing`` and ``kind`` backends.

Read-only: every request here is a GET carrying the suite's user agent, so an audit log shows that
detection changes nothing. Records separately the Kubernetes server version, the image tags of
``kube-ovn-controller`` and of ``kube-ovn-webhook`` (they can differ: upstream's ``yamls/webhook.yaml``
ships an older image than the release, and the webhook's tag is the one whose conflict policy is
under test), the KubeVirt version (``status.observedKubeVirtVersion`` of the KubeVirt CR), keep-vm-ip
(``--keep-vm-ip`` of the controller, true when absent as in ``pkg/controller/config.go``), and the
ValidatingWebhookConfiguration holding the entry ``pod-ip-validating.kube-ovn.io`` (found by entry
name in any configuration, so a vendor's renamed configuration is found too).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from .. import USER_AGENT
from .base import BackendError, ClusterInfo, Versions

#: Seconds to establish a TCP/TLS connection to the API server, and to wait for an answer.
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 20.0
WEBHOOK_ENTRY = "pod-ip-validating.kube-ovn.io"
KUBE_OVN_CONTROLLER = "kube-ovn-controller"
KUBE_OVN_WEBHOOK = "kube-ovn-webhook"
#: ``/version`` of the simulated cluster ends with this build-metadata suffix.
SIM_MARKER = "+kovc-sim"

JSON = dict[str, Any]


def _one_line(text: object, limit: int = 240) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def connect(kubeconfig: str | None, context: str | None = None) -> Any:
    """An API client for ``kubeconfig`` (``None``: ``$KUBECONFIG`` / ``~/.kube/config``) with the
    suite's user agent and a bounded connect timeout; :class:`BackendError` when the file is
    missing, unreadable or not a usable kubeconfig."""
    from kubernetes import client, config

    cfg = client.Configuration()
    where = kubeconfig or "the default kubeconfig ($KUBECONFIG or ~/.kube/config)"
    try:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context, client_configuration=cfg,
                                persist_config=False)
    except Exception as err:  # ConfigException, OSError, yaml errors, missing keys ...
        ctx = f" (context {context})" if context else ""
        raise BackendError(f"kubeconfig {where}{ctx} is unusable: {_one_line(err)}") from None
    # One retry at most: an unreachable server must be reported within a few seconds.
    cfg.retries = 1
    api = client.ApiClient(cfg)
    api.user_agent = USER_AGENT
    return api


class _NotFound(Exception):
    pass


def get_json(api: Any, path: str, query: dict[str, str] | None = None) -> JSON:
    """GET ``path`` as JSON; :class:`_NotFound` on 404; :class:`BackendError` when the server cannot
    be reached or answers with another error."""
    import urllib3

    qs = f"?{urlencode(query)}" if query else ""
    host = api.configuration.host
    try:
        method, url, headers, body, post = api.param_serialize(
            method="GET", resource_path=path + qs, header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"])
        resp = api.call_api(method, url, header_params=headers, body=body, post_params=post,
                            _request_timeout=(CONNECT_TIMEOUT, READ_TIMEOUT))
        raw = resp.read()
    except urllib3.exceptions.HTTPError as err:
        reason = getattr(err, "reason", None) or err
        raise BackendError(f"API server {host} unreachable (GET {path}, connect timeout "
                           f"{CONNECT_TIMEOUT:.0f}s): {_one_line(reason)}") from None
    except OSError as err:
        raise BackendError(f"API server {host} unreachable (GET {path}): {_one_line(err)}") from None
    if resp.status == 404:
        raise _NotFound(path)
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    if resp.status >= 400:
        try:
            message = json.loads(text).get("message", text)
        except ValueError:
            message = text
        raise BackendError(f"API server {host} answered GET {path} with {resp.status}: "
                           f"{_one_line(message)}")
    try:
        data = json.loads(text)
    except ValueError:
        raise BackendError(f"API server {host} answered GET {path} with non-JSON: "
                           f"{_one_line(text)}") from None
    if not isinstance(data, dict):
        raise BackendError(f"API server {host} answered GET {path} with {type(data).__name__}, "
                           "expected an object")
    return data


def image_tag(image: str) -> str:
    """The tag of an image reference (``docker.io/kubeovn/kube-ovn:v1.16.2@sha256:…`` → ``v1.16.2``);
    empty when it has none."""
    ref = image.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else ""


def _container(deployment: JSON, name: str) -> JSON | None:
    containers = deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    for c in containers:
        if c.get("name") == name:
            return dict(c)
    return dict(containers[0]) if containers else None


_FLAG = re.compile(r"^--?keep-vm-ip(?:=(.*))?$")
_ENV_REF = re.compile(r"^\$\(([A-Za-z_][A-Za-z0-9_]*)\)$")


def keep_vm_ip(deployment: JSON) -> tuple[bool | None, str | None]:
    """``--keep-vm-ip`` of the controller container: (value, warning). Absent → true (the flag's
    default in ``pkg/controller/config.go``); a value that cannot be read → (None, warning)."""
    c = _container(deployment, KUBE_OVN_CONTROLLER) or {}
    words = [str(w) for w in (c.get("command") or []) + (c.get("args") or [])]
    env = {e.get("name"): e.get("value") for e in c.get("env") or [] if "value" in e}
    for i, word in enumerate(words):
        m = _FLAG.match(word)
        if not m:
            continue
        value = m.group(1)
        if value is None:
            nxt = words[i + 1] if i + 1 < len(words) else ""
            value = nxt if nxt.lower() in ("true", "false") else "true"
        ref = _ENV_REF.match(value)
        if ref and env.get(ref.group(1)) is not None:
            value = str(env[ref.group(1)])
        if value.lower() in ("true", "1", "t"):
            return True, None
        if value.lower() in ("false", "0", "f"):
            return False, None
        return None, (f"kube-ovn-controller: cannot read --keep-vm-ip value {value!r}; "
                      "keep-vm-ip is recorded as unknown")
    return True, None


@dataclass
class Workload:
    namespace: str
    name: str
    image: str
    tag: str
    raw: JSON = field(repr=False, default_factory=dict)


def find_deployment(api: Any, name: str, namespace: str | None = "kube-system") -> Workload | None:
    """The Deployment ``name``: in ``namespace`` first, else in any namespace."""
    dep: JSON | None = None
    if namespace:
        try:
            dep = get_json(api, f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
        except _NotFound:
            dep = None
    if dep is None:
        try:
            items = get_json(api, "/apis/apps/v1/deployments",
                             {"fieldSelector": f"metadata.name={name}"}).get("items") or []
        except _NotFound:
            items = []
        dep = items[0] if items else None
    if dep is None:
        return None
    c = _container(dep, name) or {}
    image = str(c.get("image", ""))
    meta = dep.get("metadata", {})
    return Workload(namespace=meta.get("namespace", ""), name=meta.get("name", name), image=image,
                    tag=image_tag(image), raw=dep)


@dataclass
class WebhookRef:
    configuration: str
    entry: str
    service_namespace: str | None
    service_name: str | None
    failure_policy: str | None


def find_webhook(api: Any, entry: str = WEBHOOK_ENTRY) -> WebhookRef | None:
    """The ValidatingWebhookConfiguration that holds ``entry`` (any name)."""
    try:
        items = get_json(api, "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
                         ).get("items") or []
    except _NotFound:
        items = []
    for vwc in sorted(items, key=lambda o: o.get("metadata", {}).get("name", "")):
        for hook in vwc.get("webhooks") or []:
            if hook.get("name") == entry:
                svc = (hook.get("clientConfig") or {}).get("service") or {}
                return WebhookRef(configuration=vwc["metadata"]["name"], entry=entry,
                                  service_namespace=svc.get("namespace"), service_name=svc.get("name"),
                                  failure_policy=hook.get("failurePolicy"))
    return None


def webhook_deployment(api: Any, ref: WebhookRef) -> Workload | None:
    """The Deployment serving ``ref``: the one whose pods the webhook's Service selects, else the
    Deployment ``kube-ovn-webhook`` (in the Service's namespace first)."""
    if ref.service_namespace and ref.service_name:
        try:
            svc = get_json(api, f"/api/v1/namespaces/{ref.service_namespace}/services/{ref.service_name}")
        except _NotFound:
            svc = {}
        selector = (svc.get("spec") or {}).get("selector") or {}
        if selector:
            try:
                deps = get_json(api, f"/apis/apps/v1/namespaces/{ref.service_namespace}/deployments"
                                ).get("items") or []
            except _NotFound:
                deps = []
            for dep in sorted(deps, key=lambda d: d["metadata"]["name"]):
                template = (dep.get("spec") or {}).get("template") or {}
                labels = (template.get("metadata") or {}).get("labels") or {}
                if all(labels.get(k) == v for k, v in selector.items()):
                    c = _container(dep, KUBE_OVN_WEBHOOK) or {}
                    image = str(c.get("image", ""))
                    return Workload(namespace=ref.service_namespace, name=dep["metadata"]["name"],
                                    image=image, tag=image_tag(image), raw=dep)
    return find_deployment(api, KUBE_OVN_WEBHOOK, ref.service_namespace or "kube-system")


def running_images(api: Any, workload: Workload, container: str) -> list[str]:
    """Images of ``container`` in the workload's Running, not-terminating pods (from the kubelet's
    container status when reported, else the pod spec). Empty when no such pod exists."""
    selector = ((workload.raw.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    if not selector:
        return []
    query = {"labelSelector": ",".join(f"{k}={v}" for k, v in sorted(selector.items()))}
    try:
        pods = get_json(api, f"/api/v1/namespaces/{workload.namespace}/pods", query).get("items") or []
    except _NotFound:
        pods = []
    images: list[str] = []
    for pod in pods:
        if pod.get("metadata", {}).get("deletionTimestamp"):
            continue
        if (pod.get("status") or {}).get("phase") != "Running":
            continue
        statuses = {s.get("name"): s for s in (pod.get("status") or {}).get("containerStatuses") or []}
        for c in (pod.get("spec") or {}).get("containers") or []:
            if c.get("name") != container:
                continue
            status_image = (statuses.get(container) or {}).get("image")
            images.append(str(status_image or c.get("image", "")))
    return images


@dataclass
class KubeVirtStatus:
    namespace: str
    name: str
    phase: str
    observed_version: str
    available: bool
    use_emulation: bool | None
    feature_gates: list[str]
    deleting: bool = False


def kubevirt_status(api: Any) -> KubeVirtStatus | None:
    """The KubeVirt CR (any namespace); None when the API or the CR is absent."""
    try:
        items = get_json(api, "/apis/kubevirt.io/v1/kubevirts").get("items") or []
    except _NotFound:
        return None
    if not items:
        return None
    kv = sorted(items, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))[0]
    status = kv.get("status") or {}
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    dev = ((kv.get("spec") or {}).get("configuration") or {}).get("developerConfiguration") or {}
    return KubeVirtStatus(namespace=kv["metadata"].get("namespace", ""), name=kv["metadata"]["name"],
                          phase=str(status.get("phase", "")),
                          observed_version=str(status.get("observedKubeVirtVersion", "")),
                          available=conditions.get("Available") == "True",
                          use_emulation=dev.get("useEmulation"),
                          feature_gates=[str(g) for g in dev.get("featureGates") or []],
                          deleting=bool(kv["metadata"].get("deletionTimestamp")))


@dataclass
class Detection:
    """Everything read from the cluster; ``missing`` lists what a conformance run cannot do without."""

    server_version: str
    simulated: bool
    controller: Workload | None
    webhook: WebhookRef | None
    webhook_workload: Workload | None
    kubevirt: KubeVirtStatus | None
    keep_vm_ip: bool | None
    nodes: list[JSON]
    warnings: list[str]

    @property
    def missing(self) -> list[str]:
        out: list[str] = []
        if self.kubevirt is None:
            out.append("KubeVirt is not installed: no KubeVirt CR (kubevirts.kubevirt.io) in any namespace")
        elif self.kubevirt.deleting:
            out.append(f"KubeVirt is being removed: KubeVirt {self.kubevirt.namespace}/{self.kubevirt.name} "
                       "has a deletionTimestamp")
        elif self.kubevirt.phase != "Deployed" or not self.kubevirt.available:
            out.append(f"KubeVirt is not ready: KubeVirt {self.kubevirt.namespace}/{self.kubevirt.name} "
                       f"has phase {self.kubevirt.phase or '(none)'} and Available="
                       f"{'True' if self.kubevirt.available else 'not True'}, expected Deployed and True")
        if self.controller is None:
            out.append(f"Kube-OVN is not installed: no Deployment {KUBE_OVN_CONTROLLER} in any namespace")
        if self.webhook is None:
            out.append(f"the Kube-OVN webhook is not installed: no ValidatingWebhookConfiguration has an "
                       f"entry named {WEBHOOK_ENTRY}")
        elif self.webhook_workload is None:
            out.append(f"the Kube-OVN webhook has no server: ValidatingWebhookConfiguration "
                       f"{self.webhook.configuration} names {WEBHOOK_ENTRY} but no Deployment "
                       f"{KUBE_OVN_WEBHOOK} (or one selected by its Service) exists")
        return out


def detect(api: Any, entry: str = WEBHOOK_ENTRY) -> Detection:
    """Read the cluster (GETs only). :class:`BackendError` when the API cannot be reached."""
    try:
        version = get_json(api, "/version")
    except _NotFound:
        raise BackendError(f"API server {api.configuration.host} has no /version endpoint "
                           "(is this a Kubernetes API server?)") from None
    git_version = str(version.get("gitVersion", ""))
    warnings: list[str] = []
    controller = find_deployment(api, KUBE_OVN_CONTROLLER)
    keep: bool | None = None
    if controller is not None:
        keep, warn = keep_vm_ip(controller.raw)
        if warn:
            warnings.append(warn)
    webhook = find_webhook(api, entry)
    webhook_workload = webhook_deployment(api, webhook) if webhook else None
    if controller is not None and webhook_workload is not None and controller.tag != webhook_workload.tag:
        warnings.append(f"kube-ovn-controller runs {controller.tag or controller.image!r} but the webhook "
                        f"{webhook_workload.namespace}/{webhook_workload.name} runs "
                        f"{webhook_workload.tag or webhook_workload.image!r}; the webhook's version is the "
                        "one whose admission policy is tested")
    try:
        nodes = get_json(api, "/api/v1/nodes").get("items") or []
    except _NotFound:
        nodes = []
    kubelets = sorted({str(((n.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion", ""))
                       for n in nodes})
    base_version = git_version.split("+", 1)[0]
    if kubelets and any(k and k.split("+", 1)[0] != base_version for k in kubelets):
        warnings.append(f"nodes run kubelet {', '.join(k for k in kubelets if k)} while the API server is "
                        f"{git_version}")
    return Detection(server_version=git_version, simulated=SIM_MARKER in git_version, controller=controller,
                     webhook=webhook, webhook_workload=webhook_workload, kubevirt=kubevirt_status(api),
                     keep_vm_ip=keep if controller is not None else None, nodes=nodes, warnings=warnings)


def cluster_info(det: Detection, *, backend: str, kubeconfig: str, context: str | None,
                 kind_node_image: str | None = None, extra: dict[str, Any] | None = None) -> ClusterInfo:
    """The :class:`ClusterInfo` for a complete detection (callers check :attr:`Detection.missing`)."""
    assert det.controller is not None and det.webhook is not None and det.webhook_workload is not None
    assert det.kubevirt is not None
    info_extra: dict[str, Any] = {
        "kube_ovn_controller": f"{det.controller.namespace}/{det.controller.name}",
        "kube_ovn_controller_image": det.controller.image,
        "kube_ovn_webhook": f"{det.webhook_workload.namespace}/{det.webhook_workload.name}",
        "kube_ovn_webhook_image": det.webhook_workload.image,
        "webhook_failure_policy": det.webhook.failure_policy,
        "kubevirt": f"{det.kubevirt.namespace}/{det.kubevirt.name}",
        "kubevirt_use_emulation": det.kubevirt.use_emulation,
        "kubevirt_feature_gates": det.kubevirt.feature_gates,
        "nodes": [n.get("metadata", {}).get("name", "") for n in det.nodes],
    }
    info_extra.update(extra or {})
    return ClusterInfo(
        backend=backend, kubeconfig=kubeconfig, context=context, simulated=det.simulated,
        versions=Versions(kubernetes=det.server_version, kube_ovn_controller=det.controller.tag,
                          kube_ovn_webhook=det.webhook_workload.tag, kubevirt=det.kubevirt.observed_version,
                          kind_node_image=kind_node_image),
        webhook_configuration=det.webhook.configuration, webhook_name=det.webhook.entry,
        keep_vm_ip=det.keep_vm_ip, warnings=list(det.warnings), extra=info_extra)
