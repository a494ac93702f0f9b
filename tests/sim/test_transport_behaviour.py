"""One behaviour suite, three transports (``transport_helpers``): what the controllers do must not depend on
whether they talk to the in-process store or to an API server over HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from behaviour_helpers import bridge_vm, probe_manifest
from transport_helpers import Harness, run

from conformance.sim import resources as r
from conformance.sim.controllers import kubeovn
from conformance.sim.store import ApiError
from conformance.sim.view import until

JSON = dict[str, Any]
# Each test's VM has its own address: on a shared envtest cluster namespaces are cleaned up asynchronously.


def _keep(ip: str) -> dict[str, str]:
    return {"ovn.kubernetes.io/ip_address": ip}


def _vmi_running(h: Harness, ns: str, name: str) -> Any:
    def check(c: Any) -> JSON | None:
        vmi = c.get(r.VMIS, ns, name)
        return vmi if vmi and (vmi.get("status") or {}).get("phase") == "Running" else None

    return until(h.client, check, f"VMI {ns}/{name} Running", timeout=15)


def _launcher(h: Harness, ns: str, vm: str) -> JSON | None:
    for pod in h.client.list(r.PODS, ns, label_selector=f"vm.kubevirt.io/name={vm}"):
        if (pod.get("status") or {}).get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp"):
            return pod
    return None


def test_vm_runs_with_its_static_ip_and_ip_cr(transport: str) -> None:
    ip = "10.16.0.42"

    async def body(h: Harness) -> None:
        ns = await h.namespace("t-run")
        await h.client.create(r.VMS, bridge_vm("web", ns, _keep(ip)))
        vmi = await _vmi_running(h, ns, "web")
        assert vmi["status"]["interfaces"][0]["ipAddress"] == ip, vmi["status"]
        pod = await until(h.client, lambda c: _launcher(h, ns, "web"), "launcher pod Running", timeout=10)
        assert pod["spec"]["nodeName"].startswith("kovc-sim-worker"), pod["spec"]
        assert pod["metadata"]["annotations"][kubeovn.ALLOCATED] == "true"
        ip_cr = await until(h.client, lambda c: c.get(r.IPS, "", f"web.{ns}"), "IP CR web.<ns>", timeout=10)
        assert ip_cr["spec"]["ipAddress"] == ip and ip_cr["spec"]["podName"] == "web", ip_cr["spec"]
        scheduled = [c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled"]
        assert scheduled and scheduled[0]["status"] == "True", pod["status"]["conditions"]

    run(transport, body)


def test_restart_keeps_the_ip_and_a_colliding_pod_is_denied(transport: str) -> None:
    ip = "10.16.0.43"

    async def body(h: Harness) -> None:
        ns = await h.namespace("t-restart")
        await h.client.create(r.VMS, bridge_vm("web", ns, _keep(ip)))
        await _vmi_running(h, ns, "web")
        first = await until(h.client, lambda c: _launcher(h, ns, "web"), "first launcher", timeout=10)
        assert await h.action(ns, "web", "restart") == {}

        def second(c: Any) -> JSON | None:
            pod = _launcher(h, ns, "web")
            return pod if pod and pod["metadata"]["uid"] != first["metadata"]["uid"] else None

        pod = await until(h.client, second, "a new launcher pod Running after restart", timeout=15)
        assert pod["metadata"]["annotations"][kubeovn.IP_ADDRESS] == ip
        collider = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "thief", "namespace": ns, "annotations": _keep(ip)},
            "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]},
        }
        with pytest.raises(ApiError) as denied:
            await h.client.create(r.PODS, collider)
        assert denied.value.code == 403 and "pod-ip-validating.kube-ovn.io" in denied.value.message, (
            denied.value.code, denied.value.message)

    run(transport, body)


def test_stop_releases_nothing_and_delete_releases_the_ip(transport: str) -> None:
    ip = "10.16.0.44"

    async def body(h: Harness) -> None:
        ns = await h.namespace("t-stop")
        await h.client.create(r.VMS, bridge_vm("web", ns, _keep(ip)))
        await _vmi_running(h, ns, "web")
        assert await h.action(ns, "web", "stop") == {}
        await until(h.client, lambda c: c.get(r.VMIS, ns, "web") is None, "VMI gone after stop", timeout=15)
        assert h.client.get(r.IPS, "", f"web.{ns}") is not None, "keep-vm-ip: a stopped VM keeps its IP CR"
        await h.client.delete(r.VMS, ns, "web")
        await until(h.client, lambda c: c.get(r.IPS, "", f"web.{ns}") is None, "IP CR released", timeout=15)

    run(transport, body)


def test_probe_pod_reaches_the_vm_and_finishes(transport: str) -> None:
    ip = "10.16.0.45"

    async def body(h: Harness) -> None:
        ns = await h.namespace("t-probe")
        await h.client.create(r.VMS, bridge_vm("web", ns, _keep(ip)))
        await _vmi_running(h, ns, "web")
        await h.client.create(r.PODS, probe_manifest("probe", ns, ip, count=3))

        def finished(c: Any) -> JSON | None:
            pod = c.get(r.PODS, ns, "probe")
            return pod if pod and (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed") else None

        pod = await until(h.client, finished, "probe finished", timeout=15)
        assert pod["status"]["phase"] == "Succeeded", pod["status"]

    run(transport, body)


def test_live_migration_moves_the_vm_and_keeps_its_ip(transport: str) -> None:
    ip = "10.16.0.46"

    async def body(h: Harness) -> None:
        ns = await h.namespace("t-mig")
        ann = {**_keep(ip), "kubevirt.io/allow-pod-bridge-network-live-migration": "true"}
        await h.client.create(r.VMS, bridge_vm("web", ns, ann))

        def migratable(c: Any) -> JSON | None:
            vmi = c.get(r.VMIS, ns, "web")
            conds = {x["type"]: x["status"] for x in ((vmi or {}).get("status") or {}).get("conditions") or []}
            return vmi if conds.get("LiveMigratable") == "True" and vmi["status"].get("phase") == "Running" else None

        vmi = await until(h.client, migratable, "VMI Running and LiveMigratable", timeout=15)
        source = vmi["status"]["nodeName"]
        assert await h.action(ns, "web", "migrate") == {}

        def finished(c: Any) -> JSON | None:
            for m in c.list(r.VMIMS, ns):
                if (m.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                    return m
            return None

        vmim = await until(h.client, finished, "the migration to finish", timeout=20)
        assert vmim["status"]["phase"] == "Succeeded", vmim["status"]
        moved = await until(h.client, lambda c: (v := c.get(r.VMIS, ns, "web")) and v["status"]["nodeName"] != source
                            and v, "VMI on the target node", timeout=10)
        assert moved["status"]["interfaces"][0]["ipAddress"] == ip

    run(transport, body, migration_gap=0.05)


def test_a_vm_that_cannot_migrate_is_refused_at_admission(transport: str) -> None:
    ip = "10.16.0.47"

    async def body(h: Harness) -> None:
        ns = await h.namespace("t-nomig")
        await h.client.create(r.VMS, bridge_vm("web", ns, _keep(ip)))  # bridge without the allow annotation

        def not_migratable(c: Any) -> JSON | None:
            vmi = c.get(r.VMIS, ns, "web")
            conds = {x["type"]: x["status"] for x in ((vmi or {}).get("status") or {}).get("conditions") or []}
            return vmi if conds.get("LiveMigratable") == "False" else None

        await until(h.client, not_migratable, "VMI LiveMigratable=False", timeout=15)
        vmim = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstanceMigration",
                "metadata": {"name": "m", "namespace": ns}, "spec": {"vmiName": "web"}}
        with pytest.raises(ApiError) as denied:
            await h.client.create(r.VMIMS, vmim)
        assert denied.value.code == 400 and "InterfaceNotLiveMigratable" in denied.value.message, (
            denied.value.code, denied.value.message)

    run(transport, body)
