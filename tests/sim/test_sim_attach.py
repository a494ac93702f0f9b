"""``kovc sim attach``: the simulated controllers as a separate process attached to an API server over HTTP,
serving the modelled webhooks (AdmissionReview v1) and KubeVirt's aggregated API with front-proxy auth.

Run here against kovc's own API-only server (``SimCluster(world=False)``); the envtest backend runs the same
command against a real kube-apiserver."""

from __future__ import annotations

import datetime as dt
import http.client
import ipaddress
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from behaviour_helpers import bridge_vm

from conformance.sim import resources as r
from conformance.sim.cluster import SimCluster
from conformance.sim.config import SimConfig
from conformance.sim.serving.webhook import review
from conformance.sim.store import AdmissionRequest, ApiError, Store
from conformance.sim.view import until

cryptography = pytest.importorskip("cryptography")
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

JSON = dict[str, Any]
IP = "10.16.0.77"


def _cert(cn: str, *, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
          ca: bool = False, ip: str | None = None) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(name)
               .issuer_name(issuer[0].subject if issuer else name).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ip:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
                                        critical=False)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256()), key


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None = None) -> Path:
    data = cert.public_bytes(serialization.Encoding.PEM)
    if key is not None:
        data += key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    path.write_bytes(data)
    return path


class Attach:
    """A running ``kovc sim attach`` process and what it printed."""

    def __init__(self, proc: subprocess.Popen[str], webhook_port: int, aggregated_port: int,
                 kubelet_port: int) -> None:
        self.proc = proc
        self.webhook_port = webhook_port
        self.aggregated_port = aggregated_port
        self.kubelet_port = kubelet_port


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    serving_ca = _cert("kovc-test-serving-ca", ca=True)
    serving = _cert("127.0.0.1", issuer=serving_ca, ip="127.0.0.1")
    front_ca = _cert("kovc-test-front-proxy-ca", ca=True)
    front = _cert("front-proxy-client", issuer=front_ca)
    stranger_ca = _cert("someone-else", ca=True)
    stranger = _cert("front-proxy-client", issuer=stranger_ca)
    return {
        "serving_ca": _write(tmp_path / "serving-ca.crt", serving_ca[0]),
        "serving_cert": _write(tmp_path / "serving.crt", serving[0]),
        "serving_key": tmp_path / "serving.key",
        "front_ca": _write(tmp_path / "front-ca.crt", front_ca[0]),
        "front_client": _write(tmp_path / "front-client.pem", front[0], front[1]),
        "stranger_client": _write(tmp_path / "stranger.pem", stranger[0], stranger[1]),
        **{"_key": (tmp_path / "serving.key").write_bytes(serving[1].private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())) and tmp_path / "serving.key"},
    }


@pytest.fixture
def api_only(tmp_path: Path) -> Iterator[tuple[SimCluster, Path]]:
    with SimCluster(SimConfig(), world=False) as cluster:
        yield cluster, cluster.write_kubeconfig(tmp_path / "kubeconfig")


def _start(kubeconfig: Path, pki: dict[str, Path]) -> Attach:
    cmd = [sys.executable, "-m", "conformance", "sim", "attach", "--kubeconfig", str(kubeconfig),
           "--serving-cert", str(pki["serving_cert"]), "--serving-key", str(pki["serving_key"]),
           "--requestheader-ca", str(pki["front_ca"])]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None and proc.stderr is not None
    line = proc.stdout.readline()
    if line.strip() != "kovc-attach ready":
        proc.kill()
        raise AssertionError(f"expected 'kovc-attach ready' on stdout, saw {line!r}; stderr: {proc.stderr.read()}")
    info = proc.stderr.readline()
    ports = re.findall(r"https://127\.0\.0\.1:(\d+)", info)
    assert len(ports) == 3, f"expected the webhook, aggregated and kubelet URLs on stderr, saw {info!r}"
    return Attach(proc, int(ports[0]), int(ports[1]), int(ports[2]))


def _stop(attach: Attach) -> tuple[int, str]:
    attach.proc.send_signal(signal.SIGTERM)
    try:
        code = attach.proc.wait(15)
    except subprocess.TimeoutExpired:
        attach.proc.kill()
        raise AssertionError("kovc sim attach did not stop within 15s of SIGTERM") from None
    assert attach.proc.stderr is not None
    return code, attach.proc.stderr.read()


def _https(url: str, pki: dict[str, Path], *, method: str = "GET", body: JSON | None = None,
           client: str | None = "front_client", user: str | None = "kovc-test") -> tuple[int, JSON]:
    ctx = ssl.create_default_context(cafile=str(pki["serving_ca"]))
    if client:
        ctx.load_cert_chain(str(pki[client]))
    headers = {"Content-Type": "application/json"}
    if user:
        headers["X-Remote-User"] = user
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            text = resp.read().decode()
            return resp.status, json.loads(text) if text else {}
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read().decode() or "{}")


def _wait(cluster: SimCluster, predicate: Any, what: str, timeout: float = 20) -> Any:
    return cluster.call_async(lambda store: until(store, predicate, what, timeout), timeout=timeout + 5)


def _launcher(store: Store, ns: str) -> JSON | None:
    pods = [p for p in store.list(r.PODS, ns)[0] if (p.get("status") or {}).get("phase") == "Running"]
    return pods[0] if len(pods) == 1 else None


def test_attach_runs_the_controllers_and_serves_webhook_and_aggregated_api(
        api_only: tuple[SimCluster, Path], pki: dict[str, Path]) -> None:
    cluster, kubeconfig = api_only
    attach = _start(kubeconfig, pki)
    try:
        cluster.call(lambda s: s.create(r.NAMESPACES, {"metadata": {"name": "att"}}, user_agent="kovc/test"))
        vm = bridge_vm("web", "att", {"ovn.kubernetes.io/ip_address": IP})
        cluster.call(lambda s: s.create(r.VMS, vm, user_agent="kovc/test"))
        first = _wait(cluster, lambda s: _launcher(s, "att"), "launcher pod of att/web Running")
        assert first["spec"]["nodeName"].startswith("kovc-sim-worker")
        assert first["metadata"]["annotations"]["ovn.kubernetes.io/ip_address"] == IP
        binders = cluster.call(lambda s: [e.user_agent for e in s.audit if e.path.endswith("/binding")])
        assert binders == ["default-scheduler"], binders
        node = cluster.call(lambda s: s.require(r.NODES, "", first["spec"]["nodeName"]))
        assert node["status"]["addresses"] == [{"type": "InternalIP", "address": "127.0.0.1"}], node["status"]
        assert node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == attach.kubelet_port

        # pods/log as kube-apiserver fetches it from the node's kubelet
        ctx = ssl.create_default_context(cafile=str(pki["serving_ca"]))
        logs = f"https://127.0.0.1:{attach.kubelet_port}/containerLogs/att/{first['metadata']['name']}/compute"
        with urllib.request.urlopen(logs, context=ctx, timeout=10) as resp:
            assert resp.status == 200 and "virt-launcher" in resp.read().decode()
        with pytest.raises(urllib.error.HTTPError) as no_pod:
            urllib.request.urlopen(logs.replace("/att/", "/nowhere/"), context=ctx, timeout=10)
        assert no_pod.value.code == 404

        # the modelled Kube-OVN webhook, as kube-apiserver calls it
        thief = {"apiVersion": "v1", "kind": "Pod",
                 "metadata": {"name": "thief", "namespace": "att",
                              "annotations": {"ovn.kubernetes.io/ip_address": IP}},
                 "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
        reviewed = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                    "request": {"uid": "u-1", "operation": "CREATE", "namespace": "att", "name": "thief",
                                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                                "resource": {"group": "", "version": "v1", "resource": "pods"},
                                "userInfo": {"username": "kovc"}, "object": thief, "dryRun": False}}
        code, answer = _https(f"https://127.0.0.1:{attach.webhook_port}/validating", pki, method="POST",
                              body=reviewed, client=None, user=None)
        assert code == 200 and answer["response"]["uid"] == "u-1", answer
        assert answer["response"]["allowed"] is False, answer
        status = answer["response"]["status"]
        assert status["code"] == 403 and IP in status["message"], status
        assert not status["message"].startswith("admission webhook"), "kube-apiserver adds that prefix itself"

        # KubeVirt's aggregated API: discovery, then a restart through the front proxy
        code, group = _https(f"https://127.0.0.1:{attach.aggregated_port}/apis/subresources.kubevirt.io/v1alpha3",
                             pki)
        assert code == 200 and {x["name"] for x in group["resources"]} == {
            f"virtualmachines/{a}" for a in r.VM_ACTIONS}, group
        url = (f"https://127.0.0.1:{attach.aggregated_port}/apis/subresources.kubevirt.io/v1/namespaces/att/"
               "virtualmachines/web/restart")
        code, body = _https(url, pki, method="PUT", body={}, user=None)
        assert code == 401, ("no X-Remote-User must be refused", code, body)
        # a client certificate from another CA fails the TLS handshake (TLS 1.3 reports it after the handshake,
        # as a dropped connection)
        with pytest.raises((OSError, http.client.HTTPException)):
            _https(url, pki, method="PUT", body={}, client="stranger_client")
        code, body = _https(url, pki, method="PUT", body={})
        assert code == 202, (code, body)
        second = _wait(cluster, lambda s: (p := _launcher(s, "att")) is not None
                       and p["metadata"]["uid"] != first["metadata"]["uid"] and p, "a new launcher after restart")
        assert second["metadata"]["annotations"]["ovn.kubernetes.io/ip_address"] == IP
        code, body = _https(url.replace("/web/", "/missing/"), pki, method="PUT", body={})
        assert code == 404 and body.get("kind") == "Status", body
    finally:
        rc, stderr = _stop(attach)
    assert rc == 0, f"kovc sim attach exited {rc} on SIGTERM: {stderr}"
    assert "controller error" not in stderr, stderr


def test_attach_rejects_bad_input_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "kubeconfig"
    bad.write_text("this: is: not a kubeconfig\n")
    for args in (["--kubeconfig", str(bad)],
                 ["--kubeconfig", str(tmp_path / "missing")],
                 ["--kubeconfig", str(bad), "--kube-ovn-version", "v0.0.1"],
                 ["--kubeconfig", str(bad), "--serving-cert", str(tmp_path / "none.crt")]):
        done = subprocess.run([sys.executable, "-m", "conformance", "sim", "attach", *args], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 2, (args, done.returncode, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr, (args, done.stderr)
        assert done.stdout == "", (args, done.stdout)


def test_attach_gives_up_with_one_line_when_the_api_never_answers(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "x",
        "clusters": [{"name": "x", "cluster": {"server": "http://127.0.0.1:9"}}],
        "users": [{"name": "x", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x"}}]}))
    env = {**os.environ, "KOVC_ATTACH_SYNC_TIMEOUT": "2"}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "conformance", "sim", "attach", "--kubeconfig", str(kubeconfig)],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "did not list" in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert time.monotonic() - started < 30


def test_admission_review_maps_denials_and_ignores_other_operations() -> None:
    def deny(req: AdmissionRequest) -> None:
        if req.operation == "CREATE":
            raise ApiError(422, "Invalid", 'admission webhook "x.kubevirt.io" denied the request: nope',
                           details={"causes": [{"field": "spec"}]})

    base = {"uid": "u", "kind": {"group": "kubevirt.io", "version": "v1", "kind": "VirtualMachine"},
            "resource": {"group": "kubevirt.io", "version": "v1", "resource": "virtualmachines"},
            "namespace": "n", "name": "vm", "object": {"metadata": {"name": "vm"}}}
    out = review([deny], {"apiVersion": "admission.k8s.io/v1", "request": {**base, "operation": "CREATE"}})
    assert out["response"] == {"uid": "u", "allowed": False, "status": {
        "status": "Failure", "code": 422, "reason": "Invalid", "message": "nope",
        "details": {"causes": [{"field": "spec"}]}}}
    assert review([deny], {"request": {**base, "operation": "CONNECT"}})["response"]["allowed"] is True
    assert review([deny], {"request": {**base, "operation": "CREATE", "subResource": "status"}}
                  )["response"]["allowed"] is True
    with pytest.raises(ValueError):
        review([deny], {"kind": "AdmissionReview"})


def test_attach_dies_with_its_parent(api_only: tuple[SimCluster, Path], tmp_path: Path) -> None:
    _cluster, kubeconfig = api_only
    ready = tmp_path / "out"
    # a parent shell that starts attach in the background, reports its pid, then waits
    script = (f'{sys.executable} -m conformance sim attach --kubeconfig {kubeconfig} > {ready} 2>&1 & '
              'echo $!; wait')
    parent = subprocess.Popen(["sh", "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    deadline = time.monotonic() + 60
    while "kovc-attach ready" not in (ready.read_text() if ready.exists() else ""):
        assert time.monotonic() < deadline, f"attach never got ready: {ready.read_text()}"
        time.sleep(0.1)
    parent.kill()
    parent.wait(10)
    deadline = time.monotonic() + 15
    while Path(f"/proc/{child}").exists():
        status = Path(f"/proc/{child}/status").read_text() if Path(f"/proc/{child}/status").exists() else ""
        if "State:\tZ" in status:
            break
        assert time.monotonic() < deadline, "kovc sim attach outlived its parent by 15 s"
        time.sleep(0.1)
