"""Issue 14 on the kind backend: ``--ip-family dual`` and ``--multus`` (Multus only: the attachment
scenarios bring their own NetworkAttachmentDefinition and Subnet) - with stand-in programs, offline, no
Docker."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from cluster_helpers import MULTUS_YML, StandIns, kubectl, needs_world, write_manifests_dir

from conformance import versions
from conformance.cli import main
from conformance.cluster import kind as kind_module
from conformance.cluster import network
from conformance.cluster.base import BackendError
from conformance.cluster.images import RunVersions, run_images, run_manifests
from conformance.cluster.install import Installer, Sources
from conformance.cluster.kind import KindBackend, render_kind_config

MULTUS_IMAGE = "ghcr.io/k8snetworkplumbingwg/multus-cni:v4.2.4-thick"


def options(**kw: Any) -> SimpleNamespace:
    base: dict[str, Any] = {"kube_ovn_version": None, "kubevirt_version": None, "k8s_version": None,
                            "keep_cluster": False, "kind_bin": None, "cluster_name": "kovc", "kind_image": None,
                            "manifests_dir": None, "kind_kubectl_bin": None, "ip_family": "ipv4", "multus": False}
    base.update(kw)
    return SimpleNamespace(**base)


def _config(lines: list[str]) -> dict[str, Any]:
    at = lines.index("kind config (clusters/kind-config.yaml, rendered):")
    doc = yaml.safe_load("\n".join(line[2:] for line in lines[at + 1:] if line.startswith("  ")))
    assert isinstance(doc, dict)
    return doc


# -- plan ------------------------------------------------------------------------------------------


def test_plan_shows_the_dual_stack_cluster_and_the_multus_install(standins: StandIns, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    lines = KindBackend(options(ip_family="dual", multus=True), log=lambda _l: None).plan()
    text = "\n".join(lines)
    assert standins.calls() == [] and list(tmp_path.iterdir()) == [tmp_path / "bin"], "plan runs and writes nothing"
    steps = [line.split(". ", 1)[1].split(":", 1)[0] for line in lines if line.startswith("  ") and ". " in line
             and line.strip().split(".", 1)[0].isdigit()]
    assert steps == ["preflight", "create-cluster", "preload-images", "untaint-control-plane", "label-masters",
                     "label-vm-nodes", "kube-ovn", "dual-stack", "cert-manager", "webhook", "multus",
                     "kvm-check", "kubevirt", "detect", "teardown"]
    assert "--values clusters/kube-ovn-values-v2-dual.yaml (stack Dual)" in text
    assert ("multus-daemonset-thick.yml with :snapshot-thick rewritten to :v4.2.4-thick; kubectl apply; wait CRD "
            "network-attachment-definitions.k8s.cni.cncf.io Established (where the cluster serves CRDs; the attachment "
            "scenarios create their own NetworkAttachmentDefinition and Subnet); kubectl -n "
            "kube-system set resources ds/kube-multus-ds -c kube-multus --limits=cpu=200m,memory=200Mi; rollout "
            "status ds/kube-multus-ds") in text
    assert "makefiles/kind.mk L501-505 at v1.16.2" in text
    assert "kovc-attach" not in text and "attachment-network" not in text, "--multus installs no NAD of its own"
    assert f"  {MULTUS_IMAGE}  (multus)" in lines
    assert ("  multus-daemonset-thick.yml  https://raw.githubusercontent.com/k8snetworkplumbingwg/multus-cni/v4.2.4/"
            "deployments/multus-daemonset-thick.yml") in lines
    net = _config(lines)["networking"]
    assert net["ipFamily"] == "dual" and net["podSubnet"] == "10.16.0.0/16,fd00:10:16::/112"
    assert net["serviceSubnet"] == "10.96.0.0/12,fd00:10:96::/108"


def test_plan_of_a_script_release_sets_dual_stack_and_names_its_multus(standins: StandIns) -> None:
    text = "\n".join(KindBackend(options(kube_ovn_version="v1.13.15", ip_family="dual", multus=True),
                                 log=lambda _l: None).plan())
    assert "ENABLE_KEEP_VM_IP=true; DUAL_STACK=true as `make kind-install-dual`" in text
    assert "Multus v4.1.3 thick plugin" in text and "set resources" not in text


def test_plan_without_the_flags_is_unchanged(standins: StandIns) -> None:
    lines = KindBackend(options(), log=lambda _l: None).plan()
    text = "\n".join(lines[:lines.index("kind config (clusters/kind-config.yaml, rendered):")])
    assert "multus" not in text.lower() and "dual" not in text.lower()
    assert _config(lines)["networking"]["ipFamily"] == "ipv4"


# -- the dual-stack kind config per release --------------------------------------------------------


@pytest.mark.parametrize(("release", "pods", "services", "masks"), [
    ("v1.11.24", "10.16.0.0/16,fd00:10:16::/64", "10.96.0.0/12,fd00:10:96::/112", None),
    ("v1.12.22", "10.16.0.0/16,fd00:10:16::/64", "10.96.0.0/12,fd00:10:96::/112", None),
    ("v1.12.23", "10.16.0.0/16,fd00:10:16::/112", "10.96.0.0/12,fd00:10:96::/108", ("24", "120")),
    ("v1.16.2", "10.16.0.0/16,fd00:10:16::/112", "10.96.0.0/12,fd00:10:96::/108", ("24", "120")),
])
def test_dual_stack_kind_config_follows_the_release_template(release: str, pods: str, services: str,
                                                             masks: tuple[str, str] | None) -> None:
    text = render_kind_config("kindest/node:v1.35.1", "dual", release)
    doc = yaml.safe_load(text)
    assert doc["networking"] == {"kubeProxyMode": "ipvs", "disableDefaultCNI": True, "ipFamily": "dual",
                                 "apiServerAddress": "127.0.0.1", "podSubnet": pods, "serviceSubnet": services}
    plane, *workers = doc["nodes"]
    assert [n["role"] for n in doc["nodes"]] == ["control-plane", "worker", "worker"]
    assert {n["image"] for n in doc["nodes"]} == {"kindest/node:v1.35.1"}
    assert all("kubeadmConfigPatches" not in w for w in workers)
    if masks is None:
        assert "kubeadmConfigPatches" not in plane
    else:
        (patch,) = plane["kubeadmConfigPatches"]
        args = yaml.safe_load(patch)["controllerManager"]["extraArgs"]
        assert args == {"node-cidr-mask-size-ipv4": masks[0], "node-cidr-mask-size-ipv6": masks[1]}
    assert text.startswith("# rendered by kovc") and f"Kube-OVN {release}'s `make kind-init-dual`" in text
    # the cluster-wide etcd patch of clusters/kind-config.yaml is kept
    assert "dataDir" in doc["kubeadmConfigPatches"][0]


# -- Multus per release, images and manifests ------------------------------------------------------


@pytest.mark.parametrize(("release", "multus", "limits"), [
    ("v1.11.10", "v4.0.2", False), ("v1.12.22", "v4.0.2", False), ("v1.12.23", "v4.1.1", False),
    ("v1.13.15", "v4.1.3", False), ("v1.14.0", "v4.2.1", True), ("v1.14.41", "v4.2.1", True),
    ("v1.15.24", "v4.2.3", True), ("v1.16.2", "v4.2.4", True),
])
def test_multus_follows_the_release_makefile(release: str, multus: str, limits: bool) -> None:
    m = network.multus_for(release)
    assert m is not None and (m.version, m.set_limits) == (multus, limits)
    assert m.image == f"ghcr.io/k8snetworkplumbingwg/multus-cni:{multus}-thick"
    v = RunVersions.resolve(release, multus=True)
    assert [i.image for i in run_images(v)].count(m.image) == 1
    assert [f.url for f in run_manifests(v) if f.filename == "multus-daemonset-thick.yml"] == [m.url]


@pytest.mark.parametrize("release", ["v1.10.8", "v1.11.8"])
def test_releases_without_a_pinned_multus_are_refused(release: str) -> None:
    assert network.multus_for(release) is None
    with pytest.raises(BackendError, match=rf"--multus with Kube-OVN {release}: .*unpinned Multus"):
        network.check_options("kind", ip_family="ipv4", multus=True, kube_ovn_version=release)


def test_kovc_images_adds_the_multus_image(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["images"]) == 0
    plain = capsys.readouterr().out.splitlines()
    assert main(["images", "--multus", "--ip-family", "dual"]) == 0
    with_multus = capsys.readouterr().out.splitlines()
    assert MULTUS_IMAGE not in plain and [i for i in with_multus if i not in plain] == [MULTUS_IMAGE]
    assert main(["images", "--multus", "--format", "json"]) == 0
    entry = next(e for e in json.loads(capsys.readouterr().out) if e["image"] == MULTUS_IMAGE)
    assert entry == {"image": MULTUS_IMAGE, "components": ["multus"], "loadable": True}
    assert main(["images", "--multus", "--manifests"]) == 0
    assert "multus-daemonset-thick.yml https://raw.githubusercontent.com/k8snetworkplumbingwg/multus-cni/v4.2.4/" \
           "deployments/multus-daemonset-thick.yml" in capsys.readouterr().out


def test_preload_loads_the_multus_image_like_the_others(standins: StandIns, tmp_path: Path) -> None:
    b = KindBackend(options(multus=True), log=lambda _l: None)
    loaded: list[str] = []
    cluster = SimpleNamespace(load_docker_image=loaded.append, kind_path=standins.kind)
    extra: dict[str, Any] = {}
    b.preload_images(b.versions(), cluster, "docker", extra, tmp_path)
    assert MULTUS_IMAGE in loaded and extra["preload"][MULTUS_IMAGE] == "kind load docker-image"
    assert len(loaded) == len([i for i in run_images(b.versions()) if i.loadable])


# -- bad combinations: one line, exit 2 ------------------------------------------------------------


def _kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "current-context": "c",
                                    "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
                                    "clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:9"}}],
                                    "users": [{"name": "u", "user": {"token": "t"}}]}))
    return path


@pytest.mark.parametrize(("argv", "needle"), [
    (["--backend", "kind", "--plan", "--ip-family", "ipv6"], "--ip-family ipv6 is not supported"),
    (["--backend", "kind", "--plan", "--multus", "--kube-ovn-version", "v1.11.8"], "unpinned Multus"),
    (["--backend", "sim", "--multus"], "--multus configures the kind cluster kovc creates"),
    (["--backend", "sim", "--ip-family", "dual"], "--ip-family dual configures the kind cluster"),
    (["--backend", "existing", "--plan", "--ip-family", "dual", "--multus", "--kubeconfig", "KUBECONFIG"],
     "--ip-family dual and --multus configure the kind cluster kovc creates (--backend kind); an existing "
     "cluster is tested as it is"),
])
def test_bad_combinations_are_one_line_exit_2(argv: list[str], needle: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    argv = [str(_kubeconfig(tmp_path)) if a == "KUBECONFIG" else a for a in argv]
    code = main(["run", "--report-dir", str(tmp_path / "report"), *argv])
    out = capsys.readouterr()
    assert code == 2 and out.out == "", out
    assert out.err.count("\n") == 1 and needle in out.err and "Traceback" not in out.err, out.err
    assert not (tmp_path / "report").exists(), "nothing is created"


def test_kovc_images_refuses_the_same(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, needle in ((["--ip-family", "ipv6"], "--ip-family ipv6 is not supported"),
                         (["--multus", "--kube-ovn-version", "v1.10.8"], "unpinned Multus")):
        assert main(["images", *argv]) == 2
        out = capsys.readouterr()
        assert out.out == "" and out.err.count("\n") == 1 and needle in out.err


# -- the install commands, with a stand-in kubectl ------------------------------------------------

KUBECTL = r'''
import json, os, sys
from pathlib import Path
args = sys.argv[1:]
entry = {"prog": "kubectl", "argv": args}
if args[:2] == ["apply", "-f"]:
    entry["applied"] = Path(args[2]).read_text()
with open(os.environ["KOVC_STANDIN_LOG"], "a") as fh:
    fh.write(json.dumps(entry) + "\n")
if args[:3] == ["get", "subnets.kubeovn.io", "ovn-default"]:
    print(os.environ.get("KOVC_STANDIN_OVN_DEFAULT", "{}"))
elif args[:1] == ["get"]:
    print(json.dumps({"items": []}))
'''

INSTALL_SH = """\
#!/usr/bin/env bash
printf '{"prog": "install.sh", "argv": ["DUAL_STACK=%s", "IPV6=%s", "ENABLE_KEEP_VM_IP=%s"]}\\n' \\
  "$DUAL_STACK" "$IPV6" "$ENABLE_KEEP_VM_IP" >> "$KOVC_STANDIN_LOG"
"""


def _rows(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture
def kubectl_standin(standins: StandIns) -> Path:
    path = standins.bin_dir / "kubectl"
    path.write_text(f"#!{sys.executable}\n{KUBECTL}")
    path.chmod(0o755)
    return path


def _installer(tmp_path: Path, kubectl: Path, mdir: Path, release: str = versions.KUBE_OVN_VERSION,
               **kw: Any) -> Installer:
    v = RunVersions.resolve(release, **kw)
    return Installer(v, kubeconfig=tmp_path / "kubeconfig", workdir=tmp_path / "work",
                     sources=Sources(v, tmp_path / "work", mdir), kubectl=str(kubectl), log=lambda _l: None)




@pytest.mark.parametrize(("release", "multus", "limits"), [("v1.16.2", "v4.2.4", True),
                                                           ("v1.13.15", "v4.1.3", False)])
def test_multus_install_commands(standins: StandIns, kubectl_standin: Path, tmp_path: Path, release: str,
                                 multus: str, limits: bool) -> None:
    mdir = write_manifests_dir(tmp_path / "m", release)
    (mdir / "multus-daemonset-thick.yml").write_text(MULTUS_YML)
    installer = _installer(tmp_path, kubectl_standin, mdir, release, multus=True)
    assert installer.install_multus() == f"ghcr.io/k8snetworkplumbingwg/multus-cni:{multus}-thick"
    rows = _rows(standins.log)
    applied = yaml.safe_load_all(rows[0]["applied"])
    images = {c["image"] for doc in applied for key in ("initContainers", "containers")
              for c in doc["spec"]["template"]["spec"][key]}
    assert images == {f"ghcr.io/k8snetworkplumbingwg/multus-cni:{multus}-thick"}
    expected = [["apply", "-f"], ["get", "crd", network.NAD_CRD],
                ["wait", f"crd/{network.NAD_CRD}", "--for=condition=Established"]]
    if limits:
        expected.append(["-n", "kube-system", "set", "resources", "ds/kube-multus-ds", "-c", "kube-multus",
                         "--limits=cpu=200m,memory=200Mi"])
    expected.append(["-n", "kube-system", "rollout", "status", "daemonset/kube-multus-ds"])
    assert [r["argv"][:len(e)] for r, e in zip(rows, expected, strict=True)] == expected


def test_multus_install_refuses_a_file_that_is_not_the_thick_manifest(standins: StandIns, kubectl_standin: Path,
                                                                       tmp_path: Path) -> None:
    mdir = write_manifests_dir(tmp_path / "m")
    (mdir / "multus-daemonset-thick.yml").write_text("kind: DaemonSet\nimage: ghcr.io/x/multus-cni:stable\n")
    with pytest.raises(BackendError, match=r"^multus: .*expected the thick plugin's image"):
        _installer(tmp_path, kubectl_standin, mdir, multus=True).install_multus()
    assert _rows(standins.log) == []


def test_dual_stack_check_reads_ovn_default(standins: StandIns, kubectl_standin: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    dual = {"spec": {"protocol": "Dual", "cidrBlock": "10.16.0.0/16,fd00:10:16::/112"}}
    monkeypatch.setenv("KOVC_STANDIN_OVN_DEFAULT", json.dumps(dual))
    mdir = write_manifests_dir(tmp_path / "m")
    assert _installer(tmp_path, kubectl_standin, mdir, ip_family="dual").check_dual_stack() == \
        "10.16.0.0/16,fd00:10:16::/112"
    monkeypatch.setenv("KOVC_STANDIN_OVN_DEFAULT", json.dumps({"spec": {"protocol": "IPv4",
                                                                        "cidrBlock": "10.16.0.0/16"}}))
    with pytest.raises(BackendError) as err:
        _installer(tmp_path, kubectl_standin, mdir, ip_family="dual").check_dual_stack()
    assert str(err.value) == ("dual-stack: Subnet ovn-default: expected protocol Dual with an IPv4 and an IPv6 CIDR "
                              "after the dual-stack install, saw protocol IPv4 cidrBlock 10.16.0.0/16")


def test_dual_stack_chart_install_passes_the_dual_values(standins: StandIns, kubectl_standin: Path,
                                                         tmp_path: Path) -> None:
    installer = _installer(tmp_path, kubectl_standin, write_manifests_dir(tmp_path / "m"), ip_family="dual")
    installer.install_kube_ovn()
    (helm,) = standins.calls("helm")
    values = [Path(helm[i + 1]) for i, a in enumerate(helm) if a == "--values"]
    assert [p.name for p in values] == ["kube-ovn-values-v2.yaml", "kube-ovn-values-v2-dual.yaml"]
    dual = yaml.safe_load(values[1].read_text())["networking"]
    assert dual["stack"] == "Dual" and dual["pods"]["cidr"] == {"v4": "10.16.0.0/16", "v6": "fd00:10:16::/112"}
    assert dual["services"]["cidr"]["v6"] == "fd00:10:96::/108"
    single = _installer(tmp_path / "b", kubectl_standin, write_manifests_dir(tmp_path / "m2"))
    single.install_kube_ovn()
    assert sum(a == "--values" for a in standins.calls("helm")[-1]) == 1


@pytest.mark.parametrize(("family", "dual"), [("dual", "true"), ("ipv4", "false")])
def test_dual_stack_script_install_sets_dual_stack(standins: StandIns, kubectl_standin: Path, tmp_path: Path,
                                                   family: str, dual: str) -> None:
    release = "v1.15.24"
    mdir = write_manifests_dir(tmp_path / "m", release, install_sh=False)
    script = mdir / f"kube-ovn-{release}" / "dist" / "images" / "install.sh"  # an extracted tree counts
    script.parent.mkdir(parents=True)
    script.write_text(INSTALL_SH)
    (mdir / f"kube-ovn-{release}" / "yamls").mkdir()
    _installer(tmp_path, kubectl_standin, mdir, release, ip_family=family).install_kube_ovn()
    (row,) = [r for r in _rows(standins.log) if r["prog"] == "install.sh"]
    assert row["argv"] == [f"DUAL_STACK={dual}", "IPV6=false", "ENABLE_KEEP_VM_IP=true"]


# -- the full kind path, dual-stack, against the stand-ins -----------------------------------------


@needs_world
def test_dual_stack_run_through_the_stand_ins(
        standins: StandIns, manifests_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`kind create cluster` gets the dual-stack config and helm the dual values; the simulated cluster behind
    the stand-ins serves ovn-default as the dual-stack install makes it (``--sim-ovn-default dual``: the
    stand-in helm installs nothing itself), so the check passes, the run reads the cluster back and tears
    it down. (A single-stack ovn-default stops the run: ``test_dual_stack_check_reads_ovn_default``.)"""
    monkeypatch.setattr(kind_module, "run_images", lambda v: [])  # preloading is tested elsewhere (cheaper)
    monkeypatch.setenv("KOVC_STANDIN_SIM_ARGS", "--sim-ovn-default dual")
    lines: list[str] = []
    b = KindBackend(options(manifests_dir=str(manifests_dir), ip_family="dual"), log=lines.append)
    info = b.provision(tmp_path / "work")
    try:
        (create,) = [c for c in standins.calls("kind") if c[:2] == ["create", "cluster"]]
        config = yaml.safe_load(Path(create[create.index("--config") + 1]).read_text())
        assert config["networking"]["ipFamily"] == "dual"
        assert config["networking"]["podSubnet"] == "10.16.0.0/16,fd00:10:16::/112"
        (helm,) = standins.calls("helm")
        assert helm[helm.index("--values") + 3].endswith("clusters/kube-ovn-values-v2-dual.yaml")
        assert info.extra["default_subnet_cidr"] == "10.16.0.0/16,fd00:10:16::/112"
        assert "ovn-default is dual-stack: 10.16.0.0/16,fd00:10:16::/112" in lines, lines
        subnet = json.loads(kubectl(Path(info.kubeconfig), "get", "subnets.kubeovn.io", "ovn-default", "-o",
                                    "json").stdout)
        assert subnet["spec"]["protocol"] == "Dual"
    finally:
        b.teardown(info)
    assert standins.running_clusters() == []


@needs_world
def test_multus_run_through_the_stand_ins(standins: StandIns, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--multus on the simulated cluster behind the stand-ins, to the end: the Multus image is preloaded,
    the thick DaemonSet applied with its image rewritten, limited and rolled out; nothing else is installed
    for it - the cluster serves NetworkAttachmentDefinitions and holds none (the attachment scenarios
    create their own) - and the run reads the cluster back and tears it down."""
    mdir = write_manifests_dir(tmp_path / "m", multus=True)
    # only the Multus image is preloaded here (every image's preload: test_preload_loads_the_multus_image…)
    monkeypatch.setattr(kind_module, "run_images", lambda v: [i for i in run_images(v) if i.image == MULTUS_IMAGE])
    lines: list[str] = []
    b = KindBackend(options(manifests_dir=str(mdir), multus=True), log=lines.append)
    info = b.provision(tmp_path / "work")
    try:
        assert [c for c in standins.calls("kind") if c[:2] == ["load", "docker-image"]] == [
            ["load", "docker-image", "--name", "kovc", MULTUS_IMAGE]]
        assert any(f"{MULTUS_IMAGE}: loaded via kind load docker-image" == line for line in lines)
        applied = (tmp_path / "work" / "manifests" / "multus-v4.2.4.yaml").read_text()
        assert ":snapshot-thick" not in applied and applied.count(MULTUS_IMAGE) == 2
        assert any("installing Multus v4.2.4 (thick plugin)" in line for line in lines)
        assert not any("attachment" in line for line in lines), lines
        assert info.extra["multus_image"] == MULTUS_IMAGE
        kubeconfig = Path(info.kubeconfig)
        ds = json.loads(kubectl(kubeconfig, "-n", "kube-system", "get", "ds", "kube-multus-ds", "-o", "json").stdout)
        assert ds["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "200m",
                                                                                         "memory": "200Mi"}
        nads = json.loads(kubectl(kubeconfig, "get", "network-attachment-definitions.k8s.cni.cncf.io", "-A", "-o",
                                  "json").stdout)
        assert nads["items"] == [], "--multus creates no NetworkAttachmentDefinition of its own"
        assert not list((tmp_path / "work" / "manifests").glob("attachment-*")), "no attachment manifest written"
    finally:
        b.teardown(info)
    assert standins.running_clusters() == []


def test_docs_describe_the_flags_and_the_one_attachment_network() -> None:
    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    guide = (root / "docs" / "real-clusters.md").read_text()
    for needle in ("--ip-family dual", "--multus", "run-owned", "<nad>.<ns>.ovn.kubernetes.io/ip_address",
                   "stand-in"):
        assert needle in readme and needle in guide, needle
    for gone in ("--attachment-nad", "kovc-attach", "ClusterInfo.attachment", "kind-attachment-nad.yaml",
                 "attachment-subnet.yaml"):
        assert gone not in readme and gone not in guide, gone
    for needle in ("clusters/kube-ovn-values-v2-dual.yaml", "manifests/attachment-nad.yaml",
                   "multus-daemonset-thick.yml"):
        assert needle in guide, needle
    for _first, m in network.MULTUS:
        assert m.version in guide, m.version
