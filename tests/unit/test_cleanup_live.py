"""Issue 9 item 7: ``kovc cleanup --all`` never destroys a live run (heartbeat; ``--force`` overrides)
nor anything kovc did not create (namespaces only with kovc's creation marker); ``--dry-run`` lists
what it would delete and deletes nothing; ``kovc cleanup --help`` documents it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conformance import CREATED_ANNOTATION, RUN_LABEL, cli
from conformance.heartbeat import HEARTBEAT_ANNOTATION, Heartbeat, namespace_name, now_stamp
from conformance.kube import Kube
from conformance.sim.cluster import SimCluster
from conformance.sim.config import SimConfig

POD = {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Path]:
    with SimCluster(SimConfig()) as cluster:
        yield cluster.write_kubeconfig(tmp_path / "kubeconfig")


def present(kube: Kube, kind: str, namespace: str | None = None) -> set[str]:
    return {str(o["metadata"]["name"]) for o in kube.list(kind, namespace)
            if not o["metadata"].get("deletionTimestamp")}


_CIDRS = iter(range(100, 250))


def kovc_run_objects(kubeconfig: Path, run_id: str, *, beat_age_s: float | None) -> Kube:
    """What a kovc run leaves: a namespace with a pod, a Subnet, and (unless None) its heartbeat
    renewed ``beat_age_s`` seconds ago."""
    kube = Kube(str(kubeconfig), None, run_id=run_id)
    kube.create_namespace(f"kovc-{run_id}")
    kube.create("Pod", f"kovc-{run_id}", {"metadata": {"name": "p"}, **POD})
    kube.create("Subnet", None, {"metadata": {"name": f"sub-{run_id}"},
                                 "spec": {"cidrBlock": f"10.{next(_CIDRS)}.0.0/24", "protocol": "IPv4"}})
    if beat_age_s is not None:
        Heartbeat(kube, run_id).beat()
        stamp = now_stamp(datetime.now(UTC) - timedelta(seconds=beat_age_s))
        kube.patch("Namespace", None, namespace_name(run_id), {"metadata": {"annotations": {
            HEARTBEAT_ANNOTATION: stamp}}})
    return kube


def cleanup(capsys: pytest.CaptureFixture[str], kubeconfig: Path, *args: str) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = cli.main(["cleanup", *args, "--kubeconfig", str(kubeconfig)])
    return code, capsys.readouterr().out.splitlines()


def test_kovc_marks_what_it_creates(sim: Path) -> None:
    kube = kovc_run_objects(sim, "r-mark", beat_age_s=0)
    for kind, name in (("Namespace", "kovc-r-mark"), ("Subnet", "sub-r-mark"), ("Namespace", "kovc-run-r-mark")):
        obj = kube.get(kind, None, name)
        assert obj is not None and obj["metadata"]["annotations"][CREATED_ANNOTATION] == "r-mark", obj
    kube.close()


def test_all_leaves_a_users_labelled_namespace_and_its_pod(sim: Path, capsys: pytest.CaptureFixture[str]) -> None:
    user = Kube(str(sim), None, run_id="user")
    # a user's namespace that happens to carry the label (no creation marker), with an unlabelled pod
    user.request("POST", "/api/v1/namespaces", body={"metadata": {"name": "team-a", "labels": {RUN_LABEL: "x"}}})
    user.request("POST", "/api/v1/namespaces/team-a/pods", body={"metadata": {"name": "db"}, **POD})
    # and a labelled pod in a plain namespace
    user.request("POST", "/api/v1/namespaces", body={"metadata": {"name": "team-b"}})
    user.request("POST", "/api/v1/namespaces/team-b/pods",
                 body={"metadata": {"name": "web", "labels": {RUN_LABEL: "x"}}, **POD})
    dead = kovc_run_objects(sim, "r-dead", beat_age_s=3600)

    code, out = cleanup(capsys, sim, "--all")
    assert code == 0
    assert "team-a" in present(user, "Namespace") and "db" in present(user, "Pod", "team-a")
    assert "web" in present(user, "Pod", "team-b")
    assert any(line.startswith("skipped namespace/team-a: labelled kovc.io/run=x but not created by kovc")
               for line in out), out
    assert any(line.startswith("skipped pod/team-b/web:") for line in out), out
    # what kovc created is gone, the stale heartbeat last
    assert "kovc-r-dead" not in present(dead, "Namespace") and "sub-r-dead" not in present(dead, "Subnet")
    assert out.index("deleted namespace/kovc-run-r-dead") > out.index("deleted namespace/kovc-r-dead")
    user.close()
    dead.close()


def test_all_skips_a_live_run_unless_forced(sim: Path, capsys: pytest.CaptureFixture[str]) -> None:
    live = kovc_run_objects(sim, "r-live", beat_age_s=5)
    stale = kovc_run_objects(sim, "r-stale", beat_age_s=600)
    code, out = cleanup(capsys, sim, "--all")
    assert code == 0
    assert any(line.startswith("skipped run r-live: live (heartbeat") for line in out), out
    assert {"kovc-r-live", "kovc-run-r-live"} <= present(live, "Namespace")
    assert "p" in present(live, "Pod", "kovc-r-live") and "sub-r-live" in present(live, "Subnet")
    assert not {"kovc-r-stale", "kovc-run-r-stale"} & present(live, "Namespace")
    assert not any("r-live" in line for line in out if line.startswith("deleted"))

    code, out = cleanup(capsys, sim, "--all", "--stale-after", "1")  # its heartbeat is 5 s old: stale now
    assert any("kovc-r-live" in line for line in out if line.startswith("deleted")), out
    live.close()
    stale.close()


def test_force_deletes_a_live_run(sim: Path, capsys: pytest.CaptureFixture[str]) -> None:
    live = kovc_run_objects(sim, "r-live2", beat_age_s=1)
    code, out = cleanup(capsys, sim, "--all", "--force")
    assert code == 0
    assert any(line.startswith("warning: run r-live2 is live") for line in out), out
    assert "kovc-r-live2" not in present(live, "Namespace")
    live.close()


def test_dry_run_lists_and_deletes_nothing(sim: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kube = kovc_run_objects(sim, "r-dry", beat_age_s=900)
    before = present(kube, "Namespace"), present(kube, "Subnet"), present(kube, "Pod", "kovc-r-dry")
    code, out = cleanup(capsys, sim, "--run-id", "r-dry", "--dry-run")
    assert code == 0
    for line in ("would delete pod/kovc-r-dry/p", "would delete namespace/kovc-r-dry",
                 "would delete subnet/sub-r-dry", "would delete namespace/kovc-run-r-dry"):
        assert line in out, out
    assert out[-1] == "4 object(s) of run r-dry would be deleted (--dry-run: nothing deleted)"
    assert (present(kube, "Namespace"), present(kube, "Subnet"), present(kube, "Pod", "kovc-r-dry")) == before
    kube.close()


def test_help_documents_live_runs_markers_and_dry_run(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["cleanup", "--help"])
    text = capsys.readouterr().out
    for fragment in ("--dry-run", "--force", "--stale-after", "heartbeat", CREATED_ANNOTATION, "live runs:",
                     "exit codes:"):
        assert fragment in text, fragment


def test_run_help_lists_exit_codes_and_signals(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for fragment in ("exit codes:", "0 conformant", "1 non-conformant", "2 invalid", "3 incomplete",
                     "SIGTERM", "SIGHUP", "<DIR>.previous"):
        assert fragment in text, fragment
