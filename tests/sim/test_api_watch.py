"""WATCH: resume from a resourceVersion, 410 Expired, timeoutSeconds, selectors, bookmarks."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from kubernetes import client as k8s
from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from conformance.sim.cluster import SimCluster
from conformance.sim.resources import CONFIGMAPS, NAMESPACES, SERVICEACCOUNTS
from conformance.sim.store import Store


def stream(sim: SimCluster, path: str, read_timeout: float = 15.0, **query: Any) -> Iterator[dict[str, Any]]:
    """Raw watch: yields decoded events until the server ends the stream. A stream that is not ended
    by the server within ``read_timeout`` seconds of silence fails the test (socket timeout)."""
    conn = sim.http_connection(timeout=read_timeout)
    try:
        conn.request("GET", f"{path}?{urlencode(query)}", headers=sim.auth_headers)
        resp = conn.getresponse()
        assert resp.status == 200, f"watch {path}: expected 200, got {resp.status}: {resp.read()[:300]!r}"
        while line := resp.readline():
            yield json.loads(line)
    finally:
        conn.close()


def cm(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}, "data": {}}


def test_watch_resumes_from_resource_version_then_follows_live(
    sim_api: k8s.ApiClient, sim_namespace: str
) -> None:
    core = k8s.CoreV1Api(sim_api)
    start_rv = core.list_namespaced_config_map(sim_namespace).metadata.resource_version
    core.create_namespaced_config_map(sim_namespace, cm("w1"))
    core.patch_namespaced_config_map("w1", sim_namespace, {"data": {"a": "1"}})
    seen: list[tuple[str, str, dict[str, str] | None]] = []
    w = watch.Watch()
    for event in w.stream(
        core.list_namespaced_config_map, sim_namespace, resource_version=start_rv, timeout_seconds=20
    ):
        obj = event["object"]
        seen.append((event["type"], obj.metadata.name, obj.data))
        if len(seen) == 2:  # the backlog is replayed: now change it live
            core.patch_namespaced_config_map("w1", sim_namespace, {"data": {"a": "2"}})
        elif len(seen) == 3:
            core.delete_namespaced_config_map("w1", sim_namespace)
        elif len(seen) == 4:
            w.stop()
    assert seen == [
        ("ADDED", "w1", {}),
        ("MODIFIED", "w1", {"a": "1"}),
        ("MODIFIED", "w1", {"a": "2"}),
        ("DELETED", "w1", {"a": "2"}),
    ]


def test_watch_without_resource_version_starts_with_current_objects(
    sim_api: k8s.ApiClient, sim_namespace: str
) -> None:
    core = k8s.CoreV1Api(sim_api)
    for name in ("i1", "i2"):
        core.create_namespaced_config_map(sim_namespace, cm(name))
    w = watch.Watch()
    names = []
    for event in w.stream(core.list_namespaced_config_map, sim_namespace, timeout_seconds=20):
        assert event["type"] == "ADDED"
        names.append(event["object"].metadata.name)
        if len(names) == 2:
            w.stop()
    assert sorted(names) == ["i1", "i2"]


def test_watch_label_selector_sends_deleted_when_object_stops_matching(
    sim_api: k8s.ApiClient, sim_namespace: str
) -> None:
    core = k8s.CoreV1Api(sim_api)
    core.create_namespaced_config_map(sim_namespace, cm("sel", team="a"))
    core.create_namespaced_config_map(sim_namespace, cm("other", team="b"))
    w = watch.Watch()
    seen = []
    for event in w.stream(
        core.list_namespaced_config_map, sim_namespace, label_selector="team=a", timeout_seconds=20
    ):
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == 1:
            core.patch_namespaced_config_map("other", sim_namespace, {"data": {"x": "y"}})  # filtered out
            core.patch_namespaced_config_map("sel", sim_namespace, {"metadata": {"labels": {"team": "c"}}})
        else:
            w.stop()
    assert seen == [("ADDED", "sel"), ("DELETED", "sel")]


def test_a_resumed_watch_with_a_selector_knows_what_matched_before(
    sim_api: k8s.ApiClient, sim_cluster: SimCluster, sim_namespace: str
) -> None:
    """Resumed from a resourceVersion, a watch with a label selector sends DELETED when an object stops
    matching (its previous content, the event's resourceVersion) and ADDED when it matches again - what
    kube-apiserver's watch cache sends (measured: conformance/envtest/apidiff.py watch.resume.selector)."""
    core = k8s.CoreV1Api(sim_api)
    start_rv = core.list_namespaced_config_map(sim_namespace).metadata.resource_version
    core.create_namespaced_config_map(sim_namespace, cm("r", sel="yes"))
    core.patch_namespaced_config_map("r", sim_namespace, {"data": {"k": "2"}})
    unlabelled = core.patch_namespaced_config_map("r", sim_namespace, {"metadata": {"labels": {"sel": "no"}}})
    core.patch_namespaced_config_map("r", sim_namespace, {"metadata": {"labels": {"sel": "yes"}}})
    core.delete_namespaced_config_map("r", sim_namespace)
    events = list(stream(sim_cluster, f"/api/v1/namespaces/{sim_namespace}/configmaps", watch="1",
                         timeoutSeconds="1", resourceVersion=start_rv, labelSelector="sel=yes"))
    assert [(e["type"], e["object"]["metadata"]["labels"]["sel"]) for e in events] == [
        ("ADDED", "yes"), ("MODIFIED", "yes"), ("DELETED", "yes"), ("ADDED", "yes"), ("DELETED", "yes")]
    gone = events[2]["object"]
    assert gone["metadata"]["resourceVersion"] == unlabelled.metadata.resource_version, \
        "the DELETED of an object that stopped matching carries the event's resourceVersion"


def test_watch_ends_cleanly_at_timeout_seconds(sim_cluster: SimCluster, sim_namespace: str) -> None:
    events = list(
        stream(
            sim_cluster,
            f"/api/v1/namespaces/{sim_namespace}/configmaps",
            watch="true",
            timeoutSeconds="1",
            resourceVersion=str(sim_cluster.call(lambda s: s.resource_version)),
        )
    )
    assert events == [], f"an idle watch must end with no event at timeoutSeconds, got {events}"


def test_python_watch_returns_at_timeout_seconds(sim_api: k8s.ApiClient, sim_namespace: str) -> None:
    core = k8s.CoreV1Api(sim_api)
    events = list(watch.Watch().stream(core.list_namespaced_config_map, sim_namespace, timeout_seconds=1))
    assert events == []


def test_initial_events_end_bookmark_and_legacy_watch_path(
    sim_cluster: SimCluster, sim_namespace: str
) -> None:
    def seed(store: Store) -> None:
        store.create(CONFIGMAPS, cm("bm"), namespace=sim_namespace, user_agent="kovc-tests/setup")

    sim_cluster.call(seed)
    events = list(
        stream(
            sim_cluster,
            f"/api/v1/namespaces/{sim_namespace}/configmaps",
            watch="1",
            timeoutSeconds="1",
            sendInitialEvents="true",
            allowWatchBookmarks="true",
        )
    )
    assert [e["type"] for e in events[:2]] == ["ADDED", "BOOKMARK"], events
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    legacy = list(
        stream(sim_cluster, f"/api/v1/watch/namespaces/{sim_namespace}/configmaps/bm", timeoutSeconds="1")
    )
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in legacy] == [("ADDED", "bm")]


@pytest.fixture
def short_history(api_only_cluster: Callable[..., SimCluster], wait_store: Callable[..., None]) -> SimCluster:
    """A cluster whose watch history holds 3 events: the last three of ten ConfigMap creations."""
    sim = api_only_cluster()
    sim.call(lambda s: s.create(NAMESPACES, {"metadata": {"name": "h"}}, user_agent="kovc-tests/setup"))
    # Let the namespace controller finish with "h" (ServiceAccount, finalizer, phase) first.
    wait_store(
        sim,
        lambda s: (
            s.get(SERVICEACCOUNTS, "h", "default") is not None
            and (s.get(NAMESPACES, "", "h") or {}).get("status", {}).get("phase") == "Active"
        ),
        "namespace h settled",
    )

    def churn(store: Store) -> None:
        store.history_size = 3
        for i in range(10):
            store.create(CONFIGMAPS, cm(f"c{i}"), namespace="h", user_agent="kovc-tests/setup")

    sim.call(churn)
    return sim


def test_too_old_resource_version_is_one_410_error_event(short_history: SimCluster) -> None:
    oldest = short_history.call(lambda s: s.oldest_resource_version)
    events = list(
        stream(
            short_history,
            "/api/v1/namespaces/h/configmaps",
            watch="true",
            resourceVersion="2",
            timeoutSeconds="30",
        )
    )
    assert len(events) == 1 and events[0]["type"] == "ERROR", events
    status = events[0]["object"]
    assert (status["kind"], status["code"], status["reason"]) == ("Status", 410, "Expired"), status
    assert status["message"].startswith("too old resource version: 2"), status
    # A resourceVersion still in the window resumes fine.
    resumed = list(
        stream(
            short_history,
            "/api/v1/namespaces/h/configmaps",
            watch="true",
            resourceVersion=str(oldest),
            timeoutSeconds="1",
        )
    )
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in resumed] == [
        ("ADDED", "c8"),
        ("ADDED", "c9"),
    ]


def test_python_client_sees_410_on_too_old_resource_version(short_history: SimCluster, tmp_path: Any) -> None:
    from kubernetes import config as k8s_config

    api = k8s_config.new_client_from_config(str(short_history.write_kubeconfig(tmp_path / "kc")))
    try:
        core = k8s.CoreV1Api(api)
        with pytest.raises(ApiException) as err:
            for _ in watch.Watch().stream(
                core.list_namespaced_config_map, "h", resource_version="2", timeout_seconds=30
            ):
                pass
        assert err.value.status == 410
        listed = core.list_namespaced_config_map("h", resource_version="2")
        assert len(listed.items) == 10, "a plain list with a too-old resourceVersion answers the list"
    finally:
        api.close()
