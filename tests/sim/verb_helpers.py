"""The suite's verbs (:class:`conformance.verbs.Actions`) outside a conformance run: the settings a
simulated cluster's run would have and a recorder that keeps nothing, for self-tests that drive a verb
against the sim directly."""

from __future__ import annotations

from typing import Any

from conformance.kube import Kube
from conformance.verbs import Actions


class SimSettings:
    """The settings a run on the simulated cluster has (timeout scale 0.05, no emulation)."""

    webhook_name = "pod-ip-validating.kube-ovn.io"
    timeout_scale = 0.05

    def timeout(self, seconds: float, minimum: float = 2.0) -> float:
        return max(seconds * self.timeout_scale, minimum)

    def vm_timeout(self, seconds: float) -> float:
        return self.timeout(seconds)  # no emulation on the simulated cluster


class NullRecord:
    """A recorder that keeps nothing (the self-tests assert on the verbs' results)."""

    def warn(self, text: str) -> None: ...
    def addresses(self, *ips: str) -> None: ...
    def admitted_challenger(self, ip: str) -> None: ...
    def case(self, name: str, outcome: str, **kwargs: Any) -> None: ...


def sim_actions(kube: Kube) -> Actions:
    """The verbs on ``kube`` with :class:`SimSettings` and :class:`NullRecord` (no address pool)."""
    return Actions(kube, SimSettings(), NullRecord(), None)  # type: ignore[arg-type]
