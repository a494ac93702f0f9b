"""KubeVirt + Kube-OVN behaviour of the simulated cluster, on a store (no HTTP): VM lifecycle, the IP CR
as upstream writes it, restart / stop / start / launcher deletion / delete, the v1.13 leak, and a
launcher pod denied at admission."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from behaviour_helpers import JSON, UA, make_namespace

from conformance.sim import resources as r
from conformance.sim import world
from conformance.sim.config import SimConfig
from conformance.sim.store import ApiError, Store
from conformance.sim.view import until, world_of

REFERENCE = Path(__file__).resolve().parents[2] / ".." / "shared" / "reference"


def vm_manifest(
    name: str,
    namespace: str,
    ip: str | None = None,
    *,
    strategy: str | None = "Always",
    running: bool | None = None,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
) -> JSON:
    tann = {"kubevirt.io/allow-pod-bridge-network-live-migration": "true", **(annotations or {})}
    if ip:
        tann["ovn.kubernetes.io/ip_address"] = ip
    spec: JSON = {
        "template": {
            "metadata": {"labels": {"kubevirt.io/domain": name, **(labels or {})}, "annotations": tann},
            "spec": {
                "domain": {
                    "devices": {"interfaces": [{"name": "default", "bridge": {}}]},
                    "resources": {"requests": {"memory": "128Mi"}},
                },
                "networks": [{"name": "default", "pod": {}}],
                "terminationGracePeriodSeconds": 0,
            },
        }
    }
    if running is not None:
        spec["running"] = running
    elif strategy is not None:
        spec["runStrategy"] = strategy
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def launchers(store: Store, namespace: str, vmi: JSON) -> list[JSON]:
    uid = vmi["metadata"]["uid"]
    return [
        p
        for p in store.list(r.PODS, namespace)[0]
        if any(
            o.get("uid") == uid and o.get("controller") for o in p["metadata"].get("ownerReferences") or []
        )
    ]


def running_vmi(namespace: str, name: str, *, not_uid: str = "") -> Callable[[Store], JSON | None]:
    def check(store: Store) -> JSON | None:
        vm = store.get(r.VMS, namespace, name)
        vmi = store.get(r.VMIS, namespace, name)
        if vm is None or vmi is None or vmi["metadata"]["uid"] == not_uid:
            return None
        if (vmi.get("status") or {}).get("phase") != "Running" or not (vm.get("status") or {}).get("ready"):
            return None
        if not (vmi.get("status") or {}).get("interfaces"):
            return None
        return vmi

    return check


def events_for(store: Store, obj: JSON, reason: str) -> list[JSON]:
    return [
        e
        for e in store.list(r.EVENTS, obj["metadata"]["namespace"])[0]
        if e["involvedObject"].get("uid") == obj["metadata"]["uid"] and e.get("reason") == reason
    ]


def sim(coro: Callable[[Store], Awaitable[None]], **config: Any) -> None:
    """Run ``coro(store)`` against a fresh simulated world; fail on any controller error."""

    async def main() -> None:
        async with world.running(SimConfig(**config)) as store:
            try:
                await coro(store)
            finally:
                errors = world_of(store).errors
            assert not errors, "controller errors:\n" + "\n".join(errors)

    asyncio.run(main())


def ip_cr_schema() -> JSON:
    path = REFERENCE / "kube-ovn-crd.yaml"
    if not path.exists():
        pytest.skip(f"{path} is absent (the upstream reference data lives beside the repository)")
    for doc in yaml.safe_load_all(path.read_text()):
        if doc and doc.get("metadata", {}).get("name") == "ips.kubeovn.io":
            version = next(v for v in doc["spec"]["versions"] if v["name"] == "v1")
            schema: JSON = version["schema"]["openAPIV3Schema"]
            return schema
    pytest.fail(f"ips.kubeovn.io is not in {path}")


def test_vm_runs_with_the_objects_upstream_creates() -> None:
    measured: list[float] = []

    async def scenario(store: Store) -> None:
        ns = make_namespace(store, "lifecycle")
        started = time.monotonic()
        store.create(r.VMS, vm_manifest("web", ns, "10.16.0.15", labels={"app": "web"}), user_agent=UA)
        vmi = await until(store, running_vmi(ns, "web"), "VM web Running and ready")
        measured.append(time.monotonic() - started)
        vm = store.require(r.VMS, ns, "web")
        # VMI: template metadata, controller ownerRef to the VM
        assert vmi["metadata"]["labels"]["app"] == "web"
        assert vmi["metadata"]["annotations"]["ovn.kubernetes.io/ip_address"] == "10.16.0.15"
        ref = vmi["metadata"]["ownerReferences"][0]
        assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == (
            "VirtualMachine",
            "web",
            vm["metadata"]["uid"],
            True,
        )
        assert vm["status"]["printableStatus"] == "Running" and vm["status"]["created"] is True
        # launcher pod
        (pod,) = launchers(store, ns, vmi)
        meta = pod["metadata"]
        assert (
            meta["name"].startswith("virt-launcher-web-")
            and len(meta["name"]) == len("virt-launcher-web-") + 5
        )
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "kubevirt.io/v1",
                "kind": "VirtualMachineInstance",
                "name": "web",
                "uid": vmi["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        labels = meta["labels"]
        assert labels["app"] == "web" and labels["kubevirt.io"] == "virt-launcher"
        assert labels["kubevirt.io/created-by"] == vmi["metadata"]["uid"]
        assert labels["vm.kubevirt.io/name"] == "web" and labels["vmi.kubevirt.io/id"] == "web"
        ann = meta["annotations"]
        assert ann["kubevirt.io/domain"] == "web"
        assert not any(k.startswith("kubevirt.io/latest-observed-api-version") for k in ann)
        for key, value in {
            "ovn.kubernetes.io/allocated": "true",
            "ovn.kubernetes.io/routed": "true",
            "ovn.kubernetes.io/ip_address": "10.16.0.15",
            "ovn.kubernetes.io/cidr": "10.16.0.0/16",
            "ovn.kubernetes.io/gateway": "10.16.0.1",
            "ovn.kubernetes.io/logical_switch": "ovn-default",
            "ovn.kubernetes.io/virtualmachine": "web",
            "ovn.kubernetes.io/pod_nic_type": "veth-pair",
        }.items():
            assert ann.get(key) == value, f"pod annotation {key}: expected {value!r}, got {ann.get(key)!r}"
        assert ann["ovn.kubernetes.io/mac_address"].startswith("00:00:00:")
        assert pod["spec"]["nodeSelector"]["kubevirt.io/schedulable"] == "true"
        assert [c["name"] for c in pod["spec"]["containers"]] == ["compute"]
        assert pod["status"]["phase"] == "Running" and pod["status"]["podIP"] == "10.16.0.15"
        assert pod["spec"]["nodeName"].startswith("kovc-sim-worker")
        # VMI status from virt-handler
        iface = vmi["status"]["interfaces"][0]
        assert iface == {
            "name": "default",
            "ipAddress": "10.16.0.15",
            "ipAddresses": ["10.16.0.15"],
            "mac": ann["ovn.kubernetes.io/mac_address"],
            "infoSource": "domain",
            "queueCount": 1,
        }
        assert vmi["status"]["nodeName"] == pod["spec"]["nodeName"]
        # IP CR as createOrUpdateIPCR writes it
        ip = store.require(r.IPS, "", "web.lifecycle")
        assert ip["spec"] == {
            "podName": "web",
            "namespace": ns,
            "subnet": "ovn-default",
            "nodeName": pod["spec"]["nodeName"],
            "ipAddress": "10.16.0.15",
            "v4IpAddress": "10.16.0.15",
            "v6IpAddress": "",
            "macAddress": iface["mac"],
            "attachIps": [],
            "attachMacs": [],
            "attachSubnets": [],
            "podType": "VirtualMachine",
        }
        assert ip["metadata"]["labels"] == {
            "ovn.kubernetes.io/subnet": "ovn-default",
            "ovn.kubernetes.io/node-name": pod["spec"]["nodeName"],
            "ovn-default": "",
            "ovn.kubernetes.io/ip_reserved": "false",
        }
        assert ip["metadata"]["finalizers"] == ["kubeovn.io/kube-ovn-controller"]
        # who wrote what
        writers = {
            (e.resource, e.name): e.user_agent
            for e in store.audit
            if e.verb == "create" and not e.path.endswith("/binding")
        }
        binders = {e.name: e.user_agent for e in store.audit if e.path.endswith("/binding")}
        assert binders == {meta["name"]: "default-scheduler"}
        assert writers[("virtualmachineinstances.kubevirt.io", "web")] == "virt-controller/v1.8.1"
        assert writers[("pods", meta["name"])] == "virt-controller/v1.8.1"
        assert writers[("ips.kubeovn.io", "web.lifecycle")] == "kube-ovn-controller/v1.16.2"
        assert not [
            e
            for e in store.audit
            if "kovc" in e.user_agent
            and e.name != ns
            and e.resource not in ("virtualmachines.kubevirt.io", "namespaces")
        ]

    sim(scenario)
    print(f"\nVM to Running (ready, interfaces filled): {measured[0] * 1000:.1f} ms")


def test_ip_cr_matches_the_upstream_crd_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = ip_cr_schema()

    async def scenario(store: Store) -> None:
        ns = make_namespace(store, "schema")
        store.create(r.VMS, vm_manifest("vm1", ns, "10.16.0.20"), user_agent=UA)
        await until(store, running_vmi(ns, "vm1"), "vm1 Running")
        ip = store.require(r.IPS, "", "vm1.schema")
        jsonschema.validate(ip, schema)

    sim(scenario)


def test_vmi_id_label_only_from_kubevirt_1_7() -> None:
    async def scenario(store: Store) -> None:
        ns = make_namespace(store, "old-kv")
        store.create(r.VMS, vm_manifest("vm1", ns), user_agent=UA)
        vmi = await until(store, running_vmi(ns, "vm1"), "vm1 Running")
        (pod,) = launchers(store, ns, vmi)
        assert "vmi.kubevirt.io/id" not in pod["metadata"]["labels"]
        writers = {e.user_agent for e in store.audit if e.resource == "pods" and e.verb == "create"}
        assert "virt-controller/v1.5.2" in writers

    sim(scenario, kubevirt_version="v1.5.2")


def test_restart_keeps_the_ip_cr_with_a_new_vmi_and_pod() -> None:
    async def scenario(store: Store) -> None:
        ns = make_namespace(store, "restart")
        store.create(r.VMS, vm_manifest("web", ns, "10.16.0.30"), user_agent=UA)
        vmi = await until(store, running_vmi(ns, "web"), "web Running")
        (old_pod,) = launchers(store, ns, vmi)
        ip_before = store.require(r.IPS, "", "web.restart")
        w = world_of(store)
        assert await world.vm_action(store, w.config, ns, "web", "restart", {}, UA) == {}
        new = await until(store, running_vmi(ns, "web", not_uid=vmi["metadata"]["uid"]), "a new Running VMI")
        (new_pod,) = launchers(store, ns, new)
        assert new_pod["metadata"]["name"] != old_pod["metadata"]["name"]
        assert store.get(r.PODS, ns, old_pod["metadata"]["name"]) is None
        ip_after = store.require(r.IPS, "", "web.restart")
        assert ip_after["metadata"]["uid"] == ip_before["metadata"]["uid"], "the IP CR was re-created"
        for field in ("ipAddress", "macAddress", "podName", "podType"):
            assert ip_after["spec"][field] == ip_before["spec"][field], field
        assert new["status"]["interfaces"][0]["ipAddress"] == "10.16.0.30"
        vm = store.require(r.VMS, ns, "web")
        assert "stateChangeRequests" not in vm["status"], vm["status"]
        assert vm["spec"]["runStrategy"] == "Always"

    sim(scenario)


def test_stop_and_start_keep_the_address() -> None:
    async def scenario(store: Store) -> None:
        ns = make_namespace(store, "stopstart")
        cfg = world_of(store).config
        store.create(r.VMS, vm_manifest("web", ns, "10.16.0.31"), user_agent=UA)
        vmi = await until(store, running_vmi(ns, "web"), "web Running")
        ip_uid = store.require(r.IPS, "", "web.stopstart")["metadata"]["uid"]
        with pytest.raises(ApiError) as err:
            await world.vm_action(store, cfg, ns, "web", "start", {}, UA)
        assert err.value.code == 409
        assert (
            err.value.message
            == 'Operation cannot be fulfilled on virtualmachine.kubevirt.io "web": VM is already running'
        )
        await world.vm_action(store, cfg, ns, "web", "stop", {}, UA)
        assert store.require(r.VMS, ns, "web")["spec"]["runStrategy"] == "Halted"

        def stopped(s: Store) -> bool:
            vm = s.require(r.VMS, ns, "web")
            return (
                s.get(r.VMIS, ns, "web") is None
                and vm["status"].get("printableStatus") == "Stopped"
                and not launchers(s, ns, vmi)
            )

        await until(store, stopped, "web stopped (no VMI, no launcher pod)")
        kept = store.require(r.IPS, "", "web.stopstart")
        assert kept["metadata"]["uid"] == ip_uid and not kept["metadata"].get("deletionTimestamp")
        assert store.require(r.VMS, ns, "web")["status"].get("created") is None
        for action, message in (
            ("stop", "VM is not running"),
            ("restart", "RunStategy Halted does not support manual restart requests"),
            ("migrate", 'virtualmachineinstance.kubevirt.io "web" not found'),
        ):
            with pytest.raises(ApiError) as err:
                await world.vm_action(store, cfg, ns, "web", action, {}, UA)
            assert message in err.value.message, (action, err.value.message)
        await world.vm_action(store, cfg, ns, "web", "start", {}, UA)
        assert store.require(r.VMS, ns, "web")["spec"]["runStrategy"] == "Always"
        again = await until(store, running_vmi(ns, "web"), "web Running again")
        assert again["status"]["interfaces"][0]["ipAddress"] == "10.16.0.31"
        assert store.require(r.IPS, "", "web.stopstart")["metadata"]["uid"] == ip_uid
        with pytest.raises(ApiError) as err:
            await world.vm_action(store, cfg, ns, "missing", "start", {}, UA)
        assert err.value.code == 404 and err.value.message == 'virtualmachine.kubevirt.io "missing" not found'

    sim(scenario)


def test_deprecated_running_field_toggles() -> None:
    async def scenario(store: Store) -> None:
        ns = make_namespace(store, "running")
        cfg = world_of(store).config
        store.create(r.VMS, vm_manifest("old", ns, running=True), user_agent=UA)
        await until(store, running_vmi(ns, "old"), "old Running")
        await world.vm_action(store, cfg, ns, "old", "stop", {}, UA)
        vm = store.require(r.VMS, ns, "old")
        assert vm["spec"]["running"] is False and "runStrategy" not in vm["spec"]
        await until(store, lambda s: s.get(r.VMIS, ns, "old") is None, "old stopped")
        await world.vm_action(store, cfg, ns, "old", "start", {}, UA)
        assert store.require(r.VMS, ns, "old")["spec"]["running"] is True
        await until(store, running_vmi(ns, "old"), "old Running again")

    sim(scenario)


def test_manual_run_strategy_uses_state_change_requests() -> None:
    async def scenario(store: Store) -> None:
        ns = make_namespace(store, "manual")
        cfg = world_of(store).config
        store.create(r.VMS, vm_manifest("m", ns, strategy="Manual"), user_agent=UA)
        await asyncio.sleep(0.05)
        assert store.get(r.VMIS, ns, "m") is None
        await world.vm_action(store, cfg, ns, "m", "start", {}, UA)
        vmi = await until(store, running_vmi(ns, "m"), "m Running")
        await world.vm_action(store, cfg, ns, "m", "stop", {}, UA)
        await until(
            store,
            lambda s: (
                s.get(r.VMIS, ns, "m") is None
                and s.require(r.VMS, ns, "m")["status"].get("printableStatus") == "Stopped"
            ),
            "m stopped",
        )
        vm = store.require(r.VMS, ns, "m")
        assert vm["spec"]["runStrategy"] == "Manual" and "stateChangeRequests" not in vm["status"]
        assert vmi["metadata"]["uid"]

    sim(scenario)


def test_vm_admission_checks_the_run_strategy() -> None:
    async def scenario(store: Store) -> None:
        ns = make_namespace(store, "admit")
        both = vm_manifest("both", ns, strategy="Always")
        both["spec"]["running"] = True
        with pytest.raises(ApiError) as err:
            store.create(r.VMS, both, user_agent=UA)
        assert err.value.code == 422 and "Running and RunStrategy are mutually exclusive" in err.value.message
        with pytest.raises(ApiError) as err:
            store.create(r.VMS, vm_manifest("none", ns, strategy=None), user_agent=UA)
        assert err.value.message == (
            'admission webhook "virtualmachine-validator.kubevirt.io" denied the request: '
            "RunStrategy must be specified"
        )

    sim(scenario)


def test_deleted_launcher_pod_fails_the_vmi_and_a_new_one_replaces_it() -> None:
    async def scenario(store: Store) -> None:
        ns = make_namespace(store, "podkill")
        store.create(r.VMS, vm_manifest("web", ns, "10.16.0.32"), user_agent=UA)
        vmi = await until(store, running_vmi(ns, "web"), "web Running")
        (pod,) = launchers(store, ns, vmi)
        ip_uid = store.require(r.IPS, "", "web.podkill")["metadata"]["uid"]
        phases: list[str] = []

        async def watch_phases() -> None:
            async for ev in store.watch(r.VMIS, ns):
                if ev.object["metadata"]["uid"] == vmi["metadata"]["uid"]:
                    phases.append((ev.object.get("status") or {}).get("phase", ""))

        watcher = asyncio.create_task(watch_phases())
        store.delete(r.PODS, ns, pod["metadata"]["name"], user_agent=UA)
        new = await until(store, running_vmi(ns, "web", not_uid=vmi["metadata"]["uid"]), "a replacement VMI")
        watcher.cancel()
        assert "Failed" in phases, f"expected the old VMI to go Failed, saw phases {phases}"
        assert new["status"]["interfaces"][0]["ipAddress"] == "10.16.0.32"
        assert store.require(r.IPS, "", "web.podkill")["metadata"]["uid"] == ip_uid

    sim(scenario)


def test_vm_delete_releases_the_ip_cr_and_address() -> None:
    async def scenario(store: Store) -> None:
        ns = make_namespace(store, "delete")
        store.create(r.VMS, vm_manifest("web", ns, "10.16.0.33"), user_agent=UA)
        vmi = await until(store, running_vmi(ns, "web"), "web Running")
        store.delete(r.VMS, ns, "web", user_agent=UA)

        def gone(s: Store) -> bool:
            return (
                s.get(r.VMS, ns, "web") is None
                and s.get(r.VMIS, ns, "web") is None
                and not launchers(s, ns, vmi)
                and s.get(r.IPS, "", "web.delete") is None
            )

        await until(store, gone, "VM, VMI, launcher pod and IP CR gone")
        ipam = world_of(store).ipam
        assert ipam is not None and not ipam.holder("ovn-default", "10.16.0.33")
        store.create(r.VMS, vm_manifest("other", ns, "10.16.0.33"), user_agent=UA)
        await until(store, running_vmi(ns, "other"), "another VM takes the released address")

    sim(scenario)


def test_vm_recreated_under_the_same_name_gets_its_address() -> None:
    async def scenario(store: Store) -> None:
        ns = make_namespace(store, "recreate")
        store.create(r.VMS, vm_manifest("web", ns, "10.16.0.34"), user_agent=UA)
        await until(store, running_vmi(ns, "web"), "web Running")
        # A backlog in kube-ovn-controller's queue: the old VM is gone (and recreated) before the controller
        # has processed the old launcher pod's deletion.
        for i in range(30):
            store.create(r.PODS, {"metadata": {"name": f"filler-{i}", "namespace": ns},
                                  "spec": {"containers": [{"name": "c", "image": "busybox"}]}}, user_agent=UA)
        store.delete(r.VMS, ns, "web", user_agent=UA)
        await until(store, lambda s: s.get(r.VMS, ns, "web") is None, "web deleted")
        store.create(r.VMS, vm_manifest("web", ns, "10.16.0.34"), user_agent=UA)
        vmi = await until(store, running_vmi(ns, "web"), "the recreated web Running")
        assert vmi["status"]["interfaces"][0]["ipAddress"] == "10.16.0.34"
        await asyncio.sleep(0.05)
        cr = store.get(r.IPS, "", "web.recreate")
        assert cr is not None and not cr["metadata"].get("deletionTimestamp"), f"the IP CR of the new VM: {cr}"
        assert cr["spec"]["podName"] == "web" and cr["spec"]["ipAddress"] == "10.16.0.34"
        ipam = world_of(store).ipam
        assert ipam is not None and ipam.holder("ovn-default", "10.16.0.34") == [f"{ns}/web"]

    sim(scenario)


@pytest.mark.parametrize(
    ("version", "late"), [("v1.13.15", True), ("v1.12.35", True), ("v1.14.0", False), ("v1.16.2", False)]
)
def test_stopped_then_deleted_vm(version: str, late: bool) -> None:
    """#5367: before handleDeleteVM (v1.14.0) a VM stopped before deletion keeps its IP CR and address
    until markAndCleanLSP's second pass after the VM is gone (1-2 GC intervals); from v1.14.0 at once."""
    interval = 0.6

    async def scenario(store: Store) -> None:
        ns = make_namespace(store, "leak")
        cfg = world_of(store).config
        store.create(r.VMS, vm_manifest("web", ns, "10.16.0.35"), user_agent=UA)
        await until(store, running_vmi(ns, "web"), "web Running")
        await world.vm_action(store, cfg, ns, "web", "stop", {}, UA)
        await until(store, lambda s: s.get(r.VMIS, ns, "web") is None, "web stopped")
        await asyncio.sleep(interval * 1.5)  # GC passes while the VM exists keep its port
        assert store.get(r.IPS, "", "web.leak") is not None, "a stopped VM's IP CR must survive GC passes"
        store.delete(r.VMS, ns, "web", user_agent=UA)
        await until(store, lambda s: s.get(r.VMS, ns, "web") is None, "web deleted")
        def logs() -> list[str]:
            return list(world_of(store).logs.get("kube-ovn-controller", []))

        if late:
            await asyncio.sleep(interval * 0.5)
            ip = store.get(r.IPS, "", "web.leak")
            assert ip is not None, f"{version}: expected the IP CR web.leak to outlive the VM (#5367)"
            holder = world_of(store).ipam.holder("ovn-default", "10.16.0.35")  # type: ignore[union-attr]
            assert holder == [f"{ns}/web"], holder
            await until(store, lambda s: s.get(r.IPS, "", "web.leak") is None,
                        "the IP CR released by the second GC pass", timeout=interval * 4 + 5)
            assert world_of(store).ipam.holder("ovn-default", "10.16.0.35") == []  # type: ignore[union-attr]
            assert any("gc.go:405] gc ip web.leak" in line for line in logs()), list(logs())[-5:]
        else:
            await until(store, lambda s: s.get(r.IPS, "", "web.leak") is None, "the IP CR released")
            assert any("kubevirt.go:80] release ip" in line for line in logs()), list(logs())[-5:]
            assert not any("gc ip web.leak" in line for line in logs())

    sim(scenario, kube_ovn_version=version, gc_interval=interval)


@pytest.mark.parametrize("version", ["v1.13.15", "v1.16.2"])
def test_running_vm_deleted_releases_on_every_release(version: str) -> None:
    async def scenario(store: Store) -> None:
        ns = make_namespace(store, "rdel")
        store.create(r.VMS, vm_manifest("web", ns, "10.16.0.36"), user_agent=UA)
        await until(store, running_vmi(ns, "web"), "web Running")
        store.delete(r.VMS, ns, "web", user_agent=UA)
        await until(store, lambda s: s.get(r.IPS, "", "web.rdel") is None, "the IP CR released")

    sim(scenario, kube_ovn_version=version)


def test_denied_launcher_pod_reports_failed_create_then_recovers() -> None:
    async def scenario(store: Store) -> None:
        ns = make_namespace(store, "deny")
        store.create(r.VMS, vm_manifest("web", ns, "10.16.0.40"), user_agent=UA)
        await until(store, running_vmi(ns, "web"), "web Running")
        store.create(r.VMS, vm_manifest("db", ns, "10.16.0.40"), user_agent=UA)
        denial = (
            'admission webhook "pod-ip-validating.kube-ovn.io" denied the request: annotation static-ip '
            "10.16.0.40 is conflict with ip crd web.deny, ip 10.16.0.40"
        )

        def synchronized_false(s: Store) -> JSON | None:
            vmi = s.get(r.VMIS, ns, "db")
            for c in ((vmi or {}).get("status") or {}).get("conditions") or []:
                if c["type"] == "Synchronized" and c["status"] == "False":
                    return vmi
            return None

        vmi = await until(store, synchronized_false, "db's VMI Synchronized=False")
        cond = next(c for c in vmi["status"]["conditions"] if c["type"] == "Synchronized")
        assert cond["reason"] == "FailedCreate"
        assert cond["message"] == f"failed to create virtual machine pod: {denial}"
        assert vmi["status"]["phase"] == "Pending"
        (event,) = events_for(store, vmi, "FailedCreate")
        assert event["type"] == "Warning" and event["message"] == f"Error creating pod: {denial}"
        assert not launchers(store, ns, vmi)
        denied = [e for e in store.audit if e.resource == "pods" and e.code == 403]
        assert not denied or all(e.user_agent.startswith("virt-controller/") for e in denied)
        # retried with backoff: more than one attempt
        await until(
            store,
            lambda s: events_for(s, vmi, "FailedCreate")[0].get("count", 1) >= 2,
            "a retried pod creation",
        )
        store.delete(r.VMS, ns, "web", user_agent=UA)
        recovered = await until(store, running_vmi(ns, "db"), "db Running once web is gone", timeout=8)
        assert not [c for c in recovered["status"].get("conditions") or [] if c["type"] == "Synchronized"]
        assert recovered["metadata"]["uid"] == vmi["metadata"]["uid"]

    sim(scenario)


def test_webhook_off_admits_and_ipam_decides() -> None:
    async def scenario(store: Store) -> None:
        ns = make_namespace(store, "off")
        store.create(r.VMS, vm_manifest("web", ns, "10.16.0.41"), user_agent=UA)
        await until(store, running_vmi(ns, "web"), "web Running")
        store.create(r.VMS, vm_manifest("db", ns, "10.16.0.41"), user_agent=UA)

        def conflict(s: Store) -> list[JSON]:
            return [
                e
                for e in s.list(r.EVENTS, ns)[0]
                if e["reason"] == "AcquireAddressFailed"
                and e["involvedObject"]["name"].startswith("virt-launcher-db-")
            ]

        (event,) = await until(store, conflict, "AcquireAddressFailed on db's launcher pod")
        assert "AddressConflict" in event["message"] and event["type"] == "Warning"
        vmi = store.require(r.VMIS, ns, "db")
        assert vmi["status"]["phase"] != "Running"
        deployment = store.require(r.DEPLOYMENTS, "kube-system", "kube-ovn-webhook")
        assert deployment["status"].get("readyReplicas", 0) == 0

    sim(scenario, webhook="off")


def test_namespace_deletion_takes_vms_and_their_addresses() -> None:
    pytest.importorskip("conformance.sim.controllers.namespaces")

    async def scenario(store: Store) -> None:
        ns = make_namespace(store, "doomed")
        store.create(r.VMS, vm_manifest("web", ns, "10.16.0.37"), user_agent=UA)
        await until(store, running_vmi(ns, "web"), "web Running")
        store.delete(r.NAMESPACES, "", ns, user_agent=UA)
        await until(
            store,
            lambda s: s.get(r.NAMESPACES, "", ns) is None and s.get(r.IPS, "", "web.doomed") is None,
            "the namespace gone and the VM's IP CR released",
            timeout=10,
        )

    sim(scenario)
