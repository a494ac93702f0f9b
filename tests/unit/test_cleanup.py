"""``kovc cleanup``: deletes only objects labelled kovc.io/run (one run, or all), cluster-scoped kinds
included, against the simulated cluster."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from conformance import RUN_LABEL, cli
from conformance.kube import Kube
from conformance.sim.cluster import SimCluster
from conformance.sim.config import SimConfig


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with SimCluster(SimConfig()) as cluster:
        yield cluster.write_kubeconfig(tmp_path_factory.mktemp("cleanup") / "kubeconfig")


def populate(kubeconfig: Path, run_id: str, suffix: str) -> Kube:
    kube = Kube(str(kubeconfig), None, run_id=run_id)
    ns = f"kovc-{suffix}"
    kube.create_namespace(ns)
    kube.create(
        "Pod",
        ns,
        {"metadata": {"name": f"p-{suffix}"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
    )
    kube.create(
        "VirtualMachine",
        ns,
        {"metadata": {"name": f"h-{suffix}"}, "spec": {"runStrategy": "Halted", "template": {"spec": {}}}},
    )
    kube.create("Vpc", None, {"metadata": {"name": f"kovc-vpc-{suffix}"}, "spec": {}})
    kube.create(
        "Subnet",
        None,
        {
            "metadata": {"name": f"kovc-sub-{suffix}"},
            "spec": {"cidrBlock": "10.201.0.0/24", "protocol": "IPv4", "vpc": f"kovc-vpc-{suffix}"},
        },
    )
    kube.create(
        "IP",
        None,
        {
            "metadata": {"name": f"h-{suffix}.{ns}"},
            "spec": {
                "ipAddress": "10.201.0.9",
                "namespace": ns,
                "podName": f"h-{suffix}",
                "subnet": f"kovc-sub-{suffix}",
            },
        },
    )
    return kube


def names(kube: Kube, kind: str, namespace: str | None = None) -> set[str]:
    return {
        str(o["metadata"]["name"])
        for o in kube.list(kind, namespace)
        if not o["metadata"].get("deletionTimestamp")
    }


def test_cleanup_one_run_then_all(sim: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = populate(sim, "r-old1", "a1")
    other = populate(sim, "r-other", "b1")
    # a tenant's namespace and subnet without the label: never touched
    other.request("POST", "/api/v1/namespaces", body={"metadata": {"name": "tenant"}})
    other.request(
        "POST",
        "/apis/kubeovn.io/v1/subnets",
        body={
            "apiVersion": "kubeovn.io/v1",
            "kind": "Subnet",
            "metadata": {"name": "tenant-sub"},
            "spec": {"cidrBlock": "10.202.0.0/24", "protocol": "IPv4"},
        },
    )

    assert cli.main(["cleanup", "--run-id", "r-old1", "--kubeconfig", str(sim)]) == 0
    out = capsys.readouterr().out.splitlines()
    for line in (
        "deleted virtualmachine/kovc-a1/h-a1",
        "deleted pod/kovc-a1/p-a1",
        "deleted namespace/kovc-a1",
        "deleted ip/h-a1.kovc-a1",
        "deleted subnet/kovc-sub-a1",
        "deleted vpc/kovc-vpc-a1",
    ):
        assert line in out, out
    assert not any("b1" in line or "tenant" in line for line in out)
    assert out[-1] == "6 object(s) of run r-old1 deleted"
    assert "kovc-a1" not in names(old, "Namespace")
    assert {"kovc-b1", "tenant"} <= names(old, "Namespace")
    assert names(old, "Subnet") >= {"kovc-sub-b1", "tenant-sub"} and "kovc-sub-a1" not in names(old, "Subnet")
    assert "kovc-vpc-a1" not in names(old, "Vpc") and "h-a1.kovc-a1" not in names(old, "IP")

    assert cli.main(["cleanup", "--all", "--kubeconfig", str(sim)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "deleted namespace/kovc-b1" in out and "deleted subnet/kovc-sub-b1" in out
    assert {"tenant"} <= names(old, "Namespace") and "kovc-b1" not in names(old, "Namespace")
    assert "tenant-sub" in names(old, "Subnet")
    remaining = [
        o["metadata"]["name"]
        for kind in ("Namespace", "Subnet", "Vpc", "IP")
        for o in old.list(kind, None, label_selector=RUN_LABEL)
        if not o["metadata"].get("deletionTimestamp")
    ]
    assert remaining == []

    assert cli.main(["cleanup", "--run-id", "r-old1", "--kubeconfig", str(sim)]) == 0
    assert capsys.readouterr().out.strip() == f"nothing labelled {RUN_LABEL}=r-old1 left (run r-old1)"
    old.close()
    other.close()


def test_cleanup_needs_a_run_id_or_all(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["cleanup"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--run-id" in err[0]


def test_cleanup_bad_kubeconfig_and_unreachable_api(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken"
    broken.write_text("clusters: [unterminated\n")
    assert cli.main(["cleanup", "--all", "--kubeconfig", str(broken)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not valid YAML" in err[0]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    unreachable = tmp_path / "unreachable"
    unreachable.write_text(
        yaml.safe_dump(
            {
                "current-context": "c",
                "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "users": [{"name": "u", "user": {}}],
            }
        )
    )
    assert cli.main(["cleanup", "--run-id", "r-1", "--kubeconfig", str(unreachable)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unreachable" in err[0] and str(port) in err[0]
