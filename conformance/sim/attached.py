"""What ``kovc sim attach`` runs (the command itself, with its usage, is ``attach.py``; this module holds the
heavy imports so that ``kovc --help`` does not pay for them).

:func:`start_world` builds the simulated controllers over an :class:`~conformance.sim.transport.http.HttpClient`,
syncs its watch cache, creates the installed objects and starts the controllers; :func:`serve` starts the
admission-webhook and aggregated-API servers for it; :func:`main` is the whole process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import ssl
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from .. import versions
from . import resources as r
from .config import SimConfig
from .controllers import kubevirt, scheduler
from .serving import aggregated, kubelet, webhook
from .store import JSON, ResourceType, Validator
from .transport.http import Connection, HttpClient
from .view import World, watched_kinds

#: Kinds the attached world reads besides what its reconcilers watch (seeding, the webhook view). Not
#: Events: they are only written (an aggregated one is read live to count it up), and a cache of them
#: held every Event for kube-apiserver's 1 h TTL: 17 MiB in 247 000 objects after 300 VMs had come and
#: gone (tracemalloc, ``tools/scale.py --backend envtest``).
EXTRA_KINDS: tuple[ResourceType, ...] = (
    r.NAMESPACES, r.NODES, r.SERVICES, r.DEPLOYMENTS, r.REPLICASETS, r.DAEMONSETS, r.VWC, r.KUBEVIRTS,
    r.IPS, r.SUBNETS, r.VPCS,
)
#: How long attaching waits for the first list of every kind, seconds (``KOVC_ATTACH_SYNC_TIMEOUT``).
SYNC_TIMEOUT = 60.0
READY_LINE = "kovc-attach ready"


class AttachError(Exception):
    """Attaching failed; the message is one line for the user."""


@dataclass
class Attached:
    """A world running over HTTP: its client (and cache) and the task running the controllers."""

    world: World
    client: HttpClient
    task: asyncio.Task[None]
    servers: list[web.AppRunner] = field(default_factory=list)
    #: Kube-OVN's modelled webhook on a server of its own (``--kube-ovn-webhook-port``).
    kube_ovn_model: ServedModel | None = None

    async def stop(self) -> None:
        if self.kube_ovn_model is not None:
            await self.kube_ovn_model.close()
        for runner in self.servers:
            await runner.cleanup()
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.client.close()


class ServedModel:
    """Kube-OVN's modelled webhook served on a port of its own: what an in-place upgrade stops (the port
    closes: the API server's calls fail, ``failurePolicy: Ignore`` admits) and starts again on the new
    release (``sim/upgrade.py``'s :class:`~conformance.sim.upgrade.WebhookHost` steps)."""

    def __init__(self, world: World, port: int, ctx: ssl.SSLContext) -> None:
        self.world, self.port, self.ctx = world, port, ctx
        self.runner: web.AppRunner | None = None
        self.pending: web.AppRunner | None = None

    async def listen(self, validators: Sequence[Validator]) -> int:
        self.runner, self.port = await _listen(webhook.app({webhook.KUBE_OVN_PATH: validators}), self.port, self.ctx)
        return self.port

    async def stop(self) -> str:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        return f"modelled webhook on 127.0.0.1:{self.port} stopped (port closed)"

    async def start(self, release: versions.KubeOvnRelease) -> str:
        from .upgrade import model_admission

        validators, said = model_admission(self.world, release)
        self.pending = web.AppRunner(webhook.app({webhook.KUBE_OVN_PATH: validators}), access_log=None,
                                     shutdown_timeout=1.0)
        await self.pending.setup()
        return said

    async def serve(self) -> str:
        runner, self.pending = self.pending, None
        assert runner is not None, "start() first"
        await web.TCPSite(runner, "127.0.0.1", self.port, ssl_context=self.ctx).start()
        self.runner = runner
        return f"listening on 127.0.0.1:{self.port}"

    async def close(self) -> None:
        for runner in (self.runner, self.pending):
            if runner is not None:
                await runner.cleanup()
        self.runner = self.pending = None


@dataclass
class AttachedWebhook:
    """Where Kube-OVN's webhook runs for ``kovc sim attach`` (a :class:`~conformance.sim.upgrade.WebhookHost`):
    the modelled one it serves itself (``model``) and/or the envtest supervisor's steps (``control``: the
    real binary, the registration)."""

    model: ServedModel | None
    control: str | None
    #: The release being started (``start``) and then served.
    target: str = ""

    async def _control(self, request: dict[str, str]) -> str:
        from ..envtest.webhook_control import acall

        return await acall(str(self.control), request) if self.control else ""

    async def stop(self) -> str:
        said = [await self.model.stop()] if self.model else []
        said.append(await self._control({"op": "stop"}))
        return "; ".join(s for s in said if s)

    async def start(self, release: versions.KubeOvnRelease) -> str:
        self.target = release.version
        said = [await self.model.start(release)] if self.model else []
        said.append(await self._control({"op": "start", "version": release.version}))
        return "; ".join(s for s in said if s)

    async def serve(self) -> str:
        said = [await self.model.serve()] if self.model else []
        said.append(await self._control({"op": "serve", "version": self.target}))
        return "; ".join(s for s in said if s)


def cached_kinds(world: World) -> list[ResourceType]:
    kinds = {rt.key: rt for rt in watched_kinds(world)}
    for rt in EXTRA_KINDS:
        kinds.setdefault(rt.key, rt)
    return list(kinds.values())


async def start_world(conn: Connection, config: SimConfig, *, webhook_configuration: bool = False,
                      sync_timeout: float = SYNC_TIMEOUT, user_agent: str = "kovc-sim") -> Attached:
    """Build the world over HTTP, sync its cache, seed the installed objects, start the controllers."""
    from . import world as world_module

    client = HttpClient.connect(conn, [], user_agent)
    world = world_module.build_world(client, config)
    for rt in cached_kinds(world):
        client.cache.add_kind(rt)
    client.start()
    try:
        async with asyncio.timeout(sync_timeout):
            await client.synced()
    except TimeoutError:
        missing = client.cache.unsynced()
        what = ", ".join(missing) if len(missing) <= 3 else f"{len(missing)} resources ({', '.join(missing[:3])}, …)"
        error = client.cache.last_error
        await client.close()
        raise AttachError(f"the API at {conn.server} did not list {what} within {sync_timeout:g}s"
                          f"{'; last error: ' + error if error else ''}") from None
    try:
        await world_module.seed(world, webhook_configuration=webhook_configuration)
    except Exception:
        await client.close()
        raise
    task = asyncio.create_task(world_module.run_world(world), name="kovc-attach-world")
    resynced = asyncio.create_task(world.resynced.wait())
    await asyncio.wait({resynced, task}, return_when=asyncio.FIRST_COMPLETED)
    if not resynced.done():
        resynced.cancel()
        await client.close()
        why = "cancelled" if task.cancelled() else repr(task.exception())
        raise AttachError(f"the controllers stopped before they started: {why}")
    return Attached(world, client, task)


def _serving_ssl(cert: str | None, key: str | None, requestheader_ca: str | None) -> ssl.SSLContext:
    if cert and key:
        return aggregated.server_ssl(cert, key, requestheader_ca)
    from .cluster import _self_signed

    pair = _self_signed("127.0.0.1")
    if pair is None:
        raise AttachError("no --serving-cert/--serving-key and the cryptography package is missing")
    with tempfile.TemporaryDirectory() as tmp:
        cert_file, key_file = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
        cert_file.write_bytes(pair[0])
        key_file.write_bytes(pair[1])
        return aggregated.server_ssl(str(cert_file), str(key_file), requestheader_ca)


async def _listen(app: web.Application, port: int, ctx: ssl.SSLContext) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, ssl_context=ctx)
    await site.start()
    return runner, int(runner.addresses[0][1])


async def serve(attached: Attached, *, webhook_port: int, aggregated_port: int, cert: str | None,
                key: str | None, requestheader_ca: str | None, kube_ovn_webhook: bool,
                kube_ovn_webhook_port: int | None = None, webhook_control: str | None = None) -> tuple[int, int]:
    """Start the webhook and aggregated servers for ``attached``; returns their ports. Kube-OVN's modelled
    webhook is on ``kube_ovn_webhook_port`` when given (a server of its own), else with virt-api's; the
    world's rollout swaps it there, or through ``webhook_control`` (``envtest/webhook_control.py``)."""
    from . import upgrade
    from . import world as world_module

    world = attached.world
    routes: dict[str, Sequence[Validator]] = {}
    model: ServedModel | None = None
    if kube_ovn_webhook and kube_ovn_webhook_port is not None:
        model = ServedModel(world, kube_ovn_webhook_port, _serving_ssl(cert, key, None))
        await model.listen(world_module.kube_ovn_admission(world))
        attached.kube_ovn_model = model
    elif kube_ovn_webhook:
        # On virt-api's server the modelled webhook cannot stop alone: an in-place upgrade swaps the list
        # the route answers with (empty during the window: every pod allowed, as failurePolicy Ignore would).
        validators = world_module.kube_ovn_admission(world)
        routes[webhook.KUBE_OVN_PATH] = validators
        upgrade.serve_locally(world, validators, list(validators))
    if model is not None or webhook_control:
        upgrade.host_webhook(world, AttachedWebhook(model, webhook_control))
    virt_api = kubevirt.make_validators(world)
    routes[webhook.VM_PATH] = virt_api
    routes[webhook.MIGRATION_PATH] = virt_api
    runner, wport = await _listen(webhook.app(routes), webhook_port, _serving_ssl(cert, key, None))
    attached.servers.append(runner)

    async def action(namespace: str, name: str, verb: str, body: JSON, user: str) -> JSON:
        return await world_module.world_action(world, namespace, name, verb, body, user)

    app = aggregated.app(action, require_front_proxy=bool(requestheader_ca))
    runner, aport = await _listen(app, aggregated_port, _serving_ssl(cert, key, requestheader_ca))
    attached.servers.append(runner)
    return wport, aport


async def main(args: argparse.Namespace, config: SimConfig, conn: Connection) -> int:
    """The attach process once its input is checked: exit code 0 (stopped), 1 (controllers died) or 2."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    parent = os.getppid()

    async def watch_parent() -> None:
        while os.getppid() == parent:
            await asyncio.sleep(1.0)
        stop.set()

    watcher = asyncio.create_task(watch_parent())
    # The kubelet API listens first: the nodes the world creates report its address and port.
    holder: dict[str, World] = {}
    try:
        kubelet_runner, kport = await _listen(kubelet.app(lambda: holder.get("world")), args.kubelet_port,
                                              _serving_ssl(args.serving_cert, args.serving_key, None))
    except (OSError, ssl.SSLError, AttachError) as err:
        watcher.cancel()
        print(f"kovc: cannot serve: {err}", file=sys.stderr)
        return 2
    config.extra.update({scheduler.KUBELET_ADDRESS: "127.0.0.1", scheduler.KUBELET_PORT: kport})
    try:
        attached = await start_world(conn, config,
                                     sync_timeout=float(os.environ.get("KOVC_ATTACH_SYNC_TIMEOUT") or SYNC_TIMEOUT))
    except AttachError as err:
        watcher.cancel()
        await kubelet_runner.cleanup()
        print(f"kovc: {err}", file=sys.stderr)
        return 2
    holder["world"] = attached.world
    attached.servers.append(kubelet_runner)
    try:
        try:
            wport, aport = await serve(attached, webhook_port=args.webhook_port, aggregated_port=args.aggregated_port,
                                       cert=args.serving_cert, key=args.serving_key,
                                       requestheader_ca=args.requestheader_ca, kube_ovn_webhook=not args.no_webhook,
                                       kube_ovn_webhook_port=args.kube_ovn_webhook_port,
                                       webhook_control=args.webhook_control)
        except (OSError, ssl.SSLError, AttachError) as err:
            print(f"kovc: cannot serve: {err}", file=sys.stderr)
            return 2
        model = attached.kube_ovn_model
        kube_ovn = (f"https://127.0.0.1:{model.port}{webhook.KUBE_OVN_PATH}, " if model is not None
                    else "" if args.no_webhook else f"https://127.0.0.1:{wport}{webhook.KUBE_OVN_PATH}, ")
        print(f"kovc-attach: webhook {kube_ovn}"
              f"virt-api https://127.0.0.1:{wport} ({webhook.VM_PATH}, "
              f"{webhook.MIGRATION_PATH}); aggregated https://127.0.0.1:{aport}/apis/{aggregated.GROUP}; "
              f"kubelet https://127.0.0.1:{kport}/containerLogs; controllers of {config.model_name} over "
              f"{conn.server}", file=sys.stderr, flush=True)
        print(READY_LINE, flush=True)
        done = asyncio.create_task(stop.wait())
        await asyncio.wait({done, attached.task}, return_when=asyncio.FIRST_COMPLETED)
        done.cancel()
        if attached.task.done() and not attached.task.cancelled() and attached.task.exception() is not None:
            print(f"kovc: the controllers stopped: {attached.task.exception()!r}", file=sys.stderr)
            return 1
        for line in attached.world.errors:
            print(f"kovc: controller error: {line.splitlines()[0]}", file=sys.stderr)
        return 0
    finally:
        watcher.cancel()
        await attached.stop()


