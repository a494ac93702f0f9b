"""Run one behaviour test over each transport of the simulated controllers (``conformance.sim.api.Client``):

* ``local`` - the controllers on the in-process store (``world.running``; what ``--backend sim`` runs);
* ``http-sim`` - the same controllers as HTTP clients (``HttpClient`` + ``WatchCache``) of kovc's own API-only
  server (``SimCluster(world=False)``), with the admission checks run server-side on the store;
* ``envtest`` - against a real kube-apiserver where ``kovc sim attach`` runs the same controllers and serves the
  webhooks and the aggregated API (``kovc envtest serve``): set ``KOVC_ENVTEST_KUBECONFIG`` to its admin
  kubeconfig; skipped with the reason otherwise (see :func:`envtest_unavailable`). The controllers then run in
  the attach process, so the test has no ``world`` and virt-api actions go through the aggregated API.

The test body gets a :class:`Harness`: ``client`` (acting as the test, ``kovc/test``), the controllers' ``world``
(None on envtest) and, where there is one, the ``store`` (for audit assertions).
"""

from __future__ import annotations

import asyncio
import glob
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from conformance.sim import api, world
from conformance.sim import resources as r
from conformance.sim.attached import start_world
from conformance.sim.cluster import SimCluster
from conformance.sim.config import SimConfig
from conformance.sim.store import Store
from conformance.sim.transport.http import Connection, HttpClient
from conformance.sim.transport.local import StoreClient
from conformance.sim.view import World, until, world_of

JSON = dict[str, Any]
UA = "kovc/test"
#: What the test's own client caches on envtest.
TEST_KINDS = (r.NAMESPACES, r.PODS, r.VMS, r.VMIS, r.VMIMS, r.IPS, r.SUBNETS)
TRANSPORTS = ("local", "http-sim", "envtest")


ENVTEST_KUBECONFIG = "KOVC_ENVTEST_KUBECONFIG"


@dataclass
class Harness:
    transport: str
    client: api.Client
    world: World | None
    store: Store | None
    namespaces: list[str] = field(default_factory=list)

    async def action(self, namespace: str, name: str, verb: str, body: JSON | None = None) -> JSON:
        """virt-api's ``PUT …/virtualmachines/{name}/{verb}``: the code both sim servers serve, or - on envtest -
        the aggregated API through kube-apiserver."""
        if self.world is not None:
            return await world.world_action(self.world, namespace, name, verb, body or {}, UA)
        assert isinstance(self.client, HttpClient)
        path = f"/apis/{r.SUBRESOURCE_GROUP}/v1/namespaces/{namespace}/virtualmachines/{name}/{verb}"
        result = await self.client.sessions.request(UA, "PUT", path, body=body or {})
        return result if isinstance(result, dict) else {}

    async def namespace(self, name: str) -> str:
        """Create a namespace (on a shared envtest cluster, with a unique suffix; deleted afterwards)."""
        if self.transport == "envtest":
            name = f"{name}-{uuid.uuid4().hex[:5]}"
        await self.client.create(r.NAMESPACES, {"metadata": {"name": name}})
        self.namespaces.append(name)
        await until(self.client, lambda c: c.get(r.NAMESPACES, "", name), f"namespace {name} cached")
        return name

    @property
    def errors(self) -> list[str]:
        return list(self.world.errors) if self.world is not None else []


def envtest_unavailable() -> str | None:
    """Why the ``envtest`` transport cannot run here, or None."""
    kubeconfig = os.environ.get(ENVTEST_KUBECONFIG)
    if kubeconfig and os.path.isfile(kubeconfig):
        return None
    root = os.environ.get("KOVC_ASSETS") or os.path.expanduser("~/.cache/kovc/assets")
    built = bool(glob.glob(os.path.join(root, "k8s", "*", "kube-apiserver")))
    return (f"{ENVTEST_KUBECONFIG} is not set to the admin kubeconfig of a running `kovc envtest serve` "
            f"(real kube-apiserver + kovc sim attach); kube-apiserver {'is' if built else 'is not'} built under "
            f"{root}/k8s/")


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
        reason = envtest_unavailable()
        if reason:
            pytest.skip(reason)

        async def main_envtest() -> None:
            conn = Connection.from_kubeconfig(os.environ[ENVTEST_KUBECONFIG])
            client = HttpClient.connect(conn, TEST_KINDS, UA)
            client.start()
            harness = Harness("envtest", client, None, None)
            try:
                async with asyncio.timeout(30):
                    await client.synced()
                await body(harness)
            finally:
                for ns in harness.namespaces:  # the cluster's namespace controller cleans up
                    await api.delete_quietly(client, r.NAMESPACES, "", ns)
                await client.close()

        asyncio.run(main_envtest())
