"""Run one behaviour test over each transport of the simulated controllers (``conformance.sim.api.Client``):

* ``local`` - the controllers on the in-process store (``world.running``; what ``--backend sim`` runs);
* ``http-sim`` - the same controllers as HTTP clients (``HttpClient`` + ``WatchCache``) of kovc's own API-only
  server (``SimCluster(world=False)``), with the admission checks run server-side on the store;
* ``envtest`` - against a real kube-apiserver; skipped with the reason while that control plane is not
  available here (see :func:`envtest_unavailable`).

The test body gets a :class:`Harness`: ``client`` (acting as the test, ``kovc/test``), the controllers' ``world``
and, where there is one, the ``store`` (for audit assertions).
"""

from __future__ import annotations

import asyncio
import glob
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from conformance.sim import api, world
from conformance.sim import resources as r
from conformance.sim.attach import start_world
from conformance.sim.cluster import SimCluster
from conformance.sim.config import SimConfig
from conformance.sim.store import Store
from conformance.sim.transport.http import Connection
from conformance.sim.transport.local import StoreClient
from conformance.sim.view import World, until, world_of

JSON = dict[str, Any]
UA = "kovc/test"
TRANSPORTS = ("local", "http-sim", "envtest")


@dataclass
class Harness:
    transport: str
    client: api.Client
    world: World
    store: Store | None

    async def action(self, namespace: str, name: str, verb: str, body: JSON | None = None) -> JSON:
        """virt-api's ``PUT …/virtualmachines/{name}/{verb}`` (the code both sim servers serve)."""
        return await world.world_action(self.world, namespace, name, verb, body or {}, UA)

    async def namespace(self, name: str) -> str:
        await self.client.create(r.NAMESPACES, {"metadata": {"name": name}})
        await until(self.client, lambda c: c.get(r.NAMESPACES, "", name), f"namespace {name} cached")
        return name


def envtest_unavailable() -> str | None:
    """Why the ``envtest`` transport cannot run here, or None."""
    root = os.environ.get("KOVC_ASSETS") or os.path.expanduser("~/.cache/kovc/assets")
    if not glob.glob(os.path.join(root, "k8s", "*", "kube-apiserver")):
        return f"no kube-apiserver built under {root}/k8s/*/ (kovc assets build)"
    try:
        import conformance.envtest  # noqa: F401
    except ImportError:
        return "conformance.envtest (the real control plane) is not on this branch"
    return "the envtest transport is wired by the envtest backend (issue 11, other half)"


def run(transport: str, body: Callable[[Harness], Awaitable[None]], **config: Any) -> None:
    """Run ``body`` against a fresh world on ``transport``; fail on any controller error."""
    cfg = SimConfig(**config)
    if transport == "local":

        async def main_local() -> None:
            async with world.running(cfg) as store:
                w = world_of(store)
                await body(Harness("local", StoreClient(store, UA), w, store))
                assert not w.errors, "\n".join(w.errors)

        asyncio.run(main_local())
    elif transport == "http-sim":
        with SimCluster(cfg, world=False) as cluster:
            conn = Connection.from_pem(cluster.url)

            async def main_http(store: Store) -> None:
                attached = await start_world(conn, cfg, webhook_configuration=True, sync_timeout=30)
                store.validators.extend(world.admission(attached.world))
                try:
                    await body(Harness("http-sim", attached.client.as_agent(UA), attached.world, store))
                    assert not attached.world.errors, "\n".join(attached.world.errors)
                finally:
                    await attached.stop()

            cluster.call_async(main_http, timeout=120)
    else:
        pytest.skip(envtest_unavailable() or "envtest transport unavailable")
