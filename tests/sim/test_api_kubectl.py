"""The real kubectl against the simulated cluster: get, apply (server-side field validation through
OpenAPI v3), wait --for=jsonpath, delete --wait."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest
from kubernetes import client as k8s

from conformance.sim.cluster import SimCluster
from conformance.versions import cirros_image

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def ok(result: subprocess.CompletedProcess[str], what: str) -> str:
    assert result.returncode == 0, (
        f"{what}: expected exit 0, got {result.returncode}: {result.stderr.strip()}"
    )
    return result.stdout


def vm_manifest(ns: str, name: str, run_strategy: str) -> str:
    return f"""
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: {name}
  namespace: {ns}
spec:
  runStrategy: {run_strategy}
  template:
    spec:
      domain:
        devices:
          disks:
          - name: rootdisk
            disk: {{bus: virtio}}
        resources:
          requests: {{memory: 128Mi}}
      volumes:
      - name: rootdisk
        containerDisk: {{image: {cirros_image()}}}
"""


def test_get_nodes_and_pods_all_namespaces(
    kubectl: Kubectl, sim_cluster: SimCluster, sim_namespace: str, sim_api: k8s.ApiClient
) -> None:
    k8s.CoreV1Api(sim_api).create_namespaced_pod(
        sim_namespace,
        {"metadata": {"name": "listed"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
    )
    out = ok(kubectl("get", "nodes,pods", "-A"), "kubectl get nodes,pods -A")
    assert "listed" in out and sim_namespace in out, out
    pods = ok(kubectl("get", "pods", "-n", sim_namespace), "kubectl get pods")
    assert pods.splitlines()[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"], pods
    if sim_cluster.world is not None:
        assert "node/" in ok(kubectl("get", "nodes", "-o", "name"), "kubectl get nodes"), (
            "the world seeds nodes"
        )


def test_apply_create_then_configure(kubectl: Kubectl, sim_cluster: SimCluster, sim_namespace: str) -> None:
    if sim_cluster.world is not None:
        first, second = (
            vm_manifest(sim_namespace, "applied", "Halted"),
            vm_manifest(sim_namespace, "applied", "Manual"),
        )
        kind, field = "virtualmachine.kubevirt.io", "{.spec.runStrategy}"
        expected = "Manual"
    else:
        first = (
            f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: applied, namespace: {sim_namespace}}}\n"
            "data: {a: '1'}\n"
        )
        second = first.replace("'1'", "'2'")
        kind, field, expected = "configmap", "{.data.a}", "2"
    assert f"{kind}/applied created" in ok(kubectl("apply", "-f", "-", input=first), "kubectl apply (create)")
    out = kubectl("apply", "-f", "-", input=second)
    assert f"{kind}/applied configured" in ok(out, "kubectl apply (configure)")
    assert "warning" not in out.stderr.lower(), out.stderr
    got = ok(kubectl("get", kind, "applied", "-n", sim_namespace, "-o", f"jsonpath={field}"), "kubectl get")
    assert got == expected, f"{kind}/applied {field}: expected {expected!r}, got {got!r}"


def test_apply_service_merges_ports_by_port(kubectl: Kubectl, sim_namespace: str) -> None:
    svc = (
        "apiVersion: v1\nkind: Service\nmetadata: {{name: s, namespace: {ns}}}\nspec: {{ports: [{ports}]}}\n"
    )
    ok(
        kubectl("apply", "-f", "-", input=svc.format(ns=sim_namespace, ports="{port: 80}, {port: 81}")),
        "apply",
    )
    ok(
        kubectl("apply", "-f", "-", input=svc.format(ns=sim_namespace, ports="{port: 80}, {port: 82}")),
        "apply",
    )
    ports = ok(kubectl("get", "svc", "s", "-n", sim_namespace, "-o", "jsonpath={.spec.ports[*].port}"), "get")
    assert ports.split() == ["80", "82"], ports


def test_wait_for_jsonpath_set_through_the_api(
    kubectl: Kubectl, kubectl_argv: list[str], sim_api: k8s.ApiClient, sim_namespace: str
) -> None:
    core = k8s.CoreV1Api(sim_api)
    core.create_namespaced_config_map(sim_namespace, {"metadata": {"name": "flag"}, "data": {"ready": "no"}})
    never = kubectl(
        "wait", "configmap/flag", "-n", sim_namespace, "--for=jsonpath={.data.ready}=never", "--timeout=1s"
    )
    assert never.returncode != 0, "kubectl wait must not succeed on a condition that never holds"
    proc = subprocess.Popen(
        [
            *kubectl_argv,
            "wait",
            "configmap/flag",
            "-n",
            sim_namespace,
            "--for=jsonpath={.data.ready}=yes",
            "--timeout=30s",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    core.patch_namespaced_config_map("flag", sim_namespace, {"data": {"ready": "yes"}})
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, f"kubectl wait: expected exit 0, got {proc.returncode}: {err}"
    assert "condition met" in out


def test_delete_wait(kubectl: Kubectl, sim_api: k8s.ApiClient, sim_namespace: str) -> None:
    core = k8s.CoreV1Api(sim_api)
    core.create_namespaced_config_map(sim_namespace, {"metadata": {"name": "bye"}})
    out = ok(kubectl("delete", "configmap", "bye", "-n", sim_namespace, "--wait", "--timeout=30s"), "delete")
    assert 'configmap "bye" deleted' in out
    assert not core.list_namespaced_config_map(sim_namespace, field_selector="metadata.name=bye").items


def test_get_ips_prints_printer_columns(kubectl: Kubectl, sim_api: k8s.ApiClient, sim_namespace: str) -> None:
    name = f"col.{sim_namespace}"
    k8s.CustomObjectsApi(sim_api).create_cluster_custom_object(
        "kubeovn.io",
        "v1",
        "ips",
        {
            "apiVersion": "kubeovn.io/v1",
            "kind": "IP",
            "metadata": {"name": name},
            "spec": {
                "v4IpAddress": "10.16.250.5",
                "macAddress": "00:00:00:aa:bb:cc",
                "nodeName": "n1",
                "subnet": "ovn-default",
                "podName": "col",
                "namespace": sim_namespace,
            },
        },
    )
    try:
        out = ok(kubectl("get", "ips", name), "kubectl get ips")
        header, row = out.splitlines()[:2]
        assert header.split() == ["NAME", "V4IP", "V6IP", "MAC", "NODE", "SUBNET"], header
        assert row.split() == [name, "10.16.250.5", "00:00:00:aa:bb:cc", "n1", "ovn-default"], row
    finally:
        k8s.CustomObjectsApi(sim_api).delete_cluster_custom_object("kubeovn.io", "v1", "ips", name)


@pytest.mark.parametrize("args", [("get", "vm", "-A"), ("get", "vmi", "-A"), ("version",)])
def test_other_kubectl_reads(kubectl: Kubectl, args: tuple[str, ...]) -> None:
    ok(kubectl(*args), f"kubectl {' '.join(args)}")


def test_create_generators_send_protobuf(
    kubectl: Kubectl, sim_api: k8s.ApiClient, sim_namespace: str
) -> None:
    """kubectl 1.32 sends protobuf for ``kubectl create namespace|configmap|serviceaccount``."""
    ns = f"{sim_namespace}-gen"
    ok(kubectl("create", "namespace", ns), "kubectl create namespace")
    ok(
        kubectl("create", "configmap", "lit", "-n", ns, "--from-literal=a=b", "--from-literal=c=d"),
        "create cm",
    )
    ok(kubectl("create", "serviceaccount", "robot", "-n", ns), "kubectl create serviceaccount")
    core = k8s.CoreV1Api(sim_api)
    namespace = core.read_namespace(ns)
    assert namespace.status.phase == "Active" and namespace.metadata.uid
    assert core.read_namespaced_config_map("lit", ns).data == {"a": "b", "c": "d"}
    assert core.read_namespaced_service_account("robot", ns).metadata.namespace == ns
    failed = kubectl("create", "deployment", "web", "-n", ns, "--image=busybox")
    assert failed.returncode != 0 and "unknown format" in failed.stderr, (
        "protobuf bodies of other kinds are refused with 415"
    )
