"""The "before" half of an upgrade run, shared by the upgrade scenarios (``tests/scenarios/test_upgrade.py``)
and ``kovc upgrade prepare``: static-IP VMs created on the release upgraded from, their IP CRs
snapshotted, and - for the two-phase flow on an existing cluster - the record of it all in a labelled
ConfigMap in the run's namespace, which ``kovc upgrade verify --run-id`` reads back.

VMs (role -> what happens to it): ``run-a``, ``run-b``, ``run-c``, ``run-m`` run; ``stopped`` is stopped;
``midrst`` is restarted as the last step before the upgrade (its restart is requested, not awaited);
``gone`` is stopped and then deleted (before v1.14.0 its IP CR stays behind, #5367/#5390).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from . import RUN_LABEL, assertions, names
from .assertions import IPIdentity
from .kube import Kind, Kube
from .verbs import VM, Actions

SUBNET = "ovn-default"
ROLES = ("run-a", "run-b", "run-c", "run-m", "stopped", "midrst")
CONFIGMAPS = Kind("", "v1", "configmaps", "ConfigMap", True)
#: The ConfigMap holding a prepared upgrade run (labelled with the run id and this label).
STATE_NAME = "kovc-upgrade-state"
STATE_LABEL = "kovc.io/upgrade-state"


@dataclass
class Prepared:
    namespace: str
    source: str
    vms: dict[str, VM]
    before: dict[str, IPIdentity]
    gone: VM
    gone_ip_cr_before: bool

    @property
    def ips(self) -> list[str]:
        return [vm.ip for vm in self.vms.values()] + [self.gone.ip]

    def to_json(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "source": self.source,
                "vms": {k: asdict(v) for k, v in self.vms.items()},
                "before": {k: asdict(v) for k, v in self.before.items()},
                "gone": asdict(self.gone), "gone_ip_cr_before": self.gone_ip_cr_before}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Prepared:
        return cls(namespace=str(data["namespace"]), source=str(data["source"]),
                   vms={k: VM(**v) for k, v in data["vms"].items()},
                   before={k: IPIdentity(**v) for k, v in data["before"].items()},
                   gone=VM(**data["gone"]), gone_ip_cr_before=bool(data["gone_ip_cr_before"]))


def prepare(kube: Kube, act: Actions, run_id: str, source: str) -> Prepared:
    """Create the namespace (labelled with the run) and the VMs on the current release ``source``;
    everything but the mid-restart, which :func:`start_midrestart` issues when the upgrade begins."""
    ns = f"kovc-upg-{names.rand(5)}"
    kube.create_namespace(ns, labels={RUN_LABEL: run_id})
    vms: dict[str, VM] = {}
    for role in ROLES:
        vms[role] = act.create_vm(ns, f"{role}-{names.rand(4)}", act.take_ip(SUBNET), SUBNET)
    gone = act.create_vm(ns, f"gone-{names.rand(4)}", act.take_ip(SUBNET), SUBNET)
    for vm in [*vms.values(), gone]:
        act.wait_vm_running(vm)
    before = {role: assertions.snapshot_ip(kube, vm.name, ns) for role, vm in vms.items()}
    act.stop(vms["stopped"])
    act.stop(gone)
    kube.delete_vm(ns, gone.name)
    return Prepared(namespace=ns, source=source, vms=vms, before=before, gone=gone,
                    gone_ip_cr_before=kube.get_ip(gone.ip_cr) is not None)


def start_midrestart(kube: Kube, prepared: Prepared) -> None:
    """Request the restart of the ``midrst`` VM without waiting: it is mid-restart when the upgrade starts."""
    vm = prepared.vms["midrst"]
    kube.vm_action(vm.namespace, vm.name, "restart")


def save(kube: Kube, prepared: Prepared, run_id: str) -> None:
    """Record ``prepared`` in ConfigMap ``kovc-upgrade-state`` of its namespace (labelled with the run)."""
    body = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": STATE_NAME, "namespace": prepared.namespace,
                         "labels": {RUN_LABEL: run_id, STATE_LABEL: "prepared"}},
            "data": {"state.json": json.dumps(prepared.to_json(), sort_keys=True)}}
    kube.create(CONFIGMAPS, prepared.namespace, body)


def load(kube: Kube, run_id: str) -> Prepared:
    """The run's prepared state; ``LookupError`` (one line) when there is none or it is unreadable."""
    found = kube.list(CONFIGMAPS, None, label_selector=f"{RUN_LABEL}={run_id},{STATE_LABEL}")
    if not found:
        raise LookupError(f"no prepared upgrade run {run_id}: no ConfigMap labelled {RUN_LABEL}={run_id},"
                          f"{STATE_LABEL} (run `kovc upgrade prepare` first)")
    cm = found[0]
    try:
        return Prepared.from_json(json.loads((cm.get("data") or {})["state.json"]))
    except (KeyError, TypeError, ValueError) as err:
        where = f"{cm['metadata'].get('namespace')}/{cm['metadata'].get('name')}"
        raise LookupError(f"ConfigMap {where} of upgrade run {run_id} is unreadable: {err!r}") from None
