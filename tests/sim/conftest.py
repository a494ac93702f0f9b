"""Fixtures for the simulated-cluster tests.

- ``sim_cluster`` (session): one :class:`SimCluster` with the full world when
  ``conformance.sim.world`` is importable (API, GC and namespaces only otherwise).
- ``sim_kubeconfig``, ``sim_api`` (a ``kubernetes`` ApiClient), ``kubectl`` (runs the real kubectl
  against the session cluster; ``kubectl_argv`` is its command prefix), ``sim_namespace`` (a fresh
  namespace per test).
- ``sim_wait``: wait for a predicate on the store, woken by store events (no polling sleeps);
  ``wait_store`` does the same for another cluster.
- ``api_only_cluster``: factory for dedicated API-only clusters (faults, small history, audit file).
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import transport_helpers
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from conformance.kube import Kube
from conformance.sim.cluster import SimCluster
from conformance.sim.config import SimConfig
from conformance.sim.resources import NAMESPACES
from conformance.sim.store import Store

KUBECTL = shutil.which("kubectl")
_names = itertools.count(1)

Waiter = Callable[..., None]


@pytest.fixture(scope="session")
def sim_cluster() -> Iterator[SimCluster]:
    with SimCluster(SimConfig(seed=20261127)) as sim:
        print(
            f"\nsimulated cluster at {sim.url} started in {sim.startup_seconds * 1000:.1f} ms "
            f"(world: {'yes' if sim.world is not None else 'no'})"
        )
        yield sim
    assert not sim.controller_errors, f"controller tasks crashed: {sim.controller_errors!r}"


@pytest.fixture(scope="session")
def sim_kubeconfig(sim_cluster: SimCluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sim_cluster.write_kubeconfig(tmp_path_factory.mktemp("sim") / "kubeconfig")


def make_api_client(kubeconfig: Path, user_agent: str | None = None) -> k8s.ApiClient:
    api = k8s_config.new_client_from_config(str(kubeconfig))
    if user_agent:
        api.user_agent = user_agent
    return api


@pytest.fixture(scope="session")
def sim_api(sim_kubeconfig: Path) -> Iterator[k8s.ApiClient]:
    api = make_api_client(sim_kubeconfig, "kovc-tests/api")
    yield api
    api.close()


def wait_on_store(
    sim: SimCluster, predicate: Callable[[Store], bool], what: str, timeout: float = 10.0
) -> None:
    """Return once ``predicate(store)`` holds, re-checking after every store event; AssertionError
    naming ``what`` after ``timeout`` seconds."""

    async def run(store: Store) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        sub = store.subscribe(None)
        try:
            while not predicate(store):
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return False
                try:
                    await asyncio.wait_for(sub.queue.get(), remaining)
                except TimeoutError:
                    pass
            return True
        finally:
            store.unsubscribe(sub)

    if not sim.call_async(run, timeout + 10):
        raise AssertionError(f"expected {what} within {timeout:.0f}s; it did not happen")


@pytest.fixture
def wait_store() -> Callable[..., None]:
    """``wait_store(sim, predicate, what, timeout=10)`` for clusters other than ``sim_cluster``."""
    return wait_on_store


@pytest.fixture
def sim_wait(sim_cluster: SimCluster) -> Waiter:
    def wait(predicate: Callable[[Store], bool], what: str, timeout: float = 10.0) -> None:
        wait_on_store(sim_cluster, predicate, what, timeout)

    return wait


@pytest.fixture
def sim_namespace(sim_cluster: SimCluster, request: pytest.FixtureRequest) -> str:
    """A fresh namespace (created through the store; the namespace controller adds its
    ``default`` ServiceAccount)."""
    base = request.node.name.lower().replace("_", "-")[:40].strip("-")
    name = f"{base}-{next(_names)}"

    def create(store: Store) -> None:
        store.create(NAMESPACES, {"metadata": {"name": name}}, user_agent="kovc-tests/setup")

    sim_cluster.call(create)
    return name


@pytest.fixture
def kube(sim_kubeconfig: Path, request: pytest.FixtureRequest) -> Iterator[Kube]:
    """The suite's own client (:class:`conformance.kube.Kube`) on the shared simulated cluster, with a run
    id named after the test module (what the verbs and waits use on a real run)."""
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "-")
    client = Kube(str(sim_kubeconfig), None, run_id=f"r-{module}"[:30])
    yield client
    client.close()


@pytest.fixture(scope="session")
def kubectl_argv(sim_kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """``kubectl --kubeconfig … --cache-dir …`` for the session cluster (for background runs)."""
    if KUBECTL is None:
        pytest.skip("kubectl is not installed")
    return [
        KUBECTL,
        "--kubeconfig",
        str(sim_kubeconfig),
        "--cache-dir",
        str(tmp_path_factory.mktemp("kubectl-cache")),
    ]


@pytest.fixture(scope="session")
def kubectl(kubectl_argv: list[str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*kubectl_argv, *args], capture_output=True, text=True, input=input, timeout=timeout, check=False
        )

    return run


@pytest.fixture
def api_only_cluster(tmp_path: Path) -> Iterator[Callable[..., SimCluster]]:
    """Factory: ``api_only_cluster(faults=0.3, seed=1)`` starts a dedicated cluster without the
    world (stopped after the test)."""
    started: list[SimCluster] = []

    def start(**options: Any) -> SimCluster:
        sim = SimCluster(SimConfig(**options), world=False)
        sim.start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture(params=transport_helpers.TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    """The transport of the simulated controllers a behaviour test runs over (``transport_helpers``)."""
    name = str(request.param)
    if name == "envtest":
        reason = transport_helpers.envtest_unavailable()
        if reason:
            pytest.skip(reason)
    return name
