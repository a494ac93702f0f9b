"""``HttpClient``: the :class:`~conformance.sim.api.Client` over HTTP to any kube-apiserver.

Reads come from a shared :class:`~conformance.sim.transport.cache.WatchCache` (sync, from memory, as
controller-runtime's cache reader); writes are aiohttp requests, one ``ClientSession`` per agent (its
``User-Agent`` is the component's). A ``Status`` body is mapped onto :class:`~conformance.sim.store.ApiError`
(kopf ``errors.py``), so the controllers handle errors the same way over both transports. 429 and 5xx are
retried a few times with backoff, honouring ``Retry-After``; so is a dropped connection.

Never call a synchronous client on the loop: a controller's pod POST makes the apiserver call the webhook,
and ``kovc sim attach`` serves that webhook on the same loop.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import ssl
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from ..api import BINDING, Client, Propagation, Subscription
from ..store import JSON, ApiError, IndexFn, ResourceType
from .cache import WatchCache
from .rest import resource_path, status_error

#: Attempts of a request answered 429/5xx or dropped.
ATTEMPTS = 4
#: First backoff between attempts, seconds (doubling; ``Retry-After`` wins when the server sends one).
BACKOFF = 0.1
#: Per-request timeout of non-watch requests, seconds.
REQUEST_TIMEOUT = 30.0
_RETRYABLE = frozenset({429, 500, 502, 503, 504})


@dataclass
class Connection:
    """Where the apiserver is and how to authenticate (from a kubeconfig)."""

    server: str
    ssl_context: ssl.SSLContext | bool = True
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_kubeconfig(cls, kubeconfig: str, context: str | None = None) -> Connection:
        """Read ``kubeconfig`` with the kubernetes client's own loader (every auth form it knows: client
        certificates, tokens, exec plugins). ``ValueError`` (one line) when it is unusable."""
        from kubernetes import client as k8s_client
        from kubernetes import config as k8s_config

        cfg = k8s_client.Configuration()
        try:
            k8s_config.load_kube_config(config_file=kubeconfig, context=context,  # type: ignore[no-untyped-call]
                                        client_configuration=cfg, persist_config=False)
        except Exception as err:  # the loader raises many types (ConfigException, OSError, YAML errors)
            raise ValueError(f"kubeconfig {kubeconfig} is unusable: {str(err).splitlines()[0] if str(err) else err!r}"
                             ) from None
        headers: dict[str, str] = {}
        token = (cfg.api_key or {}).get("authorization") or (cfg.api_key or {}).get("BearerToken")
        if token:
            prefix = (cfg.api_key_prefix or {}).get("authorization", "")
            headers["Authorization"] = f"{prefix} {token}".strip() if prefix else token
        if str(cfg.host).startswith("http://"):
            return cls(str(cfg.host), False, headers)
        ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert) if cfg.ssl_ca_cert else ssl.create_default_context()
        if not cfg.verify_ssl:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if cfg.cert_file and cfg.key_file:
            ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
        return cls(str(cfg.host).rstrip("/"), ctx, headers)

    @classmethod
    def from_pem(cls, server: str, *, ca_pem: bytes | None = None, token: str | None = None) -> Connection:
        """A connection from in-memory material (tests)."""
        ctx: ssl.SSLContext | bool = False
        if server.startswith("https://"):
            ctx = ssl.create_default_context(cadata=ca_pem.decode() if ca_pem is not None else None)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return cls(server.rstrip("/"), ctx, headers)


class Sessions:
    """One aiohttp session per user agent, shared by every :class:`HttpClient` of one connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._by_agent: dict[str, aiohttp.ClientSession] = {}

    def session(self, user_agent: str) -> aiohttp.ClientSession:
        session = self._by_agent.get(user_agent)
        if session is None or session.closed:
            session = aiohttp.ClientSession(
                base_url=self.conn.server,
                headers={**self.conn.headers, "User-Agent": user_agent, "Accept": "application/json"},
                # No connection limit: the watch cache holds one long-lived watch per kind on its
                # agent's session (18 kinds and growing), and a limit below that starves the last ones.
                connector=aiohttp.TCPConnector(ssl=self.conn.ssl_context, limit=0),
            )
            self._by_agent[user_agent] = session
        return session

    async def request(self, user_agent: str, method: str, path: str, *, params: dict[str, str] | None = None,
                      body: Any = None, timeout: float = REQUEST_TIMEOUT) -> Any:
        """One request with retries; the decoded JSON body, or :class:`ApiError`."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else None
        delay = BACKOFF
        for attempt in range(ATTEMPTS):
            try:
                async with self.session(user_agent).request(
                        method, path, params=params, data=data, headers=headers,
                        timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                    text = await resp.text()
                    if 200 <= resp.status < 300:
                        return json.loads(text) if text else {}
                    err = status_error(resp.status, text, resp.headers)
            except (aiohttp.ClientConnectionError, TimeoutError) as exc:
                err = ApiError(503, "ServiceUnavailable", f"{method} {path}: {exc or type(exc).__name__}")
            if err.code not in _RETRYABLE or attempt == ATTEMPTS - 1:
                raise err
            await asyncio.sleep(min(err.retry_after, 5.0) if err.retry_after else delay)
            delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    async def close(self) -> None:
        for session in list(self._by_agent.values()):
            await session.close()
        self._by_agent.clear()


class HttpClient:
    """One component's client: reads from ``cache``, writes through its own session."""

    def __init__(self, sessions: Sessions, cache: WatchCache, user_agent: str = "kovc-sim") -> None:
        self.sessions = sessions
        self.cache = cache
        self._user_agent = user_agent

    @classmethod
    def connect(cls, conn: Connection, kinds: Iterable[ResourceType], user_agent: str = "kovc-sim") -> HttpClient:
        """A client with a fresh cache of ``kinds`` (call :meth:`start`, then ``await synced()``)."""
        sessions = Sessions(conn)
        return cls(sessions, WatchCache(sessions, kinds), user_agent)

    def start(self) -> None:
        self.cache.start()

    async def close(self) -> None:
        await self.cache.close()
        await self.sessions.close()

    @property
    def user_agent(self) -> str:
        return self._user_agent

    # Reader -----------------------------------------------------------------------------------------
    def get(self, rt: ResourceType, namespace: str, name: str) -> JSON | None:
        return self.cache.get(rt, namespace, name)

    def list(self, rt: ResourceType, namespace: str | None = None, *, label_selector: str = "") -> list[JSON]:
        return self.cache.list(rt, namespace, label_selector=label_selector)

    def iter_raw(self, rt: ResourceType) -> Iterable[JSON]:
        return self.cache.iter_raw(rt)

    # Indexed in the watch cache (the store's own ObjectIndex): per change, not per world, as in-process.
    def by_owner(self, rt: ResourceType, owner_uid: str) -> builtins.list[JSON]:
        return self.cache.by_owner(rt, owner_uid)

    def by_field(self, rt: ResourceType, path: str, value: str) -> builtins.list[JSON]:
        return self.cache.by_field(rt, path, value)

    def by_index(self, rt: ResourceType, name: str, fn: IndexFn, value: str) -> builtins.list[JSON]:
        self.cache.add_index(rt, name, fn)
        return self.cache.by_index(rt, name, value)

    def count_index(self, rt: ResourceType, name: str, fn: IndexFn, value: str) -> int:
        self.cache.add_index(rt, name, fn)
        return self.cache.count_index(rt, name, value)

    # Writer -----------------------------------------------------------------------------------------
    async def _call(self, method: str, path: str, *, params: dict[str, str] | None = None,
                    body: Any = None) -> JSON:
        result = await self.sessions.request(self._user_agent, method, path, params=params, body=body)
        return result if isinstance(result, dict) else {}

    async def create(self, rt: ResourceType, obj: JSON, *, namespace: str = "", subresource: str = "",
                     dry_run: bool = False) -> JSON:
        meta = obj.get("metadata") or {}
        ns = str(meta.get("namespace") or namespace) if rt.namespaced else ""
        params = {"dryRun": "All"} if dry_run else None
        if subresource:
            if subresource != BINDING:
                raise ApiError(405, "MethodNotAllowed", f"create is not supported on {rt.plural}/{subresource}")
            path = resource_path(rt, ns, str(meta.get("name", "")), subresource)
        else:
            path = resource_path(rt, ns)
        return await self._call("POST", path, params=params, body=obj)

    async def update(self, rt: ResourceType, obj: JSON, *, subresource: str = "") -> JSON:
        meta = obj.get("metadata") or {}
        path = resource_path(rt, str(meta.get("namespace", "")) if rt.namespaced else "", str(meta.get("name", "")),
                             subresource)
        return await self._call("PUT", path, body=obj)

    async def delete(self, rt: ResourceType, namespace: str, name: str, *, uid: str | None = None,
                     grace_seconds: int | None = None, propagation: Propagation = "Background") -> JSON:
        options: JSON = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        if uid:
            options["preconditions"] = {"uid": uid}
        if grace_seconds is not None:
            options["gracePeriodSeconds"] = grace_seconds
        return await self._call("DELETE", resource_path(rt, namespace, name), body=options)

    async def get_live(self, rt: ResourceType, namespace: str, name: str) -> JSON | None:
        try:
            return await self._call("GET", resource_path(rt, namespace, name))
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise

    # Client -----------------------------------------------------------------------------------------
    def kinds(self) -> Sequence[ResourceType]:
        return self.cache.kinds

    def as_agent(self, user_agent: str) -> Client:
        return HttpClient(self.sessions, self.cache, user_agent)

    def subscribe(self, kinds: Collection[ResourceType] | None = None) -> Subscription:
        return self.cache.subscribe(kinds)

    async def synced(self) -> None:
        await self.cache.synced()

