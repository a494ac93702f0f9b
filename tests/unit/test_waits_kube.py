"""The client under faults: retries, the run label, the user agent, ApiException details."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes.client.exceptions import ApiException

from conformance import RUN_LABEL, USER_AGENT, templates, waits
from conformance.kube import PODS, Kube, api_code, api_message, api_reason, describe_error
from conformance.sim.cluster import SimCluster
from conformance.sim.config import SimConfig


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SimCluster, Kube]]:
    cluster = SimCluster(SimConfig(faults=0.3, seed=7), world=False)
    cluster.start()
    path = cluster.write_kubeconfig(tmp_path_factory.mktemp("kc") / "kubeconfig")
    yield cluster, Kube(str(path), None, run_id="r-faults")
    cluster.stop()


def test_creates_survive_faults_exactly_once(faulty: tuple[SimCluster, Kube]) -> None:
    sim, kube = faulty
    kube.create_namespace("faults")
    for i in range(8):
        body = templates.render_pod(name=f"p{i}", namespace="faults", ip=None, subnet=None, run_id="r-faults")
        got = kube.create_pod("faults", body)
        assert got["metadata"]["name"] == f"p{i}"
        assert got["metadata"]["labels"][RUN_LABEL] == "r-faults"
    pods = kube.list_pods("faults")
    assert sorted(p["metadata"]["name"] for p in pods) == [f"p{i}" for i in range(8)]
    got = waits.wait_for(kube, PODS, "faults", "p7", lambda o: True, 30, "p7")
    assert got["metadata"]["name"] == "p7"
    writes = [e for e in sim.audit() if e.get("namespace") == "faults" and e.get("verb") == "create"
              and e.get("resource") == "pods"]
    assert writes and all(e["userAgent"] == USER_AGENT for e in writes)


def test_a_first_409_is_a_real_conflict(faulty: tuple[SimCluster, Kube]) -> None:
    _, kube = faulty
    kube.create_namespace("conflict")
    body = templates.render_pod(name="same", namespace="conflict", ip=None, subnet=None, run_id="r-faults")
    kube.create_pod("conflict", body)
    with pytest.raises(ApiException) as err:
        kube.create_pod("conflict", body)
    assert api_code(err.value) == 409 and api_reason(err.value) == "AlreadyExists"
    assert "already exists" in api_message(err.value)
    assert describe_error(err.value).startswith("HTTP 409 AlreadyExists: ")
