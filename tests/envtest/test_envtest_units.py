"""The envtest pieces that need no built binary: go.mod generation, certificates, ports, process
management (with a dummy program), flag building, CRD and webhook-registration reading from a fake
module directory, asset lookup."""

from __future__ import annotations

import base64
import json
import os
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from conformance.envtest import assets as a
from conformance.envtest import install as inst
from conformance.envtest import ports
from conformance.envtest.certs import TinyCA
from conformance.envtest.controlplane import Binaries, ControlPlane
from conformance.envtest.process import ManagedProcess, ProcessError, flags, http_ok

K8S_GOMOD = """\
module k8s.io/kubernetes

go 1.25.0

require (
	github.com/blang/semver/v4 v4.0.0
	k8s.io/api v0.0.0
	k8s.io/apiserver v0.0.0
	k8s.io/kms v0.0.0 // indirect
	k8s.io/kube-openapi v0.0.0-20250910181357-589584f1c912
	k8s.io/utils v0.0.0-20251002143259-bc988d571ff4
)

require k8s.io/externaljwt v0.0.0

replace (
	k8s.io/api => ./staging/src/k8s.io/api
	k8s.io/apiserver => ./staging/src/k8s.io/apiserver
)
"""

KUBE_OVN_GOMOD = """\
module github.com/kubeovn/kube-ovn

go 1.26.4

require k8s.io/api v0.35.3

replace github.com/mdlayher/arp => github.com/kubeovn/arp v0.0.0-20240218024213-d9612a263f68 // fork

replace (
	// comment line
	github.com/ovn-kubernetes/libovsdb => github.com/kubeovn/libovsdb v0.0.0-20251212071713-cb1c2bc5d43e
	k8s.io/api => k8s.io/api v0.35.3
	kubevirt.io/api => ./staging/src/kubevirt.io/api
)
"""


# --- go.mod generation ------------------------------------------------------------------------------

def test_staging_replaces_maps_every_v0_0_0_requirement_onto_the_published_version() -> None:
    got = a.staging_replaces(K8S_GOMOD, "v1.35.4")
    assert got == [("k8s.io/api", "k8s.io/api v0.35.4"), ("k8s.io/apiserver", "k8s.io/apiserver v0.35.4"),
                   ("k8s.io/kms", "k8s.io/kms v0.35.4"), ("k8s.io/externaljwt", "k8s.io/externaljwt v0.35.4")]


def test_staging_replaces_refuses_a_go_mod_without_staging_modules() -> None:
    with pytest.raises(a.AssetError, match=r"no k8s\.io/\* v0\.0\.0"):
        a.staging_replaces("module x\n\nrequire k8s.io/api v0.35.4\n", "v1.35.4")


def test_replace_directives_reads_single_and_block_forms_and_drops_local_paths() -> None:
    got = a.replace_directives(KUBE_OVN_GOMOD)
    assert got == [
        ("github.com/mdlayher/arp", "github.com/kubeovn/arp v0.0.0-20240218024213-d9612a263f68"),
        ("github.com/ovn-kubernetes/libovsdb", "github.com/kubeovn/libovsdb v0.0.0-20251212071713-cb1c2bc5d43e"),
        ("k8s.io/api", "k8s.io/api v0.35.3"),
    ]


def test_replace_directives_maps_local_paths_onto_the_published_tag_when_asked() -> None:
    got = dict(a.replace_directives(KUBE_OVN_GOMOD, local_version="v1.8.1"))
    assert got["kubevirt.io/api"] == "kubevirt.io/api v1.8.1"


def test_render_gomod_is_a_module_with_require_and_replace_blocks() -> None:
    text = a.render_gomod("kovc.invalid/x", "1.26.8", [("k8s.io/kubernetes", "v1.35.4")],
                          a.staging_replaces(K8S_GOMOD, "v1.35.4"))
    assert "module kovc.invalid/x\n" in text and "go 1.26.8\n" in text
    assert "\tk8s.io/kubernetes v1.35.4\n" in text
    assert "\tk8s.io/kms => k8s.io/kms v0.35.4\n" in text


def test_newest_patch_and_kubernetes_ldflags() -> None:
    assert a.newest_patch(["v1.34.4", "v1.35.0", "v1.35.4", "v1.36.1", "v1.38.0-beta.0"], 1, 35) == "v1.35.4"
    assert a.newest_patch(["v1.34.4"], 1, 35) is None
    ld = a.ldflags_kubernetes("v1.35.4")
    assert "-X k8s.io/component-base/version.gitVersion=v1.35.4" in ld
    assert "-X k8s.io/client-go/pkg/version.gitMinor=35" in ld


# --- asset lookup -----------------------------------------------------------------------------------

def test_binaries_find_names_kovc_assets_build_when_nothing_is_there(tmp_path: Path) -> None:
    with pytest.raises(a.AssetError, match="kovc assets build"):
        Binaries.find(tmp_path)


def _fake_bin(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)


def test_binaries_find_takes_the_newest_k8s_dir_or_a_kubebuilder_assets_dir(tmp_path: Path) -> None:
    for v in ("1.34.4", "1.35.4"):
        for prog in ("kube-apiserver", "etcd"):
            _fake_bin(a.k8s_dir(tmp_path, f"v{v}") / prog)
    assert Binaries.find(tmp_path).k8s_dir.name.startswith("1.35.4-")
    assert Binaries.find(tmp_path, "v1.34.4").k8s_dir.name.startswith("1.34.4-")
    assert Binaries.find(tmp_path).kube_controller_manager is None
    flat = tmp_path / "flat"
    for prog in ("kube-apiserver", "etcd", "kube-controller-manager"):
        _fake_bin(flat / prog)
    found = Binaries.find(flat)
    assert found.kube_apiserver == flat / "kube-apiserver" and found.kube_controller_manager is not None


def test_installed_lists_metadata_and_recomputes_the_sha256_of_unknown_files(tmp_path: Path) -> None:
    hook = a.webhook_path(tmp_path, "v1.16.2")
    _fake_bin(hook)
    etcd = a.k8s_dir(tmp_path, "v1.35.4") / "etcd"
    _fake_bin(etcd)
    info = a.AssetInfo(program="etcd", version="v3.6.17", path=str(etcd), sha256=a.sha256_of(etcd), build_seconds=3.0)
    a.meta_path(etcd).write_text(json.dumps(info.to_json()))
    rows = {r.program: r for r in a.installed(tmp_path)}
    assert rows["etcd"].version == "v3.6.17" and rows["etcd"].build_seconds == 3.0
    assert rows["kube-ovn-webhook"].version == "v1.16.2"
    assert rows["kube-ovn-webhook"].sha256 == a.sha256_of(hook)
    assert rows["kube-ovn-webhook"].built_by.startswith("unknown")


def test_assets_list_command_prints_each_asset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from conformance.cli import main

    _fake_bin(a.webhook_path(tmp_path, "v1.16.2"))
    assert main(["assets", "list", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "kube-ovn-webhook" in out and "v1.16.2" in out and a.sha256_of(a.webhook_path(tmp_path, "v1.16.2")) in out


# --- certificates -----------------------------------------------------------------------------------

def test_tiny_ca_issues_serving_and_client_certificates_it_verifies(tmp_path: Path) -> None:
    ca = TinyCA()
    serving = ca.serving("svc", ["virt-api.kubevirt.svc"])
    cert = x509.load_pem_x509_certificate(serving.cert)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "virt-api.kubevirt.svc" in san.get_values_for_type(x509.DNSName)
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)][:1] == ["127.0.0.1"]
    client = ca.client("system:serviceaccount:kovc-system:kovc", ["system:serviceaccounts"])
    subject = x509.load_pem_x509_certificate(client.cert).subject
    assert subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "system:serviceaccount:kovc-system:kovc"
    assert subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)[0].value == "system:serviceaccounts"
    crt, key = serving.write(tmp_path, "s")
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    # A TLS handshake with the serving cert verifies against the CA (hostname localhost).
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(str(crt), str(key))
    client_ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    with socket.socket() as lsock:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(1)
        port = lsock.getsockname()[1]

        def serve() -> None:
            conn, _ = lsock.accept()
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        with socket.create_connection(("127.0.0.1", port)) as raw, \
                client_ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"x")
        t.join(5)


# --- ports --------------------------------------------------------------------------------------------

def test_suggest_port_never_hands_out_a_claimed_port_twice(tmp_path: Path) -> None:
    got = {ports.suggest_port(directory=tmp_path) for _ in range(20)}
    assert len(got) == 20
    for p in got:
        assert (tmp_path / f"{p}.lock").is_file()


def test_a_stale_claim_expires(tmp_path: Path) -> None:
    port = ports.suggest_port(directory=tmp_path)
    old = time.time() - ports.CLAIM_SECONDS - 1
    os.utime(tmp_path / f"{port}.lock", (old, old))
    assert ports._claim(port, tmp_path)


# --- processes ----------------------------------------------------------------------------------------

def test_flags_merge_defaults_and_overrides_and_drop_none() -> None:
    assert flags({"a": "1", "b": "2", "c": ""}, {"b": None, "d": "4"}) == ["--a=1", "--c=", "--d=4"]


def _dummy(tmp_path: Path, body: str) -> list[str]:
    script = tmp_path / "dummy.py"
    script.write_text(body)
    return [sys.executable, str(script)]


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_managed_process_becomes_ready_on_health_and_stops_with_sigterm(tmp_path: Path) -> None:
    marker = tmp_path / "up"
    argv = _dummy(tmp_path, f"import pathlib, time, signal, sys\n"
                            f"signal.signal(signal.SIGTERM, lambda *a: (print('got TERM', flush=True), sys.exit(0)))\n"
                            f"time.sleep(0.3)\npathlib.Path({str(marker)!r}).write_text('x')\n"
                            f"print('serving', flush=True)\ntime.sleep(60)\n")
    proc = ManagedProcess("dummy", argv, log_path=tmp_path / "logs" / "dummy.log", health=marker.exists,
                          start_timeout=20)
    took = proc.start()
    assert took >= 0.2 and proc.running()
    assert os.getpgid(proc.pid or 0) == proc.pid  # its own process group
    assert proc.stop() == 0
    assert "got TERM" in (tmp_path / "logs" / "dummy.log").read_text()


def test_managed_process_that_exits_early_reports_its_last_log_lines(tmp_path: Path) -> None:
    argv = _dummy(tmp_path, "import sys\nprint('line one', flush=True)\n"
                            "print('fatal: cannot bind', file=sys.stderr)\nsys.exit(3)\n")
    proc = ManagedProcess("broken", argv, log_path=tmp_path / "broken.log", health=lambda: False)
    with pytest.raises(ProcessError, match=r"broken exited with code 3 .*line one \| fatal: cannot bind"):
        proc.start()


def test_managed_process_that_ignores_sigterm_is_killed(tmp_path: Path) -> None:
    argv = _dummy(tmp_path, "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                            "print('x', flush=True)\ntime.sleep(60)\n")
    log = tmp_path / "s.log"
    proc = ManagedProcess("stubborn", argv, log_path=log, stop_timeout=0.5,
                          health=lambda: log.is_file() and "x" in log.read_text())
    proc.start()
    assert proc.stop() == -9


def test_managed_process_not_ready_in_time_is_stopped(tmp_path: Path) -> None:
    argv = _dummy(tmp_path, "import time\nprint('waiting', flush=True)\ntime.sleep(60)\n")
    proc = ManagedProcess("slow", argv, log_path=tmp_path / "slow.log", health=lambda: False, start_timeout=0.5)
    with pytest.raises(ProcessError, match="slow not ready after"):
        proc.start()
    assert not proc.running()


def test_http_ok_health_check() -> None:
    server = HTTPServer(("127.0.0.1", 0), _Ok)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        assert http_ok(f"http://127.0.0.1:{server.server_address[1]}/health")()
    finally:
        server.shutdown()
    assert not http_ok(f"http://127.0.0.1:{server.server_address[1]}/health", timeout=0.2)()


# --- flags of the control plane -------------------------------------------------------------------------

def test_apiserver_flags_turn_on_rbac_admission_aggregation_and_audit(tmp_path: Path) -> None:
    plane = ControlPlane(Binaries(tmp_path / "a", tmp_path / "e", None, tmp_path), tmp_path / "logs",
                         workdir=tmp_path / "w")
    argv = plane.apiserver_flags(6443, "http://127.0.0.1:2379", tmp_path / "audit.jsonl")
    got = dict(f[2:].split("=", 1) for f in argv)
    assert got["authorization-mode"] == "RBAC"
    assert got["disable-admission-plugins"] == "ServiceAccount"
    assert "enable-admission-plugins" not in got  # the default chain stays on
    assert got["requestheader-allowed-names"] == "front-proxy-client"
    assert got["proxy-client-cert-file"].endswith("front-proxy-client.crt")
    assert got["audit-log-path"] == str(tmp_path / "audit.jsonl")
    assert got["bind-address"] == "127.0.0.1" and got["secure-port"] == "6443"
    kcm = dict(f[2:].split("=", 1) for f in plane.controller_manager_flags(1234, tmp_path / "k"))
    assert kcm["controllers"] == "garbage-collector-controller,namespace-controller"
    assert kcm["leader-elect"] == "false"
    plane.stop()
    assert not (tmp_path / "w").exists() or not plane._own_workdir


# --- what gets installed --------------------------------------------------------------------------------

WEBHOOK_YAML = """\
kind: Deployment
apiVersion: apps/v1
metadata: {name: kube-ovn-webhook, namespace: kube-system}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: kube-ovn-webhook
  annotations:
    cert-manager.io/inject-ca-from: kube-system/kube-ovn-webhook-serving-cert
webhooks:
- name: pod-ip-validating.kube-ovn.io
  rules:
    - operations: [CREATE]
      apiGroups: [""]
      apiVersions: [v1]
      resources: [pods]
  objectSelector:
    matchExpressions: [{key: app, operator: NotIn, values: [kube-ovn-webhook]}]
  failurePolicy: Ignore
  admissionReviewVersions: ["v1", "v1beta1"]
  sideEffects: None
  timeoutSeconds: 5
  clientConfig:
    service: {namespace: kube-system, name: kube-ovn-webhook, path: /validating, port: 443}
"""

CRD_YAML = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: ips.kubeovn.io}
spec:
  group: kubeovn.io
  scope: Cluster
  names: {plural: ips, kind: IP, singular: ip}
  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}]
"""


def _fake_module(tmp_path: Path) -> Path:
    mod = tmp_path / "kube-ovn@v1.16.2"
    (mod / "charts/kube-ovn/templates").mkdir(parents=True)
    (mod / "charts/kube-ovn/templates/kube-ovn-crd.yaml").write_text(CRD_YAML)
    (mod / "yamls").mkdir()
    (mod / "yamls/webhook.yaml").write_text(WEBHOOK_YAML)
    return mod


def test_kube_ovn_crds_and_registration_are_read_from_the_module(tmp_path: Path) -> None:
    mod = _fake_module(tmp_path)
    crds, source = inst.kube_ovn_crds(mod)
    assert [c["metadata"]["name"] for c in crds] == ["ips.kubeovn.io"]
    assert source == "charts/kube-ovn/templates/kube-ovn-crd.yaml"
    reg = inst.webhook_registration(mod)
    out = inst.with_url(reg, "https://127.0.0.1:9443", b"CA PEM")
    hook = out["webhooks"][0]
    assert hook["clientConfig"] == {"url": "https://127.0.0.1:9443/validating",
                                    "caBundle": base64.b64encode(b"CA PEM").decode()}
    # everything else exactly as the tag has it
    for key in ("rules", "objectSelector", "failurePolicy", "timeoutSeconds", "sideEffects", "name"):
        assert hook[key] == reg["webhooks"][0][key]
    assert "annotations" not in out["metadata"]
    assert "service" in reg["webhooks"][0]["clientConfig"]  # the original is not changed


def test_a_templated_crd_file_or_missing_module_is_one_clear_error(tmp_path: Path) -> None:
    mod = tmp_path / "m"
    (mod / "charts/kube-ovn/templates").mkdir(parents=True)
    (mod / "charts/kube-ovn/templates/kube-ovn-crd.yaml").write_text("{{ if .Values.x }}\n")
    with pytest.raises(inst.InstallError, match="Helm template"):
        inst.kube_ovn_crds(mod)
    with pytest.raises(inst.InstallError, match="no webhook manifest"):
        inst.webhook_registration(tmp_path / "nothing")


def test_fallback_kubevirt_crds_keep_names_scope_and_status_subresources() -> None:
    crds = {c["metadata"]["name"]: c for c in inst.fallback_kubevirt_crds()}
    vm = crds["virtualmachines.kubevirt.io"]["spec"]
    assert vm["scope"] == "Namespaced" and vm["names"]["shortNames"] == ["vm", "vms"]
    assert vm["versions"][0]["subresources"] == {"status": {}}
    assert "virtualmachineclones.clone.kubevirt.io" in crds


def test_aggregated_api_uses_an_external_name_service_to_localhost() -> None:
    docs = inst.aggregated_api(8443, b"CA")
    svc = docs[0]
    assert svc["spec"] == {"type": "ExternalName", "externalName": "localhost",
                           "ports": [{"name": "https", "port": 8443, "protocol": "TCP"}]}
    names = [d["metadata"]["name"] for d in docs[1:]]
    assert names == ["v1.subresources.kubevirt.io", "v1alpha3.subresources.kubevirt.io"]
    assert docs[1]["spec"]["service"] == {"name": "virt-api", "namespace": "kubevirt", "port": 8443}


def test_the_suite_identity_is_the_service_account_of_rbac_yaml() -> None:
    docs = inst.rbac_manifest(Path(__file__).resolve().parents[2] / "manifests" / "rbac.yaml")
    ns, name = inst.rbac_account(docs)
    user, groups = inst.service_account_user(ns, name)
    assert user == f"system:serviceaccount:{ns}:{name}"
    assert groups == ["system:serviceaccounts", f"system:serviceaccounts:{ns}"]


def test_kubeconfig_for_writes_a_client_certificate_kubeconfig(tmp_path: Path) -> None:
    plane = ControlPlane(Binaries(tmp_path / "a", tmp_path / "e", None, tmp_path), tmp_path / "logs",
                         workdir=tmp_path / "w")
    plane._write_pki()
    plane.endpoints.apiserver = "https://127.0.0.1:1"
    path = plane.kubeconfig_for("system:serviceaccount:kovc-system:kovc", ["system:serviceaccounts"], name="kovc")
    cfg = yaml.safe_load(path.read_text())
    user = cfg["users"][0]["user"]
    cert = x509.load_pem_x509_certificate(Path(user["client-certificate"]).read_bytes())
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value.endswith(":kovc")
    assert cfg["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:1"


def test_run_backend_envtest_without_assets_is_one_line_and_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from conformance.cli import main

    code = main(["run", "--backend", "envtest", "--assets", str(tmp_path / "nothing"),
                 "--report-dir", str(tmp_path / "report")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "kovc assets build" in err[0], err
    assert not (tmp_path / "report").exists()


def test_backend_envtest_is_selectable_and_plans_without_touching_anything(tmp_path: Path) -> None:
    from conformance.cluster.select import BackendOptions, make_backend

    backend = make_backend("envtest", BackendOptions(backend="envtest", assets=str(tmp_path),
                                                     report_dir=tmp_path / "r"))
    steps = backend.plan()
    assert "--assets" in steps[0] and str(tmp_path) in steps[0]
    assert any("rbac.yaml" in s for s in steps)
    assert not (tmp_path / "r").exists()


VIRT_API_VWC = """\
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: virt-api-validator, creationTimestamp: null}
webhooks:
- name: virtualmachine-validator.kubevirt.io
  clientConfig: {service: {name: virt-api, namespace: kubevirt, path: /virtualmachines-validate}}
  rules: [{operations: [CREATE, UPDATE], apiGroups: [kubevirt.io], apiVersions: [v1], resources: [virtualmachines]}]
  failurePolicy: Fail
  sideEffects: None
  admissionReviewVersions: [v1]
- name: virtualmachineinstances-create-validator.kubevirt.io
  clientConfig: {service: {name: virt-api, namespace: kubevirt, path: /virtualmachineinstances-validate-create}}
  rules: [{operations: [CREATE], apiGroups: [kubevirt.io], apiVersions: [v1], resources: [virtualmachineinstances]}]
  sideEffects: None
  admissionReviewVersions: [v1]
"""


def test_virt_api_registration_keeps_only_the_served_checks(tmp_path: Path) -> None:
    path = tmp_path / "virt-api-webhooks.yaml"
    assert inst.virt_api_registration(path, "https://127.0.0.1:1", b"CA") is None
    path.write_text(VIRT_API_VWC)
    out = inst.virt_api_registration(path, "https://127.0.0.1:1", b"CA")
    assert out is not None
    assert [h["name"] for h in out["webhooks"]] == ["virtualmachine-validator.kubevirt.io"]
    hook = out["webhooks"][0]
    assert hook["clientConfig"]["url"] == "https://127.0.0.1:1/virtualmachines-validate"
    assert hook["failurePolicy"] == "Fail"
    assert "creationTimestamp" not in out["metadata"]


def test_a_second_run_is_refused_while_one_holds_the_webhook_cert_dir(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conformance.envtest import webhook

    monkeypatch.setattr(webhook, "LOCK_FILE", tmp_path / ".kovc-envtest.lock")
    monkeypatch.setattr(webhook, "CERT_DIR", tmp_path / "serving-certs")
    plane = ControlPlane(Binaries(tmp_path / "a", tmp_path / "e", None, tmp_path), tmp_path / "logs",
                         workdir=tmp_path / "w")
    first = webhook.RealWebhook(tmp_path / "kube-ovn-webhook", "v1.16.2", plane)
    second = webhook.RealWebhook(tmp_path / "kube-ovn-webhook", "v1.16.2", plane)
    first._take_lock()
    try:
        with pytest.raises(webhook.WebhookBusy, match=f"pid {os.getpid()}.*one envtest run at a time"):
            second._take_lock()
    finally:
        first.release()
    second._take_lock()  # free again once the first has released it
    second.release()
