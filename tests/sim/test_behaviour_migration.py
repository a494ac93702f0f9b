"""Live migration in the simulated cluster: success across nodes with the modelled switch-over gap seen by
a probe, the clear failure with one schedulable node, virt-api's admission of migrations, and the
v1.12 webhook denying the target pod."""

from __future__ import annotations

import asyncio

import pytest
from behaviour_helpers import JSON, UA, bridge_vm, make_namespace, probe_manifest, sim

from conformance.sim import resources as r
from conformance.sim import world
from conformance.sim.store import ApiError, Store
from conformance.sim.view import until, world_of


def vm_manifest(name: str, namespace: str, ip: str, *, migratable: bool = True) -> JSON:
    ann = {"ovn.kubernetes.io/ip_address": ip}
    if migratable:
        ann["kubevirt.io/allow-pod-bridge-network-live-migration"] = "true"
    return bridge_vm(name, namespace, ann)


async def running_vmi(store: Store, ns: str, name: str) -> JSON:
    def check(s: Store) -> JSON | None:
        vmi = s.get(r.VMIS, ns, name)
        st = (vmi or {}).get("status") or {}
        if (
            st.get("phase") == "Running"
            and st.get("interfaces")
            and any(c["type"] == "LiveMigratable" for c in st.get("conditions") or [])
        ):
            return vmi
        return None

    result: JSON = await until(store, check, f"VMI {ns}/{name} Running")
    return result


def test_migration_succeeds_across_nodes_with_the_modelled_gap() -> None:
    gap = 0.2

    async def scenario(store: Store) -> None:
        ns = make_namespace(store, "mig")
        cfg = world_of(store).config
        store.create(r.VMS, vm_manifest("web", ns, "10.16.0.80"), user_agent=UA)
        vmi = await running_vmi(store, ns, "web")
        source_node = vmi["status"]["nodeName"]
        (source_pod,) = [
            p for p in store.list(r.PODS, ns)[0] if p["metadata"]["name"].startswith("virt-launcher-")
        ]
        ip_uid = store.require(r.IPS, "", "web.mig")["metadata"]["uid"]
        watch = probe_manifest("watch", ns, "10.16.0.80", count=None, interval_ms=10, command="ping; exit 0")
        store.create(r.PODS, watch, user_agent=UA)
        lines = world_of(store).pod_logs
        await until(store, lambda s: len(lines.get((ns, "watch"), [])) >= 5, "the probe answering")
        assert await world.vm_action(store, cfg, ns, "web", "migrate", {}, UA) == {}
        (vmim,) = store.list(r.VMIMS, ns)[0]
        assert vmim["metadata"]["name"].startswith("kubevirt-migrate-vm-")
        assert vmim["spec"] == {"vmiName": "web"}

        def done(s: Store) -> JSON | None:
            m = s.require(r.VMIMS, ns, vmim["metadata"]["name"])
            return m if (m.get("status") or {}).get("phase") in ("Succeeded", "Failed") else None

        final = await until(store, done, "the migration to finish")
        assert final["status"]["phase"] == "Succeeded", final["status"]
        phases = [p["phase"] for p in final["status"]["phaseTransitionTimestamps"]]
        assert phases == [
            "Pending",
            "Scheduling",
            "Scheduled",
            "PreparingTarget",
            "TargetReady",
            "Running",
            "Succeeded",
        ], phases
        assert final["metadata"]["labels"]["kubevirt.io/vmi-name"] == "web"
        assert not final["metadata"].get("finalizers")
        vmi = store.require(r.VMIS, ns, "web")
        state = vmi["status"]["migrationState"]
        target_node = state["targetNode"]
        assert state["sourceNode"] == source_node and target_node != source_node
        assert state["sourcePod"] == source_pod["metadata"]["name"]
        assert state["completed"] is True and not state.get("failed")
        assert state["startTimestamp"] and state["endTimestamp"]
        assert state["migrationUid"] == final["metadata"]["uid"]
        assert vmi["status"]["nodeName"] == target_node
        assert vmi["metadata"]["labels"]["kubevirt.io/nodeName"] == target_node
        target = store.require(r.PODS, ns, state["targetPod"])
        assert target["metadata"]["labels"]["kubevirt.io/migrationJobUID"] == final["metadata"]["uid"]
        assert target["metadata"]["annotations"]["kubevirt.io/migrationJobName"] == final["metadata"]["name"]
        (term,) = target["spec"]["affinity"]["podAntiAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"
        ]
        assert term["topologyKey"] == "kubernetes.io/hostname"
        assert term["labelSelector"]["matchExpressions"][0]["values"] == [vmi["metadata"]["uid"]]
        assert target["status"]["phase"] == "Running" and target["spec"]["nodeName"] == target_node
        assert target["metadata"]["annotations"]["ovn.kubernetes.io/ip_address"] == "10.16.0.80"
        assert store.require(r.PODS, ns, source_pod["metadata"]["name"])["status"]["phase"] == "Succeeded"
        ip_cr = store.require(r.IPS, "", "web.mig")
        assert ip_cr["metadata"]["uid"] == ip_uid and ip_cr["spec"]["nodeName"] == target_node
        assert vmi["status"]["interfaces"][0]["ipAddress"] == "10.16.0.80"
        # the probe saw replies, one gap of about migration_gap seconds, then replies again
        await asyncio.sleep(0.1)
        log = list(lines[(ns, "watch")])
        losses = [i for i, line in enumerate(log) if " no reply from " in line]
        assert losses, "expected lost pings during the switch-over"
        assert losses == list(range(losses[0], losses[-1] + 1)), "the losses are one contiguous gap"
        assert losses[0] > 0 and losses[-1] < len(log) - 1, "replies before and after the gap"
        assert 0.5 * gap / 0.01 <= len(losses) <= 2 * gap / 0.01 + 2, (
            f"{len(losses)} lost pings for a {gap}s gap"
        )
        pod_text = world.pod_log(store, ns, "watch")
        assert "reply from 10.16.0.80 seq=1\n" in pod_text

    sim(scenario, migration_gap=gap)


def test_migration_fails_clearly_with_one_schedulable_node() -> None:
    async def scenario(store: Store) -> None:
        ns = make_namespace(store, "onenode")
        cfg = world_of(store).config
        store.create(r.VMS, vm_manifest("web", ns, "10.16.0.81"), user_agent=UA)
        vmi = await running_vmi(store, ns, "web")
        await world.vm_action(store, cfg, ns, "web", "migrate", {}, UA)
        (vmim,) = store.list(r.VMIMS, ns)[0]

        def failed(s: Store) -> JSON | None:
            m = s.require(r.VMIMS, ns, vmim["metadata"]["name"])
            return m if (m.get("status") or {}).get("phase") == "Failed" else None

        final = await until(store, failed, "the migration to fail", timeout=5)
        reasons = {
            e["reason"]: e["message"]
            for e in store.list(r.EVENTS, ns)[0]
            if e["involvedObject"]["uid"] == final["metadata"]["uid"]
        }
        assert reasons["migrationTargetPodUnschedulable"] == (
            f"Migration target pod for VMI [{ns}/web] is currently unschedulable."
        )
        assert reasons["FailedMigration"] == "Migration target pod was removed during active migration."
        assert "timeout period exceeded" in reasons["SuccessfulDelete"]
        unschedulable = [
            e
            for e in store.list(r.EVENTS, ns)[0]
            if e["reason"] == "FailedScheduling" and "didn't match pod anti-affinity rules" in e["message"]
        ]
        assert unschedulable, "the scheduler explains why the target pod cannot be placed"
        assert "0/2 nodes are available" in unschedulable[0]["message"]
        after = store.require(r.VMIS, ns, "web")
        assert (
            after["status"]["phase"] == "Running" and after["status"]["nodeName"] == vmi["status"]["nodeName"]
        )
        assert store.require(r.VMS, ns, "web")["status"]["printableStatus"] == "Running"

    sim(scenario, workers=1, extra={"migration_unschedulable_timeout": 0.3})


def test_bridge_binding_without_the_annotation_is_not_migratable() -> None:
    async def scenario(store: Store) -> None:
        ns = make_namespace(store, "bridge")
        cfg = world_of(store).config
        store.create(r.VMS, vm_manifest("web", ns, "10.16.0.82", migratable=False), user_agent=UA)
        vmi = await running_vmi(store, ns, "web")
        cond = next(c for c in vmi["status"]["conditions"] if c["type"] == "LiveMigratable")
        assert (cond["status"], cond["reason"]) == ("False", "InterfaceNotLiveMigratable")
        body = {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachineInstanceMigration",
            "metadata": {"generateName": "mig-"},
            "spec": {"vmiName": "web"},
        }
        with pytest.raises(ApiError) as err:
            store.create(r.VMIMS, body, namespace=ns, user_agent=UA)
        assert err.value.code == 400
        assert err.value.message.startswith(
            'admission webhook "migration-create-validator.kubevirt.io" denied the request: '
            "Cannot migrate VMI, Reason: InterfaceNotLiveMigratable, Message: cannot migrate VMI which does "
            "not use masquerade, bridge with kubevirt.io/allow-pod-bridge-network-live-migration"
        ), err.value.message
        with pytest.raises(ApiError) as err:
            await world.vm_action(store, cfg, ns, "web", "migrate", {}, UA)
        assert err.value.code == 500 and err.value.message.startswith(
            "Internal error occurred: admission webhook"
        )
        with pytest.raises(ApiError) as err:
            store.create(r.VMIMS, {**body, "spec": {"vmiName": "nope"}}, namespace=ns, user_agent=UA)
        assert 'the VMI "bridge/nope" does not exist' in err.value.message

    sim(scenario)


def test_v1_12_webhook_denies_the_migration_target() -> None:
    async def scenario(store: Store) -> None:
        ns = make_namespace(store, "old")
        cfg = world_of(store).config
        store.create(r.VMS, vm_manifest("web", ns, "10.16.0.83"), user_agent=UA)
        vmi = await running_vmi(store, ns, "web")
        await world.vm_action(store, cfg, ns, "web", "migrate", {}, UA)

        def denied(s: Store) -> JSON | None:
            return next(
                (
                    e
                    for e in s.list(r.EVENTS, ns)[0]
                    if e["involvedObject"]["uid"] == vmi["metadata"]["uid"] and e["reason"] == "FailedCreate"
                ),
                None,
            )

        event = await until(store, denied, "FailedCreate for the target pod")
        assert event["message"].startswith(
            'Error creating pod: admission webhook "pod-ip-validating.kube-ovn.io" denied the request: '
            "annotation static-ip 10.16.0.83 is conflict with ip crd web.old, ip 10.16.0.83"
        )
        (vmim,) = store.list(r.VMIMS, ns)[0]
        assert vmim["status"]["phase"] == "Pending"
        assert store.require(r.VMIS, ns, "web")["status"]["phase"] == "Running"

    sim(scenario, kube_ovn_version="v1.12.35")


def test_second_migration_while_one_is_in_flight_is_refused() -> None:
    async def scenario(store: Store) -> None:
        ns = make_namespace(store, "twice")
        cfg = world_of(store).config
        store.create(r.VMS, vm_manifest("web", ns, "10.16.0.84"), user_agent=UA)
        await running_vmi(store, ns, "web")
        await world.vm_action(store, cfg, ns, "web", "migrate", {}, UA)
        with pytest.raises(ApiError) as err:
            await world.vm_action(store, cfg, ns, "web", "migrate", {}, UA)
        assert "in-flight migration detected" in err.value.message

    sim(scenario, migration_gap=0.05)
