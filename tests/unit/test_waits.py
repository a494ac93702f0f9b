"""Waits against a real HTTP API server (the simulated cluster, API only: no behaviour needed)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance import templates, waits
from conformance.kube import EVENTS, PODS, Kube
from conformance.sim.cluster import SimCluster
from conformance.sim.config import SimConfig
from conformance.sim.resources import PODS as SIM_PODS


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimCluster]:
    cluster = SimCluster(SimConfig(), world=False)
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def kube(sim: SimCluster, tmp_path_factory: pytest.TempPathFactory) -> Kube:
    path = sim.write_kubeconfig(tmp_path_factory.mktemp("kc") / "kubeconfig")
    k = Kube(str(path), None, run_id="r-waits")
    return k


@pytest.fixture
def ns(kube: Kube, request: pytest.FixtureRequest) -> str:
    name = f"w-{request.node.name.replace('_', '-')[:30]}".rstrip("-")
    kube.create_namespace(name)
    return name


def pod(ns: str, name: str) -> dict[str, Any]:
    return templates.render_pod(name=name, namespace=ns, ip="10.16.0.9", subnet="ovn-default",
                                run_id="r-waits")


class Spy:
    """Counts the lists and watches a Kube makes (the sim's audit log records writes only)."""

    def __init__(self, kube: Kube, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []
        real_list, real_watch = kube.list_with_version, kube.watch

        def list_with_version(*a: Any, **kw: Any) -> Any:
            self.calls.append("list")
            return real_list(*a, **kw)

        def watch(*a: Any, **kw: Any) -> Any:
            self.calls.append("watch")
            return real_watch(*a, **kw)

        monkeypatch.setattr(kube, "list_with_version", list_with_version)
        monkeypatch.setattr(kube, "watch", watch)


def test_wait_follows_the_watch(kube: Kube, ns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    kube.create_pod(ns, pod(ns, "p1"))
    started = threading.Event()

    def change() -> None:
        started.wait(10)
        kube.patch(PODS, ns, "p1", {"metadata": {"annotations": {"kovc.io/x": "y"}}})

    t = threading.Thread(target=change)
    t.start()
    spy = Spy(kube, monkeypatch)
    calls = []

    def predicate(obj: dict[str, Any]) -> bool:
        calls.append(obj["metadata"]["resourceVersion"])
        started.set()  # the first evaluation happens after the list: now change it
        return (obj["metadata"].get("annotations") or {}).get("kovc.io/x") == "y"

    got = waits.wait_for(kube, PODS, ns, "p1", predicate, 30, "annotation kovc.io/x=y")
    t.join()
    assert got["metadata"]["annotations"]["kovc.io/x"] == "y"
    assert spy.calls == ["list", "watch"]  # one list, then one watch: no polling
    assert len(calls) == 2  # the listed object, then the watched change


def test_timeout_message_says_what_where_seen_and_events(kube: Kube, ns: str) -> None:
    created = kube.create_pod(ns, pod(ns, "p2"))
    kube.create(EVENTS, ns, {
        "metadata": {"name": "p2.1"}, "type": "Warning", "reason": "FailedCreate",
        "message": "something refused it",
        "involvedObject": {"kind": "Pod", "name": "p2", "namespace": ns, "uid": created["metadata"]["uid"]}})
    with pytest.raises(waits.WaitTimeout) as err:
        waits.wait_for(kube, PODS, ns, "p2", lambda o: False, 1.0, "pod p2 to become Ready")
    text = str(err.value)
    assert isinstance(err.value, TimeoutError)
    assert "waiting for pod p2 to become Ready" in text
    assert f"on: Pod {ns}/p2" in text
    assert "ovn.kubernetes.io/ip_address=10.16.0.9" in text  # last seen
    assert "Warning FailedCreate: something refused it" in text  # last events


def test_wait_gone_and_absent_summary(kube: Kube, ns: str) -> None:
    kube.create_pod(ns, pod(ns, "p3"))
    threading.Thread(target=lambda: kube.delete_pod(ns, "p3")).start()
    waits.wait_gone(kube, PODS, ns, "p3", 30)
    with pytest.raises(waits.WaitTimeout, match="last seen: absent"):
        waits.wait_for(kube, PODS, ns, "p3", lambda o: True, 1.0, "p3 to come back")


def test_410_relists(sim: SimCluster, kube: Kube, ns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(kube, monkeypatch)
    sim.call(lambda s: setattr(s, "history_size", 3))
    try:
        burst = threading.Event()

        def evaluate(objects: dict[str, Any]) -> str | None:
            if not burst.is_set():
                burst.set()
                # the history moves past the list's resourceVersion before the watch starts
                for i in range(6):
                    kube.create_pod(ns, pod(ns, f"burst-{i}"))
            return "found" if f"{ns}/burst-5" in objects else None

        assert waits.watch_until(kube, PODS, ns, evaluate, timeout=30, what="burst-5") == "found"
    finally:
        sim.call(lambda s: setattr(s, "history_size", 5000))
    assert spy.calls.count("list") >= 2, spy.calls  # 410 -> list again


def test_dry_run_probe_reports_expiry(kube: Kube, ns: str) -> None:
    # no webhook in an API-only cluster: the probe is always admitted, never denied
    res = waits.wait_dry_run(kube, ns, "10.16.0.9", "ovn-default", "denied", 1.0, name="dry-x")
    assert not res.reached and res.attempts >= 2 and res.last == "admitted"
    assert "was not denied" in res.warning("10.16.0.9", "ovn-default")
    assert kube.get_pod(ns, "dry-x") is None  # dryRun stores nothing
    ok = waits.wait_dry_run(kube, ns, "10.16.0.9", "ovn-default", "admitted", 2.0, name="dry-y")
    assert ok.reached and ok.attempts == 1


def test_sim_store_is_untouched_by_reads(sim: SimCluster, ns: str) -> None:
    assert sim.call(lambda s: s.get(SIM_PODS, ns, "nothing")) is None


def test_kubeconfig_path_type(tmp_path: Path) -> None:
    with pytest.raises(Exception):  # noqa: B017 - any loader error: the file does not exist
        Kube(str(tmp_path / "missing"), None, run_id="r")


def test_an_api_down_through_the_deadline_is_an_infrastructure_error(
        kube: Kube, ns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A wait that could observe nothing definitive because the API kept failing is no timeout (which
    would read as "the condition never held"): it raises InfrastructureError, reported as error."""
    from kubernetes.client.exceptions import ApiException

    from conformance.kube import InfrastructureError, is_infrastructure

    def down(*a: Any, **kw: Any) -> Any:
        raise ApiException(status=503, reason="Service Unavailable")

    monkeypatch.setattr(kube, "list_with_version", down)
    with pytest.raises(InfrastructureError, match="the API was unreachable at the deadline") as err:
        waits.wait_for(kube, PODS, ns, "never", lambda o: True, 0.3, what="pod never")
    assert is_infrastructure(err.value) and not isinstance(err.value, waits.WaitTimeout)


def test_a_failure_at_the_deadline_gets_one_last_list(kube: Kube, ns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The watch fails as the deadline comes: one last list decides (here: the pod is there)."""
    kube.create_pod(ns, pod(ns, "late"))
    real_list = kube.list_with_version
    lists = []

    def flaky_list(*a: Any, **kw: Any) -> Any:
        lists.append(1)
        if len(lists) == 1:
            raise ConnectionResetError("reset")
        return real_list(*a, **kw)

    monkeypatch.setattr(kube, "list_with_version", flaky_list)
    got = waits.wait_for(kube, PODS, ns, "late", lambda o: True, 0.01, what="pod late")
    assert got["metadata"]["name"] == "late"
    assert len(lists) >= 2
