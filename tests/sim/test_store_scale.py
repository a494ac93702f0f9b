"""The store's indexes, Event TTL, bounded audit/history and the garbage collector's per-change work
(issue #12): each keeps the answer of a full scan while costing what the change touches."""

from __future__ import annotations

import time
from typing import Any

import pytest

from conformance.sim import resources as r
from conformance.sim.controllers import gc
from conformance.sim.store import Store, WatchEvent, bind_pod
from conformance.sim.webhook import candidate_ip_crs

UA = "test/1"


def store(**kwargs: Any) -> Store:
    s = Store(**kwargs)
    r.register_all(s)
    s.create(r.NAMESPACES, {"metadata": {"name": "ns"}}, user_agent=UA)
    return s


def configmap(s: Store, name: str, owners: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if owners:
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap", "name": o["metadata"]["name"],
                                    "uid": o["metadata"]["uid"]} for o in owners]
    return s.create(r.CONFIGMAPS, {"metadata": meta}, namespace="ns", user_agent=UA)


def test_by_owner_and_by_uid_follow_every_write() -> None:
    s = store()
    owner = configmap(s, "owner")
    kid = configmap(s, "kid", [owner])
    uid = owner["metadata"]["uid"]
    assert [o["metadata"]["name"] for o in s.by_owner(uid)] == ["kid"]
    assert s.by_owner(uid, r.PODS) == []
    found = s.by_uid(kid["metadata"]["uid"])
    assert found is not None and found[0] is r.CONFIGMAPS

    def orphan(obj: dict[str, Any]) -> None:
        obj["metadata"].pop("ownerReferences")

    s.mutate(r.CONFIGMAPS, "ns", "kid", orphan, user_agent=UA)
    assert s.by_owner(uid) == []
    s.delete(r.CONFIGMAPS, "ns", "kid", user_agent=UA)
    assert s.by_uid(kid["metadata"]["uid"]) is None


def test_by_field_and_in_namespace_match_a_scan() -> None:
    s = store()
    for i in range(5):
        spec: dict[str, Any] = {"containers": [{"name": "c", "image": "i"}]}
        if i % 2:
            spec["nodeName"] = "node-a"
        s.create(r.PODS, {"metadata": {"name": f"p{i}"}, "spec": spec}, namespace="ns", user_agent=UA)
    scan = sorted(p["metadata"]["name"] for p in s.iter_raw(r.PODS) if not p["spec"].get("nodeName"))
    assert [p["metadata"]["name"] for p in s.by_field(r.PODS, "spec.nodeName", "")] == scan
    bind_pod(s, {"target": {"kind": "Node", "name": "node-b"}}, namespace="ns", name="p0", user_agent=UA)
    assert "p0" not in [p["metadata"]["name"] for p in s.by_field(r.PODS, "spec.nodeName", "")]
    assert [p["metadata"]["name"] for p in s.in_namespace(r.PODS, "ns")] == [f"p{i}" for i in range(5)]
    items, _ = s.list(r.PODS, "ns", field_selector="metadata.name=p3")
    assert [p["metadata"]["name"] for p in items] == ["p3"]


def test_events_expire_after_their_ttl_with_a_deleted_watch_event() -> None:
    s = store(event_ttl=0.05)
    ev = {"metadata": {"name": "e1"}, "involvedObject": {"name": "x"}, "reason": "R", "message": "m"}
    s.create(r.EVENTS, ev, namespace="ns", user_agent=UA)
    assert s.expire() == 0
    time.sleep(0.06)
    rv = s.resource_version
    assert s.expire() == 1
    assert s.get(r.EVENTS, "ns", "e1") is None
    assert [(e.type, e.object["metadata"]["name"]) for e in s.events_since(r.EVENTS, "", rv)] == [
        ("DELETED", "e1")]


def test_an_event_written_again_lives_on() -> None:
    # Expiry is judged at explicit instants, not after sleeps, so machine load cannot move the result: ``now``
    # lies after the first write's TTL and before the second write's.
    s = store(event_ttl=100.0)
    s.create(r.EVENTS, {"metadata": {"name": "e1"}, "count": 1}, namespace="ns", user_agent=UA)
    after_create = time.monotonic()
    time.sleep(0.05)
    before_update = time.monotonic()
    s.mutate(r.EVENTS, "ns", "e1", lambda e: e.update(count=2), user_agent=UA)
    between = after_create + 100.0 + (before_update - after_create) / 2
    assert s.expire(now=between) == 0 and s.get(r.EVENTS, "ns", "e1") is not None
    assert s.expire(now=time.monotonic() + 100.0 + 1.0) == 1


def test_audit_and_history_are_bounded() -> None:
    s = store(audit_size=5, history_floor=3, history_seconds=0.0)
    for i in range(20):
        configmap(s, f"cm{i}")
    assert len(s.audit) == 5 and s.audit[-1].name == "cm19"
    s.expire()
    assert len(s._history) == 3


def test_resumed_watch_starts_where_its_version_ends() -> None:
    s = store()
    for i in range(30):
        configmap(s, f"cm{i}")
    history: list[WatchEvent] = list(s._history)
    for since in (history[0].rv - 1, history[10].rv, history[-1].rv):
        scan = [e.rv for e in history if e.rv > since and e.rt.key == r.CONFIGMAPS.key]
        assert [e.rv for e in s.events_since(r.CONFIGMAPS, "ns", since)] == scan


def test_gc_batch_touches_only_what_the_events_concern(monkeypatch: pytest.MonkeyPatch) -> None:
    """With 500 unrelated objects, a batch deleting one owner collects its dependent without scanning
    the world (iter_raw is only for the idle resync)."""
    s = store()
    for i in range(500):
        configmap(s, f"bystander{i}")
    owner = configmap(s, "owner")
    configmap(s, "kid", [owner])
    rv = s.resource_version
    s.delete(r.CONFIGMAPS, "ns", "owner", user_agent=UA)
    batch = s.events_since(None, "", rv)

    def no_scan(rt: Any) -> Any:
        raise AssertionError("a batch pass must not scan every object")

    monkeypatch.setattr(s, "iter_raw", no_scan)
    gc.sync_gc(s, UA, batch)
    assert s.get(r.CONFIGMAPS, "ns", "kid") is None
    assert len(s.in_namespace(r.CONFIGMAPS, "ns")) == 500


def test_gc_full_pass_still_collects_what_no_event_announced() -> None:
    s = store()
    owner = configmap(s, "owner")
    configmap(s, "kid", [owner])
    s.delete(r.CONFIGMAPS, "ns", "owner", user_agent=UA)
    gc.sync_gc(s, UA, None)
    assert s.get(r.CONFIGMAPS, "ns", "kid") is None


def test_webhook_sees_the_ip_crs_that_hold_the_requested_address() -> None:
    s = store()
    for i, address in enumerate(["10.16.0.5", "10.16.0.6", "10.16.0.7,fd00::A"]):
        s.create(r.IPS, {"metadata": {"name": f"ip{i}"}, "spec": {"ipAddress": address, "subnet": "ovn-default"}},
                 user_agent=UA)
    pod = {"metadata": {"name": "p", "namespace": "ns",
                        "annotations": {"ovn.kubernetes.io/ip_address": "10.16.0.5"}}}
    # ip2 has an upper-case IPv6 part: v1.13.0+ denies on it whatever the address, so policies see it too
    assert [c["metadata"]["name"] for c in candidate_ip_crs(s, pod)] == ["ip0", "ip2"]
    s.delete(r.IPS, "", "ip0", user_agent=UA)
    assert [c["metadata"]["name"] for c in candidate_ip_crs(s, pod)] == ["ip2"]


def test_the_http_watch_cache_keeps_the_same_indexes_as_the_store() -> None:
    """The HTTP transport reads from a WatchCache built on the store's ObjectIndex: by_owner, by_field
    and the webhook's address index follow every delivered event (no scan), and answer what a scan of
    the cached objects answers."""
    from conformance.sim.transport.cache import WatchCache
    from conformance.sim.transport.http import HttpClient, Sessions

    cache = WatchCache(Sessions(None), [r.PODS, r.IPS])  # type: ignore[arg-type]  # no request is made
    client = HttpClient(Sessions(None), cache)  # type: ignore[arg-type]
    owner_uid = "vmi-uid"

    def pod(name: str, node: str, owned: bool, rv: int) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "resourceVersion": str(rv)}
        if owned:
            meta["ownerReferences"] = [{"kind": "VirtualMachineInstance", "name": "vm", "uid": owner_uid}]
        return {"metadata": meta, "spec": {"nodeName": node} if node else {}}

    cache._deliver("ADDED", r.PODS, pod("a", "", True, 2))
    cache._deliver("ADDED", r.PODS, pod("b", "node-1", True, 3))
    cache._deliver("ADDED", r.PODS, pod("c", "", False, 4))
    assert [p["metadata"]["name"] for p in client.by_owner(r.PODS, owner_uid)] == ["a", "b"]
    assert [p["metadata"]["name"] for p in client.by_field(r.PODS, "spec.nodeName", "")] == ["a", "c"]
    cache._deliver("MODIFIED", r.PODS, pod("a", "node-1", False, 5))
    cache._deliver("DELETED", r.PODS, pod("b", "node-1", True, 6))
    assert client.by_owner(r.PODS, owner_uid) == []
    assert [p["metadata"]["name"] for p in client.by_field(r.PODS, "spec.nodeName", "")] == ["c"]
    assert [p["metadata"]["name"] for p in client.by_field(r.PODS, "spec.nodeName", "node-1")] == ["a"]
    for name, rv in (("a", 7), ("c", 8)):
        cache._deliver("MODIFIED", r.PODS, pod(name, "", False, rv))
    scan = sorted(p["metadata"]["name"] for p in cache.iter_raw(r.PODS) if not p["spec"].get("nodeName"))
    assert [p["metadata"]["name"] for p in client.by_field(r.PODS, "spec.nodeName", "")] == scan == ["a", "c"]

    for i, address in enumerate(["10.16.0.5", "10.16.0.6", "10.16.0.7,fd00::A"]):
        cache._deliver("ADDED", r.IPS, {"metadata": {"name": f"ip{i}", "resourceVersion": str(10 + i)},
                                        "spec": {"ipAddress": address}})
    claim = {"metadata": {"name": "p", "namespace": "ns", "annotations": {"ovn.kubernetes.io/ip_address": "10.16.0.5"}}}
    assert [c["metadata"]["name"] for c in candidate_ip_crs(client, claim)] == ["ip0", "ip2"]
    cache._deliver("DELETED", r.IPS, {"metadata": {"name": "ip0", "resourceVersion": "20"},
                                      "spec": {"ipAddress": "10.16.0.5"}})
    assert [c["metadata"]["name"] for c in candidate_ip_crs(client, claim)] == ["ip2"]
