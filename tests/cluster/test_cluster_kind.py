"""``--backend kind`` end to end with stand-in kind/helm/docker and a simulated cluster behind them."""

from __future__ import annotations

import http.server
import json
import os
import re
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from cluster_helpers import (
    StandIns,
    kubectl,
    kubevirt_operator_yaml,
    needs_world,
    serve_sim,
    start_controller_manager,
    stop_process,
    write_manifests_dir,
)

from conformance import versions
from conformance.cluster import install
from conformance.cluster import kind as kind_module
from conformance.cluster.base import BackendError
from conformance.cluster.images import RunVersions
from conformance.cluster.kind import KindBackend, parse_kind_version

LOADABLE = 11  # every image of `kovc images` but the node image


def options(**kw: Any) -> SimpleNamespace:
    base: dict[str, Any] = {"kube_ovn_version": None, "kubevirt_version": None, "k8s_version": None,
                            "keep_cluster": False, "kind_bin": None, "cluster_name": "kovc", "kind_image": None,
                            "manifests_dir": None, "kind_kubectl_bin": None}
    base.update(kw)
    return SimpleNamespace(**base)


def backend(**kw: Any) -> tuple[KindBackend, list[str]]:
    lines: list[str] = []
    return KindBackend(options(**kw), log=lines.append), lines


# -- plan ------------------------------------------------------------------------------------------


def test_plan_shows_everything_and_touches_nothing(standins: StandIns, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    b, _ = backend(manifests_dir=str(tmp_path / "m"))
    lines = b.plan()
    text = "\n".join(lines)
    assert list(cwd.iterdir()) == [] and standins.calls() == [], "plan must not run or write anything"
    assert f"Kube-OVN {versions.KUBE_OVN_VERSION}" in text and f"KubeVirt {versions.KUBEVIRT_VERSION}" in text
    assert f"kind {versions.KIND_MIN_VERSION} (Kube-OVN v1.15.24 and v1.16.2 CI" in text
    assert f": kind on PATH ({standins.kind})" in text
    for step in ("preflight", "create-cluster", "preload-images", "untaint-control-plane", "label-masters",
                 "label-vm-nodes", "kube-ovn", "cert-manager", "webhook", "kvm-check", "kubevirt", "detect",
                 "teardown"):
        assert any(line.lstrip().split(" ", 1)[1].startswith(f"{step}:") for line in lines if ". " in line), step
    assert "helm upgrade --install kubeovn charts/kube-ovn-v2" in text and "[Snapshot]" in text
    assert f"  docker.io/kubeovn/kube-ovn:{versions.KUBE_OVN_VERSION}  (kube-ovn, kube-ovn-webhook)" in lines
    assert f"(from --manifests-dir {tmp_path / 'm'})" in text
    config_at = lines.index("kind config (clusters/kind-config.yaml, rendered):")
    rendered = yaml.safe_load("\n".join(line[2:] for line in lines[config_at + 1:]))
    assert rendered["networking"]["disableDefaultCNI"] is True
    assert rendered["networking"]["podSubnet"] == "10.16.0.0/16"
    assert [n["role"] for n in rendered["nodes"]] == ["control-plane", "worker", "worker"]
    assert {n["image"] for n in rendered["nodes"]} == {versions.KIND_NODE_IMAGE}


def test_plan_follows_versions_and_install_path(standins: StandIns, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIND_VERSION", "v0.32.0")
    b, _ = backend(kube_ovn_version="v1.13.15", kubevirt_version="v1.3.1", k8s_version="v1.33.1",
                   keep_cluster=True)
    text = "\n".join(b.plan())
    assert "dist/images/install.sh of v1.13.15" in text and "helm upgrade" not in text
    assert "kindest/node:v1.33.1" in text and "quay.io/kubevirt/virt-launcher:v1.3.1" in text
    assert "KIND_VERSION=v0.32.0 (downloaded by pytest-kind)" in text and "kept (--keep-cluster)" in text


@pytest.mark.parametrize(("kw", "needle"), [
    ({"kube_ovn_version": "v1.16.9"}, "unknown Kube-OVN version v1.16.9"),
    ({"kubevirt_version": "v2.0.0"}, "unknown KubeVirt version v2.0.0"),
    ({"k8s_version": "1.35"}, "malformed Kubernetes version"),
])
def test_plan_refuses_unknown_versions(kw: dict[str, str], needle: str) -> None:
    with pytest.raises(BackendError) as err:
        backend(**kw)[0].plan()
    assert needle in str(err.value) and "\n" not in str(err.value)


# -- preflight: nothing is created when something is missing --------------------------------------


def _created(standins: StandIns) -> list[list[str]]:
    return [c for c in standins.calls("kind") if c[:2] == ["create", "cluster"]]


def test_old_kind_is_refused_naming_the_minimum(standins: StandIns, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOVC_STANDIN_KIND_VERSION", "kind v0.17.0 go1.19.2 linux/amd64")
    with pytest.raises(BackendError) as err:
        backend(manifests_dir=str(write_manifests_dir(tmp_path / "m")))[0].provision(tmp_path / "work")
    text = str(err.value)
    assert f"kind >= {versions.KIND_MIN_VERSION} is required" in text and "saw kind v0.17.0" in text
    assert "--kind-bin" in text and "KIND_VERSION" in text and "\n" not in text
    assert _created(standins) == []


def test_kind_version_parsing() -> None:
    assert parse_kind_version("kind v0.32.0 go1.25.1 linux/amd64") == (0, 32, 0)
    assert parse_kind_version("kind v0.33.0-alpha+4b2f go1.25") == (0, 33, 0)
    assert parse_kind_version("no version") is None


def test_missing_kind_is_refused(standins: StandIns, tmp_path: Path) -> None:
    with pytest.raises(BackendError, match=r"preflight: kind not found \(--kind-bin /nonexistent/kind\)"):
        backend(kind_bin="/nonexistent/kind")[0].provision(tmp_path / "work")
    (standins.bin_dir / "kind").unlink()
    old_path = os.environ["PATH"]
    os.environ["PATH"] = str(standins.bin_dir)
    try:
        with pytest.raises(BackendError, match=r"kind not found \(kind on PATH \(not found\)\)"):
            backend()[0].provision(tmp_path / "work")
    finally:
        os.environ["PATH"] = old_path


def test_old_kind_version_env_is_refused_without_download(standins: StandIns, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIND_VERSION", "v0.17.0")
    monkeypatch.setenv("KIND_DOWNLOAD_URL", "http://127.0.0.1:9/never")
    with pytest.raises(BackendError, match=rf"KIND_VERSION=v0\.17\.0.*kind >= {versions.KIND_MIN_VERSION}"
                       "|kind >= .* saw KIND_VERSION=v0.17.0"):
        backend()[0].provision(tmp_path / "work")
    assert not (tmp_path / "work" / ".pytest-kind" / "kovc" / "kind-v0.17.0").exists()


@pytest.fixture
def kind_download(standins: StandIns) -> Iterator[str]:
    """Serves the stand-in kind over http://127.0.0.1 as a kind release download."""
    payload = standins.kind.read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/kind-linux-amd64"
    finally:
        server.shutdown()
        server.server_close()


def test_kind_version_env_uses_the_installed_kind(standins: StandIns, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 10 item 6: with KIND_VERSION set and that very release on PATH (CI installed it), no second
    kind is downloaded; another release on PATH is not taken for it."""
    monkeypatch.setenv("KIND_VERSION", "v0.32.0")
    monkeypatch.setenv("KIND_DOWNLOAD_URL", "http://127.0.0.1:9/never")
    b, log = backend(manifests_dir=str(write_manifests_dir(tmp_path / "m")))
    tools = b.preflight(b.versions(), tmp_path / "work")
    assert tools["kind"] == str(standins.kind) and "already KIND_VERSION=v0.32.0" in tools["kind_how"]
    assert not (tmp_path / "work" / ".pytest-kind" / "kovc" / "kind-v0.32.0").exists()
    # v0.32.0 is newer than v0.31.0, the release paired with the default node image: used, with a warning
    assert any("warning: kind v0.32.0 is not v0.31.0" in line for line in log)
    monkeypatch.setenv("KOVC_STANDIN_KIND_VERSION", "kind v0.31.0 go1.25.1 linux/amd64")
    with pytest.raises(BackendError, match=re.escape("download of kind v0.32.0 from http://127.0.0.1:9/never")):
        b.preflight(b.versions(), tmp_path / "other")


def test_kind_version_env_downloads_through_pytest_kind(standins: StandIns, tmp_path: Path, kind_download: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIND_VERSION", "v0.32.0")
    monkeypatch.setenv("KIND_DOWNLOAD_URL", kind_download)
    (standins.bin_dir / "kind").unlink()  # only the download can provide it
    b, log = backend(manifests_dir=str(write_manifests_dir(tmp_path / "m")))
    tools = b.preflight(b.versions(), tmp_path / "work")
    assert tools["kind"] == str(tmp_path / "work" / ".pytest-kind" / "kovc" / "kind-v0.32.0")
    assert tools["kind_version"] == "v0.32.0" and any("downloading kind v0.32.0" in line for line in log)
    assert os.access(tools["kind"], os.X_OK)
    monkeypatch.setenv("KIND_DOWNLOAD_URL", "http://127.0.0.1:9/unreachable")
    assert b.preflight(b.versions(), tmp_path / "work")["kind"] == tools["kind"], "no second download"
    with pytest.raises(BackendError, match=re.escape("download of kind v0.32.0 from http://127.0.0.1:9/unreachable")):
        b.preflight(b.versions(), tmp_path / "other")


def test_missing_helm_kubectl_or_files_stop_before_creation(standins: StandIns, tmp_path: Path) -> None:
    mdir = write_manifests_dir(tmp_path / "m")
    with pytest.raises(BackendError, match=r"preflight: kubectl not found \(/nonexistent/kubectl\)"):
        backend(manifests_dir=str(mdir), kind_kubectl_bin="/nonexistent/kubectl")[0].provision(tmp_path / "w1")
    (mdir / "kubevirt-cr.yaml").unlink()
    with pytest.raises(BackendError, match=r"lacks kubevirt-cr\.yaml \(`kovc images --manifests`"):
        backend(manifests_dir=str(mdir))[0].provision(tmp_path / "w2")
    (standins.bin_dir / "helm").unlink()
    path = os.environ["PATH"]
    os.environ["PATH"] = os.pathsep.join(p for p in path.split(os.pathsep) if not (Path(p) / "helm").exists())
    try:
        with pytest.raises(BackendError, match=r"preflight: helm not found .*chart v2"):
            backend(manifests_dir=str(write_manifests_dir(tmp_path / "m2")))[0].provision(tmp_path / "w3")
    finally:
        os.environ["PATH"] = path
    assert _created(standins) == []


# -- the full path: create -> install -> detect -> teardown ----------------------------------------


@needs_world
def test_full_path_with_chart_v2(standins: StandIns, manifests_dir: Path, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    present = f"docker.io/kubeovn/kube-ovn:{versions.KUBE_OVN_VERSION}"
    unpullable = f"quay.io/kubevirt/virt-handler:{versions.KUBEVIRT_VERSION}"
    monkeypatch.setenv("KOVC_STANDIN_DOCKER_PRESENT", present)
    monkeypatch.setenv("KOVC_STANDIN_DOCKER_UNPULLABLE", unpullable)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    b, log = backend(manifests_dir=str(manifests_dir))
    info = b.provision(tmp_path / "work")
    work = (tmp_path / "work").resolve()

    assert info.backend == "kind" and info.simulated is True
    assert info.kubeconfig == str(work / "kubeconfig")
    assert info.versions.kube_ovn_controller == info.versions.kube_ovn_webhook == versions.KUBE_OVN_VERSION
    assert info.versions.kubevirt == versions.KUBEVIRT_VERSION
    assert info.versions.kind_node_image == versions.KIND_NODE_IMAGE
    assert info.webhook_configuration == "kube-ovn-webhook" and info.keep_vm_ip is True
    assert info.extra["created"] is True and info.extra["reused"] is False
    assert info.extra["use_emulation"] is True and len(info.extra["nodes_without_kvm"]) == 3
    assert info.extra["kube_ovn_install"].startswith("Helm chart v2")
    assert info.extra["not_preloaded_images"] == [unpullable]
    assert len(info.extra["preloaded_images"]) == LOADABLE - 1
    assert list(cwd.iterdir()) == [], "nothing written into the working directory"

    kind_calls = standins.calls("kind")
    create = _created(standins)
    assert len(create) == 1 and "--name=kovc" in create[0]
    assert f"--image={versions.KIND_NODE_IMAGE}" in create[0]
    config = yaml.safe_load(Path(create[0][create[0].index("--config") + 1]).read_text())
    assert config["networking"]["disableDefaultCNI"] is True and len(config["nodes"]) == 3
    loads = [c[-1] for c in kind_calls if c[:2] == ["load", "docker-image"]]
    assert present in loads and unpullable not in loads and len(loads) == LOADABLE - 1
    docker = standins.calls("docker")
    assert ["pull", present] not in docker and ["pull", unpullable] in docker
    nodes = sorted(c[1] for c in docker if c[0] == "exec")
    assert nodes == sorted(info.extra["nodes"]) and len(nodes) == 3
    helm = standins.calls("helm")
    assert len(helm) == 1 and helm[0][:3] == ["upgrade", "--install", "kubeovn"]
    assert helm[0][3].endswith("charts/kube-ovn-v2")
    assert f"global.images.kubeovn.tag={versions.KUBE_OVN_VERSION}" in helm[0] and "--wait" in helm[0]
    assert helm[0][helm[0].index("--values") + 1].endswith("clusters/kube-ovn-values-v2.yaml")

    kc = Path(info.kubeconfig)
    kv = json.loads(kubectl(kc, "-n", "kubevirt", "get", "kubevirt", "kubevirt", "-o", "json").stdout)
    dev = kv["spec"]["configuration"]["developerConfiguration"]
    assert dev["useEmulation"] is True and "Snapshot" in dev["featureGates"]
    assert kv["spec"]["infra"]["replicas"] == 1
    assert kv["spec"]["workloads"]["nodePlacement"]["nodeSelector"] == {"kovc.io/vm-node": "true"}
    vm_nodes = kubectl(kc, "get", "nodes", "-l", "kovc.io/vm-node=true", "-o", "name").stdout.split()
    assert sorted(m.split("/")[1] for m in vm_nodes) == info.extra["vm_nodes"] and len(vm_nodes) == 2
    assert not set(info.extra["vm_nodes"]) & set(info.extra["kube_ovn_masters"]), "the control plane is no VM node"
    assert set(info.extra["preload"].values()) == {"kind load docker-image", "not preloaded (pull failed)"}
    assert any(line == f"{present}: loaded via kind load docker-image" for line in log)
    operator = json.loads(kubectl(kc, "-n", "kubevirt", "get", "deployment", "virt-operator", "-o",
                                  "json").stdout)
    assert operator["spec"]["replicas"] == 1
    webhook = json.loads(kubectl(kc, "-n", "kube-system", "get", "deployment", "kube-ovn-webhook", "-o",
                                 "json").stdout)
    assert webhook["spec"]["template"]["spec"]["containers"][0]["image"] == present, "image rewritten"
    masters = kubectl(kc, "get", "nodes", "-l", "kube-ovn/role=master", "-o", "name").stdout.split()
    assert [m.split("/")[1] for m in masters] == info.extra["kube_ovn_masters"] and len(masters) == 1
    for name in ("cert-manager", "cert-manager-cainjector", "cert-manager-webhook"):
        kubectl(kc, "-n", "cert-manager", "get", "deployment", name)
    assert any("installing KubeVirt" in line and "software emulation" in line for line in log)

    b.teardown(info)
    assert ["delete", "cluster", "--name=kovc", f"--kubeconfig={kc}"] in standins.calls("kind")
    assert standins.running_clusters() == []


def test_preload_falls_back_to_image_archive(standins: StandIns, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Docker 29's containerd image store: `kind load docker-image` fails (kind#3795/#4066); as upstream's
    kind.mk, docker save + `kind load image-archive` follows, and the run log names the path."""
    monkeypatch.setenv("KOVC_STANDIN_KIND_FAIL", "load docker-image")
    b, log = backend()
    v = RunVersions.resolve(None, None)
    cluster = b._cluster({"kind": str(standins.kind), "kubectl": "kubectl"}, tmp_path / "kc", tmp_path, None)
    extra: dict[str, Any] = {}
    b.preload_images(v, cluster, "docker", extra, tmp_path)
    assert len(extra["preloaded_images"]) == LOADABLE and extra["not_preloaded_images"] == []
    assert all(p.startswith("docker save + kind load image-archive (`kind load docker-image` exited 1)")
               for p in extra["preload"].values()), extra["preload"]
    archives = [c for c in standins.calls("kind") if c[:2] == ["load", "image-archive"]]
    assert len(archives) == LOADABLE and all(c[-1] == "--name=kovc" for c in archives)
    saves = [c for c in standins.calls("docker") if c[0] == "save"]
    assert sorted(c[-1] for c in saves) == sorted(extra["preload"])
    assert sum("loaded via docker save + kind load image-archive" in line for line in log) == LOADABLE
    assert not list((tmp_path / "image-archives").iterdir()), "archives are removed once loaded"


@needs_world
def test_preload_ctr_import_and_kvm_only_for_root(standins: StandIns, manifests_dir: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Both kind paths fail: `ctr -n k8s.io images import` on every node. /dev/kvm that only root can open
    (virt-launcher's QEMU runs as uid 107) means emulation, and the reason is recorded."""
    image = f"docker.io/kubeovn/kube-ovn:{versions.KUBE_OVN_VERSION}"
    monkeypatch.setattr(kind_module, "run_images", lambda v: [
        SimpleNamespace(image=image, loadable=True, components=["kube-ovn"])])
    monkeypatch.setenv("KOVC_STANDIN_KIND_FAIL", "load docker-image,load image-archive")
    monkeypatch.setenv("KOVC_STANDIN_KVM", "root-only")
    b, log = backend(manifests_dir=str(manifests_dir))
    info = b.provision(tmp_path / "work")
    try:
        nodes = sorted(info.extra["nodes"])
        ctr = [c for c in standins.calls("docker") if c[:2] == ["exec", "-i"]]
        assert sorted(c[2] for c in ctr) == nodes and all(c[3:] == ["ctr", "-n", "k8s.io", "images", "import", "-"]
                                                          for c in ctr)
        assert info.extra["preload"][image].startswith("ctr -n k8s.io images import on 3 node(s)")
        assert any(line.startswith(f"{image}: loaded via ctr") for line in log)
        assert info.extra["use_emulation"] is True and sorted(info.extra["kvm_check"]) == nodes
        assert all("not usable read-write by uid 107" in why and "Permission denied" in why
                   for why in info.extra["kvm_check"].values())
        assert info.extra["kubevirt_use_emulation"] is True
    finally:
        b.teardown(info)


@needs_world
def test_install_sh_path_and_kvm_present(standins: StandIns, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kind_module, "run_images", lambda v: [])  # preloading is tested above
    version = "v1.13.15"
    monkeypatch.setenv("KOVC_STANDIN_SIM_ARGS", f"--kube-ovn-version {version}")
    monkeypatch.setenv("KOVC_STANDIN_KVM", "1")
    mdir = write_manifests_dir(tmp_path / "m", version, chart=False)
    b, _ = backend(kube_ovn_version=version, manifests_dir=str(mdir), keep_cluster=True)
    info = b.provision(tmp_path / "work")
    assert info.versions.kube_ovn_webhook == version and info.extra["use_emulation"] is False
    assert standins.calls("helm") == []
    assert standins.calls("install.sh") == [[f"kube-ovn {version}", "keep-vm-ip true"]]
    assert not (standins.state / "install-sh-wrote-into-the-host").exists()
    kv = json.loads(kubectl(Path(info.kubeconfig), "-n", "kubevirt", "get", "kubevirt", "kubevirt", "-o",
                            "json").stdout)
    assert kv["spec"]["configuration"]["developerConfiguration"]["useEmulation"] is False
    b.teardown(info)  # --keep-cluster: left running
    assert standins.running_clusters() == ["kovc"]
    assert not any(c[:2] == ["delete", "cluster"] for c in standins.calls("kind"))

    # A second run reuses the kept cluster and never deletes it.
    b2, log = backend(kube_ovn_version=version, manifests_dir=str(mdir))
    info2 = b2.provision(tmp_path / "work2")
    assert info2.extra["reused"] is True and info2.extra["created"] is False
    assert len(_created(standins)) == 1 and any("reusing kind cluster kovc" in line for line in log)
    export = ["export", "kubeconfig", "--name=kovc", f"--kubeconfig={info2.kubeconfig}"]
    assert export in standins.calls("kind")
    b2.teardown(info2)
    assert standins.running_clusters() == ["kovc"]


@needs_world
def test_install_failure_deletes_the_cluster(standins: StandIns, manifests_dir: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kind_module, "run_images", lambda v: [])  # preloading is tested above
    monkeypatch.setenv("KOVC_STANDIN_HELM_FAIL", "1")
    with pytest.raises(BackendError) as err:
        backend(manifests_dir=str(manifests_dir))[0].provision(tmp_path / "work")
    text = str(err.value)
    assert text.startswith("kube-ovn: helm release kubeovn (chart kube-ovn-v2 ")
    logs = (tmp_path / "work" / "kind-logs").resolve()
    assert "exited 1: Error: INSTALLATION FAILED" in text
    assert text.endswith(f"(kind cluster kovc deleted; cluster logs in {logs})")
    assert "\n" not in text
    calls = standins.calls("kind")
    assert ["export", "logs", str(logs), "--name=kovc"] in calls
    assert any(c[:2] == ["delete", "cluster"] for c in calls) and standins.running_clusters() == []


@needs_world
def test_install_failure_with_keep_cluster_keeps_it(standins: StandIns, manifests_dir: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kind_module, "run_images", lambda v: [])  # preloading is tested above
    monkeypatch.setenv("KOVC_STANDIN_HELM_FAIL", "1")
    with pytest.raises(BackendError,
                       match=r"\(kind cluster kovc kept: --keep-cluster; cluster logs in \S+/kind-logs\)$"):
        backend(manifests_dir=str(manifests_dir), keep_cluster=True)[0].provision(tmp_path / "work")
    assert standins.running_clusters() == ["kovc"]


@needs_world
def test_interrupt_during_install_deletes_the_cluster(standins: StandIns, manifests_dir: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kind_module, "run_images", lambda v: [])  # preloading is tested above
    def interrupted(self: install.Installer) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(install.Installer, "untaint_control_plane", interrupted)
    with pytest.raises(KeyboardInterrupt):
        backend(manifests_dir=str(manifests_dir))[0].provision(tmp_path / "work")
    assert standins.running_clusters() == []

    def broken(self: install.Installer) -> None:
        raise ValueError("boom\nsecond line")

    monkeypatch.setattr(install.Installer, "untaint_control_plane", broken)
    with pytest.raises(BackendError, match=r"^kind backend: ValueError: boom second line \(kind cluster kovc "
                                           r"deleted; cluster logs in \S+/work2/kind-logs\)$"):
        backend(manifests_dir=str(manifests_dir))[0].provision(tmp_path / "work2")
    assert standins.running_clusters() == []


def test_kind_create_load_and_delete_failures(standins: StandIns, manifests_dir: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOVC_STANDIN_KIND_FAIL", "create")
    with pytest.raises(BackendError,
                       match=r"^create-cluster: kind cluster kovc: `kind create cluster` exited 1"):
        backend(manifests_dir=str(manifests_dir))[0].provision(tmp_path / "w1")
    assert any(c[:2] == ["delete", "cluster"] for c in standins.calls("kind")), "a half-created cluster goes"
    monkeypatch.setenv("KOVC_STANDIN_KIND_FAIL", "load")
    monkeypatch.setenv("KOVC_STANDIN_CTR_FAIL", "1")
    with pytest.raises(BackendError, match=r"^preload-images: \S+ on node kovc-\S+: `docker exec -i \S+ ctr -n "
                                           r"k8s.io images import -` exited 1: ctr: failed to import"):
        backend(manifests_dir=str(manifests_dir), cluster_name="other")[0].provision(tmp_path / "w2")
    assert standins.running_clusters() == []
    monkeypatch.setenv("KOVC_STANDIN_KIND_FAIL", "delete")
    b, _ = backend()
    info = SimpleNamespace(kubeconfig=str(tmp_path / "kc"), extra={
        "cluster_name": "kovc", "created": True, "keep_cluster": False, "kind_bin": str(standins.kind),
        "kubectl_bin": "kubectl", "workdir": str(tmp_path)})
    with pytest.raises(BackendError, match=r"^teardown: kind cluster kovc: `kind delete cluster` failed"):
        b.teardown(info)  # type: ignore[arg-type]
    info.extra["created"] = False
    b.teardown(info)  # type: ignore[arg-type]  # a cluster the run did not create is left alone


# -- installer checks against a served simulated cluster (no kind needed) ---------------------------


@pytest.fixture
def installer_for(tmp_path: Path) -> Iterator[Callable[..., install.Installer]]:
    """Builds an Installer against a fresh simulated cluster (with the stand-in controller manager)."""
    procs: list[subprocess.Popen[bytes]] = []
    apis: list[install.Installer] = []

    def make(kube_ovn: str | None = None, kubevirt: str | None = None, mdir: Path | None = None,
             sim_args: tuple[str, ...] = ()) -> install.Installer:
        root = tmp_path / f"i{len(procs)}"
        root.mkdir()
        sim = serve_sim(root, *sim_args)
        procs.append(sim.proc)
        procs.append(start_controller_manager(sim.kubeconfig, root / "cm.log"))
        v = RunVersions.resolve(kube_ovn, kubevirt)
        mdir = mdir or write_manifests_dir(root / "m", v.kube_ovn, v.kubevirt)
        inst = install.Installer(v, kubeconfig=sim.kubeconfig, workdir=root / "work",
                                 sources=install.Sources(v, root / "work", mdir), log=lambda line: None)
        apis.append(inst)
        return inst

    try:
        yield make
    finally:
        for inst in apis:
            inst.close()
        for proc in procs:
            stop_process(proc)


@needs_world
def test_webhook_image_check_catches_a_wrong_running_tag(installer_for: Callable[..., install.Installer]) -> None:
    # The cluster's webhook pods run v1.16.2 while the run asks for v1.15.0: the check must notice. (Not
    # through install_webhook: the simulated cluster now rolls the applied image out, as a real one does -
    # conformance/sim/upgrade.py - so the pods would run v1.15.0 afterwards.)
    inst = installer_for("v1.15.0")
    with pytest.raises(BackendError) as err:
        inst.check_webhook_image("webhook")
    assert str(err.value) == ("webhook: running pods of Deployment kube-system/kube-ovn-webhook: expected the "
                              "kube-ovn-webhook container's image tag v1.15.0, saw "
                              "docker.io/kubeovn/kube-ovn:v1.16.2")
    assert inst.warnings == []


@needs_world
def test_kubevirt_version_checks(installer_for: Callable[..., install.Installer], tmp_path: Path) -> None:
    mdir = write_manifests_dir(tmp_path / "m")
    (mdir / "kubevirt-operator.yaml").write_text(kubevirt_operator_yaml("v1.7.0"))
    with pytest.raises(BackendError, match=r"kubevirt: .*kubevirt-operator\.yaml: expected "
                                           r"virt-operator:v1\.8\.1, the file deploys virt-operator:v1\.7\.0"):
        installer_for(mdir=mdir).install_kubevirt(use_emulation=True)
    # Operator file and request agree on v1.7.0, but the cluster reports v1.8.1.
    with pytest.raises(BackendError, match=r"kubevirt: KubeVirt kubevirt/kubevirt: expected "
                                           r"observedKubeVirtVersion v1\.7\.0, saw v1\.8\.1"):
        installer_for(kubevirt="v1.7.0", mdir=mdir).install_kubevirt(use_emulation=False)


@needs_world
def test_step_failures_name_step_object_and_what_was_seen(installer_for: Callable[..., install.Installer],
                                                          tmp_path: Path) -> None:
    inst = installer_for()
    assert inst.kubectl_json("get", "nodes", step="s", obj="nodes")["items"]
    real_kubectl, inst.kubectl_bin = inst.kubectl_bin, "echo"
    with pytest.raises(BackendError, match=r"^s: o: kubectl printed no JSON: get nodes -o json$"):
        inst.kubectl_json("get", "nodes", step="s", obj="o")
    inst.kubectl_bin = real_kubectl
    kubectl(inst.kubeconfig, "label", "node", "--all", "node-role.kubernetes.io/control-plane-")
    with pytest.raises(BackendError, match=r"^label-masters: nodes: expected a control-plane node"):
        inst.label_masters()
    kubectl(inst.kubeconfig, "taint", "node", "--all", "node-role.kubernetes.io/control-plane:NoSchedule")
    assert sorted(inst.untaint_control_plane()) == sorted(
        n["metadata"]["name"] for n in inst.kubectl_json("get", "nodes", step="s", obj="o")["items"])
    kubectl(inst.kubeconfig, "delete", "validatingwebhookconfiguration", "kube-ovn-webhook")
    with pytest.raises(BackendError, match=r"^webhook: ValidatingWebhookConfiguration: expected an entry "):
        inst.check_webhook_image("webhook")
    tree = inst.sources.kube_ovn_tree("kube-ovn")
    (tree / "yamls" / "webhook.yaml").unlink()
    with pytest.raises(BackendError, match=r"^webhook: .*yamls/webhook\.yaml not found"):
        inst.install_webhook()
    (tree / "charts" / "kube-ovn-v2" / "Chart.yaml").unlink()
    with pytest.raises(BackendError, match=r"^kube-ovn: chart .*kube-ovn-v2: no Chart\.yaml"):
        inst.install_kube_ovn()


@needs_world
def test_apply_waits_for_a_starting_admission_webhook(installer_for: Callable[..., install.Installer],
                                                      tmp_path: Path) -> None:
    """Right after cert-manager's rollout its webhook may not serve yet: the apply is retried."""
    inst = installer_for()
    marker = tmp_path / "failed-once"
    wrapper = tmp_path / "kubectl-wrapper"
    wrapper.write_text(f"""#!/bin/sh
if [ "$1" = "apply" ] && [ ! -e {marker} ]; then
  touch {marker}
  echo 'Error from server (InternalError): error when creating "webhook.yaml": Internal error occurred: \
failed calling webhook "webhook.cert-manager.io": connect: connection refused' >&2
  exit 1
fi
exec kubectl "$@"
""")
    wrapper.chmod(0o755)
    inst.kubectl_bin = str(wrapper)
    inst.install_webhook()
    assert marker.exists()
    (tmp_path / "broken.yaml").write_text("kind: Nonsense\n")
    with pytest.raises(BackendError, match=r"^s: o: `kubectl-wrapper apply -f .*broken\.yaml` exited 1"):
        inst.apply_file(tmp_path / "broken.yaml", step="s", obj="o")  # any other error: at once
