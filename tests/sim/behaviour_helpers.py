"""Shared setup for the ``test_behaviour_*`` tests: run a scenario against a fresh simulated world, create
a namespace, and the VM / probe-pod manifests and waits those tests have in common."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from conformance.sim import resources as r
from conformance.sim import world
from conformance.sim.config import SimConfig
from conformance.sim.store import Store
from conformance.sim.view import until, world_of

JSON = dict[str, Any]
UA = "kovc/test"


def sim(coro: Callable[[Store], Awaitable[None]], **config: Any) -> None:
    """Run ``coro(store)`` against a fresh simulated world built from ``SimConfig(**config)``; fail on any
    controller error."""

    async def main() -> None:
        async with world.running(SimConfig(**config)) as store:
            await coro(store)
            assert not world_of(store).errors, "\n".join(world_of(store).errors)

    asyncio.run(main())


def make_namespace(store: Store, name: str) -> str:
    store.create(r.NAMESPACES, {"metadata": {"name": name}}, user_agent=UA)
    return name


def bridge_vm(
    name: str,
    namespace: str,
    template_annotations: dict[str, str],
    *,
    metadata: JSON | None = None,
    template_labels: dict[str, str] | None = None,
) -> JSON:
    """An ``Always`` VirtualMachine with one bridge interface on the pod network; ``metadata`` adds to the
    VM's own metadata, ``template_labels`` (when given) labels the VMI template."""
    template_meta: JSON = {"annotations": template_annotations}
    if template_labels is not None:
        template_meta["labels"] = template_labels
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": name, "namespace": namespace, **(metadata or {})},
        "spec": {
            "runStrategy": "Always",
            "template": {
                "metadata": template_meta,
                "spec": {
                    "domain": {"devices": {"interfaces": [{"name": "default", "bridge": {}}]}},
                    "networks": [{"name": "default", "pod": {}}],
                },
            },
        },
    }


def probe_manifest(
    name: str,
    namespace: str,
    target: str,
    *,
    count: int | None,
    interval_ms: int = 10,
    subnet: str | None = None,
    command: str = "ping -c 3 x; exit 0",
) -> JSON:
    """A probe pod pinging ``target`` every ``interval_ms`` (``count`` times, or until deleted)."""
    ann = {"kovc.io/probe-target": target, "kovc.io/probe-interval-ms": str(interval_ms)}
    if count is not None:
        ann["kovc.io/probe-count"] = str(count)
    if subnet:
        ann["ovn.kubernetes.io/logical_switch"] = subnet
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"kovc.io/probe": "true"},
            "annotations": ann,
        },
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "probe", "image": "busybox", "command": ["sh", "-c", command]}],
        },
    }


async def _pod_in_phase(store: Store, namespace: str, name: str, phases: tuple[str, ...], state: str) -> JSON:
    def check(s: Store) -> JSON | None:
        pod = s.get(r.PODS, namespace, name)
        return pod if pod and (pod.get("status") or {}).get("phase") in phases else None

    result: JSON = await until(store, check, f"pod {namespace}/{name} {state}")
    return result


async def pod_running(store: Store, namespace: str, name: str) -> JSON:
    return await _pod_in_phase(store, namespace, name, ("Running",), "Running")


async def pod_finished(store: Store, namespace: str, name: str) -> JSON:
    return await _pod_in_phase(store, namespace, name, ("Succeeded", "Failed"), "finished")
