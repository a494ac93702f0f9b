"""The installers' pure parts: the program runner, downloads, the upstream rewrites, the sources."""

from __future__ import annotations

import http.server
import io
import socket
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cluster_helpers import INSTALL_SH, write_manifests_dir

from conformance import _data, versions
from conformance.cluster.base import BackendError
from conformance.cluster.images import RunVersions
from conformance.cluster.install import (
    KUBEVIRT_FEATURE_GATES,
    Sources,
    download,
    prepare_install_sh,
    read_env_file,
    rewrite_webhook_image,
    run_program,
)

REFERENCE = Path(__file__).resolve().parents[2] / ".." / "shared" / "reference"


def test_run_program_returns_output() -> None:
    proc = run_program([sys.executable, "-c", "print('hi')"], step="s", obj="o", timeout=30)
    assert proc.stdout.strip() == "hi"


def test_run_program_failure_names_step_object_and_last_line() -> None:
    with pytest.raises(BackendError) as err:
        run_program([sys.executable, "-c", "import sys; print('first', file=sys.stderr); "
                     "print('the reason', file=sys.stderr); sys.exit(3)"], step="kube-ovn",
                    obj="helm release", timeout=30)
    text = str(err.value)
    assert text.startswith("kube-ovn: helm release: ") and "exited 3: the reason" in text and "\n" not in text


def test_run_program_unchecked_returns_code() -> None:
    assert run_program([sys.executable, "-c", "raise SystemExit(4)"], step="s", obj="o", timeout=30,
                       check=False).returncode == 4


def test_run_program_missing_and_not_executable(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match=r"^s: o: program '/nonexistent/kind' not found$"):
        run_program(["/nonexistent/kind", "version"], step="s", obj="o", timeout=5)
    plain = tmp_path / "plain"
    plain.write_text("#!/bin/sh\n")
    with pytest.raises(BackendError, match="is not executable"):
        run_program([str(plain)], step="s", obj="o", timeout=5)


def test_run_program_timeout_is_reported() -> None:
    with pytest.raises(BackendError, match=r"did not finish within 1s \(last output: (waiting|no output)\)"):
        run_program([sys.executable, "-c", "import sys, time; print('waiting', file=sys.stderr, flush=True); "
                     "time.sleep(30)"], step="s", obj="o", timeout=1)


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: object, **kw: object) -> None:
            super().__init__(*a, directory=str(root), **kw)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def test_download_writes_the_file(http_server: tuple[str, Path], tmp_path: Path) -> None:
    url, root = http_server
    (root / "cert-manager.yaml").write_text("kind: Namespace\n")
    dest = download(f"{url}/cert-manager.yaml", tmp_path / "dl" / "cert-manager.yaml", step="cert-manager")
    assert dest.read_text() == "kind: Namespace\n"
    assert not (tmp_path / "dl" / "cert-manager.yaml.part").exists()


def test_download_failure_points_at_manifests_dir(http_server: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = http_server
    with pytest.raises(BackendError) as err:
        download(f"{url}/missing.yaml", tmp_path / "x.yaml", step="kubevirt")
    assert "kubevirt: download" in str(err.value) and "--manifests-dir" in str(err.value)
    assert not (tmp_path / "x.yaml").exists() and not (tmp_path / "x.yaml.part").exists()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(BackendError, match=r"refused|Connection"):
        download(f"http://127.0.0.1:{port}/x", tmp_path / "y.yaml", step="kubevirt", timeout=5)


def test_webhook_image_rewritten_like_upstreams_sed() -> None:
    text = "containers:\n  - name: a\n    image: \"docker.io/kubeovn/kube-ovn:v1.16.0\"\n    args: [x]\n"
    out = rewrite_webhook_image(text, "docker.io/kubeovn/kube-ovn:v1.16.2")
    assert out == "containers:\n  - name: a\n    image: docker.io/kubeovn/kube-ovn:v1.16.2\n    args: [x]\n"


def test_webhook_rewrite_on_the_real_upstream_file() -> None:
    path = REFERENCE / "kube-ovn-webhook.yaml"
    if not path.is_file():
        pytest.skip("../shared/reference/kube-ovn-webhook.yaml (upstream yamls/webhook.yaml) is absent")
    original = path.read_text()
    assert "image: \"docker.io/kubeovn/kube-ovn:v1.16.0\"" in original  # upstream ships an older image
    out = rewrite_webhook_image(original, "docker.io/kubeovn/kube-ovn:v1.16.2")
    images = [c["image"] for doc in yaml.safe_load_all(out) if doc and doc.get("kind") == "Deployment"
              for c in doc["spec"]["template"]["spec"]["containers"]]
    assert images == ["docker.io/kubeovn/kube-ovn:v1.16.2"]
    webhooks = [w["name"] for doc in yaml.safe_load_all(out)
                if doc and doc.get("kind") == "ValidatingWebhookConfiguration" for w in doc["webhooks"]]
    assert "pod-ip-validating.kube-ovn.io" in webhooks


def test_install_sh_version_rewritten_and_cut_before_host_writes() -> None:
    out = prepare_install_sh(INSTALL_SH, "v1.14.2")
    assert 'VERSION=v1.14.2\n' in out and "v0.0.0-wrong" not in out
    assert "install-sh-wrote-into-the-host" not in out and "[Step 5/6]" not in out
    assert out.rstrip().endswith('skipped"')
    assert prepare_install_sh("echo hi\n", "v1.13.0") == "echo hi\n"


def test_env_file(tmp_path: Path) -> None:
    env = tmp_path / "x.env"
    env.write_text("# comment\n\nA=1\nB = two=2\nnot a pair\n")
    assert read_env_file(env) == {"A": "1", "B": "two=2"}
    shipped = read_env_file(_data.data_dir("clusters") / "kube-ovn-install.env")
    assert shipped["ENABLE_KEEP_VM_IP"] == "true"


def test_feature_gates_cover_clone() -> None:
    assert "Snapshot" in KUBEVIRT_FEATURE_GATES


def test_sources_from_manifests_dir(tmp_path: Path) -> None:
    v = RunVersions.resolve()
    mdir = write_manifests_dir(tmp_path / "m")
    src = Sources(v, tmp_path / "work", mdir)
    assert src.missing_local() == []
    assert "kind: Namespace" in src.text("cert-manager.yaml", "cert-manager")
    tree = src.kube_ovn_tree("kube-ovn")
    assert (tree / "charts" / "kube-ovn-v2" / "Chart.yaml").is_file()
    assert (tree / "yamls" / "webhook.yaml").is_file() and (tree / "dist" / "images" / "install.sh").is_file()
    assert not (tree / "README.md").exists(), "only the files the installers use are unpacked"
    assert "local copy of https://" in src.describe(src.manifests["cert-manager.yaml"])
    (mdir / "cert-manager.yaml").unlink()
    assert src.missing_local() == ["cert-manager.yaml"]
    with pytest.raises(BackendError, match=r"cert-manager: .*cert-manager\.yaml not found"):
        src.path("cert-manager.yaml", "cert-manager")


def test_sources_extracted_tree_counts(tmp_path: Path) -> None:
    v = RunVersions.resolve()
    mdir = write_manifests_dir(tmp_path / "m")
    (mdir / f"kube-ovn-{v.kube_ovn}.tar.gz").unlink()
    tree = mdir / f"kube-ovn-{v.kube_ovn}"
    (tree / "yamls").mkdir(parents=True)
    src = Sources(v, tmp_path / "work", mdir)
    assert src.missing_local() == []
    assert src.kube_ovn_tree("webhook") == tree


def test_sources_reject_a_foreign_or_broken_archive(tmp_path: Path) -> None:
    v = RunVersions.resolve()
    mdir = write_manifests_dir(tmp_path / "m")
    archive = mdir / f"kube-ovn-{v.kube_ovn}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("other-1.0/README")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(BackendError, match="not a Kube-OVN source archive"):
        Sources(v, tmp_path / "work", mdir).kube_ovn_tree("kube-ovn")
    archive.write_bytes(b"not a tarball")
    with pytest.raises(BackendError, match="cannot be unpacked"):
        Sources(v, tmp_path / "work2", mdir).kube_ovn_tree("kube-ovn")


def test_sources_download_once(http_server: tuple[str, Path], tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    url, root = http_server
    v = RunVersions.resolve()
    (root / "cert-manager.yaml").write_text("downloaded\n")
    src = Sources(v, tmp_path / "work", None)
    src.manifests["cert-manager.yaml"] = type(src.manifests["cert-manager.yaml"])(
        "cert-manager.yaml", f"{url}/cert-manager.yaml", "test")
    assert src.missing_local() == []
    assert src.text("cert-manager.yaml", "cert-manager") == "downloaded\n"
    (root / "cert-manager.yaml").unlink()
    assert src.text("cert-manager.yaml", "cert-manager") == "downloaded\n", "second read uses the download"
    assert src.describe(src.manifests["cert-manager.yaml"]) == f"{url}/cert-manager.yaml"


def test_shipped_values_keep_vm_ip_and_cidrs() -> None:
    clusters = _data.data_dir("clusters")
    values = yaml.safe_load((clusters / "kube-ovn-values-v2.yaml").read_text())
    assert values["features"]["enableKeepVmIps"] is True
    assert values["networking"]["pods"]["cidr"]["v4"] == "10.16.0.0/16"
    assert values["masterNodesLabels"] == {"kube-ovn/role": "master"}
    assert values["validatingWebhook"]["enabled"] is False
    kind = yaml.safe_load((clusters / "kind-config.yaml").read_text())
    assert kind["networking"]["disableDefaultCNI"] is True
    assert kind["networking"]["podSubnet"] == values["networking"]["pods"]["cidr"]["v4"]
    assert kind["networking"]["serviceSubnet"] == values["networking"]["services"]["cidr"]["v4"]
    assert [n["role"] for n in kind["nodes"]] == ["control-plane", "worker", "worker"]
    assert {n["image"] for n in kind["nodes"]} == {versions.KIND_NODE_IMAGE}
