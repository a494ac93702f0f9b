"""Which nodes virt-handler labels ``kubevirt.io/schedulable=true`` (issue 10 item 1): the simulated install
does what kovc's kind install does - KubeVirt's workload placement on the ``kovc.io/vm-node`` workers, so the
control plane is left for net.migration-downtime's probe - and, with the placement switched off, what a
plain install does: every node, the untainted control plane included."""

from __future__ import annotations

from behaviour_helpers import sim

from conformance.names import VM_NODE_LABEL
from conformance.sim import resources as r
from conformance.sim.controllers.scheduler import CONTROL_PLANE, SCHEDULABLE_LABEL
from conformance.sim.store import Store


def _schedulable(store: Store) -> dict[str, bool]:
    return {n["metadata"]["name"]: (n["metadata"].get("labels") or {}).get(SCHEDULABLE_LABEL) == "true"
            for n in store.list(r.NODES)[0]}


def test_virt_handler_follows_the_workload_placement() -> None:
    async def scenario(store: Store) -> None:
        kv = store.require(r.KUBEVIRTS, "kubevirt", "kubevirt")
        assert kv["spec"]["workloads"]["nodePlacement"]["nodeSelector"] == {VM_NODE_LABEL: "true"}
        seen = _schedulable(store)
        assert seen.pop(CONTROL_PLANE) is False, "the control plane must not run VMs: it hosts the probe"
        assert len(seen) >= 2 and all(seen.values()), seen
        for node in store.list(r.NODES)[0]:
            labels = node["metadata"].get("labels") or {}
            assert (labels.get(VM_NODE_LABEL) == "true") is (node["metadata"]["name"] != CONTROL_PLANE)

    sim(scenario)


def test_without_workload_placement_every_node_is_schedulable() -> None:
    async def scenario(store: Store) -> None:
        assert "workloads" not in store.require(r.KUBEVIRTS, "kubevirt", "kubevirt")["spec"]
        seen = _schedulable(store)
        assert seen[CONTROL_PLANE] and all(seen.values()), seen

    sim(scenario, extra={"kubevirt_workload_placement": False})
