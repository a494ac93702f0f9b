"""Probe pods, VM clones, nodes and the presented installation of the simulated cluster."""

from __future__ import annotations

import asyncio
import re

from behaviour_helpers import JSON, UA, bridge_vm, make_namespace, pod_finished, probe_manifest, sim

from conformance.sim import resources as r
from conformance.sim import world
from conformance.sim.store import Store
from conformance.sim.view import until, world_of

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z (reply|no reply) from (\S+) seq=(\d+)$")


def vm_manifest(name: str, namespace: str, ip: str | None) -> JSON:
    ann = {"kubevirt.io/allow-pod-bridge-network-live-migration": "true", "custom.example.com/keep": "yes"}
    if ip:
        ann.update({"ovn.kubernetes.io/ip_address": ip, "ovn.kubernetes.io/mac_address": "00:00:00:12:34:56"})
    return bridge_vm(
        name,
        namespace,
        ann,
        metadata={"annotations": {"ovn.kubernetes.io/note": "vm-level"}, "labels": {"team": "a"}},
        template_labels={"app": name},
    )


async def vm_ready(store: Store, ns: str, name: str) -> JSON:
    def check(s: Store) -> JSON | None:
        vm = s.get(r.VMS, ns, name)
        vmi = s.get(r.VMIS, ns, name)
        if (
            vm
            and vmi
            and (vm.get("status") or {}).get("ready")
            and (vmi.get("status") or {}).get("interfaces")
        ):
            return vmi
        return None

    result: JSON = await until(store, check, f"VM {ns}/{name} ready")
    return result


def test_one_shot_probes_reply_or_fail() -> None:
    async def scenario(store: Store) -> None:
        ns = make_namespace(store, "probe")
        store.create(r.VMS, vm_manifest("web", ns, "10.16.0.90"), user_agent=UA)
        await vm_ready(store, ns, "web")
        store.create(r.PODS, probe_manifest("hit", ns, "10.16.0.90", count=4), user_agent=UA)
        store.create(r.PODS, probe_manifest("miss", ns, "10.16.0.91", count=3), user_agent=UA)
        hit, miss = await pod_finished(store, ns, "hit"), await pod_finished(store, ns, "miss")
        assert hit["status"]["phase"] == "Succeeded"
        assert hit["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
        assert miss["status"]["phase"] == "Failed"
        assert miss["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 1
        hit_lines = world.pod_log(store, ns, "hit").splitlines()
        assert [LINE.match(x).group(2, 3, 4) for x in hit_lines[:4]] == [  # type: ignore[union-attr]
            ("reply", "10.16.0.90", str(i)) for i in range(1, 5)
        ], hit_lines
        assert hit_lines[4] == "--- 10.16.0.90 probe statistics: 4 transmitted, 4 received"
        miss_lines = world.pod_log(store, ns, "miss").splitlines()
        assert all(" no reply from 10.16.0.91 " in x for x in miss_lines[:3]), miss_lines
        assert miss_lines[3] == "--- 10.16.0.91 probe statistics: 3 transmitted, 0 received"

    sim(scenario)


def test_a_deleted_probe_pod_takes_its_log_with_it() -> None:
    """As a kubelet discards a deleted pod's logs, the sim forgets a probe pod's lines when the pod is
    deleted (they used to be kept for the life of the world, one list per probe pod ever run)."""
    async def scenario(store: Store) -> None:
        ns = make_namespace(store, "probe-log")
        store.create(r.PODS, probe_manifest("gone", ns, "10.16.0.92", count=2), user_agent=UA)
        await pod_finished(store, ns, "gone")
        assert (ns, "gone") in world_of(store).pod_logs
        store.delete(r.PODS, ns, "gone", user_agent=UA)
        await until(store, lambda s: (s.get(r.PODS, ns, "gone") is None and (ns, "gone") not in world_of(s).pod_logs)
                    or None, f"probe pod {ns}/gone and its log gone")

    sim(scenario)


def test_probe_from_another_vpc_gets_no_reply_and_a_stopped_vm_neither() -> None:
    async def scenario(store: Store) -> None:
        ns = make_namespace(store, "vpcs")
        store.create(
            r.VPCS,
            {"apiVersion": "kubeovn.io/v1", "kind": "Vpc", "metadata": {"name": "vpc2"}, "spec": {}},
            user_agent=UA,
        )
        store.create(
            r.SUBNETS,
            {
                "apiVersion": "kubeovn.io/v1",
                "kind": "Subnet",
                "metadata": {"name": "v2"},
                "spec": {"cidrBlock": "10.30.0.0/24", "vpc": "vpc2"},
            },
            user_agent=UA,
        )
        store.create(r.VMS, vm_manifest("web", ns, "10.16.0.92"), user_agent=UA)
        await vm_ready(store, ns, "web")
        store.create(r.PODS, probe_manifest("far", ns, "10.16.0.92", count=2, subnet="v2"), user_agent=UA)
        assert (await pod_finished(store, ns, "far"))["status"]["phase"] == "Failed"
        await world.vm_action(store, world_of(store).config, ns, "web", "stop", {}, UA)
        await until(store, lambda s: s.get(r.VMIS, ns, "web") is None, "web stopped")
        store.create(r.PODS, probe_manifest("after-stop", ns, "10.16.0.92", count=2), user_agent=UA)
        assert (await pod_finished(store, ns, "after-stop"))["status"]["phase"] == "Failed"

    sim(scenario)


def test_continuous_probe_stops_when_deleted() -> None:
    async def scenario(store: Store) -> None:
        ns = make_namespace(store, "cont")
        store.create(r.PODS, probe_manifest("forever", ns, "10.16.0.93", count=None), user_agent=UA)
        lines = world_of(store).pod_logs
        await until(store, lambda s: len(lines.get((ns, "forever"), [])) >= 3, "pings logged")
        assert store.require(r.PODS, ns, "forever")["status"]["phase"] == "Running"
        log = lines[(ns, "forever")]  # the list the probe appends to (the world forgets it on deletion)
        store.delete(r.PODS, ns, "forever", user_agent=UA)
        await asyncio.sleep(0.05)
        count = len(log)
        await asyncio.sleep(0.05)
        assert len(log) == count, "the probe kept pinging after deletion"
        assert (ns, "forever") not in lines, "the deleted probe pod's log is still kept"

    sim(scenario)


def test_unfiltered_clone_copies_the_static_ip_and_is_denied() -> None:
    async def scenario(store: Store) -> None:
        ns = make_namespace(store, "clone")
        store.create(r.VMS, vm_manifest("src", ns, "10.16.0.94"), user_agent=UA)
        await vm_ready(store, ns, "src")
        store.create(
            r.VM_CLONES,
            {
                "apiVersion": "clone.kubevirt.io/v1beta1",
                "kind": "VirtualMachineClone",
                "metadata": {"name": "c1", "namespace": ns},
                "spec": {
                    "source": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": "src"},
                    "target": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": "copy"},
                },
            },
            user_agent=UA,
        )
        clone = await until(
            store,
            lambda s: (
                s.require(r.VM_CLONES, ns, "c1")
                if (s.require(r.VM_CLONES, ns, "c1").get("status") or {}).get("phase") == "Succeeded"
                else None
            ),
            "the clone Succeeded",
        )
        assert clone["status"]["targetName"] == "copy"
        copy = store.require(r.VMS, ns, "copy")
        tann = copy["spec"]["template"]["metadata"]["annotations"]
        assert tann["ovn.kubernetes.io/ip_address"] == "10.16.0.94"
        assert copy["metadata"]["annotations"]["ovn.kubernetes.io/note"] == "vm-level"

        def denied(s: Store) -> JSON | None:
            vmi = s.get(r.VMIS, ns, "copy")
            for c in ((vmi or {}).get("status") or {}).get("conditions") or []:
                if c["type"] == "Synchronized" and c["reason"] == "FailedCreate":
                    return dict(c)
            return None

        cond = await until(store, denied, "the clone's launcher pod denied")
        assert "is conflict with ip crd src.clone, ip 10.16.0.94" in cond["message"]

    sim(scenario)


def test_clone_with_annotation_filters_drops_the_static_ip() -> None:
    async def scenario(store: Store) -> None:
        ns = make_namespace(store, "filtered")
        store.create(r.VMS, vm_manifest("src", ns, "10.16.0.95"), user_agent=UA)
        await vm_ready(store, ns, "src")
        store.create(
            r.VM_CLONES,
            {
                "apiVersion": "clone.kubevirt.io/v1beta1",
                "kind": "VirtualMachineClone",
                "metadata": {"name": "c2", "namespace": ns},
                "spec": {
                    "source": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": "src"},
                    "target": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": "copy"},
                    "annotationFilters": ["*", "!ovn.kubernetes.io/*"],
                    "template": {"annotationFilters": ["*", "!ovn.kubernetes.io/*"]},
                },
            },
            user_agent=UA,
        )
        await until(
            store,
            lambda s: (s.require(r.VM_CLONES, ns, "c2").get("status") or {}).get("phase") == "Succeeded",
            "the clone Succeeded",
        )
        copy = store.require(r.VMS, ns, "copy")
        tann = copy["spec"]["template"]["metadata"]["annotations"]
        assert not [k for k in tann if k.startswith("ovn.kubernetes.io/")], tann
        assert tann["custom.example.com/keep"] == "yes"
        assert tann["kubevirt.io/allow-pod-bridge-network-live-migration"] == "true"
        assert "ovn.kubernetes.io/note" not in (copy["metadata"].get("annotations") or {})
        vmi = await vm_ready(store, ns, "copy")
        assert vmi["status"]["interfaces"][0]["ipAddress"] != "10.16.0.95"
        # inclusion semantics: a filter list without "*" keeps only what it matches
        store.create(
            r.VM_CLONES,
            {
                "apiVersion": "clone.kubevirt.io/v1beta1",
                "kind": "VirtualMachineClone",
                "metadata": {"name": "c3", "namespace": ns},
                "spec": {
                    "source": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": "src"},
                    "target": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": "only-ovn"},
                    "template": {"annotationFilters": ["ovn.kubernetes.io/*"]},
                },
            },
            user_agent=UA,
        )
        await until(store, lambda s: s.get(r.VMS, ns, "only-ovn") is not None, "the third clone created")
        kept = store.require(r.VMS, ns, "only-ovn")["spec"]["template"]["metadata"]["annotations"]
        assert sorted(kept) == ["ovn.kubernetes.io/ip_address", "ovn.kubernetes.io/mac_address"], kept

    sim(scenario)


def test_nodes_and_presented_installation() -> None:
    async def scenario(store: Store) -> None:
        nodes = {n["metadata"]["name"]: n for n in store.list(r.NODES)[0]}
        assert sorted(nodes) == [
            "kovc-sim-control-plane",
            "kovc-sim-worker",
            "kovc-sim-worker2",
            "kovc-sim-worker3",
        ]
        cp = nodes["kovc-sim-control-plane"]["metadata"]["labels"]
        assert cp["node-role.kubernetes.io/control-plane"] == "" and cp["kube-ovn/role"] == "master"
        assert "kubevirt.io/schedulable" not in cp
        for name, node in nodes.items():
            labels = node["metadata"]["labels"]
            assert labels["kovc.io/simulated"] == "true" and labels["kubernetes.io/hostname"] == name
            assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.34.2"
            assert any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])
            assert not node["spec"].get("taints")
            if name != "kovc-sim-control-plane":
                assert labels["kubevirt.io/schedulable"] == "true"
        ctrl = store.require(r.DEPLOYMENTS, "kube-system", "kube-ovn-controller")
        container = ctrl["spec"]["template"]["spec"]["containers"][0]
        assert container["image"] == "docker.io/kubeovn/kube-ovn:v1.14.5"
        assert "--keep-vm-ip=true" in container["args"]
        hook = store.require(r.DEPLOYMENTS, "kube-system", "kube-ovn-webhook")
        assert (
            hook["spec"]["template"]["spec"]["containers"][0]["image"] == "docker.io/kubeovn/kube-ovn:v1.14.5"
        )
        assert hook["status"]["readyReplicas"] == 1
        vwc = store.require(r.VWC, "", "kube-ovn-webhook")
        (entry,) = vwc["webhooks"]
        assert entry["name"] == "pod-ip-validating.kube-ovn.io" and entry["failurePolicy"] == "Ignore"
        assert entry["timeoutSeconds"] == 5 and entry["sideEffects"] == "None"
        assert {
            "operations": ["CREATE"],
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "resources": ["pods"],
            "scope": "*",
        } in entry["rules"]
        kv = store.require(r.KUBEVIRTS, "kubevirt", "kubevirt")
        assert kv["status"]["phase"] == "Deployed" and kv["status"]["observedKubeVirtVersion"] == "v1.5.2"
        assert any(c["type"] == "Available" and c["status"] == "True" for c in kv["status"]["conditions"])
        for name in ("virt-api", "virt-controller", "virt-operator"):
            image = store.require(r.DEPLOYMENTS, "kubevirt", name)["spec"]["template"]["spec"]["containers"][
                0
            ]["image"]
            assert image == f"quay.io/kubevirt/{name}:v1.5.2"
        subnet = store.require(r.SUBNETS, "", "ovn-default")["spec"]
        assert (subnet["cidrBlock"], subnet["gateway"], subnet["excludeIps"], subnet["vpc"]) == (
            "10.16.0.0/16",
            "10.16.0.1",
            ["10.16.0.1"],
            "ovn-cluster",
        )
        assert store.require(r.VPCS, "", "ovn-cluster") is not None
        (ctrl_pod,) = [
            p
            for p in store.list(r.PODS, "kube-system")[0]
            if p["metadata"]["labels"].get("app") == "kube-ovn-controller"
        ]
        await until(
            store,
            lambda s: (
                (s.require(r.PODS, "kube-system", ctrl_pod["metadata"]["name"]).get("status") or {}).get(
                    "phase"
                )
                == "Running"
            ),
            "the controller pod Running",
        )
        assert "kube-ovn-controller v1.14.5" in world.pod_log(
            store, "kube-system", ctrl_pod["metadata"]["name"]
        )

    sim(
        scenario,
        workers=3,
        kube_ovn_version="v1.14.5",
        kubevirt_version="v1.5.2",
        kubernetes_version="v1.34.2",
    )


def test_webhook_policy_override_keeps_the_default_webhook_tag() -> None:
    async def scenario(store: Store) -> None:
        hook = store.require(r.DEPLOYMENTS, "kube-system", "kube-ovn-webhook")
        assert (
            hook["spec"]["template"]["spec"]["containers"][0]["image"] == "docker.io/kubeovn/kube-ovn:v1.16.2"
        )
        ns = make_namespace(store, "ref")
        spoof = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "web",
                "namespace": ns,
                "annotations": {"ovn.kubernetes.io/ip_address": "10.16.0.96"},
            },
            "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "9"]}]},
        }
        store.create(r.VMS, vm_manifest("web", ns, "10.16.0.96"), user_agent=UA)
        await vm_ready(store, ns, "web")
        try:
            store.create(r.PODS, spoof, user_agent=UA, dry_run=True)
        except Exception as exc:  # the reference policy refuses a pod named like the VM
            assert "is conflict with ip crd web.ref" in str(exc)
        else:
            raise AssertionError("the reference policy admitted a plain pod named like the VM (dryRun)")
        assert store.get(r.PODS, ns, "web") is None

    sim(scenario, webhook_policy="reference")


def test_naming_the_releases_own_policy_is_no_override() -> None:
    """``--kube-ovn-version v1.13.13 --sim-webhook-policy reverse-containment`` (what the real-vs-model
    table runs) models v1.13.13 whole: its controller, its webhook image tag and its name say so."""
    from conformance.sim.config import SimConfig

    own = SimConfig(kube_ovn_version="v1.13.13", webhook_policy="reverse-containment")
    assert not own.overrides_policy and own.model_name == "kube-ovn v1.13.13"
    other = SimConfig(kube_ovn_version="v1.13.13", webhook_policy="owner-equality")
    assert other.overrides_policy and other.model_name == "policy owner-equality (controller v1.13.13)"

    async def scenario(store: Store) -> None:
        hook = store.require(r.DEPLOYMENTS, "kube-system", "kube-ovn-webhook")
        assert hook["spec"]["template"]["spec"]["containers"][0]["image"] == "docker.io/kubeovn/kube-ovn:v1.13.13"

    sim(scenario, kube_ovn_version="v1.13.13", webhook_policy="reverse-containment")


def _clone_with_a_target_already_there(marked: bool) -> str:
    """A clone whose target VM exists before the clone reaches CreatingTargetVM: with this clone's
    restore mark (what the clone's own earlier pass wrote, when a lagging watch cache still shows the
    old phase — seen on ``--backend envtest``) or without (another's VM). The phase it ends in."""
    from conformance.sim.controllers.kubevirt import RESTORE_MARK_ANNOTATION, _restore_mark

    result: list[str] = []

    async def scenario(store: Store) -> None:
        ns = make_namespace(store, "again" if marked else "taken")
        clone = store.create(r.VM_CLONES, {
            "apiVersion": "clone.kubevirt.io/v1beta1", "kind": "VirtualMachineClone",
            "metadata": {"name": "c3", "namespace": ns},
            "spec": {"source": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": "src"},
                     "target": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": "copy"}}},
            user_agent=UA)
        target = vm_manifest("copy", ns, "10.16.0.97")
        if marked:
            target["metadata"].setdefault("annotations", {})[RESTORE_MARK_ANNOTATION] = _restore_mark(
                clone["metadata"]["uid"])
        store.create(r.VMS, target, user_agent=UA)
        store.create(r.VMS, vm_manifest("src", ns, "10.16.0.98"), user_agent=UA)
        done = await until(store, lambda s: (s.require(r.VM_CLONES, ns, "c3").get("status") or {}).get("phase")
                           in ("Succeeded", "Failed") and s.require(r.VM_CLONES, ns, "c3"), "the clone ended")
        result.append(done["status"]["phase"])

    sim(scenario)
    return result[0]


def test_a_clone_recognises_the_target_it_created_itself() -> None:
    assert _clone_with_a_target_already_there(marked=True) == "Succeeded"


def test_a_clone_onto_another_vm_fails() -> None:
    assert _clone_with_a_target_already_there(marked=False) == "Failed"
