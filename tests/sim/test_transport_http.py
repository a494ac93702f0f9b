"""The HTTP transport against kovc's own API server: ``HttpClient`` maps ``Status`` bodies onto ``ApiError``,
``mutate`` re-reads and retries on 409, ``WatchCache`` resumes, follows bookmarks and - after a 410 - relists
and reports what vanished meanwhile as DELETED; and the local store refuses what kube-apiserver refuses."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from conformance.sim import api
from conformance.sim import resources as r
from conformance.sim.cluster import SimCluster
from conformance.sim.config import SimConfig
from conformance.sim.store import ApiError, Store, WatchEvent, bind_pod
from conformance.sim.transport.http import Connection, HttpClient
from conformance.sim.transport.local import StoreClient
from conformance.sim.view import until

JSON = dict[str, Any]
UA = "kovc/test"


def _pod(name: str, ns: str = "t") -> JSON:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def _over_http(body: Callable[[Store, HttpClient], Awaitable[None]], *kinds: Any) -> None:
    """``body(store, client)`` on the server's loop, with a synced client of ``kinds`` (pods by default)."""
    with SimCluster(SimConfig(), world=False) as cluster:
        conn = Connection.from_pem(cluster.url)

        async def main(store: Store) -> None:
            store.create(r.NAMESPACES, {"metadata": {"name": "t"}}, user_agent=UA)
            client = HttpClient.connect(conn, kinds or (r.PODS,), UA)
            client.start()
            try:
                async with asyncio.timeout(10):
                    await client.synced()
                await body(store, client)
            finally:
                await client.close()

        cluster.call_async(main, timeout=60)


def test_status_bodies_become_api_errors() -> None:
    async def body(store: Store, client: HttpClient) -> None:
        created = await client.create(r.PODS, _pod("a"))
        with pytest.raises(ApiError) as exists:
            await client.create(r.PODS, _pod("a"))
        assert (exists.value.code, exists.value.reason) == (409, "AlreadyExists"), exists.value.status()
        stale = dict(created, metadata={**created["metadata"], "labels": {"x": "1"}})
        store.update(r.PODS, {**store.require(r.PODS, "t", "a"), "metadata": {
            **store.require(r.PODS, "t", "a")["metadata"], "labels": {"y": "2"}}}, user_agent=UA)
        with pytest.raises(ApiError) as conflict:
            await client.update(r.PODS, stale)
        assert (conflict.value.code, conflict.value.reason) == (409, "Conflict"), conflict.value.status()
        with pytest.raises(ApiError) as missing:
            await client.delete(r.PODS, "t", "nope")
        assert missing.value.code == 404 and missing.value.reason == "NotFound"
        assert await client.get_live(r.PODS, "t", "nope") is None
        with pytest.raises(ApiError) as wrong_uid:
            await client.delete(r.PODS, "t", "a", uid="not-the-uid")
        assert wrong_uid.value.code == 409 and "Precondition failed" in wrong_uid.value.message

    _over_http(body)


def test_mutate_rereads_and_retries_on_conflict() -> None:
    async def body(store: Store, client: HttpClient) -> None:
        await client.create(r.PODS, _pod("a"))
        await until(client, lambda c: c.get(r.PODS, "t", "a"), "pod a cached")
        calls = 0

        def edit(obj: JSON) -> None:
            nonlocal calls
            calls += 1
            if calls == 1:  # another writer gets in between our read and our write
                live = store.require(r.PODS, "t", "a")
                live["metadata"].setdefault("labels", {})["other"] = "writer"
                store.update(r.PODS, live, user_agent="someone-else")
            obj["metadata"].setdefault("labels", {})["mine"] = "yes"

        result = await api.mutate(client, r.PODS, "t", "a", edit)
        assert calls == 2, "the 409 must make mutate read live and edit again"
        assert result is not None and result["metadata"]["labels"] == {"other": "writer", "mine": "yes"}
        assert await api.mutate(client, r.PODS, "t", "gone", edit) is None
        await client.cache.stop()  # an object the cache has not seen yet is read live, not taken for gone
        store.create(r.PODS, _pod("fresh"), user_agent=UA)
        assert client.get(r.PODS, "t", "fresh") is None
        fresh = await api.mutate(client, r.PODS, "t", "fresh", edit)
        assert fresh is not None and fresh["metadata"]["labels"]["mine"] == "yes"

    _over_http(body)


def test_binding_sets_the_node_once() -> None:
    async def body(store: Store, client: HttpClient) -> None:
        await client.create(r.PODS, _pod("a"))
        binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "a", "namespace": "t"},
                   "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"}}
        await client.create(r.PODS, binding, subresource=api.BINDING)
        pod = store.require(r.PODS, "t", "a")
        assert pod["spec"]["nodeName"] == "n1"
        assert [c["status"] for c in pod["status"]["conditions"] if c["type"] == "PodScheduled"] == ["True"]
        with pytest.raises(ApiError) as again:
            await client.create(r.PODS, binding, subresource=api.BINDING)
        assert again.value.code == 409 and "already assigned" in again.value.message

    _over_http(body)


def test_watch_cache_relists_after_410_and_reports_what_vanished() -> None:
    async def body(store: Store, client: HttpClient) -> None:
        for name in ("a", "b"):
            await client.create(r.PODS, _pod(name))
        await until(client, lambda c: len(c.list(r.PODS, "t")) == 2, "both pods cached")
        sub = client.subscribe([r.PODS])
        await client.cache.stop()  # a long disconnection ...
        store.delete(r.PODS, "t", "a", user_agent=UA)
        store.history_size = 3
        for i in range(10):  # ... long enough for the server's history to move past our resourceVersion
            store.create(r.CONFIGMAPS, {"metadata": {"name": f"cm{i}", "namespace": "t"}}, user_agent=UA)
        client.start()
        seen: list[WatchEvent] = []
        async with asyncio.timeout(10):
            async for ev in sub:
                seen.append(ev)
                if ev.type == "DELETED":
                    break
        sub.close()
        assert client.cache.expired >= 1, "the resume must have met 410 Expired"
        assert [(e.type, e.object["metadata"]["name"]) for e in seen] == [("DELETED", "a")]
        assert client.get(r.PODS, "t", "a") is None and client.get(r.PODS, "t", "b") is not None

    _over_http(body)


def test_watch_cache_resumes_from_bookmarks() -> None:
    async def body(store: Store, client: HttpClient) -> None:
        before = int(client.cache.resource_versions["pods"])
        for i in range(3):  # other kinds move the resourceVersion; the idle pod watch learns it by bookmark
            store.create(r.CONFIGMAPS, {"metadata": {"name": f"cm{i}", "namespace": "t"}}, user_agent=UA)
        target = store.resource_version

        async def advanced() -> None:
            while int(client.cache.resource_versions["pods"]) < target:
                await asyncio.sleep(0.05)

        async with asyncio.timeout(5):
            await advanced()
        assert int(client.cache.resource_versions["pods"]) > before
        assert client.cache.expired == 0

    _over_http(body)


def test_local_store_refuses_what_kube_apiserver_refuses() -> None:
    async def main() -> None:
        store = Store()
        r.register_all(store)
        client = StoreClient(store, UA)
        await client.create(r.NAMESPACES, {"metadata": {"name": "t"}})
        await client.create(r.SUBNETS, {"metadata": {"name": "s"}, "spec": {"cidrBlock": "10.0.0.0/24"}})
        subnet = client.get(r.SUBNETS, "", "s")
        assert subnet is not None
        del subnet["metadata"]["resourceVersion"]
        with pytest.raises(ApiError) as no_rv:
            await client.update(r.SUBNETS, subnet)
        assert no_rv.value.code == 422 and "resourceVersion" in no_rv.value.message
        await client.create(r.PODS, _pod("a"))
        pod = client.get(r.PODS, "t", "a")
        assert pod is not None
        pod["spec"]["nodeName"] = "n1"
        with pytest.raises(ApiError) as rebind:
            await client.update(r.PODS, pod)
        assert rebind.value.code == 422 and "pods/{name}/binding" in rebind.value.message
        bind_pod(store, {"target": {"name": "n1"}}, namespace="t", name="a", user_agent=UA)
        assert store.require(r.PODS, "t", "a")["spec"]["nodeName"] == "n1"

    asyncio.run(main())


def test_a_restarted_controller_takes_back_the_addresses_ip_crs_hold() -> None:
    from behaviour_helpers import bridge_vm

    from conformance.sim import world
    from conformance.sim.attached import start_world

    cfg = SimConfig()
    with SimCluster(cfg, world=False) as cluster:
        conn = Connection.from_pem(cluster.url)

        async def pod_ip(client: HttpClient, vm: str) -> str:
            def running(c: Any) -> str | None:
                for pod in c.list(r.PODS, "t", label_selector=f"vm.kubevirt.io/name={vm}"):
                    if (pod.get("status") or {}).get("phase") == "Running":
                        return str(pod["status"]["podIP"])
                return None

            result: str = await until(client, running, f"VM {vm}'s launcher Running", timeout=15)
            return result

        async def main(store: Store) -> None:
            store.create(r.NAMESPACES, {"metadata": {"name": "t"}}, user_agent=UA)
            first = await start_world(conn, cfg, webhook_configuration=True, sync_timeout=30)
            store.validators.extend(world.admission(first.world))
            try:
                await first.client.as_agent(UA).create(r.VMS, bridge_vm("one", "t", {}))
                ip_one = await pod_ip(first.client, "one")
            finally:
                await first.stop()
            store.validators.clear()
            second = await start_world(conn, cfg, webhook_configuration=True, sync_timeout=30)
            store.validators.extend(world.admission(second.world))
            try:
                ipam = second.world.ipam
                assert ipam is not None and ipam.holder("ovn-default", ip_one) == ["t/one"], ip_one
                await second.client.as_agent(UA).create(r.VMS, bridge_vm("two", "t", {}))
                ip_two = await pod_ip(second.client, "two")
                assert ip_two != ip_one, f"the restarted controller handed out {ip_one} twice"
                assert not second.world.errors, second.world.errors
            finally:
                await second.stop()

        cluster.call_async(main, timeout=90)
