"""An in-place Kube-OVN upgrade of the simulated cluster, driven through the Kubernetes API.

Whoever upgrades - ``helm upgrade``, ``install.sh``'s upgrade path, ``kubectl set image``, or the
suite's sim backend - ends up changing the container image of the Deployments
``kube-system/kube-ovn-controller`` and ``kube-system/kube-ovn-webhook`` to ``kube-ovn:<Y>``. The
:class:`Rollout` watches those two Deployments and, for each one whose image changed, plays the
rollout as a real cluster would:

* **controller**: the old kube-ovn-controller pod stops, the new one starts on Y's behaviour. Its
  state is kept: the new controller rebuilds IPAM from the IP CRs and pods (``initIPAM``), which is
  what the carried-over :class:`~conformance.sim.controllers.kubeovn.Ipam` holds. A deleted VM whose
  delete event the old controller saw but did not act on (pre-v1.14 has no ``handleDeleteVM``) is
  *not* revisited by the new one: there is no event left to handle (upstream behaviour).
* **webhook**: the webhook Deployment runs with ``hostNetwork`` on port 8443, so the new pod cannot
  start before the old one is gone. Between the two nothing answers the ValidatingWebhookConfiguration,
  whose ``failurePolicy: Ignore`` makes the API server admit every pod unchecked. That window lasts
  ``SimConfig.upgrade_window`` seconds (image start + readiness probe); then the new webhook serves with
  Y's conflict policy.

This is the deployment controller of those two Deployments: their status follows (``Available=False``
during the window, ``observedGeneration`` - also for a spec change that keeps the image -,
``updatedReplicas``), so ``kubectl rollout status`` - and the sim backend's wait - end when the
rollout did. An image whose tag is not a release the sim models stalls the rollout with
``Progressing=False/ProgressDeadlineExceeded`` naming the tag, as an unpullable image would.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, ClassVar

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
            WEBHOOK: versions.KUBE_OVN_VERSION if cfg.webhook_policy else cfg.kube_ovn_version,
        }
        #: Where the Kube-OVN webhook's validators are registered (in-process store) and which they are;
        #: set by :func:`serve_locally`.
        self.validators: list[Validator] | None = None
        self.kube_ovn_validators: list[Validator] = []

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
        ctl.release = release
        ctl.version = release.version
        ctl.ua = f"kube-ovn-controller/{release.version}"
        self.world.kube_ovn_version = release.version
        self.world.controller_release_version = release.version
        await self._pod_image(CONTROLLER, image, ready=True)
        await self._status(CONTROLLER, available=True)
        self.world.log(CONTROLLER, f"controller.go] kube-ovn-controller {release.version} started "
                                   f"(upgraded from {old}); IPAM rebuilt from IP CRs")

    async def _replace_webhook(self, release: versions.KubeOvnRelease, image: str, old: str) -> None:
        from .world import kube_ovn_admission

        validators = self.validators
        index = len(validators) if validators is not None else 0
        if validators is not None:
            present = [v for v in self.kube_ovn_validators if v in validators]
            if present:
                index = validators.index(present[0])
            for v in present:
                validators.remove(v)
        # UNFINISHED: over ``kovc sim attach``/envtest the webhook is served over HTTPS by sim/serving/,
        # which this rollout does not swap yet: there only the controller and the Deployments change.
        await self._pod_image(WEBHOOK, image, ready=False)
        await self._status(WEBHOOK, available=False)
        self.world.log(WEBHOOK, f"webhook {old} stopped; {release.version} starting "
                                "(failurePolicy Ignore: pods are admitted unchecked until it serves)")
        await asyncio.sleep(max(float(self.config.upgrade_window), 0.0))
        # The new webhook reads the release it runs from the world's config, as the installed one did.
        self.config.kube_ovn_version = release.version
        if validators is not None:
            self.kube_ovn_validators = kube_ovn_admission(self.world)
            validators[index:index] = self.kube_ovn_validators
        await self._pod_image(WEBHOOK, image, ready=True)
        await self._status(WEBHOOK, available=True)
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

    async def _status(self, name: str, *, available: bool | None, message: str = "") -> None:
        now = now_rfc3339()

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
    rollout swaps them there."""
    for rec in world.reconcilers:
        if isinstance(rec, Rollout):
            rec.validators = validators
            rec.kube_ovn_validators = list(kube_ovn)
