"""Detection details: flag parsing, image tags, odd API answers."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.cluster import detect
from conformance.cluster.base import BackendError


def deployment(args: list[str] | None = None, command: list[str] | None = None,
               env: list[dict[str, str]] | None = None, name: str = "kube-ovn-controller") -> dict[str, Any]:
    container: dict[str, Any] = {"name": name, "image": "docker.io/kubeovn/kube-ovn:v1.16.2"}
    if args is not None:
        container["args"] = args
    if command is not None:
        container["command"] = command
    if env is not None:
        container["env"] = env
    return {"spec": {"template": {"spec": {"containers": [container]}}}}


@pytest.mark.parametrize(("args", "expected"), [
    (["--keep-vm-ip=true"], True),
    (["--keep-vm-ip=false"], False),
    (["--keep-vm-ip", "false"], False),
    (["--keep-vm-ip"], True),
    (["-keep-vm-ip=0"], False),
    (["--default-cidr=10.16.0.0/16"], True),  # absent: the flag's default (true)
    ([], True),
])
def test_keep_vm_ip_flag(args: list[str], expected: bool) -> None:
    assert detect.keep_vm_ip(deployment(args)) == (expected, None)


def test_keep_vm_ip_in_command_and_from_env() -> None:
    assert detect.keep_vm_ip(deployment(command=["/kube-ovn/start-controller.sh", "--keep-vm-ip=false"])) \
        == (False, None)
    dep = deployment(["--keep-vm-ip=$(KEEP_VM_IP)"], env=[{"name": "KEEP_VM_IP", "value": "false"}])
    assert detect.keep_vm_ip(dep) == (False, None)


def test_keep_vm_ip_unreadable_is_unknown_with_warning() -> None:
    value, warning = detect.keep_vm_ip(deployment(["--keep-vm-ip=$(UNSET)"]))
    assert value is None and warning is not None and "'$(UNSET)'" in warning


@pytest.mark.parametrize(("image", "tag"), [
    ("docker.io/kubeovn/kube-ovn:v1.16.2", "v1.16.2"),
    ("kubeovn/kube-ovn:v1.10.8", "v1.10.8"),
    ("registry.local:5000/kubeovn/kube-ovn:v1.15.0", "v1.15.0"),
    ("registry.local:5000/kubeovn/kube-ovn", ""),
    ("docker.io/kubeovn/kube-ovn:v1.16.2@sha256:abc", "v1.16.2"),
])
def test_image_tag(image: str, tag: str) -> None:
    assert detect.image_tag(image) == tag


def test_missing_lists_each_absent_part() -> None:
    det = detect.Detection(server_version="v1.35.1", simulated=False, controller=None, webhook=None,
                           webhook_workload=None, kubevirt=None, keep_vm_ip=None, nodes=[], warnings=[])
    missing = det.missing
    assert len(missing) == 3
    assert [m.split(" ")[0] for m in missing] == ["KubeVirt", "Kube-OVN", "the"]


# -- odd API servers --------------------------------------------------------------------------------

ANSWERS: dict[str, tuple[int, bytes]] = {}


@pytest.fixture
def odd_server(tmp_path: Path) -> Iterator[Path]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code, body = ANSWERS.get(self.path.split("?")[0], (404, b'{"kind":"Status","message":"nope"}'))
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{server.server_address[1]}"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    try:
        yield path
    finally:
        ANSWERS.clear()
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("answer", "needle"), [
    ((403, b'{"kind":"Status","message":"forbidden: User \\"x\\" cannot get path \\"/version\\""}'),
     "answered GET /version with 403: forbidden"),
    ((500, b"<html>oops</html>"), "answered GET /version with 500: <html>oops</html>"),
    ((200, b"not json"), "answered GET /version with non-JSON"),
    ((200, b"[1, 2]"), "answered GET /version with list, expected an object"),
    (None, "has no /version endpoint"),
])
def test_odd_answers_are_one_line(odd_server: Path, answer: tuple[int, bytes] | None, needle: str) -> None:
    if answer is not None:
        ANSWERS["/version"] = answer
    api = detect.connect(str(odd_server))
    try:
        with pytest.raises(BackendError) as err:
            detect.detect(api)
    finally:
        api.close()
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_absent_kubevirt_api_and_nodes(odd_server: Path) -> None:
    ANSWERS["/version"] = (200, b'{"gitVersion": "v1.35.1"}')
    ANSWERS["/apis/apps/v1/deployments"] = (200, b'{"items": []}')
    ANSWERS["/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"] = (200, b'{"items": []}')
    api = detect.connect(str(odd_server))
    try:
        det = detect.detect(api)
    finally:
        api.close()
    assert det.server_version == "v1.35.1" and det.simulated is False
    assert det.kubevirt is None and det.nodes == [] and det.controller is None and len(det.missing) == 3


def test_webhook_deployment_found_through_its_service(odd_server: Path) -> None:
    dep = {"metadata": {"name": "vendor-webhook", "namespace": "ovn"},
           "spec": {"selector": {"matchLabels": {"app": "w"}},
                    "template": {"metadata": {"labels": {"app": "w", "tier": "x"}},
                                 "spec": {"containers": [{"name": "kube-ovn-webhook",
                                                          "image": "docker.io/kubeovn/kube-ovn:v1.15.3"}]}}}}
    other = {"metadata": {"name": "a-other", "namespace": "ovn"},
             "spec": {"template": {"metadata": {"labels": {"app": "other"}}, "spec": {"containers": []}}}}
    ANSWERS["/api/v1/namespaces/ovn/services/ovn-webhook"] = (200, json.dumps(
        {"spec": {"selector": {"app": "w"}}}).encode())
    ANSWERS["/apis/apps/v1/namespaces/ovn/deployments"] = (200, json.dumps({"items": [dep, other]}).encode())
    pod = {"metadata": {"name": "p"}, "status": {"phase": "Running", "containerStatuses": [
        {"name": "kube-ovn-webhook", "image": "docker.io/kubeovn/kube-ovn:v1.15.3"}]},
        "spec": {"containers": [{"name": "kube-ovn-webhook", "image": "docker.io/kubeovn/kube-ovn:v1.15.3"},
                                {"name": "sidecar", "image": "busybox"}]}}
    gone = {"metadata": {"name": "q", "deletionTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"phase": "Running"},
            "spec": {"containers": [{"name": "kube-ovn-webhook", "image": "old"}]}}
    pending = {"metadata": {"name": "r"}, "status": {"phase": "Pending"},
               "spec": {"containers": [{"name": "kube-ovn-webhook", "image": "old"}]}}
    ANSWERS["/api/v1/namespaces/ovn/pods"] = (200, json.dumps({"items": [pod, gone, pending]}).encode())
    api = detect.connect(str(odd_server))
    try:
        ref = detect.WebhookRef("c", detect.WEBHOOK_ENTRY, "ovn", "ovn-webhook", "Fail")
        workload = detect.webhook_deployment(api, ref)
        assert workload is not None and workload.name == "vendor-webhook" and workload.tag == "v1.15.3"
        images = detect.running_images(api, workload, "kube-ovn-webhook")
        assert images == ["docker.io/kubeovn/kube-ovn:v1.15.3"]
        no_selector = detect.Workload("ovn", "x", "i", "", raw={"spec": {}})
        assert detect.running_images(api, no_selector, "kube-ovn-webhook") == []
        missing_service = detect.WebhookRef("c", detect.WEBHOOK_ENTRY, "ovn", "absent", None)
        assert detect.webhook_deployment(api, missing_service) is None
    finally:
        api.close()
