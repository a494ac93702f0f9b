"""The behaviour through the simulated cluster's HTTP API with the official ``kubernetes`` client:
a VM to Running, virt-api's subresources, the webhook's HTTP answers and a probe pod's log."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from conformance.sim import resources as r
from conformance.sim.cluster import SimCluster, world_available
from conformance.sim.store import Store

pytestmark = pytest.mark.skipif(not world_available(), reason="conformance.sim.world is absent")

JSON = dict[str, Any]
Waiter = Callable[..., None]


def vm_body(name: str, ip: str) -> JSON:
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": name},
        "spec": {
            "runStrategy": "Always",
            "template": {
                "metadata": {
                    "annotations": {
                        "ovn.kubernetes.io/ip_address": ip,
                        "kubevirt.io/allow-pod-bridge-network-live-migration": "true",
                    }
                },
                "spec": {
                    "domain": {"devices": {"interfaces": [{"name": "default", "bridge": {}}]}},
                    "networks": [{"name": "default", "pod": {}}],
                },
            },
        },
    }


def put_action(sim: SimCluster, ns: str, name: str, action: str) -> tuple[int, JSON | None]:
    url = f"{sim.url}/apis/subresources.kubevirt.io/v1/namespaces/{ns}/virtualmachines/{name}/{action}"
    req = urllib.request.Request(
        url,
        data=b"{}",
        method="PUT",
        headers={"Content-Type": "application/json", "User-Agent": "kovc-tests/http", **sim.auth_headers},
    )
    try:
        with urllib.request.urlopen(req, timeout=10, context=sim.client_ssl_context()) as resp:
            return resp.status, None
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def vmi_running(ns: str, name: str, not_uid: str = "") -> Callable[[Store], bool]:
    def check(store: Store) -> bool:
        vm, vmi = store.get(r.VMS, ns, name), store.get(r.VMIS, ns, name)
        return bool(
            vm
            and vmi
            and vmi["metadata"]["uid"] != not_uid
            and (vm.get("status") or {}).get("ready")
            and (vmi.get("status") or {}).get("interfaces")
        )

    return check


def test_vm_restart_over_http(
    sim_cluster: SimCluster, sim_api: k8s.ApiClient, sim_namespace: str, sim_wait: Waiter
) -> None:
    ns = sim_namespace
    co = k8s.CustomObjectsApi(sim_api)
    co.create_namespaced_custom_object(
        "kubevirt.io", "v1", ns, "virtualmachines", vm_body("web", "10.16.1.10")
    )
    sim_wait(vmi_running(ns, "web"), "VM web ready")
    vmi: Any = co.get_namespaced_custom_object("kubevirt.io", "v1", ns, "virtualmachineinstances", "web")
    ip_cr: Any = co.get_cluster_custom_object("kubeovn.io", "v1", "ips", f"web.{ns}")
    ip_uid = ip_cr["metadata"]["uid"]
    code, body = put_action(sim_cluster, ns, "web", "start")
    assert code == 409 and body is not None and body["reason"] == "Conflict"
    assert (
        body["message"]
        == 'Operation cannot be fulfilled on virtualmachine.kubevirt.io "web": VM is already running'
    )
    code, _ = put_action(sim_cluster, ns, "web", "restart")
    assert code == 202
    sim_wait(vmi_running(ns, "web", vmi["metadata"]["uid"]), "a new VMI after restart")
    after: Any = co.get_cluster_custom_object("kubeovn.io", "v1", "ips", f"web.{ns}")
    assert after["metadata"]["uid"] == ip_uid and after["spec"]["ipAddress"] == "10.16.1.10"
    audit = [e for e in sim_cluster.audit() if e["verb"] == "restart" and e["name"] == "web"]
    assert audit and audit[-1]["code"] == 202 and audit[-1]["userAgent"] == "kovc-tests/http"


def test_webhook_answers_over_http(sim_api: k8s.ApiClient, sim_namespace: str, sim_wait: Waiter) -> None:
    ns = sim_namespace
    core = k8s.CoreV1Api(sim_api)
    k8s.CustomObjectsApi(sim_api).create_namespaced_custom_object(
        "kubevirt.io", "v1", ns, "virtualmachines", vm_body("web", "10.16.1.11")
    )
    sim_wait(vmi_running(ns, "web"), "VM web ready")

    def pod(name: str, annotations: dict[str, str]) -> Any:
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "annotations": annotations},
            "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "60"]}]},
        }

    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod(ns, pod("intruder", {"ovn.kubernetes.io/ip_address": "10.16.1.11"}))
    status = json.loads(str(err.value.body))
    assert err.value.status == 403 and status["reason"] == "Forbidden"
    assert status["message"] == (
        'admission webhook "pod-ip-validating.kube-ovn.io" denied the request: annotation '
        f"static-ip 10.16.1.11 is conflict with ip crd web.{ns}, ip 10.16.1.11"
    )
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod(
            ns,
            pod(
                "liveness",
                {"ovn.kubernetes.io/ip_address": "10.16.1.12", "ovn.kubernetes.io/cidr": "10.17.0.0/16"},
            ),
            dry_run="All",
        )
    assert err.value.status == 400
    assert "10.16.1.12 not in cidr 10.17.0.0/16" in json.loads(str(err.value.body))["message"]
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod(
            ns, pod("dry", {"ovn.kubernetes.io/ip_address": "10.16.1.11"}), dry_run="All"
        )
    assert err.value.status == 403


def test_probe_log_over_http(sim_api: k8s.ApiClient, sim_namespace: str, sim_wait: Waiter) -> None:
    ns = sim_namespace
    core = k8s.CoreV1Api(sim_api)
    k8s.CustomObjectsApi(sim_api).create_namespaced_custom_object(
        "kubevirt.io", "v1", ns, "virtualmachines", vm_body("web", "10.16.1.13")
    )
    sim_wait(vmi_running(ns, "web"), "VM web ready")
    probe: Any = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "probe",
            "labels": {"kovc.io/probe": "true"},
            "annotations": {
                "kovc.io/probe-target": "10.16.1.13",
                "kovc.io/probe-interval-ms": "10",
                "kovc.io/probe-count": "3",
            },
        },
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "probe", "image": "busybox", "command": ["sh", "-c", "ping; exit 0"]}],
        },
    }
    core.create_namespaced_pod(ns, probe)
    sim_wait(
        lambda s: (s.require(r.PODS, ns, "probe").get("status") or {}).get("phase") == "Succeeded",
        "the probe Succeeded",
    )
    text = core.read_namespaced_pod_log("probe", ns)
    lines = text.splitlines()
    assert [line.split(" ", 1)[1] for line in lines[:3]] == [
        f"reply from 10.16.1.13 seq={i}" for i in (1, 2, 3)
    ]
    assert lines[3] == "--- 10.16.1.13 probe statistics: 3 transmitted, 3 received"
