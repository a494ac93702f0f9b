"""``kovc run``: bad input is one line and exit 2 with nothing created; provisioning failures too;
``--plan`` touches nothing; the exit code is the verdict's."""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from conformance.cluster.sim import SimBackend
from conformance.commands import run as run_cmd

ROOT = Path(__file__).resolve().parents[2]


def kovc(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(
        [sys.executable, "-m", "conformance", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kubeconfig(path: Path, server: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "c",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
            }
        )
    )
    return path


def assert_one_line_exit_2(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--kube-ovn-version", "v1.9.0"], ["--kube-ovn-version", "v1.9.0", "not supported"]),
        (["--kube-ovn-version", "v1.99.0"], ["unknown Kube-OVN version v1.99.0"]),
        (["--kubeconfig", "/nonexistent"], ["kubeconfig /nonexistent", "cannot be read"]),
        (["--backend", "existing", "--kubeconfig", "/nonexistent"], ["kubeconfig /nonexistent"]),
        (["--requirement", "allow.reboot"], ["unknown requirement ID 'allow.reboot'"]),
        (["--sim-faults", "lots"], ["--sim-faults"]),
        (["--sim-webhook-policy", "no_such_module:policy"], ["no_such_module"]),
        (["--profile", "full"], ["--profile"]),
        (["--run-id", "Bad_ID"], ["invalid run id"]),
        (["--kubevirt-version", "v9.9.9"], ["--kubevirt-version", "unknown KubeVirt version v9.9.9"]),
        (["--k8s-version", "v9.9.9"], ["--k8s-version", "unknown Kubernetes version v9.9.9"]),
        (["--backend", "kind", "--plan", "--kubevirt-version", "v9.9.9"], ["unknown KubeVirt version v9.9.9"]),
        (["--backend", "kind", "--plan", "--k8s-version", "v9.9.9"], ["unknown Kubernetes version v9.9.9"]),
    ],
    ids=[
        "unsupported-version",
        "unknown-version",
        "kubeconfig-missing",
        "existing-kubeconfig-missing",
        "unknown-requirement",
        "malformed-faults",
        "unknown-policy",
        "unknown-profile",
        "bad-run-id",
        "unknown-kubevirt-version-sim",
        "unknown-k8s-version-sim",
        "unknown-kubevirt-version-kind-plan",
        "unknown-k8s-version-kind-plan",
    ],
)
def test_bad_input(tmp_path: Path, args: list[str], fragments: list[str]) -> None:
    proc = kovc(tmp_path, "run", *args)
    assert_one_line_exit_2(proc, *fragments)
    assert list(tmp_path.iterdir()) == [], "bad input must create nothing"


@pytest.mark.parametrize("option", ["--kubevirt-version", "--k8s-version", "--kube-ovn-version"])
def test_sim_serve_refuses_unknown_versions(tmp_path: Path, option: str) -> None:
    proc = kovc(tmp_path, "sim", "serve", "--kubeconfig", str(tmp_path / "kc"), option, "v9.9.9")
    assert_one_line_exit_2(proc, "unknown", "version v9.9.9")
    assert list(tmp_path.iterdir()) == [], "bad input must create nothing"


def test_unreachable_api_server(tmp_path: Path) -> None:
    port = closed_port()
    config = kubeconfig(tmp_path / "kc", f"http://127.0.0.1:{port}")
    proc = kovc(tmp_path, "run", "--backend", "existing", "--kubeconfig", str(config))
    assert_one_line_exit_2(proc, f"127.0.0.1:{port}", "unreachable")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kc"]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_tls_failure_says_so(tmp_path: Path) -> None:
    """A server whose certificate the kubeconfig does not trust: the one line names the TLS failure
    (``certificate verify failed: self-signed certificate``), not ``unreachable: (0)``."""
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=kube-apiserver",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        config = kubeconfig(tmp_path / "kc", f"https://127.0.0.1:{server.server_address[1]}")
        proc = kovc(tmp_path, "run", "--backend", "existing", "--kubeconfig", str(config))
    finally:
        server.shutdown()
        server.server_close()
    assert_one_line_exit_2(proc, "TLS failure", "certificate verify failed: self-signed certificate")
    assert "(0)" not in proc.stderr


def test_kubeconfig_without_the_context(tmp_path: Path) -> None:
    config = kubeconfig(tmp_path / "kc", "http://127.0.0.1:1")
    proc = kovc(tmp_path, "run", "--backend", "existing", "--kubeconfig", str(config), "--context", "prod")
    assert_one_line_exit_2(proc, "context 'prod' not found")


def test_plan_touches_nothing(tmp_path: Path) -> None:
    proc = kovc(tmp_path, "run", "--plan", "--kube-ovn-version", "v1.14.2", "--sim-webhook", "off")
    assert proc.returncode == 0, proc.stderr
    assert "sim serve" in proc.stdout and "--kube-ovn-version v1.14.2" in proc.stdout
    assert "--sim-webhook off" in proc.stdout
    proc = kovc(tmp_path, "run", "--backend", "kind", "--plan")
    assert proc.returncode == 0, proc.stderr
    assert "kind" in proc.stdout.lower() and proc.stdout.count("\n") > 3
    assert list(tmp_path.iterdir()) == []


def test_provisioning_failure_is_one_line_and_leaves_nothing(
    pytester_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "server-started"

    def failing_server(self: SimBackend, workdir: Path) -> list[str]:
        return [
            sys.executable,
            "-c",
            f"open({str(marker)!r}, 'w').close(); print('cannot bind 127.0.0.1'); raise SystemExit(3)",
        ]

    monkeypatch.setattr(SimBackend, "command", failing_server)
    report_dir = tmp_path / "report"
    code = run_cmd._run_pytest(
        [str(pytester_dir), "-p", "no:cacheprovider", f"--report-dir={report_dir}"], report_dir
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert marker.exists(), "the backend did try to start the server"
    assert err == ["kovc: simulated cluster exited with code 3 before it was ready: cannot bind 127.0.0.1"]


@pytest.fixture
def pytester_dir(tmp_path: Path) -> Path:
    d = tmp_path / "scenarios"
    d.mkdir()
    (d / "test_kovc_run_provision.py").write_text("""
import pytest

@pytest.mark.conformance("env.webhook-live")
def test_webhook_live(cluster_info):
    pass

@pytest.mark.conformance("allow.restart")
def test_restart(cluster_info):
    pass
""")
    return d


def test_exit_code_is_the_verdict(
    pytester_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (pytester_dir / "test_kovc_run_provision.py").unlink()
    (pytester_dir / "test_kovc_run_verdict.py").write_text("""
import pytest

@pytest.mark.conformance("env.webhook-live", "env.keep-vm-ip")
def test_env(record):
    pass

@pytest.mark.conformance("allow.restart")
def test_restart(record):
    with record.subcase("restart"):
        assert False, "expected the restart to be admitted; denied by pod-ip-validating.kube-ovn.io"
""")
    report_dir = tmp_path / "report"
    code = run_cmd._run_pytest(
        [str(pytester_dir), "-p", "no:cacheprovider", f"--report-dir={report_dir}", "--profile=quick"],
        report_dir,
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "NON-CONFORMANT" in out.upper() and "allow.restart" in out
    assert f"report: {report_dir}" in out
    assert (report_dir / "report.json").exists()
