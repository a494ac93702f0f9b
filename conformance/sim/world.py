"""The simulated cluster's behaviour: KubeVirt, Kube-OVN, the scheduler and kubelets, on a :class:`Store`.

Interface used by the HTTP server (``server.py``/``cluster.py``)::

    install(store, config)       # seed the installed objects, register admission, build controllers
    await run(store, config)     # run every behaviour controller until cancelled
    vm_action(store, config, namespace, name, action, body, user_agent) -> dict  # virt-api subresources
    pod_log(store, namespace, name) -> str                                        # pods/log

The Kube-OVN release is ``config.kube_ovn_version`` (``versions.kube_ovn_release``): it selects the
controller behaviour (IP release of stopped-then-deleted VMs from v1.14.0) and, unless
``config.webhook_policy`` names another one, the webhook conflict policy (``policies.BUILTIN`` or
``module:attr``). ``config.webhook == "off"`` models a webhook that is down with ``failurePolicy:
Ignore``: every pod is admitted unchecked (the ValidatingWebhookConfiguration still exists; the
webhook Deployment has no ready replica).

Controllers (``controllers/``): ``kubevirt`` (VM, VMI, virt-handler, migration, clone), ``kubeovn``
(controller + IPAM + CNI step), ``scheduler`` (scheduler, kubelet, probe pods), ``presented`` (the
installed objects). Garbage collection by ownerReferences and namespace deletion are
``controllers/gc.py`` and ``controllers/namespaces.py`` (run by ``cluster.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from . import resources as r
from . import subresources, upgrade
from .config import SimConfig
from .controllers import kubeovn, kubevirt, presented, scheduler
from .store import ApiError, Store
from .view import JSON, StoreView, World, attach_world, dispatch, world_of
from .webhook import load_policy, make_pod_validator, make_subnet_validator

__all__ = ["install", "pod_log", "run", "running", "vm_action", "world_of"]


def install(store: Store, config: SimConfig) -> None:
    """Seed objects and register admission validators on ``store.validators``.

    Raises ``versions.VersionError`` (unknown/unsupported Kube-OVN release) or ``webhook.PolicyError``
    (unloadable policy) - both one-line ``ValueError``s."""
    from .. import versions

    release = versions.kube_ovn_release(config.kube_ovn_version)
    policy_name = config.webhook_policy or release.webhook_policy
    policy = load_policy(policy_name)
    world = World(
        store=store,
        config=config,
        kube_ovn_version=config.kube_ovn_version,
        controller_release_version=config.kube_ovn_version,
    )
    attach_world(store, world)
    kv = kubevirt.KubeVirt(world)
    ovn = kubeovn.KubeOvnController(world)
    world.reconcilers = [
        ovn,
        kubevirt.VmController(world, kv),
        kubevirt.VmiController(world, kv),
        kubevirt.Handler(world, kv),
        kubevirt.MigrationController(world, kv),
        kubevirt.CloneController(world, kv),
        scheduler.Scheduler(world),
        scheduler.Kubelet(world),
    ]
    for subnet_name, cidr, gateway in (
        ("ovn-default", "10.16.0.0/16", "10.16.0.1"),
        ("join", "100.64.0.0/16", "100.64.0.1"),
    ):
        ovn.ipam.add_or_update_subnet(subnet_name, cidr, gateway, [gateway])
    presented.seed(world)
    world.log(
        "kube-ovn-controller",
        f"controller.go] kube-ovn-controller {config.kube_ovn_version}, "
        f"webhook policy {policy_name} ({config.webhook})",
    )
    pod_validator = None
    if config.webhook == "on":
        view = StoreView(store)

        def list_ip_crs() -> list[JSON]:
            return store.list(r.IPS)[0]

        pod_validator = make_pod_validator(policy, view, list_ip_crs)
        store.validators.append(pod_validator)
        store.validators.append(make_subnet_validator(lambda: store.list(r.SUBNETS)[0]))
    store.validators.extend(kubevirt.make_validators(world))
    # In-place upgrades: a changed kube-ovn image on the controller/webhook Deployment (sim/upgrade.py).
    world.reconcilers.append(upgrade.Rollout(world, ovn, pod_validator))


async def run(store: Store, config: SimConfig) -> None:
    """Run all behaviour controllers until cancelled (asyncio tasks on the store's loop)."""
    world = world_of(store)
    tasks = [asyncio.create_task(rec.run(), name=f"kovc-sim-{rec.name}") for rec in world.reconcilers]
    tasks.append(asyncio.create_task(dispatch(world), name="kovc-sim-dispatch"))
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        for kubelet in world.reconcilers:
            if isinstance(kubelet, scheduler.Kubelet):
                for probe in kubelet.probes.values():
                    probe.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def vm_action(
    store: Store, config: SimConfig, namespace: str, name: str, action: str, body: JSON, user_agent: str
) -> JSON:
    """PUT ``subresources.kubevirt.io/v1 …/virtualmachines/{name}/{start|stop|restart|migrate}``: the 202
    response body, or ``ApiError`` as virt-api answers (see ``subresources.py``)."""
    if action not in r.VM_ACTIONS:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    return subresources.vm_action(world_of(store), namespace, name, action, body or {}, user_agent)


def pod_log(store: Store, namespace: str, name: str) -> str:
    """Text for ``pods/log``: probe pods list each ping with a timestamp (``scheduler.py``), component
    pods their component's log."""
    pod = store.require(r.PODS, namespace, name)
    return scheduler.pod_log_text(world_of(store), pod)


@contextlib.asynccontextmanager
async def running(config: SimConfig | None = None) -> AsyncIterator[Store]:
    """A fresh store with the whole behaviour (plus garbage collection and namespace lifecycle when
    ``controllers/gc.py``/``namespaces.py`` exist) running on the current event loop - for tests and
    benchmarks that need no HTTP server::

        async with running(SimConfig(workers=1)) as store:
            store.create(...)
    """
    import importlib

    config = config or SimConfig()
    store = Store()
    r.register_all(store)
    install(store, config)
    tasks = [asyncio.create_task(run(store, config), name="kovc-sim-world")]
    for module_name in ("gc", "namespaces"):
        try:
            module = importlib.import_module(f"{__package__}.controllers.{module_name}")
        except ImportError:
            continue
        tasks.append(asyncio.create_task(module.run(store, config), name=f"kovc-sim-{module_name}"))
    try:
        yield store
    finally:
        # Cancel until every task has ended: Python 3.11's asyncio.wait_for can swallow a cancellation
        # that races with the awaited result, so one cancel() is not always enough.
        pending = set(tasks)
        for _ in range(100):
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.05)
            if not pending:
                break
