"""``sim/upgrade.py``: a changed kube-ovn image on the Deployments replaces the running models in place."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from behaviour_helpers import UA, sim

from conformance import versions
from conformance.sim import resources as r
from conformance.sim import upgrade
from conformance.sim.store import ApiError, Store
from conformance.sim.view import until, world_of

NS = "kube-system"


def _set_image(store: Store, name: str, image: str) -> None:
    def edit(dep: dict) -> None:  # type: ignore[type-arg]
        dep["spec"]["template"]["spec"]["containers"][0]["image"] = image

    store.mutate(r.DEPLOYMENTS, NS, name, edit, user_agent=UA)


def _available(store: Store, name: str) -> str:
    dep = store.get(r.DEPLOYMENTS, NS, name) or {}
    return next((c["status"] for c in dep.get("status", {}).get("conditions", []) if c["type"] == "Available"), "")


def _pod(ip: str, name: str) -> dict:  # type: ignore[type-arg]
    return {"metadata": {"name": name, "namespace": "default",
                         "annotations": {"ovn.kubernetes.io/ip_address": ip}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def test_rollout_replaces_controller_and_webhook_with_a_window() -> None:
    async def body(store: Store) -> None:
        world = world_of(store)
        assert world.controller_release_version == "v1.13.15"
        validators = len(store.validators)
        # A static-IP pod holds an address: another pod claiming it is denied by the old webhook.
        addr = "10.16.0.50"
        store.create(r.PODS, _pod(addr, "holder"), namespace="default", user_agent=UA)
        await until(store, lambda s: s.get(r.IPS, "", "holder.default"), "the holder's IP CR")
        try:
            store.create(r.PODS, _pod(addr, "before"), namespace="default", user_agent=UA)
            raise AssertionError("the old webhook admitted a pod claiming the holder's IP")
        except ApiError as err:
            assert err.code == 403 and "pod-ip-validating.kube-ovn.io" in err.message, err.message
        _set_image(store, "kube-ovn-controller", "docker.io/kubeovn/kube-ovn:v1.14.2")
        _set_image(store, "kube-ovn-webhook", "docker.io/kubeovn/kube-ovn:v1.14.2")
        await until(store, lambda s: _available(s, "kube-ovn-webhook") == "False", "the webhook to go unavailable")
        assert world.controller_release_version == "v1.14.2"
        assert len(store.validators) == validators - 2, "the old webhook (pods and subnets) still answers"
        store.create(r.PODS, _pod(addr, "in-window"), namespace="default", user_agent=UA)  # admitted unchecked
        t0 = time.monotonic()
        await until(store, lambda s: _available(s, "kube-ovn-webhook") == "True", "the new webhook", timeout=5)
        assert time.monotonic() - t0 > 0.1  # the window lasted (upgrade_window 0.3 s)
        assert len(store.validators) == validators
        try:
            store.create(r.PODS, _pod(addr, "after"), namespace="default", user_agent=UA)
            raise AssertionError("the new webhook admitted a pod claiming the holder's IP")
        except ApiError as err:
            assert err.code == 403, err.message
        dep = store.get(r.DEPLOYMENTS, NS, "kube-ovn-webhook") or {}
        assert dep["status"]["observedGeneration"] == dep["metadata"]["generation"]
        assert any("v1.14.2 serving" in line for line in world.logs["kube-ovn-webhook"])
        swap = json.loads(dep["metadata"]["annotations"][upgrade.ROLLOUT_ANNOTATION])
        assert swap["component"] == "kube-ovn-webhook" and swap["gap"] >= 0.3, swap

    sim(body, kube_ovn_version="v1.13.15", upgrade_window=0.3)


def test_unknown_image_stalls_the_rollout() -> None:
    async def body(store: Store) -> None:
        _set_image(store, "kube-ovn-webhook", "docker.io/kubeovn/kube-ovn:v9.9.9")

        def stalled(s: Store) -> str:
            dep = s.get(r.DEPLOYMENTS, NS, "kube-ovn-webhook") or {}
            return next((c["message"] for c in dep["status"]["conditions"]
                         if c["type"] == "Progressing" and c["status"] == "False"), "")

        message = await until(store, stalled, "the rollout to stall")
        assert "unknown Kube-OVN version v9.9.9" in message
        await asyncio.sleep(0.05)
        assert world_of(store).kube_ovn_version == "v1.16.2"

    sim(body)


# ---------------------------------------------------------------------- the shared webhook swap


class _Host:
    """A WebhookHost that records its calls and what answered in between (no process, no network)."""

    def __init__(self, start_seconds: float = 0.0, stop_seconds: float = 0.0) -> None:
        self.calls: list[tuple[str, float]] = []
        self.start_seconds = start_seconds
        self.stop_seconds = stop_seconds
        self.serving = "v1"

    async def stop(self) -> str:
        self.calls.append(("stop", time.time()))
        self.serving = ""  # a stopping webhook answers no more (its listener closes first)
        await asyncio.sleep(self.stop_seconds)
        return "old stopped"

    async def start(self, release: versions.KubeOvnRelease) -> str:
        self.calls.append(("start", time.time()))
        await asyncio.sleep(self.start_seconds)
        assert self.serving == "", "the new webhook serves before it is registered"
        return f"new {release.version}"

    async def serve(self) -> str:
        self.calls.append(("serve", time.time()))
        self.serving = "v2"
        return "registered"


def test_swap_stops_first_and_serves_no_earlier_than_the_window() -> None:
    host = _Host(start_seconds=0.0)
    swap = asyncio.run(upgrade.replace_webhook(host, "v1.13.13", versions.kube_ovn_release("v1.16.2"), 0.3))
    assert [c for c, _t in host.calls] == ["stop", "start", "serve"]
    assert swap.gap >= 0.3, swap
    assert swap.serving_at - swap.stop_requested_at == pytest.approx(swap.gap, abs=0.002)
    assert (swap.old, swap.new, swap.stopped, swap.started, swap.served) == (
        "v1.13.13", "v1.16.2", "old stopped", "new v1.16.2", "registered")
    assert host.serving == "v2"


def test_swap_gap_is_the_start_time_when_the_new_webhook_starts_slower_than_the_window() -> None:
    host = _Host(start_seconds=0.4)
    swap = asyncio.run(upgrade.replace_webhook(host, "v1.13.0", versions.kube_ovn_release("v1.13.13"), 0.1))
    assert swap.start_seconds >= 0.4
    assert swap.gap >= 0.4  # not window + start: the window is a lower bound, not added
    assert swap.gap < 0.4 + 0.3, swap
    data = swap.to_json()
    assert data["component"] == "kube-ovn-webhook" and data["gap"] == swap.gap


def test_swap_gap_counts_from_the_stop_request_and_the_window_from_the_old_ones_end() -> None:
    host = _Host(stop_seconds=0.3)
    swap = asyncio.run(upgrade.replace_webhook(host, "v1.13.13", versions.kube_ovn_release("v1.16.2"), 0.2))
    assert swap.stop_seconds >= 0.3
    assert swap.serving_at - swap.stopped_at >= 0.2  # the modelled readiness after the old pod's end
    assert swap.gap >= 0.5 and swap.gap == pytest.approx(swap.serving_at - swap.stop_requested_at, abs=0.002)


def test_a_failed_start_leaves_nothing_serving_and_propagates() -> None:
    class Broken(_Host):
        async def start(self, release: versions.KubeOvnRelease) -> str:
            raise RuntimeError(f"kube-ovn-webhook {release.version} exited with code 1")

    host = Broken()
    with pytest.raises(RuntimeError, match="exited with code 1"):
        asyncio.run(upgrade.replace_webhook(host, "v1.14.10", versions.kube_ovn_release("v1.16.2"), 0.0))
    assert host.serving == "" and [c for c, _t in host.calls] == ["stop"]


def test_local_validators_are_removed_then_put_back_in_place() -> None:
    async def body(store: Store) -> None:
        world = world_of(store)
        rollout = next(rec for rec in world.reconcilers if isinstance(rec, upgrade.Rollout))
        host = rollout.webhook_host
        assert isinstance(host, upgrade.LocalValidators)
        before = list(store.validators)
        kube_ovn = list(host.current)
        index = before.index(kube_ovn[0])
        await host.stop()
        assert not any(v in store.validators for v in kube_ovn)
        described = await host.start(versions.kube_ovn_release("v1.16.2"))
        assert "v1.16.2" in described and len(store.validators) == len(before) - len(kube_ovn)
        await host.serve()
        assert len(store.validators) == len(before)
        assert store.validators[index] is host.current[0] and host.current[0] not in kube_ovn

    sim(body, kube_ovn_version="v1.13.15")


def test_controller_is_down_while_it_rolls_and_catches_up_with_its_state_kept() -> None:
    async def body(store: Store) -> None:
        world = world_of(store)
        store.create(r.PODS, _pod("10.16.0.60", "before"), namespace="default", user_agent=UA)
        ip_before = await until(store, lambda s: s.get(r.IPS, "", "before.default"), "the first pod's IP CR")
        _set_image(store, "kube-ovn-controller", "docker.io/kubeovn/kube-ovn:v1.16.2")
        await until(store, lambda s: _available(s, "kube-ovn-controller") == "False", "the controller to go down")
        store.create(r.PODS, _pod("10.16.0.61", "during"), namespace="default", user_agent=UA)
        await asyncio.sleep(0.2)
        assert store.get(r.IPS, "", "during.default") is None, "an IP CR was made while no controller ran"
        assert world.controller_release_version == "v1.13.15"
        await until(store, lambda s: _available(s, "kube-ovn-controller") == "True", "the controller back",
                    timeout=5)
        assert world.controller_release_version == "v1.16.2"
        await until(store, lambda s: s.get(r.IPS, "", "during.default"), "the IP CR of the pod made while down")
        kept = store.get(r.IPS, "", "before.default") or {}
        assert kept["metadata"]["uid"] == ip_before["metadata"]["uid"]
        dep = store.get(r.DEPLOYMENTS, NS, "kube-ovn-controller") or {}
        measured = json.loads(dep["metadata"]["annotations"][upgrade.ROLLOUT_ANNOTATION])
        assert measured["component"] == "kube-ovn-controller" and measured["downtime"] >= 0.4, measured
        assert (measured["old"], measured["new"]) == ("v1.13.15", "v1.16.2")

    sim(body, kube_ovn_version="v1.13.15", controller_downtime=0.4)
