"""An in-place Kube-OVN upgrade of the simulated cluster, driven through the Kubernetes API.

Whoever upgrades - ``helm upgrade``, ``install.sh``'s upgrade path, ``kubectl set image``, or the
suite's sim backend - ends up changing the container image of the Deployments
``kube-system/kube-ovn-controller`` and ``kube-system/kube-ovn-webhook`` to ``kube-ovn:<Y>``. The
:class:`Rollout` watches those two Deployments and, for each one whose image changed, plays the
rollout as a real cluster would:

* **controller**: the old kube-ovn-controller pod stops, the new one starts on Y's behaviour. Between
  the two no Kube-OVN controller runs for ``SimConfig.controller_downtime`` seconds (the Deployment's
  Recreate-like roll - ``maxSurge: 0``, hostNetwork - plus the new pod's start, informer sync and
  leader election): pods, VMs and IP CRs created meanwhile wait, unallocated, and are handled when it
  is back (the workqueue keeps their keys, as the new controller's initial list would). Its state is
  kept: the new controller rebuilds IPAM from the IP CRs and pods (``initIPAM``), which is
  what the carried-over :class:`~conformance.sim.controllers.kubeovn.Ipam` holds. A deleted VM whose
  delete event the old controller saw but did not act on (pre-v1.14 has no ``handleDeleteVM``) is
  *not* revisited by the new one: there is no event left to handle (upstream behaviour).
* **webhook**: the webhook Deployment runs with ``hostNetwork`` on port 8443, so the new pod cannot
  start before the old one is gone. Between the two nothing answers the ValidatingWebhookConfiguration,
  whose ``failurePolicy: Ignore`` makes the API server admit every pod unchecked. That window lasts
  ``SimConfig.upgrade_window`` seconds at least (image start + readiness probe) - longer when the new
  webhook takes longer to start -; then the new webhook serves with Y's conflict policy.

The webhook swap itself is :func:`replace_webhook`, one sequence for every place the webhook runs
(a :class:`WebhookHost`): the in-process store's validator list (:class:`LocalValidators`, ``--backend
sim``), the modelled webhook served over HTTPS by ``kovc sim attach``, and Kube-OVN's real webhook
binary run by ``kovc envtest serve`` (both in ``sim/attached.py``/``envtest/upgrade.py``). What it
measured (stop, serving again, the gap) and the controller's downtime are written on the Deployments
as the annotation :data:`ROLLOUT_ANNOTATION` (JSON), which ``cluster/upgrade.py`` reads into the
upgrade's evidence.

This is the deployment controller of those two Deployments: their status follows (``Available=False``
during the window, ``observedGeneration`` - also for a spec change that keeps the image -,
``updatedReplicas``), so ``kubectl rollout status`` - and the sim backend's wait - end when the
rollout did. An image whose tag is not a release the sim models stalls the rollout with
``Progressing=False/ProgressDeadlineExceeded`` naming the tag, as an unpullable image would.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

from .. import versions
from . import api
from . import resources as r
from .store import WatchEvent, now_rfc3339
from .view import JSON, Key, Reconciler, World

if TYPE_CHECKING:
    from .controllers.kubeovn import KubeOvnController
    from .store import ResourceType, Validator

SYSTEM_NS = "kube-system"
CONTROLLER = "kube-ovn-controller"
WEBHOOK = "kube-ovn-webhook"
UA = "kube-controller-manager/rollout"
#: What a rollout measured, on its Deployment (JSON of :class:`WebhookSwap` / :class:`ControllerRestart`).
ROLLOUT_ANNOTATION = "kovc.io/rollout"


class WebhookHost(Protocol):
    """Where Kube-OVN's webhook runs, in the three steps of a rollout: ``stop`` the running webhook (nothing
    answers its registration afterwards), ``start`` the target release's (running, not yet reachable by
    the API server), ``serve`` it (reachable: registered as the release registers it). Each returns a
    one-line description of what it did."""

    async def stop(self) -> str: ...

    async def start(self, release: versions.KubeOvnRelease) -> str: ...

    async def serve(self) -> str: ...


@dataclass
class WebhookSwap:
    """One webhook replacement as :func:`replace_webhook` measured it (epoch seconds). ``gap``: from the
    stop's request - a stopping webhook no longer answers (a real one closes its listener on SIGTERM, then
    shuts down, ``stop_seconds``) - to the new one serving: the window in which ``failurePolicy: Ignore``
    admits unchecked."""

    old: str
    new: str
    stopped: str
    started: str
    served: str
    stop_requested_at: float
    stopped_at: float
    serving_at: float
    stop_seconds: float
    start_seconds: float
    gap: float

    def to_json(self) -> dict[str, object]:
        return {"component": WEBHOOK, **asdict(self)}


@dataclass
class ControllerRestart:
    """One kube-ovn-controller restart: down from ``down_at`` to ``up_at`` (epoch seconds)."""

    old: str
    new: str
    down_at: float
    up_at: float

    @property
    def downtime(self) -> float:
        return self.up_at - self.down_at

    def to_json(self) -> dict[str, object]:
        return {"component": CONTROLLER, **asdict(self), "downtime": round(self.downtime, 3)}


async def replace_webhook(host: WebhookHost, old: str, release: versions.KubeOvnRelease, window: float,
                          clock: Callable[[], float] = time.time) -> WebhookSwap:
    """The webhook's rollout on ``host``: the old one stops, the new one starts, and it serves no earlier
    than ``window`` seconds after the old one is gone (a faster start still waits for the pod's
    readiness), later when its start takes longer. Returns what was measured."""
    stop_requested_at = clock()
    stopped = await host.stop()
    stopped_at = clock()
    t = time.monotonic()
    started = await host.start(release)
    start_seconds = time.monotonic() - t
    remaining = float(window) - (clock() - stopped_at)
    if remaining > 0:
        await asyncio.sleep(remaining)
    served = await host.serve()
    serving_at = clock()
    return WebhookSwap(old=old, new=release.version, stopped=stopped, started=started, served=served,
                       stop_requested_at=stop_requested_at, stopped_at=stopped_at, serving_at=serving_at,
                       stop_seconds=round(stopped_at - stop_requested_at, 3), start_seconds=round(start_seconds, 3),
                       gap=round(serving_at - stop_requested_at, 3))


def model_admission(world: World, release: versions.KubeOvnRelease) -> tuple[list[Validator], str]:
    """The modelled webhook of ``release`` (its validators, not yet registered anywhere) and what it is."""
    from .world import kube_ovn_admission

    # The new webhook reads the release it runs from the world's config, as the installed one did.
    world.config.kube_ovn_version = release.version
    policy = world.config.webhook_policy or release.webhook_policy
    return kube_ovn_admission(world), f"modelled webhook {release.version} (policy {policy})"


class LocalValidators:
    """The in-process store's Kube-OVN validators (``--backend sim``): stopping removes them from the
    store's validator list, serving puts the new release's back at the same place."""

    def __init__(self, world: World, validators: list[Validator], kube_ovn: list[Validator]) -> None:
        self.world = world
        self.validators = validators
        self.current = list(kube_ovn)
        self.index = len(validators)
        self.pending: list[Validator] = []

    async def stop(self) -> str:
        present = [v for v in self.current if v in self.validators]
        if present:
            self.index = self.validators.index(present[0])
        for v in present:
            self.validators.remove(v)
        self.current = []
        return f"modelled webhook removed from the API server's admission ({len(present)} validators)"

    async def start(self, release: versions.KubeOvnRelease) -> str:
        self.pending, said = model_admission(self.world, release)
        return said

    async def serve(self) -> str:
        self.validators[self.index:self.index] = self.pending
        self.current, self.pending = self.pending, []
        return "in the API server's admission chain"


def image_tag(image: str) -> str:
    name = image.rsplit("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else ""


def _image(deployment: JSON) -> str:
    containers = ((deployment.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []
    return str(containers[0].get("image", "")) if containers else ""


class Rollout(Reconciler):
    """Replaces the running Kube-OVN models when their Deployments' images change (module docstring)."""

    name = "rollout"
    watches: ClassVar[tuple[ResourceType, ...]] = (r.DEPLOYMENTS,)

    def __init__(self, world: World, controller: KubeOvnController) -> None:
        super().__init__(world)
        self.controller = controller
        cfg = world.config
        #: The release each component runs now, as installed (``presented.py`` gives the webhook the
        #: default release's image when only the policy is overridden).
        self.running: dict[str, str] = {
            CONTROLLER: cfg.kube_ovn_version,
            WEBHOOK: versions.KUBE_OVN_VERSION if cfg.overrides_policy else cfg.kube_ovn_version,
        }
        #: Where Kube-OVN's webhook runs (:func:`serve_locally`, ``sim/attached.py``); ``None``: nothing of
        #: it is swapped here (the rollout then only plays the Deployment and pod status).
        self.webhook_host: WebhookHost | None = None
        #: What the last rollouts measured.
        self.swaps: list[WebhookSwap] = []
        self.restarts: list[ControllerRestart] = []

    def on_event(self, ev: WatchEvent) -> None:
        if ev.rt.key != r.DEPLOYMENTS.key or ev.type != "MODIFIED":
            return
        m = ev.object.get("metadata", {})
        if m.get("namespace") == SYSTEM_NS and m.get("name") in (CONTROLLER, WEBHOOK):
            self.queue.add(("deployment", str(m["name"])))

    def resync(self) -> None:
        for name in (CONTROLLER, WEBHOOK):
            self.queue.add(("deployment", name))

    async def handle(self, key: Key) -> None:
        name = key[1]
        dep = self.client.get(r.DEPLOYMENTS, SYSTEM_NS, name)
        if dep is None:
            return
        image = _image(dep)
        tag = image_tag(image)
        if not image or tag == self.running.get(name):
            await self._observe(dep)  # a spec change that keeps the release: nothing to replace
            return
        try:
            release = versions.kube_ovn_release(tag)
        except versions.VersionError as err:
            if self.running.get(name) != f"stalled:{image}":
                await self._status(name, available=None, message=f'image "{image}": {err}')
                self.world.log(name, f"rollout of {image} stalled: {err}")
            self.running[name] = f"stalled:{image}"
            return
        old = self.running.get(name, "")
        self.running[name] = tag
        if name == CONTROLLER:
            await self._restart_controller(release, image, old)
        else:
            await self._replace_webhook(release, image, old)

    # ------------------------------------------------------------------ the two rollouts
    async def _restart_controller(self, release: versions.KubeOvnRelease, image: str, old: str) -> None:
        ctl = self.controller
        await self._pod_image(CONTROLLER, image, ready=False)
        await self._status(CONTROLLER, available=False)
        down_at = time.time()
        ctl.up.clear()  # no Kube-OVN controller runs: its queue keeps the keys for the new one
        self.world.log(CONTROLLER, f"kube-ovn-controller {old} stopped; {release.version} starting "
                                   f"({self.config.controller_downtime:g} s)")
        try:
            await asyncio.sleep(max(float(self.config.controller_downtime), 0.0))
            ctl.release = release
            ctl.version = release.version
            ctl.ua = f"kube-ovn-controller/{release.version}"
            self.world.kube_ovn_version = release.version
            self.world.controller_release_version = release.version
        finally:
            ctl.up.set()
        restart = ControllerRestart(old=old, new=release.version, down_at=down_at, up_at=time.time())
        self.restarts.append(restart)
        await self._pod_image(CONTROLLER, image, ready=True)
        await self._status(CONTROLLER, available=True, measured=restart.to_json())
        self.world.log(CONTROLLER, f"controller.go] kube-ovn-controller {release.version} started "
                                   f"(upgraded from {old}, down {restart.downtime:.2f} s); IPAM rebuilt from IP CRs")

    async def _replace_webhook(self, release: versions.KubeOvnRelease, image: str, old: str) -> None:
        await self._pod_image(WEBHOOK, image, ready=False)
        await self._status(WEBHOOK, available=False)
        self.world.log(WEBHOOK, f"webhook {old} stopping; {release.version} starting "
                                "(failurePolicy Ignore: pods are admitted unchecked until it serves)")
        host = self.webhook_host
        if host is None:
            # Nothing of the webhook runs in this process: only its Deployment rolls (the window elapses).
            await asyncio.sleep(max(float(self.config.upgrade_window), 0.0))
            self.config.kube_ovn_version = release.version
            measured: dict[str, object] | None = None
        else:
            try:
                swap = await replace_webhook(host, old, release, float(self.config.upgrade_window))
            except Exception as err:  # the new webhook did not come up: the rollout stalls, saying why
                message = f"kube-ovn-webhook {release.version} did not start: {err}"
                await self._status(WEBHOOK, available=None, message=message)
                self.world.log(WEBHOOK, f"rollout of {image} stalled: {message}")
                return
            self.swaps.append(swap)
            measured = swap.to_json()
            self.world.log(WEBHOOK, f"webhook {old} stopped in {swap.stop_seconds:.2f} s ({swap.stopped}); "
                                    f"{swap.started} started in {swap.start_seconds:.2f} s, serving ({swap.served}) "
                                    f"{swap.gap:.2f} s after the stop was requested")
        await self._pod_image(WEBHOOK, image, ready=True)
        await self._status(WEBHOOK, available=True, measured=measured)
        policy_name = self.config.webhook_policy or release.webhook_policy
        self.world.log(WEBHOOK, f"webhook {release.version} serving, policy {policy_name}")

    # ------------------------------------------------------------------ status
    async def _observe(self, dep: JSON) -> None:
        gen = int(dep.get("metadata", {}).get("generation", 1))
        if int((dep.get("status") or {}).get("observedGeneration") or 0) >= gen:
            return

        def edit(obj: JSON) -> None:
            obj.setdefault("status", {})["observedGeneration"] = gen

        await api.mutate(self.client.as_agent(UA), r.DEPLOYMENTS, SYSTEM_NS, str(dep["metadata"]["name"]), edit,
                         subresource="status")

    async def _pod_image(self, component: str, image: str, *, ready: bool) -> None:
        pods = self.client.list(r.PODS, SYSTEM_NS)
        for pod in pods:
            if (pod.get("metadata", {}).get("labels") or {}).get("app") != component:
                continue

            def spec(obj: JSON, image: str = image) -> None:
                for c in (obj.get("spec") or {}).get("containers") or []:
                    c["image"] = image

            def status(obj: JSON, image: str = image) -> None:
                st = obj.setdefault("status", {})
                for cs in st.get("containerStatuses") or []:  # what the kubelet reports it runs
                    cs["image"] = image
                    cs["ready"] = ready
                st["conditions"] = [c for c in st.get("conditions") or [] if c.get("type") != "Ready"] + [
                    {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": now_rfc3339()}]

            name = pod["metadata"]["name"]
            client = self.client.as_agent(UA)
            await api.mutate(client, r.PODS, SYSTEM_NS, name, spec)
            await api.mutate(client, r.PODS, SYSTEM_NS, name, status, subresource="status")

    async def _status(self, name: str, *, available: bool | None, message: str = "",
                      measured: dict[str, object] | None = None) -> None:
        now = now_rfc3339()
        if measured is not None:
            text = json.dumps(measured, sort_keys=True)

            def annotate(dep: JSON) -> None:
                dep.setdefault("metadata", {}).setdefault("annotations", {})[ROLLOUT_ANNOTATION] = text

            await api.mutate(self.client.as_agent(UA), r.DEPLOYMENTS, SYSTEM_NS, name, annotate)

        def edit(dep: JSON) -> None:
            gen = int(dep.get("metadata", {}).get("generation", 1))
            status = dep.setdefault("status", {})
            status["observedGeneration"] = gen
            replaced = ("Progressing",) if available is None else ("Available", "Progressing")
            conds = [c for c in status.get("conditions") or [] if c.get("type") not in replaced]
            if available is None:
                conds.append({"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                              "message": message, "lastUpdateTime": now, "lastTransitionTime": now})
                status["updatedReplicas"] = 0
            else:
                status["updatedReplicas"] = 1
                status["replicas"] = 1
                status["readyReplicas"] = 1 if available else 0
                status["availableReplicas"] = 1 if available else 0
                status["unavailableReplicas"] = 0 if available else 1
                conds.append({"type": "Progressing", "status": "True",
                              "reason": "NewReplicaSetAvailable" if available else "ReplicaSetUpdated",
                              "message": f'Deployment "{name}" rolled out.', "lastUpdateTime": now,
                              "lastTransitionTime": now})
                conds.append({"type": "Available", "status": "True" if available else "False",
                              "reason": "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                              "message": "Deployment has minimum availability." if available
                              else "Deployment does not have minimum availability.",
                              "lastUpdateTime": now, "lastTransitionTime": now})
            status["conditions"] = conds

        await api.mutate(self.client.as_agent(UA), r.DEPLOYMENTS, SYSTEM_NS, name, edit, subresource="status")


def serve_locally(world: World, validators: list[Validator], kube_ovn: list[Validator]) -> None:
    """The in-process store registers Kube-OVN's webhook validators (``kube_ovn``) on ``validators``: the
    rollout swaps them there (:class:`LocalValidators`)."""
    host_webhook(world, LocalValidators(world, validators, kube_ovn))


def host_webhook(world: World, host: WebhookHost) -> None:
    """Tell ``world``'s rollout where Kube-OVN's webhook runs."""
    for rec in world.reconcilers:
        if isinstance(rec, Rollout):
            rec.webhook_host = host
