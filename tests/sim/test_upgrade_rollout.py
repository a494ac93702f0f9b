"""``sim/upgrade.py``: a changed kube-ovn image on the Deployments replaces the running models in place."""

from __future__ import annotations

import asyncio
import time

from behaviour_helpers import UA, sim

from conformance.sim import resources as r
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
