"""The simulated cluster's behaviour: KubeVirt, Kube-OVN, the scheduler and kubelets, on a :class:`Store`.

Interface used by the HTTP server (``server.py``/``cluster.py``)::

    install(store, config)       # seed the installed objects, register admission, build controllers
    await run(store, config)     # run every behaviour controller until cancelled
    await vm_action(store, config, namespace, name, action, body, user_agent) -> dict  # virt-api subresources
    pod_log(store, namespace, name) -> str                                              # pods/log

The same behaviour runs over any :class:`~conformance.sim.api.Client` (``kovc sim attach`` runs it over HTTP
against a real kube-apiserver): :func:`build_world` wires the controllers to a client, :func:`seed` creates
the installed objects (create-or-skip), :func:`admission` returns the admission validators - appended to
``store.validators`` locally, served as HTTPS webhooks by ``sim/serving/`` - and :func:`run_world` runs them.

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
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

from . import api, subresources, upgrade
from . import resources as r
from .config import SimConfig
from .controllers import kubeovn, kubevirt, presented, scheduler
from .store import ApiError, Store, Validator
from .transport.local import StoreClient
from .view import JSON, ReaderView, World, attach_world, dispatch, world_of
from .webhook import candidate_ip_crs, load_policy, make_pod_validator, make_subnet_validator

__all__ = ["admission", "build_world", "install", "kube_ovn_admission", "pod_log", "run", "run_world", "running",
           "seed", "vm_action", "world_action", "world_of"]

T = TypeVar("T")


def build_world(client: api.Client, config: SimConfig) -> World:
    """The controllers of ``config``'s releases, wired to ``client`` (nothing is written yet).

    Raises ``versions.VersionError`` (unknown/unsupported Kube-OVN release) or ``webhook.PolicyError``
    (unloadable policy) - both one-line ``ValueError``s."""
    from .. import versions

    release = versions.kube_ovn_release(config.kube_ovn_version)
    policy_name = config.webhook_policy or release.webhook_policy
    load_policy(policy_name)  # fail early on a policy that cannot load
    world = World(
        client=client,
        config=config,
        kube_ovn_version=config.kube_ovn_version,
        controller_release_version=config.kube_ovn_version,
    )
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
        # In-place upgrades: a changed kube-ovn image on the controller/webhook Deployment (sim/upgrade.py).
        upgrade.Rollout(world, ovn),
    ]
    for subnet_name, cidr, gateway in (
        ("ovn-default", "10.16.0.0/16", "10.16.0.1"),
        ("join", "100.64.0.0/16", "100.64.0.1"),
    ):
        ovn.ipam.add_or_update_subnet(subnet_name, cidr, gateway, [gateway])
    world.log(
        "kube-ovn-controller",
        f"controller.go] kube-ovn-controller {config.kube_ovn_version}, "
        f"webhook policy {policy_name} ({config.webhook})",
    )
    return world


async def seed(world: World, *, webhook_configuration: bool = True) -> None:
    """Create the installed objects that are missing (nodes, namespaces, Kube-OVN and KubeVirt objects).
    ``webhook_configuration=False`` leaves the ValidatingWebhookConfiguration to whoever registers the
    webhook (``--backend envtest`` registers the real one)."""
    await presented.seed(world, webhook_configuration=webhook_configuration)


def kube_ovn_admission(world: World) -> list[Validator]:
    """Kube-OVN's webhook (``pod-ip-validating.kube-ovn.io`` and the subnet CIDR check), reading through
    ``world.client``; none when ``config.webhook == "off"`` (a down webhook with ``failurePolicy: Ignore``)."""
    if world.config.webhook != "on":
        return []
    from .. import versions

    release = versions.kube_ovn_release(world.config.kube_ovn_version)
    policy_name = world.config.webhook_policy or release.webhook_policy
    policy = load_policy(policy_name)
    client = world.client
    raised: list[str] = []

    def list_ip_crs(pod: JSON) -> list[JSON]:
        # The client's address index (the store's, or the HTTP watch cache's): cost follows the pod.
        return candidate_ip_crs(client, pod)

    return [
        make_pod_validator(policy, ReaderView(client), list_ip_crs,
                           text_in_reason=release.denial_text_in_reason, policy_name=policy_name,
                           on_raise=lambda text, pod: _policy_raised(world, text, pod, raised)),
        make_subnet_validator(lambda: client.list(r.SUBNETS)),
    ]


def _policy_raised(world: World, text: str, pod: JSON, seen: list[str]) -> None:
    """The webhook policy raised: log it as the webhook would, and (once per distinct text) write a
    Warning Event about the ``kube-system/kube-ovn-webhook`` Deployment with reason
    :data:`conformance.SIM_POLICY_RAISED`, which is how a run learns that its model is broken."""
    from .. import SIM_POLICY_RAISED

    meta = pod.get("metadata") or {}
    where = f"{meta.get('namespace') or ''}/{meta.get('name') or meta.get('generateName') or ''}"
    world.log("kube-ovn-webhook", f"static_ip.go] {text} (pod {where})")
    if text in seen:
        return
    seen.append(text)

    async def write() -> None:
        deployment = world.client.get(r.DEPLOYMENTS, "kube-system", "kube-ovn-webhook")
        if deployment is not None:
            await world.record_event(deployment, "Warning", SIM_POLICY_RAISED, f"{text} (first for pod {where})",
                                     component="kovc-sim", user_agent="kovc-sim")

    try:  # not from inside the admission of the pod: after it, on the running loop
        loop = asyncio.get_running_loop()
    except RuntimeError:
        run_now(write())
    else:
        task = loop.create_task(write())
        _background.add(task)
        task.add_done_callback(_background.discard)


#: Event writes scheduled from admission, kept referenced until they finish.
_background: set[asyncio.Task[None]] = set()


def admission(world: World) -> list[Validator]:
    """Every modelled admission check: Kube-OVN's webhook (:func:`kube_ovn_admission`) and KubeVirt's
    virt-api validators (``kubevirt.make_validators``)."""
    return [*kube_ovn_admission(world), *kubevirt.make_validators(world)]


def run_now(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (every write of a :class:`StoreClient`) to completion, here."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("a write over the in-process store suspended (it must not)")


def install(store: Store, config: SimConfig) -> None:
    """Wire the behaviour to ``store``: seed the installed objects and register admission validators on
    ``store.validators`` (see :func:`build_world` for the errors)."""
    world = build_world(StoreClient(store, "kovc-sim"), config)
    attach_world(store, world)
    run_now(seed(world))
    kube_ovn = kube_ovn_admission(world)
    store.validators.extend([*kube_ovn, *kubevirt.make_validators(world)])
    upgrade.serve_locally(world, store.validators, kube_ovn)


async def run_world(world: World) -> None:
    """Run all behaviour controllers of ``world`` until cancelled (asyncio tasks on the current loop)."""
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


async def run(store: Store, config: SimConfig) -> None:
    """Run all behaviour controllers installed on ``store`` until cancelled."""
    await run_world(world_of(store))


async def vm_action(
    store: Store, config: SimConfig, namespace: str, name: str, action: str, body: JSON, user_agent: str
) -> JSON:
    """PUT ``subresources.kubevirt.io/v1 …/virtualmachines/{name}/{start|stop|restart|migrate}``: the 202
    response body, or ``ApiError`` as virt-api answers (see ``subresources.py``)."""
    return await world_action(world_of(store), namespace, name, action, body, user_agent)


async def world_action(world: World, namespace: str, name: str, action: str, body: JSON,
                       user_agent: str) -> JSON:
    """:func:`vm_action` for any transport."""
    if action not in r.VM_ACTIONS:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    return await subresources.vm_action(world, namespace, name, action, body or {}, user_agent)


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
    store = Store(event_ttl=config.event_ttl)
    r.register_all(store, multus=config.multus)
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
