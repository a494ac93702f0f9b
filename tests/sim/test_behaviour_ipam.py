"""Kube-OVN's IPAM in the simulated cluster: conflicts vs same-key takeover, namespaces, subnets, VPCs."""

from __future__ import annotations

import asyncio

import pytest
from behaviour_helpers import JSON, UA, bridge_vm, make_namespace, pod_running, sim

from conformance.sim import resources as r
from conformance.sim.store import ApiError, Store
from conformance.sim.view import until


def vm_manifest(name: str, namespace: str, ip: str | None, annotations: dict[str, str] | None = None) -> JSON:
    tann = dict(annotations or {})
    if ip:
        tann["ovn.kubernetes.io/ip_address"] = ip
    return bridge_vm(name, namespace, tann)


def pod_manifest(
    name: str, namespace: str, ip: str | None, annotations: dict[str, str] | None = None
) -> JSON:
    ann = dict(annotations or {})
    if ip:
        ann["ovn.kubernetes.io/ip_address"] = ip
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "annotations": ann},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"]}],
        },
    }


async def vm_running(store: Store, namespace: str, name: str) -> JSON:
    def check(s: Store) -> JSON | None:
        vmi = s.get(r.VMIS, namespace, name)
        if vmi and (vmi.get("status") or {}).get("phase") == "Running" and vmi["status"].get("interfaces"):
            return vmi
        return None

    result: JSON = await until(store, check, f"VMI {namespace}/{name} Running")
    return result


async def acquire_failed(store: Store, namespace: str, prefix: str) -> JSON:
    def check(s: Store) -> JSON | None:
        return next(
            (
                e
                for e in s.list(r.EVENTS, namespace)[0]
                if e["reason"] == "AcquireAddressFailed" and e["involvedObject"]["name"].startswith(prefix)
            ),
            None,
        )

    result: JSON = await until(store, check, f"AcquireAddressFailed on {namespace}/{prefix}*")
    return result


def test_other_key_conflicts_and_is_never_allocated() -> None:
    async def scenario(store: Store) -> None:
        a = make_namespace(store, "a")
        store.create(r.VMS, vm_manifest("web", a, "10.16.0.50"), user_agent=UA)
        await vm_running(store, a, "web")
        store.create(r.PODS, pod_manifest("intruder", a, "10.16.0.50"), user_agent=UA)
        event = await acquire_failed(store, a, "intruder")
        assert event["type"] == "Warning" and "AddressConflict" in event["message"], event
        assert event["source"]["component"] == "kube-ovn-controller"
        await asyncio.sleep(0.1)
        pod = store.require(r.PODS, a, "intruder")
        assert pod["metadata"]["annotations"].get("ovn.kubernetes.io/allocated") is None
        assert pod["status"]["phase"] == "Pending" and not pod["status"].get("podIP"), pod["status"]
        assert store.get(r.IPS, "", "intruder.a") is None
        assert store.require(r.IPS, "", "web.a")["spec"]["podName"] == "web"

    sim(scenario, webhook="off")


def test_plain_pod_named_like_the_vm_takes_over_its_address() -> None:
    """kube-ovn-facts.md §1.7: same namespace, same name = same IPAM key: a real duplicate."""

    async def scenario(store: Store) -> None:
        a = make_namespace(store, "a")
        store.create(r.VMS, vm_manifest("web", a, "10.16.0.51"), user_agent=UA)
        vmi = await vm_running(store, a, "web")
        before = store.require(r.IPS, "", "web.a")
        store.create(
            r.PODS, pod_manifest("web", a, "10.16.0.51"), user_agent=UA
        )  # admitted by owner-equality
        pod = await pod_running(store, a, "web")
        assert pod["status"]["podIP"] == "10.16.0.51"
        assert pod["metadata"]["annotations"]["ovn.kubernetes.io/mac_address"] == before["spec"]["macAddress"]
        after = store.require(r.IPS, "", "web.a")
        assert after["metadata"]["uid"] == before["metadata"]["uid"]
        assert after["spec"]["podType"] == "" and after["spec"]["nodeName"] == pod["spec"]["nodeName"]
        assert vmi["status"]["interfaces"][0]["ipAddress"] == "10.16.0.51"
        store.delete(r.PODS, a, "web", user_agent=UA)
        await until(
            store,
            lambda s: s.get(r.IPS, "", "web.a") is None,
            "the IP CR released by the plain pod's deletion while the VM still runs",
        )
        assert store.require(r.VMIS, a, "web")["status"]["phase"] == "Running"

    sim(scenario)


def test_same_vm_name_in_another_namespace_is_stopped_by_ipam() -> None:
    async def scenario(store: Store) -> None:
        a, b = make_namespace(store, "a"), make_namespace(store, "b")
        store.create(r.VMS, vm_manifest("web", a, "10.16.0.52"), user_agent=UA)
        await vm_running(store, a, "web")
        store.create(r.VMS, vm_manifest("web", b, "10.16.0.52"), user_agent=UA)
        event = await acquire_failed(store, b, "virt-launcher-web-")
        assert "AddressConflict" in event["message"]
        await asyncio.sleep(0.1)
        assert store.require(r.VMIS, b, "web")["status"]["phase"] != "Running"
        assert store.get(r.IPS, "", "web.b") is None
        assert not store.require(r.VMS, b, "web")["status"].get("ready")

    sim(scenario)


def test_namespace_bound_subnet() -> None:
    async def scenario(store: Store) -> None:
        bound = make_namespace(store, "bound")
        store.create(
            r.SUBNETS,
            {
                "apiVersion": "kubeovn.io/v1",
                "kind": "Subnet",
                "metadata": {"name": "sub-b"},
                "spec": {"cidrBlock": "10.20.0.0/16", "namespaces": [bound]},
            },
            user_agent=UA,
        )
        store.create(r.VMS, vm_manifest("web", bound, None), user_agent=UA)
        vmi = await vm_running(store, bound, "web")
        ip = vmi["status"]["interfaces"][0]["ipAddress"]
        assert ip == "10.20.0.2", ip  # .1 is the gateway (excludeIps)
        cr = store.require(r.IPS, "", "web.bound")
        assert cr["spec"]["subnet"] == "sub-b" and cr["metadata"]["labels"]["sub-b"] == ""
        subnet = store.require(r.SUBNETS, "", "sub-b")
        assert subnet["spec"]["vpc"] == "ovn-cluster" and subnet["spec"]["gateway"] == "10.20.0.1"
        assert subnet["status"]["v4usingIPs"] == 1
        await until(
            store,
            lambda s: (
                s.require(r.NAMESPACES, "", bound)["metadata"]
                .get("annotations", {})
                .get("ovn.kubernetes.io/logical_switch")
                == "sub-b"
            ),
            "the namespace annotated with its subnet",
        )

    sim(scenario)


def test_same_address_in_two_vpcs_is_fine() -> None:
    async def scenario(store: Store) -> None:
        a = make_namespace(store, "a")
        store.create(
            r.VPCS,
            {
                "apiVersion": "kubeovn.io/v1",
                "kind": "Vpc",
                "metadata": {"name": "vpc2"},
                "spec": {"namespaces": [a]},
            },
            user_agent=UA,
        )
        store.create(
            r.SUBNETS,
            {
                "apiVersion": "kubeovn.io/v1",
                "kind": "Subnet",
                "metadata": {"name": "vpc2-net"},
                "spec": {"cidrBlock": "10.16.0.0/16", "vpc": "vpc2", "gateway": "10.16.0.1"},
            },
            user_agent=UA,
        )
        with pytest.raises(ApiError) as err:  # same VPC, overlapping CIDR: the webhook refuses it
            store.create(
                r.SUBNETS,
                {
                    "apiVersion": "kubeovn.io/v1",
                    "kind": "Subnet",
                    "metadata": {"name": "overlap"},
                    "spec": {"cidrBlock": "10.16.5.0/24", "vpc": "ovn-cluster"},
                },
                user_agent=UA,
            )
        assert (
            err.value.code == 409
            and "is conflict with subnet ovn-default cidr 10.16.0.0/16" in err.value.message
        )
        store.create(r.PODS, pod_manifest("p1", a, "10.16.0.60"), user_agent=UA)
        store.create(
            r.PODS,
            pod_manifest("p2", a, "10.16.0.60", {"ovn.kubernetes.io/logical_switch": "vpc2-net"}),
            user_agent=UA,
        )
        p1 = await pod_running(store, a, "p1")
        p2 = await pod_running(store, a, "p2")
        assert p1["status"]["podIP"] == p2["status"]["podIP"] == "10.16.0.60"
        assert p2["metadata"]["annotations"]["ovn.kubernetes.io/logical_router"] == "vpc2"
        assert store.require(r.IPS, "", "p2.a")["spec"]["subnet"] == "vpc2-net"

    sim(scenario)


def test_out_of_range_and_dynamic_allocation() -> None:
    async def scenario(store: Store) -> None:
        a = make_namespace(store, "a")
        store.create(r.PODS, pod_manifest("far", a, "10.99.0.5"), user_agent=UA)
        event = await acquire_failed(store, a, "far")
        assert "AddressOutOfRange" in event["message"]
        store.create(r.PODS, pod_manifest("dyn1", a, None), user_agent=UA)
        store.create(r.PODS, pod_manifest("dyn2", a, None), user_agent=UA)
        d1, d2 = await pod_running(store, a, "dyn1"), await pod_running(store, a, "dyn2")
        assert {d1["status"]["podIP"], d2["status"]["podIP"]} == {"10.16.0.2", "10.16.0.3"}
        store.delete(r.PODS, a, "dyn1", user_agent=UA)
        await until(store, lambda s: s.get(r.IPS, "", "dyn1.a") is None, "dyn1's IP CR released")
        store.create(r.PODS, pod_manifest("dyn3", a, None), user_agent=UA)
        d3 = await pod_running(store, a, "dyn3")
        assert d3["status"]["podIP"] == "10.16.0.4", (
            "released addresses are reused only when the range is exhausted"
        )

    sim(scenario)


def test_static_mac_conflict() -> None:
    async def scenario(store: Store) -> None:
        a = make_namespace(store, "a")
        mac = {"ovn.kubernetes.io/mac_address": "00:00:00:11:22:33"}
        store.create(r.PODS, pod_manifest("m1", a, "10.16.0.70", mac), user_agent=UA)
        m1 = await pod_running(store, a, "m1")
        assert m1["metadata"]["annotations"]["ovn.kubernetes.io/mac_address"] == "00:00:00:11:22:33"
        store.create(r.PODS, pod_manifest("m2", a, "10.16.0.71", mac), user_agent=UA)
        event = await acquire_failed(store, a, "m2")
        assert "AddressConflict" in event["message"]

    sim(scenario)


def test_completed_plain_pod_releases_its_address() -> None:
    async def scenario(store: Store) -> None:
        a = make_namespace(store, "a")
        job = pod_manifest("job", a, "10.16.0.72")
        job["spec"]["containers"][0]["command"] = ["sh", "-c", "echo done"]
        store.create(r.PODS, job, user_agent=UA)
        await until(
            store,
            lambda s: (s.require(r.PODS, a, "job").get("status") or {}).get("phase") == "Succeeded",
            "the job pod Succeeded",
        )
        await until(store, lambda s: s.get(r.IPS, "", "job.a") is None, "the finished pod's IP CR released")

    sim(scenario)


def test_keep_vm_ip_off_names_the_ip_cr_after_the_pod() -> None:
    async def scenario(store: Store) -> None:
        a = make_namespace(store, "a")
        store.create(r.VMS, vm_manifest("web", a, "10.16.0.73"), user_agent=UA)
        vmi = await vm_running(store, a, "web")
        pod = next(
            p for p in store.list(r.PODS, a)[0] if p["metadata"]["name"].startswith("virt-launcher-web-")
        )
        cr = store.require(r.IPS, "", f"{pod['metadata']['name']}.a")
        assert cr["spec"]["podName"] == pod["metadata"]["name"] and cr["spec"]["podType"] == "VirtualMachine"
        assert "ovn.kubernetes.io/virtualmachine" not in pod["metadata"]["annotations"]
        assert vmi["status"]["interfaces"][0]["ipAddress"] == "10.16.0.73"
        args = store.require(r.DEPLOYMENTS, "kube-system", "kube-ovn-controller")["spec"]["template"]["spec"][
            "containers"
        ][0]["args"]
        assert "--keep-vm-ip=false" in args

    sim(scenario, keep_vm_ip=False)


@pytest.mark.parametrize(("version", "deleted_with_pod"), [("v1.12.35", True), ("v1.14.41", True),
                                                          ("v1.15.0", False), ("v1.16.2", False)])
def test_keep_vm_ip_off_launcher_pod_delete_per_release(version: str, deleted_with_pod: bool) -> None:
    """With keep-vm-ip off, v1.12-v1.14 delete a VM pod's IP CR with the pod (pod.go L1150-1172 at
    v1.14.41); v1.15+ skip it ("skip clean ip CR", L1177-1182 at v1.15.0) and leave it to markAndCleanLSP."""

    async def scenario(store: Store) -> None:
        from conformance.sim.view import world_of

        a = make_namespace(store, "a")
        store.create(r.VMS, vm_manifest("web", a, "10.16.0.74"), user_agent=UA)
        await vm_running(store, a, "web")
        pod = next(p for p in store.list(r.PODS, a)[0] if p["metadata"]["name"].startswith("virt-launcher-web-"))
        cr_name = f"{pod['metadata']['name']}.a"
        assert store.get(r.IPS, "", cr_name) is not None
        store.delete(r.PODS, a, pod["metadata"]["name"], user_agent=UA)
        logs = world_of(store).logs

        def handled(s: Store) -> bool:
            return any(cr_name in line and ("delete ip CR" in line or "skip clean ip CR" in line)
                       for line in logs.get("kube-ovn-controller", []))

        await until(store, handled, f"handleDeletePod of {pod['metadata']['name']}")
        present = store.get(r.IPS, "", cr_name) is not None
        assert present is not deleted_with_pod, f"{version}: IP CR {cr_name} present={present} after the pod delete"

    sim(scenario, keep_vm_ip=False, kube_ovn_version=version, gc_interval=0)
