"""Network continuity during live migration."""

from __future__ import annotations

from typing import Any

import pytest

from conformance import names
from conformance.kube import Kube
from conformance.verbs import Actions

SUBNET = "ovn-default"


@pytest.mark.exclusive
@pytest.mark.window
@pytest.mark.conformance("net.migration-downtime")
def test_migration_downtime(kube: Kube, settings: Any, ns: str, act: Actions, record: Any) -> None:
    """A probe on a node that is neither source nor target pings every ≤ 200 ms during live
    migration; the longest gap ≤ ``--max-migration-loss`` (default 3 s)."""
    vm_nodes = kube.schedulable_vm_nodes()
    if len(vm_nodes) < 2:
        pytest.skip("live migration needs two nodes labelled kubevirt.io/schedulable=true without "
                    f"NoSchedule taints; found {len(vm_nodes)}")
    # source and target are both VM nodes: a node that is not one is neither (pinned by nodeName,
    # so NoSchedule taints do not matter; NoExecute would evict the probe)
    others = sorted(n["metadata"]["name"] for n in kube.list_nodes()
                    if n["metadata"]["name"] not in vm_nodes and not any(
                        t.get("effect") == "NoExecute" for t in (n.get("spec") or {}).get("taints") or []))
    if not others:
        pytest.skip("the probe needs a node that can be neither migration source nor target (one not "
                    f"labelled kubevirt.io/schedulable=true); all schedulable nodes are VM nodes: "
                    f"{', '.join(vm_nodes)}. virt-handler labels every node it runs on; keep it off one "
                    "node with the KubeVirt CR's spec.workloads.nodePlacement.nodeSelector (kovc's kind "
                    "install selects kovc.io/vm-node=true, set on the workers)")
    probe_node = others[0]
    vm = act.create_vm(ns, names.holder(), act.take_ip(SUBNET), SUBNET)
    act.wait_vm_running(vm)
    act.reachable(vm)  # the guest answers before measuring
    window = act.t(90)
    result, (src, dst) = act.continuous_probe(vm, probe_node, window, lambda: act.migrate(vm),
                                              interval_ms=act.probe_interval_ms())
    assert probe_node not in (src, dst), f"the probe node {probe_node} was the migration's {src} -> {dst}"
    gap = result.longest_gap_s()
    limit = float(settings.max_migration_loss)
    summary = (f"{gap:.1f}s without reply (limit {limit:.1f}s); {len(result.replies)} of {result.sent} "
               f"pings answered, probe on {probe_node}, migration {src} -> {dst}")
    record.case("longest gap", "passed" if gap <= limit else "failed", message=summary)
    assert gap <= limit, f"expected the longest gap in replies from {vm.ip} to be ≤ {limit:.1f}s: {summary}"
