"""``kovc sim attach``: the simulated controllers as API clients of any kube-apiserver.

    kovc sim attach --kubeconfig K [--kube-ovn-version V] [--sim-webhook-policy P]
                    [--serving-cert C --serving-key K] [--requestheader-ca CA]
                    [--webhook-port P] [--aggregated-port P] [--kubelet-port P] [--no-webhook]

Runs the KubeVirt, Kube-OVN, scheduler and kubelet models over :class:`~conformance.sim.transport.http.HttpClient`
(a watch cache of every kind they read; writes as each component's user agent), and SERVES - without
registering anything:

* the modelled admission webhooks at ``https://127.0.0.1:<webhook-port>`` (``serving/webhook.py`` paths:
  ``/validating`` for Kube-OVN's pod webhook, ``/virtualmachines-validate`` and ``/migration-validate-create``
  for virt-api's) - unless ``--no-webhook`` (Kube-OVN's real webhook binary is registered instead; the
  virt-api checks are served either way);
* KubeVirt's aggregated API ``subresources.kubevirt.io`` at ``https://127.0.0.1:<aggregated-port>``
  (``serving/aggregated.py``), front-proxy authenticated with ``--requestheader-ca``;
* the kubelets' ``/containerLogs`` at ``https://127.0.0.1:<kubelet-port>`` (``serving/kubelet.py``): the nodes it
  creates report that address (InternalIP only) and port, so kube-apiserver's ``pods/log`` reaches it.

It creates the installed objects a kind + Kube-OVN + KubeVirt cluster has (nodes ``kovc-sim-*`` labelled
``kovc.io/simulated=true``, the install namespaces, Subnets/Vpc, Deployments, component pods, the KubeVirt
CR; create-or-skip) but no webhook configuration or Service for it: registration belongs to the backend.
Garbage collection and namespace deletion are left to the cluster (kube-controller-manager on envtest).

Prints exactly ``kovc-attach ready`` on stdout once the caches are synced and the servers listen (ports and
URLs go to stderr). SIGTERM/SIGINT stop it cleanly; it also stops when its parent process dies. Bad input
(broken kubeconfig, unknown version or policy, unreadable certificates, an API that never answers) is one
line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
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

#: Kinds the attached world reads besides what its reconcilers watch (seeding, Events, the webhook view).
EXTRA_KINDS: tuple[ResourceType, ...] = (
    r.NAMESPACES, r.NODES, r.EVENTS, r.SERVICES, r.DEPLOYMENTS, r.VWC, r.KUBEVIRTS, r.IPS, r.SUBNETS, r.VPCS,
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

    async def stop(self) -> None:
        for runner in self.servers:
            await runner.cleanup()
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.client.close()


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
                key: str | None, requestheader_ca: str | None, kube_ovn_webhook: bool) -> tuple[int, int]:
    """Start the webhook and aggregated servers for ``attached``; returns their ports."""
    from . import world as world_module

    world = attached.world
    routes: dict[str, Sequence[Validator]] = {}
    if kube_ovn_webhook:
        routes[webhook.KUBE_OVN_PATH] = world_module.kube_ovn_admission(world)
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


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent dies (``PR_SET_PDEATHSIG``)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1


async def _main(args: argparse.Namespace, config: SimConfig, conn: Connection) -> int:
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
                                       requestheader_ca=args.requestheader_ca, kube_ovn_webhook=not args.no_webhook)
        except (OSError, ssl.SSLError, AttachError) as err:
            print(f"kovc: cannot serve: {err}", file=sys.stderr)
            return 2
        print(f"kovc-attach: webhook https://127.0.0.1:{wport}"
              f"{'' if args.no_webhook else webhook.KUBE_OVN_PATH} (virt-api {webhook.VM_PATH}, "
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .serve import add_sim_options

    parser.add_argument("--kubeconfig", required=True, metavar="PATH", help="the kube-apiserver to attach to")
    parser.add_argument("--context", default=None, metavar="NAME", help="kubeconfig context (default: current)")
    parser.add_argument("--kube-ovn-version", metavar="V", default=versions.KUBE_OVN_VERSION,
                        help=f"the modelled Kube-OVN release (default: {versions.KUBE_OVN_VERSION})")
    parser.add_argument("--kubevirt-version", metavar="V", default=None,
                        help=f"the modelled KubeVirt release (default: {versions.KUBEVIRT_VERSION})")
    add_sim_options(parser)
    parser.add_argument("--serving-cert", metavar="FILE", default=None,
                        help="TLS certificate of the webhook and aggregated servers (default: self-signed)")
    parser.add_argument("--serving-key", metavar="FILE", default=None, help="its private key")
    parser.add_argument("--requestheader-ca", metavar="FILE", default=None,
                        help="CA of kube-apiserver's front-proxy client certificate (aggregated API auth)")
    parser.add_argument("--webhook-port", type=int, default=0, metavar="P", help="webhook port (default: free)")
    parser.add_argument("--aggregated-port", type=int, default=0, metavar="P",
                        help="aggregated API port (default: free)")
    parser.add_argument("--kubelet-port", type=int, default=0, metavar="P",
                        help="port of the simulated kubelets' API (pods/log; default: free)")
    parser.add_argument("--no-webhook", action="store_true",
                        help="do not serve Kube-OVN's modelled webhook (the real one is registered)")


def run(args: argparse.Namespace) -> int:
    from .serve import sim_config_from_args

    _die_with_parent()
    try:
        config = sim_config_from_args(args)
    except ValueError as err:
        print(f"kovc: {err}", file=sys.stderr)
        return 2
    if bool(args.serving_cert) != bool(args.serving_key):
        print("kovc: --serving-cert and --serving-key go together", file=sys.stderr)
        return 2
    for flag in ("serving_cert", "serving_key", "requestheader_ca"):
        value = getattr(args, flag)
        if value and not os.access(value, os.R_OK):
            print(f"kovc: --{flag.replace('_', '-')} {value}: not a readable file", file=sys.stderr)
            return 2
    for flag in ("webhook_port", "aggregated_port", "kubelet_port"):
        if not 0 <= int(getattr(args, flag)) <= 65535:
            print(f"kovc: invalid --{flag.replace('_', '-')} {getattr(args, flag)}: expected 0-65535",
                  file=sys.stderr)
            return 2
    try:
        conn = Connection.from_kubeconfig(args.kubeconfig, args.context)
    except (ValueError, OSError, ssl.SSLError) as err:
        print(f"kovc: {err}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_main(args, config, conn))
    except KeyboardInterrupt:
        return 0
