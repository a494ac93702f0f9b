"""Fault injection (``--sim-faults``): 500, 429 with Retry-After, dropped connections, faults after
the write, cut watches; determinism for a seed."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import MaxRetryError, ProtocolError

from conformance.sim.cluster import SimCluster
from conformance.sim.faults import FaultInjector, is_faultable
from conformance.sim.resources import CONFIGMAPS, NAMESPACES
from conformance.sim.store import Store

Outcome = str


def client_for(sim: SimCluster, tmp_path: Path) -> k8s.ApiClient:
    api = k8s_config.new_client_from_config(str(sim.write_kubeconfig(tmp_path / "kubeconfig")))
    api.configuration.retries = False  # see every fault (no urllib3 retry of dropped GETs)
    api.rest_client = type(api.rest_client)(api.configuration)
    return api


def attempt(fn: Callable[[], object]) -> tuple[Outcome, ApiException | None]:
    try:
        fn()
    except ApiException as err:
        return str(err.status), err
    except (ProtocolError, MaxRetryError, ConnectionError):
        return "dropped", None
    return "ok", None


def seed_namespace(sim: SimCluster, name: str = "f") -> None:
    sim.call(lambda s: s.create(NAMESPACES, {"metadata": {"name": name}}, user_agent="kovc-tests/setup"))


def test_discovery_is_never_faulted() -> None:
    for path in (
        "/api",
        "/api/v1",
        "/apis",
        "/apis/kubevirt.io",
        "/apis/kubevirt.io/v1",
        "/version",
        "/openapi/v3",
        "/openapi/v3/api/v1",
        "/healthz",
        "/readyz",
    ):
        assert not is_faultable(path), path
    for path in ("/api/v1/pods", "/api/v1/namespaces/d/pods/x", "/apis/kubevirt.io/v1/virtualmachines"):
        assert is_faultable(path), path


def test_decisions_are_deterministic_for_a_seed() -> None:
    def run(seed: int) -> list[object]:
        inj = FaultInjector(0.4, seed)
        return [inj.decide(mutating=i % 2 == 0) for i in range(200)] + [inj.watch_cut() for _ in range(20)]

    assert run(5) == run(5)
    assert run(5) != run(6)
    with pytest.raises(ValueError):
        FaultInjector(1.5, 1)


def test_client_sees_500_429_and_dropped_connections(
    api_only_cluster: Callable[..., SimCluster], tmp_path: Path
) -> None:
    sim = api_only_cluster(faults=0.5, seed=3)
    seed_namespace(sim)
    api = client_for(sim, tmp_path)
    core = k8s.CoreV1Api(api)
    seen: Counter[str] = Counter()
    retry_after: set[str] = set()
    bodies: list[dict[str, object]] = []
    for _ in range(60):
        outcome, err = attempt(lambda: core.list_namespaced_config_map("f"))
        seen[outcome] += 1
        if err is not None:
            bodies.append(json.loads(err.body))
            if err.status == 429:
                retry_after.add(err.headers["Retry-After"])
    api.close()
    assert {"ok", "500", "429", "dropped"} <= set(seen), (
        f"expected every fault kind in 60 requests, saw {seen}"
    )
    assert retry_after == {"1"}, retry_after
    assert {(b["kind"], b["reason"]) for b in bodies} == {
        ("Status", "InternalError"),
        ("Status", "TooManyRequests"),
    }
    assert sim.faults is not None and sum(sim.faults.injected.values()) == 60 - seen["ok"]


def test_retry_after_is_a_setting_zero_included(
    api_only_cluster: Callable[..., SimCluster], tmp_path: Path
) -> None:
    """``--sim-retry-after 0`` (the verdict self-tests' fault runs): a throttled request still answers 429
    with the header and ``details.retryAfterSeconds``, saying 0."""
    sim = api_only_cluster(faults=0.5, seed=3, fault_retry_after=0)
    seed_namespace(sim)
    api = client_for(sim, tmp_path)
    core = k8s.CoreV1Api(api)
    seen: list[tuple[str, object]] = []
    for _ in range(40):
        _, err = attempt(lambda: core.list_namespaced_config_map("f"))
        if err is not None and err.status == 429:
            seen.append((err.headers["Retry-After"], json.loads(err.body)["details"]["retryAfterSeconds"]))
    api.close()
    assert seen and set(seen) == {("0", 0)}, seen


def test_create_faulted_after_the_write_meets_409_on_retry(
    api_only_cluster: Callable[..., SimCluster], tmp_path: Path
) -> None:
    sim = api_only_cluster(faults=0.4, seed=11)
    seed_namespace(sim)
    api = client_for(sim, tmp_path)
    core = k8s.CoreV1Api(api)
    conflicts_after_failure = []
    for i in range(40):
        name = f"c{i}"
        first, _ = attempt(lambda n=name: core.create_namespaced_config_map("f", {"metadata": {"name": n}}))
        outcome = first
        while outcome not in ("ok", "409"):  # retry until the server answers something definite
            outcome, _ = attempt(
                lambda n=name: core.create_namespaced_config_map("f", {"metadata": {"name": n}})
            )
        if first in ("500", "dropped") and outcome == "409":
            conflicts_after_failure.append(name)
    api.close()
    assert conflicts_after_failure, (
        "expected a create faulted after its write, retried into 409 AlreadyExists"
    )
    stored = sim.call(lambda s: {o["metadata"]["name"] for o in s.list(CONFIGMAPS, "f")[0]})
    assert stored == {f"c{i}" for i in range(40)}, "every create ended stored exactly once"
    assert sim.faults is not None
    after = sim.faults.injected["error/after"] + sim.faults.injected["drop/after"]
    assert after >= len(conflicts_after_failure)
    faulted = [e for e in sim.audit() if e["code"] in (0, 429, 500)]
    assert faulted, "faulted-before requests are in the audit log with their code"


def test_watches_are_cut_early(api_only_cluster: Callable[..., SimCluster]) -> None:
    sim = api_only_cluster(faults=1.0, seed=2)
    seed_namespace(sim)

    def add(store: Store) -> None:
        store.create(CONFIGMAPS, {"metadata": {"name": "x"}}, namespace="f", user_agent="kovc-tests/setup")

    sim.call(add)
    conn = sim.http_connection(timeout=15)  # fails the test if not cut
    conn.request("GET", "/api/v1/namespaces/f/configmaps?watch=1&timeoutSeconds=600", headers=sim.auth_headers)
    resp = conn.getresponse()
    assert resp.status == 200
    lines = resp.read().splitlines()
    conn.close()
    assert [json.loads(line)["type"] for line in lines] == ["ADDED"], lines
    assert sim.faults is not None and sim.faults.injected["watch-cut"] == 1
