"""Performing "the upgrade" of an upgrade run, the same way on every backend: the backend changes the
Kube-OVN release (sim: sets the Deployments' images, which ``sim/upgrade.py`` rolls out in place; kind:
``helm upgrade`` or the target's ``install.sh``), then :func:`wait_rollout` follows the Deployments
through the Kubernetes API until both run the target release and are Available again
(``kubectl rollout status``). Scenarios reach this only through the plugin's ``cluster_upgrade``
fixture, never by importing a backend."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from .base import BackendError

SYSTEM_NS = "kube-system"
COMPONENTS = ("kube-ovn-controller", "kube-ovn-webhook")
IMAGE_REPO = "docker.io/kubeovn/kube-ovn"


@dataclass
class UpgradeOutcome:
    """What the backend did: the method, when it started and when the rollout was complete (epoch s)."""

    source: str
    target: str
    method: str
    started: float
    finished: float = 0.0
    steps: list[str] = field(default_factory=list)
    #: What the rollout measured, per component (the Deployments' ``kovc.io/rollout`` annotation, written
    #: by the simulated rollout of sim/envtest: the webhook's gap, the controller's downtime).
    measured: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _image(dep: dict[str, Any]) -> str:
    containers = ((dep.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []
    return str(containers[0].get("image", "")) if containers else ""


def _rolled_out(dep: dict[str, Any], target: str) -> bool:
    st = dep.get("status") or {}
    gen = int((dep.get("metadata") or {}).get("generation") or 1)
    available = any(c.get("type") == "Available" and c.get("status") == "True" for c in st.get("conditions") or [])
    return (_image(dep).endswith(f":{target}") and int(st.get("observedGeneration") or 0) >= gen
            and available and int(st.get("updatedReplicas") or 0) >= 1)


def _stalled(dep: dict[str, Any]) -> str:
    for c in (dep.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Progressing" and c.get("status") == "False":
            return f"{c.get('reason')}: {c.get('message')}"
    return ""


def set_images(kube: Any, target: str) -> list[str]:
    """Point the kube-ovn-controller and kube-ovn-webhook Deployments at ``kube-ovn:<target>`` (merge
    patch of the whole container list, keeping every other field)."""
    from ..kube import DEPLOYMENTS

    steps = []
    for name in COMPONENTS:
        dep = kube.get(DEPLOYMENTS, SYSTEM_NS, name)
        if dep is None:
            raise BackendError(f"upgrade: Deployment {SYSTEM_NS}/{name} not found (is Kube-OVN's webhook installed?)")
        containers = dep["spec"]["template"]["spec"]["containers"]
        containers[0]["image"] = f"{IMAGE_REPO}:{target}"
        kube.patch(DEPLOYMENTS, SYSTEM_NS, name, {"spec": {"template": {"spec": {"containers": containers}}}})
        steps.append(f"kubectl -n {SYSTEM_NS} set image deployment/{name} {containers[0]['name']}="
                     f"{IMAGE_REPO}:{target}")
    return steps


def wait_rollout(kube: Any, target: str, timeout: float) -> None:
    """Follow both Deployments until they run ``target`` and are Available; :class:`BackendError`
    naming the Deployment and its status when the rollout stalls or the deadline passes."""
    from .. import waits
    from ..kube import DEPLOYMENTS

    def evaluate(objs: dict[str, dict[str, Any]]) -> bool | None:
        deps = [objs.get(f"{SYSTEM_NS}/{n}") for n in COMPONENTS]
        for dep in deps:
            if dep is not None and _stalled(dep):
                raise BackendError(f"upgrade to {target}: Deployment {SYSTEM_NS}/{dep['metadata']['name']} "
                                   f"stalled: {_stalled(dep)}")
        return True if all(d is not None and _rolled_out(d, target) for d in deps) else None

    def describe(objs: dict[str, dict[str, Any]]) -> str:
        return "; ".join(f"{k}: image {_image(v)}, {waits.summarize(v)}" for k, v in sorted(objs.items())
                         if k.split("/", 1)[1] in COMPONENTS)

    try:
        waits.watch_until(kube, DEPLOYMENTS, SYSTEM_NS, evaluate, timeout=timeout, describe=describe,
                          what=f"Deployments {', '.join(COMPONENTS)} rolled out on {target} and Available")
    except waits.WaitTimeout as exc:
        raise BackendError(f"upgrade to {target}: {exc}") from None


def measured(kube: Any) -> list[dict[str, Any]]:
    """The rollout's own measurements on the two Deployments (annotation ``kovc.io/rollout``; none on a
    real cluster)."""
    from ..kube import DEPLOYMENTS
    from ..sim.upgrade import ROLLOUT_ANNOTATION

    out = []
    for name in COMPONENTS:
        dep = kube.get(DEPLOYMENTS, SYSTEM_NS, name) or {}
        text = ((dep.get("metadata") or {}).get("annotations") or {}).get(ROLLOUT_ANNOTATION)
        if text:
            try:
                data = json.loads(text)
            except ValueError:
                continue
            if isinstance(data, dict):
                out.append(data)
    return out


def in_place(kube: Any, source: str, target: str, timeout: float, method: str,
             admin: Any | None = None) -> UpgradeOutcome:
    """Set the images (as ``admin`` when given: the operator's account, not the suite's) and wait for
    the rollout (the sim and envtest backends' upgrade; the tail of the others)."""
    out = UpgradeOutcome(source=source, target=target, method=method, started=time.time())
    out.steps = set_images(admin if admin is not None else kube, target)
    wait_rollout(kube, target, timeout)
    out.finished = time.time()
    out.measured = measured(kube)
    return out
