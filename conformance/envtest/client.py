"""A minimal JSON-over-HTTPS client for installing into the local control plane (CRDs, RBAC,
webhook configurations, APIServices). Server-side apply makes every install step idempotent. The
suite itself talks through :mod:`conformance.kube`; this client exists so the envtest package needs
nothing but the standard library and a kubeconfig with a client certificate."""

from __future__ import annotations

import base64
import json
import ssl
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

JSON = dict[str, Any]
FIELD_MANAGER = "kovc-envtest"


class ApiError(Exception):
    """An HTTP error answer: ``code``, ``reason`` and ``message`` from the ``Status`` body."""

    def __init__(self, method: str, path: str, code: int, body: str) -> None:
        self.code = code
        try:
            status = json.loads(body)
        except ValueError:
            status = {}
        self.reason = str(status.get("reason", "")) if isinstance(status, dict) else ""
        self.message = str(status.get("message", body[:300])) if isinstance(status, dict) else body[:300]
        super().__init__(f"{method} {path}: HTTP {code} {self.reason}: {self.message}")


def _pem(value: str | None, path: str | None, base: Path) -> bytes | None:
    if value:
        return base64.b64decode(value)
    if path:
        p = Path(path)
        return (p if p.is_absolute() else base / p).read_bytes()
    return None


class ApiClient:
    """Requests to one API server with one client certificate."""

    def __init__(self, server: str, ca: bytes, cert: bytes, key: bytes, timeout: float = 30.0) -> None:
        self.server = server.rstrip("/")
        self.timeout = timeout
        self._tmp = tempfile.TemporaryDirectory(prefix="kovc-client-")
        d = Path(self._tmp.name)
        (d / "ca.crt").write_bytes(ca)
        (d / "c.crt").write_bytes(cert)
        (d / "c.key").write_bytes(key)
        self.ctx = ssl.create_default_context(cafile=str(d / "ca.crt"))
        self.ctx.load_cert_chain(str(d / "c.crt"), str(d / "c.key"))

    @classmethod
    def from_kubeconfig(cls, path: Path) -> ApiClient:
        data = yaml.safe_load(path.read_text())
        ctx_name = data["current-context"]
        ctx = next(c["context"] for c in data["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in data["clusters"] if c["name"] == ctx["cluster"])
        user = next(u["user"] for u in data["users"] if u["name"] == ctx["user"])
        base = path.parent
        ca = _pem(cluster.get("certificate-authority-data"), cluster.get("certificate-authority"), base)
        cert = _pem(user.get("client-certificate-data"), user.get("client-certificate"), base)
        key = _pem(user.get("client-key-data"), user.get("client-key"), base)
        if ca is None or cert is None or key is None:
            raise ValueError(f"kubeconfig {path}: needs a CA and a client certificate")
        return cls(cluster["server"], ca, cert, key)

    def request(self, method: str, path: str, body: Any = None, *, content_type: str = "application/json",
                query: dict[str, str] | None = None, timeout: float | None = None) -> Any:
        url = self.server + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Accept", "application/json")
        req.add_header("User-Agent", "kovc-envtest")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=timeout or self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as err:
            raise ApiError(method, path, err.code, err.read().decode(errors="replace")) from None
        return json.loads(raw) if raw else None

    def get(self, path: str) -> Any:
        try:
            return self.request("GET", path)
        except ApiError as err:
            if err.code == 404:
                return None
            raise

    def apply(self, obj: JSON, *, force: bool = True) -> JSON:
        """Server-side apply of one object (create or update)."""
        path = object_path(obj)
        result: JSON = self.request("PATCH", path, obj, content_type="application/apply-patch+yaml",
                                    query={"fieldManager": FIELD_MANAGER, "force": "true" if force else "false"})
        return result

    def create(self, obj: JSON, *, dry_run: bool = False) -> JSON:
        path = object_path(obj, with_name=False)
        result: JSON = self.request("POST", path, obj, query={"dryRun": "All"} if dry_run else None)
        return result

    def delete(self, obj: JSON) -> None:
        try:
            self.request("DELETE", object_path(obj))
        except ApiError as err:
            if err.code != 404:
                raise


#: Cluster-scoped kinds among those the installer writes (everything else is namespaced when it
#: carries a namespace).
_PLURALS = {
    "Namespace": "namespaces", "Node": "nodes", "ServiceAccount": "serviceaccounts", "Service": "services",
    "ClusterRole": "clusterroles", "ClusterRoleBinding": "clusterrolebindings", "Role": "roles",
    "RoleBinding": "rolebindings", "CustomResourceDefinition": "customresourcedefinitions",
    "ValidatingWebhookConfiguration": "validatingwebhookconfigurations",
    "MutatingWebhookConfiguration": "mutatingwebhookconfigurations", "APIService": "apiservices",
    "Pod": "pods", "ConfigMap": "configmaps", "Secret": "secrets", "Deployment": "deployments",
}


def object_path(obj: JSON, *, with_name: bool = True) -> str:
    api_version = str(obj["apiVersion"])
    kind = str(obj["kind"])
    plural = _PLURALS.get(kind) or (kind.lower() + "s")
    meta = obj.get("metadata") or {}
    prefix = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    ns = meta.get("namespace")
    path = prefix + (f"/namespaces/{ns}" if ns else "") + f"/{plural}"
    return path + (f"/{meta['name']}" if with_name else "")
