"""What goes into the local control plane before the suite runs (after controller-runtime's
``envtest/crd.go`` and ``envtest/webhook.go``):

* the real Kube-OVN CRDs of the tag, read at run time from that tag's module in the Go module cache
  (``charts/kube-ovn/templates/kube-ovn-crd.yaml``; never copied into the repository);
* KubeVirt's CRDs as virt-operator's generator prints them (``kovc assets build``), or, when that was
  not built, schemaless stand-ins with the upstream names, scopes and status subresources taken from
  the simulated cluster's resource table — the report names which was used;
* the install namespaces and ``manifests/rbac.yaml`` (the suite's least-privilege account);
* Kube-OVN's webhook registration exactly as the tag's ``yamls/webhook.yaml`` has it, with the
  ``service`` clientConfig rewritten to ``url`` + ``caBundle``; then a canary pod sent with
  ``dryRun=All`` until the webhook denies it (the apiserver's webhook informer and the webhook's own
  cache both lag the objects);
* KubeVirt's aggregated ``subresources.kubevirt.io`` API through an ExternalName Service.
"""

from __future__ import annotations

import base64
import copy
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .client import JSON, ApiClient, ApiError

KUBE_OVN_CRD_FILES = ("charts/kube-ovn/templates/kube-ovn-crd.yaml", "charts/kube-ovn-v2/crds/kube-ovn-crd.yaml")
WEBHOOK_YAML = "yamls/webhook.yaml"
WEBHOOK_ENTRY = "pod-ip-validating.kube-ovn.io"
WEBHOOK_CONFIGURATION = "kube-ovn-webhook"
#: The canary's static IP: TEST-NET-1, never handed out by any subnet the suite makes.
CANARY_IP = "192.0.2.254"
CANARY_OWNER = "kovc-canary-owner"
KUBEVIRT_NAMESPACE = "kubevirt"
INSTALL_NAMESPACES = ("kube-system", KUBEVIRT_NAMESPACE)
SUBRESOURCE_GROUP = "subresources.kubevirt.io"
SUBRESOURCE_VERSIONS = ("v1", "v1alpha3")
AGGREGATED_SERVICE = "virt-api"


#: libyaml's safe loader when PyYAML has it: KubeVirt's generated CRDs are 4 MB of YAML, 15 s to parse in
#: pure Python on these cores, 2.7 s with libyaml (measured).
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class InstallError(Exception):
    """An install step failed; ``str()`` is one line naming the object and what was seen."""


def load_documents(text: str, source: str) -> list[JSON]:
    if "{{" in text:
        raise InstallError(f"{source} is a Helm template ({{{{ … }}}}), not plain YAML")
    try:
        docs = [d for d in yaml.load_all(text, Loader=_YAML_LOADER) if isinstance(d, dict)]
    except yaml.YAMLError as err:
        raise InstallError(f"{source}: not valid YAML ({str(err).splitlines()[0]})") from None
    return docs


def kube_ovn_crds(module_dir: Path) -> tuple[list[JSON], str]:
    """The CRDs of the Kube-OVN module at ``module_dir`` and the file they came from."""
    for rel in KUBE_OVN_CRD_FILES:
        path = module_dir / rel
        if path.is_file():
            docs = load_documents(path.read_text(), str(path))
            crds = [d for d in docs if d.get("kind") == "CustomResourceDefinition"]
            if crds:
                return crds, rel
    raise InstallError(f"no Kube-OVN CRD file ({' or '.join(KUBE_OVN_CRD_FILES)}) in {module_dir}")


def webhook_registration(module_dir: Path) -> JSON:
    """The ValidatingWebhookConfiguration of the tag's ``yamls/webhook.yaml``."""
    path = module_dir / WEBHOOK_YAML
    if not path.is_file():
        raise InstallError(f"{path} not found: the tag has no webhook manifest")
    for doc in load_documents(path.read_text(), str(path)):
        if doc.get("kind") == "ValidatingWebhookConfiguration":
            return doc
    raise InstallError(f"{path} holds no ValidatingWebhookConfiguration")


def with_url(registration: JSON, url: str, ca_bundle: bytes) -> JSON:
    """``registration`` with every webhook's ``clientConfig.service`` replaced by ``url`` (the path
    appended, as the service's ``path`` would be) and ``caBundle``; cert-manager's CA-injection
    annotation dropped (there is no cert-manager); everything else exactly as the tag has it."""
    out = copy.deepcopy(registration)
    meta = out.setdefault("metadata", {})
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if not k.startswith("cert-manager.io/")}
    meta["annotations"] = annotations or None
    if meta["annotations"] is None:
        del meta["annotations"]
    for hook in out.get("webhooks") or []:
        cfg = hook.get("clientConfig") or {}
        path = str((cfg.get("service") or {}).get("path") or "")
        hook["clientConfig"] = {"url": url.rstrip("/") + path,
                                "caBundle": base64.b64encode(ca_bundle).decode()}
    return out


#: The virt-api admission checks the simulated controllers serve (``kovc sim attach``), by path.
VIRT_API_SERVED_PATHS = ("/virtualmachines-validate", "/migration-validate-create")


def virt_api_registration(path: Path, url: str, ca_bundle: bytes,
                          served: Sequence[str] = VIRT_API_SERVED_PATHS) -> JSON | None:
    """virt-api's ValidatingWebhookConfiguration as virt-operator generates it, keeping only the
    webhooks whose path is ``served`` (the checks the suite relies on), each rewritten to ``url``."""
    if not path.is_file():
        return None
    for doc in load_documents(path.read_text(), str(path)):
        if doc.get("kind") != "ValidatingWebhookConfiguration":
            continue
        keep = [h for h in doc.get("webhooks") or []
                if ((h.get("clientConfig") or {}).get("service") or {}).get("path") in served]
        out = with_url({**doc, "webhooks": keep}, url, ca_bundle)
        (out.get("metadata") or {}).pop("creationTimestamp", None)
        return out
    return None


def kubevirt_crds_from_file(path: Path) -> list[JSON]:
    return [d for d in load_documents(path.read_text(), str(path)) if d.get("kind") == "CustomResourceDefinition"]


def fallback_kubevirt_crds() -> list[JSON]:
    """Schemaless CRDs for the KubeVirt kinds the suite uses (names, scope, short names, categories
    and status subresource from the simulated cluster's resource table). Used only when virt-operator's
    generator was not built; the report says so."""
    from ..sim import resources as r

    out: list[JSON] = []
    for rt in (r.VMS, r.VMIS, r.VMIMS, r.KUBEVIRTS, r.VM_CLONES):
        version: JSON = {"name": rt.version, "served": True, "storage": True,
                         "schema": {"openAPIV3Schema": {"type": "object",
                                                        "x-kubernetes-preserve-unknown-fields": True}}}
        if "status" in rt.subresources:
            version["subresources"] = {"status": {}}
        names: JSON = {"plural": rt.plural, "singular": rt.singular, "kind": rt.kind, "listKind": rt.list_kind}
        if rt.short_names:
            names["shortNames"] = list(rt.short_names)
        if rt.categories:
            names["categories"] = list(rt.categories)
        out.append({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                    "metadata": {"name": f"{rt.plural}.{rt.group}"},
                    "spec": {"group": rt.group, "scope": "Namespaced" if rt.namespaced else "Cluster",
                             "names": names, "versions": [version]}})
    return out


def _strip_status(obj: JSON) -> JSON:
    obj = dict(obj)
    obj.pop("status", None)
    meta = dict(obj.get("metadata") or {})
    meta.pop("creationTimestamp", None)
    obj["metadata"] = meta
    return obj


def install_crds(client: ApiClient, crds: Iterable[JSON], timeout: float = 60.0) -> list[str]:
    """Apply the CRDs, then wait until each is Established and its group-version is discoverable."""
    names: list[str] = []
    for crd in crds:
        client.apply(_strip_status(crd))
        names.append(str(crd["metadata"]["name"]))
    deadline = time.monotonic() + timeout
    pending = set(names)
    while pending:
        for name in sorted(pending):
            got = client.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
            conds = {c.get("type"): c.get("status") for c in ((got or {}).get("status") or {}).get("conditions") or []}
            if conds.get("Established") == "True":
                pending.discard(name)
        if pending and time.monotonic() > deadline:
            raise InstallError(f"CRDs not Established after {timeout:.0f} s: {', '.join(sorted(pending))}")
        if pending:
            time.sleep(0.1)
    for crd in crds:
        spec = crd["spec"]
        for v in spec["versions"]:
            if not v.get("served", True):
                continue
            path = f"/apis/{spec['group']}/{v['name']}"
            while True:
                doc = client.get(path)
                plurals = {res.get("name") for res in (doc or {}).get("resources") or []}
                if spec["names"]["plural"] in plurals:
                    break
                if time.monotonic() > deadline:
                    raise InstallError(f"{spec['names']['plural']}.{spec['group']} not discoverable at {path} "
                                       f"after {timeout:.0f} s")
                time.sleep(0.1)
            # Discoverable is not yet listable: until its watch cache is filled the apiserver answers 429
            # "storage is (re)initializing" (measured on v1.35.4 right after Established).
            listing = f"{path}/{spec['names']['plural']}"
            while True:
                try:
                    client.request("GET", listing, query={"limit": "1"})
                    break
                except ApiError as err:
                    if err.code != 429 or time.monotonic() > deadline:
                        raise InstallError(f"{spec['names']['plural']}.{spec['group']}: listing {listing} "
                                           f"answered {err.code} after {timeout:.0f} s: {err}") from None
                time.sleep(0.1)
    return names


def apply_all(client: ApiClient, docs: Sequence[JSON]) -> None:
    for doc in docs:
        try:
            client.apply(doc)
        except ApiError as err:
            raise InstallError(f"applying {doc.get('kind')} {doc.get('metadata', {}).get('name')}: {err}") from None


def namespaces(names: Iterable[str]) -> list[JSON]:
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in names]


def read_only_role(name: str, user: str) -> list[JSON]:
    """A ClusterRole that can read everything, bound to ``user`` (the real webhook's identity: its
    handlers only read, through controller-runtime's informer cache)."""
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name},
         "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]},
    ]


def service_account_user(namespace: str, name: str) -> tuple[str, list[str]]:
    """The user name and groups kube-apiserver gives ServiceAccount ``namespace/name``."""
    groups = ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"]
    return f"system:serviceaccount:{namespace}:{name}", groups


def rbac_account(docs: Sequence[JSON]) -> tuple[str, str]:
    """(namespace, name) of the ServiceAccount in ``manifests/rbac.yaml``."""
    for doc in docs:
        if doc.get("kind") == "ServiceAccount":
            return str(doc["metadata"]["namespace"]), str(doc["metadata"]["name"])
    raise InstallError("manifests/rbac.yaml holds no ServiceAccount")


# --- the canary ---------------------------------------------------------------------------------

def canary_ip_cr(subnet: str = "ovn-default") -> JSON:
    return {"apiVersion": "kubeovn.io/v1", "kind": "IP",
            "metadata": {"name": f"{CANARY_OWNER}.kube-system", "labels": {"kovc.io/canary": "true"}},
            "spec": {"podName": CANARY_OWNER, "namespace": "kube-system", "subnet": subnet,
                     "ipAddress": CANARY_IP, "v4IpAddress": CANARY_IP, "podType": "", "nodeName": "",
                     "macAddress": "00:00:00:00:00:01", "attachSubnets": [], "attachIps": [], "attachMacs": [],
                     "containerID": ""}}


def canary_pod(namespace: str = "kube-system") -> JSON:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "kovc-canary", "namespace": namespace,
                         "annotations": {"ovn.kubernetes.io/ip_address": CANARY_IP}},
            "spec": {"containers": [{"name": "c", "image": "kovc.invalid/canary:0"}]}}


@dataclass
class Denial:
    message: str
    seconds: float


def wait_denied(client: ApiClient, entry: str = WEBHOOK_ENTRY, timeout: float = 60.0) -> Denial:
    """Send the canary pod with ``dryRun=All`` until ``entry`` denies it; the denial's message.
    :class:`InstallError` when it is still admitted after ``timeout`` (the webhook is not live)."""
    t0 = time.monotonic()
    last = "admitted"
    while True:
        try:
            client.create(canary_pod(), dry_run=True)
            last = "admitted (dry run)"
        except ApiError as err:
            if err.code in (400, 403) and entry in err.message and "denied the request" in err.message:
                return Denial(err.message, time.monotonic() - t0)
            last = str(err)
        if time.monotonic() - t0 > timeout:
            raise InstallError(f"webhook {entry} did not deny the canary pod (static IP {CANARY_IP} held by IP CR "
                               f"{CANARY_OWNER}.kube-system) within {timeout:.0f} s; last answer: {last[:300]}")
        time.sleep(0.2)


# --- aggregated API -------------------------------------------------------------------------------

def aggregated_api(port: int, ca_bundle: bytes, namespace: str = KUBEVIRT_NAMESPACE,
                   versions: Sequence[str] = SUBRESOURCE_VERSIONS) -> list[JSON]:
    """An ExternalName Service (``localhost``; the aggregator resolves ExternalName services without
    endpoints or kube-proxy) and one APIService per version of ``subresources.kubevirt.io``. The
    aggregator verifies the serving cert against ``<service>.<namespace>.svc``."""
    docs: list[JSON] = [{
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": AGGREGATED_SERVICE, "namespace": namespace},
        "spec": {"type": "ExternalName", "externalName": "localhost",
                 "ports": [{"name": "https", "port": port, "protocol": "TCP"}]},
    }]
    for v in versions:
        docs.append({
            "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": f"{v}.{SUBRESOURCE_GROUP}"},
            "spec": {"group": SUBRESOURCE_GROUP, "version": v, "groupPriorityMinimum": 1000, "versionPriority": 15,
                     "service": {"name": AGGREGATED_SERVICE, "namespace": namespace, "port": port},
                     "caBundle": base64.b64encode(ca_bundle).decode()},
        })
    return docs


def wait_available(client: ApiClient, names: Iterable[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    for name in names:
        while True:
            got: Any = client.get(f"/apis/apiregistration.k8s.io/v1/apiservices/{name}")
            conds = {c.get("type"): c for c in ((got or {}).get("status") or {}).get("conditions") or []}
            avail = conds.get("Available") or {}
            if avail.get("status") == "True":
                break
            if time.monotonic() > deadline:
                raise InstallError(f"APIService {name} not Available after {timeout:.0f} s: "
                                   f"{avail.get('reason', 'no condition')}: {avail.get('message', '')}"[:400])
            time.sleep(0.2)


def rbac_manifest(path: Path) -> list[JSON]:
    return load_documents(path.read_text(), str(path))
