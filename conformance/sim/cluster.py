"""``SimCluster``: a simulated cluster served on loopback from a background thread.

    with SimCluster(SimConfig()) as sim:
        kubeconfig = sim.write_kubeconfig(tmp / "kubeconfig")
        ...  # any Kubernetes client, kubectl included
        sim.call(lambda store: store.get(PODS, "default", "web"))

The thread owns an asyncio event loop running the aiohttp API server (``server.py``), the garbage
collector and namespace controllers (always) and, when ``conformance.sim.world`` exists, the
KubeVirt/Kube-OVN behaviour (``world.install`` seeds the store before the server starts serving,
``world.run`` runs as a task). The store is not thread-safe: touch it only through :meth:`call`.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import datetime as dt
import http.client
import importlib
import importlib.util
import ipaddress
import json
import logging
import random
import secrets
import ssl
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from types import ModuleType, TracebackType
from typing import IO, Any, TypeVar

import yaml
from aiohttp import web

from .config import SimConfig
from .controllers import gc, namespaces
from .faults import FaultInjector
from .resources import register_all
from .server import ApiServer, World
from .store import AuditEntry, Store

log = logging.getLogger("conformance.sim.cluster")

T = TypeVar("T")

WORLD_MODULE = "conformance.sim.world"
#: How long :meth:`SimCluster.start` waits for the server before giving up, seconds.
START_TIMEOUT = 30.0


def world_available() -> bool:
    """Whether the behaviour module (``conformance.sim.world``) is present."""
    return importlib.util.find_spec(WORLD_MODULE) is not None


class SimClusterError(RuntimeError):
    """The simulated cluster could not start (the message says why)."""


def _self_signed(host: str) -> tuple[bytes, bytes] | None:
    """A self-signed certificate and key (PEM) for ``host``; None without ``cryptography``."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        return None
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")])
    now = dt.datetime.now(dt.UTC)
    alt: list[x509.GeneralName] = [x509.DNSName("localhost")]
    try:
        alt.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        alt.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


class SimCluster:
    """One simulated cluster. ``world``: True requires the behaviour module, False serves the API
    only (plus GC and namespaces), None (default) uses it when it is importable."""

    def __init__(self, config: SimConfig | None = None, *, world: bool | None = None) -> None:
        self.config = config or SimConfig()
        self._want_world = world
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._store: Store | None = None
        self._port = 0
        self._ca_pem: bytes | None = None
        #: The bearer token the API server requires (written into :meth:`write_kubeconfig`); a fresh
        #: random one per cluster, so a kubeconfig of another simulated cluster gets 401.
        self.token = secrets.token_urlsafe(32)
        self.server: ApiServer | None = None
        self.faults: FaultInjector | None = None
        self.world: ModuleType | None = None
        #: Seconds :meth:`start` took until the server answered (measured).
        self.startup_seconds = 0.0
        #: Exceptions that ended a controller task early (a bug in a controller).
        self.controller_errors: list[BaseException] = []

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._thread is not None:
            raise SimClusterError("the simulated cluster is already started")
        began = time.perf_counter()
        self._thread = threading.Thread(target=self._thread_main, name="kovc-sim", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise SimClusterError(f"the simulated cluster did not start within {START_TIMEOUT:.0f}s")
        if self._error is not None:
            self._thread.join(5)
            self._thread = None
            raise SimClusterError(f"the simulated cluster failed to start: {self._error}") from self._error
        self.startup_seconds = time.perf_counter() - began

    def stop(self) -> None:
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None:
            return
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        thread.join(15)
        self._thread = None

    def __enter__(self) -> SimCluster:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------ access
    @property
    def port(self) -> int:
        if not self._port:
            raise SimClusterError("the simulated cluster is not started")
        return self._port

    @property
    def scheme(self) -> str:
        return "https" if self._ca_pem is not None else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.config.host}:{self.port}"

    @property
    def store(self) -> Store:
        """The store. Not thread-safe: from another thread use :meth:`call`."""
        if self._store is None:
            raise SimClusterError("the simulated cluster is not started")
        return self._store

    def call(self, fn: Callable[[Store], T]) -> T:
        """Run ``fn(store)`` on the cluster's event loop and return its result (or raise its error)."""
        store, loop = self.store, self._loop
        assert loop is not None
        if self._thread is not None and threading.get_ident() == self._thread.ident:
            return fn(store)
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn(store))
            except BaseException as err:
                future.set_exception(err)

        loop.call_soon_threadsafe(run)
        return future.result(START_TIMEOUT)

    def call_async(self, fn: Callable[[Store], Awaitable[T]], timeout: float | None = None) -> T:
        """Run the coroutine ``fn(store)`` on the cluster's loop and wait for its result."""
        store, loop = self.store, self._loop
        assert loop is not None

        async def run() -> T:
            return await fn(store)

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout)

    def audit(self) -> list[dict[str, Any]]:
        """The audit log so far, as JSON dicts (time, verb, resource, namespace, name, userAgent, path,
        code, dryRun)."""
        return self.call(lambda s: [e.as_json() for e in s.audit])

    @property
    def ca_pem(self) -> bytes | None:
        """The PEM of the self-signed certificate the cluster serves (None when it serves plain http)."""
        return self._ca_pem

    def client_ssl_context(self) -> ssl.SSLContext | None:
        """An SSL context trusting this cluster's self-signed CA (None when it serves plain http), for
        ``urllib.request.urlopen(…, context=…)`` and ``http.client.HTTPSConnection``."""
        if self._ca_pem is None:
            return None
        return ssl.create_default_context(cadata=self._ca_pem.decode())

    def http_connection(self, timeout: float) -> http.client.HTTPConnection:
        """A raw connection to the API server (TLS when it serves https)."""
        context = self.client_ssl_context()
        if context is not None:
            return http.client.HTTPSConnection(self.config.host, self.port, timeout=timeout, context=context)
        return http.client.HTTPConnection(self.config.host, self.port, timeout=timeout)

    @property
    def auth_headers(self) -> dict[str, str]:
        """``Authorization: Bearer <token>``, for HTTP clients that do not read a kubeconfig."""
        return {"Authorization": f"Bearer {self.token}"}

    def write_kubeconfig(self, path: Path, context: str = "kovc-sim") -> Path:
        """Write a kubeconfig for this cluster (cluster, user with the cluster's bearer token, current
        context); private to its owner (mode 0600), as the token is a credential."""
        cluster: dict[str, Any] = {"server": self.url}
        if self._ca_pem is not None:
            cluster["certificate-authority-data"] = base64.b64encode(self._ca_pem).decode()
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": cluster}],
            "users": [{"name": context, "user": {"token": self.token}}],
            "contexts": [{"name": context,
                          "context": {"cluster": context, "user": context, "namespace": "default"}}],
            "current-context": context,
            "preferences": {},
        }
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    # ------------------------------------------------------------------ the loop thread
    def _load_world(self) -> ModuleType | None:
        if self._want_world is False:
            return None
        if not world_available():
            if self._want_world:
                raise SimClusterError(f"{WORLD_MODULE} is not available")
            return None
        return importlib.import_module(WORLD_MODULE)

    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        except BaseException as err:
            if not self._ready.is_set():
                self._error = err
            else:
                log.exception("simulated cluster stopped with an error")
        finally:
            self._ready.set()
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.config.https:
            return None
        pair = _self_signed(self.config.host)
        if pair is None:
            log.warning("https requested but the cryptography package is not installed: serving plain http")
            return None
        cert, key = pair
        with tempfile.TemporaryDirectory() as tmp:
            cert_file, key_file = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
            cert_file.write_bytes(cert)
            key_file.write_bytes(key)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert_file, key_file)
        self._ca_pem = cert
        return ctx

    async def _serve(self) -> None:
        config = self.config
        store = Store(rng=random.Random(config.seed) if config.seed is not None else random.Random(),
                      event_ttl=config.event_ttl)
        register_all(store, multus=config.multus)
        world = self._load_world()
        self.world = world
        if world is not None:
            world.install(store, config)
        audit_file: IO[str] | None = None
        if config.audit_log:
            audit_file = Path(config.audit_log).open("a", encoding="utf-8")  # noqa: SIM115 (closed below)

            def sink(entry: AuditEntry, out: IO[str] = audit_file) -> None:
                out.write(json.dumps(entry.as_json()) + "\n")
                out.flush()

            store.audit_sinks.append(sink)
        self.faults = FaultInjector(config.faults, config.seed, config.fault_retry_after) if config.faults > 0 else None
        server = ApiServer(store, config, world=_as_world(world) if world is not None else None,
                           faults=self.faults, token=self.token)
        self.server = server
        record_file: IO[str] | None = None
        if config.record_requests:
            record_file = Path(config.record_requests).open("a", encoding="utf-8")  # noqa: SIM115 (closed below)

            def record(entry: dict[str, Any], out: IO[str] = record_file) -> None:
                out.write(json.dumps(entry) + "\n")
                out.flush()

            server.recorder = record
        runner = web.AppRunner(server.app(), access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
        await runner.setup()
        tasks: list[asyncio.Task[None]] = []
        try:
            site = web.TCPSite(runner, config.host, config.port, ssl_context=self._ssl_context())
            await site.start()
            self._port = int(runner.addresses[0][1])
            self._store = store
            self._stop = asyncio.Event()
            controllers: list[tuple[str, Callable[[Store, SimConfig], Coroutine[Any, Any, None]]]] = [
                ("gc", gc.run), ("namespaces", namespaces.run)]
            if world is not None:
                controllers.append(("world", world.run))
            for name, run in controllers:
                task = asyncio.create_task(run(store, config), name=f"kovc-sim-{name}")
                task.add_done_callback(self._controller_done)
                tasks.append(task)
            self._ready.set()
            await self._stop.wait()
        finally:
            server.close_watches()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await runner.cleanup()
            if audit_file is not None:
                audit_file.close()
            if record_file is not None:
                record_file.close()

    def _controller_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        err = task.exception()
        if err is not None:
            self.controller_errors.append(err)
            log.error("controller %s crashed: %r", task.get_name(), err, exc_info=err)


def _as_world(module: ModuleType) -> World:
    return module  # type: ignore[return-value]
