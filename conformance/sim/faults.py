"""Fault injection for the simulated API server (``--sim-faults RATE``, ``--sim-seed N``).

A share ``RATE`` of API requests (not discovery, OpenAPI, ``/version`` or health checks) is answered
with one of:

- ``500 InternalError`` (a Status, as when etcd times out),
- ``429 TooManyRequests`` with ``Retry-After: 1`` (API priority and fairness throttling; ``--sim-retry-after``
  sets another whole number of seconds, 0 included: the verdict self-tests' fault runs use 0, the retry
  path is the same and no run waits a second per throttled request),
- a dropped connection: the transport is closed without an answer.

A mutating request's fault happens either *before* the write (nothing changed) or *after* it (the
object was written but the client never learnt: a retried create then meets ``409 AlreadyExists``).
Throttling is always *before*: the real server rejects before doing any work. Watches are instead
cut at a random moment (the stream just ends; clients re-watch from their last resourceVersion).

Decisions come from one ``random.Random(seed)`` in request-arrival order, so a given seed and a
given request sequence always meet the same faults. Controllers write to the store directly and
are never faulted.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

FaultKind = Literal["error", "throttle", "drop"]
FaultWhen = Literal["before", "after"]
KINDS: tuple[FaultKind, ...] = ("error", "throttle", "drop")

#: How long a cut watch lives at most before it ends early, seconds.
WATCH_CUT_MAX = 2.0

_EXEMPT_ROOTS = frozenset({"openapi", "version", "healthz", "readyz", "livez", "metrics"})


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    when: FaultWhen


def is_faultable(path: str) -> bool:
    """True for resource requests; discovery, OpenAPI, version and health checks are never faulted."""
    parts = [p for p in path.split("/") if p]
    if not parts or parts[0] in _EXEMPT_ROOTS:
        return False
    if parts[0] == "api":
        return len(parts) > 2  # /api, /api/v1 are discovery
    if parts[0] == "apis":
        return len(parts) > 3  # /apis, /apis/<g>, /apis/<g>/<v> are discovery
    return False


@dataclass
class FaultInjector:
    rate: float
    seed: int | None = None
    #: The ``Retry-After`` seconds a throttled request is answered with.
    retry_after: int = 1
    rng: random.Random = field(init=False)
    #: How many faults of each ``"<kind>/<when>"`` (and ``"watch-cut"``) were injected.
    injected: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"fault rate must be between 0 and 1, got {self.rate}")
        self.rng = random.Random(self.seed)

    @property
    def enabled(self) -> bool:
        return self.rate > 0.0

    def decide(self, *, mutating: bool) -> Fault | None:
        """The fault for the next (non-watch) request, or None to serve it normally."""
        if not self.enabled or self.rng.random() >= self.rate:
            return None
        kind = self.rng.choice(KINDS)
        when: FaultWhen = "before"
        if mutating and kind != "throttle" and self.rng.random() < 0.5:
            when = "after"
        self.injected[f"{kind}/{when}"] += 1
        return Fault(kind, when)

    def watch_cut(self) -> float | None:
        """Seconds after which the next watch stream ends early, or None to leave it alone."""
        if not self.enabled or self.rng.random() >= self.rate:
            return None
        self.injected["watch-cut"] += 1
        return self.rng.uniform(0.05, WATCH_CUT_MAX)
