"""Shared plumbing of the simulated cluster's behaviour controllers.

* :class:`World` - the state every controller shares (its :class:`~conformance.sim.api.Client`, config,
  IPAM, logs, probe results); one per cluster, reachable from a local store with :func:`world_of`.
* :class:`Reconciler` - a tiny controller runtime in the style of client-go's workqueue: keys are
  queued from watch events, deduplicated while pending, processed one at a time after
  ``config.step_delay`` (modelled latency), and failed keys are retried with exponential backoff
  (5 ms doubling, capped at ~1 s at the default step delay - scaled with it).
* :class:`ReaderView` - the read-only lookups the Kube-OVN webhook policies get (``webhook.WebhookView``),
  over any :class:`~conformance.sim.api.Reader` (the store, or the watch cache as upstream's webhook).
* Small helpers: owner references, conditions, Events (aggregated as the API server's event sink
  does), timestamps.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from . import api
from . import resources as r
from .config import SimConfig
from .store import ApiError, ResourceType, Store, WatchEvent, now_rfc3339

if TYPE_CHECKING:
    from .controllers.kubeovn import Ipam

JSON = dict[str, Any]
Key = tuple[str, ...]

_WORLD_ATTR = "_kovc_sim_world"
#: Events remembered for aggregation (client-go ``maxLruCacheEntries``); older ones are written anew.
EVENT_CACHE_SIZE = 4096


def now_rfc3339_nano() -> str:
    """``time.RFC3339Nano`` as Go prints it (trailing zeros of the fraction dropped)."""
    now = datetime.now(UTC)
    frac = f"{now.microsecond:06d}000".rstrip("0")
    return now.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + "Z"


def annotations_of(obj: JSON) -> dict[str, str]:
    return dict(obj.get("metadata", {}).get("annotations") or {})


def labels_of(obj: JSON) -> dict[str, str]:
    return dict(obj.get("metadata", {}).get("labels") or {})


def controller_ref(obj: JSON) -> JSON | None:
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def owner_ref(owner: JSON, *, controller: bool = True) -> JSON:
    """``metav1.NewControllerRef``: apiVersion, kind, name, uid, controller, blockOwnerDeletion."""
    return {
        "apiVersion": owner.get("apiVersion", ""),
        "kind": owner.get("kind", ""),
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def is_controlled_by(obj: JSON, owner_uid: str) -> bool:
    ref = controller_ref(obj)
    return ref is not None and ref.get("uid") == owner_uid


def get_condition(obj: JSON, ctype: str) -> JSON | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return dict(cond)
    return None


def set_condition(obj: JSON, cond: JSON) -> None:
    """Replace the condition of the same type (keeping lastTransitionTime when the status is unchanged)."""
    status = obj.setdefault("status", {})
    conds: list[JSON] = list(status.get("conditions") or [])
    for i, old in enumerate(conds):
        if old.get("type") == cond.get("type"):
            if old.get("status") == cond.get("status") and "lastTransitionTime" in old:
                cond = {**cond, "lastTransitionTime": old["lastTransitionTime"]}
            conds[i] = cond
            break
    else:
        conds.append(cond)
    status["conditions"] = conds


def remove_condition(obj: JSON, ctype: str) -> None:
    status = obj.setdefault("status", {})
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != ctype]


def is_deleting(obj: JSON) -> bool:
    return bool(obj.get("metadata", {}).get("deletionTimestamp"))


# ----------------------------------------------------------------------------- world
@dataclass
class World:
    """Everything the behaviour controllers share for one cluster."""

    client: api.Client
    config: SimConfig
    kube_ovn_version: str
    #: The Kube-OVN release whose *controller* behaviour is modelled.
    controller_release_version: str
    ipam: Ipam | None = None
    #: Component logs (klog-like lines), by component name (``kube-ovn-controller``, ...).
    logs: dict[str, deque[str]] = field(default_factory=dict)
    #: Per-pod log text (probe pods, completed pods): ``(namespace, name) -> lines``.
    pod_logs: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    #: Unexpected exceptions inside controllers (tests assert this stays empty).
    errors: list[str] = field(default_factory=list)
    #: IP -> (start, end) monotonic window with no replies (live-migration switch-over).
    blackouts: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    #: Events already written: (uid, type, reason, message, component) -> (namespace, name).
    event_index: dict[tuple[str, str, str, str, str], tuple[str, str]] = field(default_factory=dict)
    reconcilers: list[Reconciler] = field(default_factory=list)
    #: Set once the dispatcher has subscribed, seen the caches synced and queued every object (resync).
    resynced: asyncio.Event = field(default_factory=asyncio.Event)

    def log(self, component: str, line: str) -> None:
        buf = self.logs.setdefault(component, deque(maxlen=2000))
        now = datetime.now(UTC)
        buf.append(f"I{now.strftime('%m%d %H:%M:%S.%f')}       1 {line}")

    def record_error(self, where: str, exc: BaseException) -> None:
        text = "".join(traceback.format_exception(exc)).rstrip()
        self.errors.append(f"{where}: {text}")
        self.log("sim", f"unexpected error in {where}: {exc!r}")

    @property
    def step(self) -> float:
        return max(self.config.step_delay, 0.0)

    async def record_event(
        self,
        involved: JSON,
        etype: str,
        reason: str,
        message: str,
        *,
        component: str,
        user_agent: str,
        host: str = "",
    ) -> None:
        """Write a core/v1 Event about ``involved`` (aggregated: a repeat bumps ``count``)."""
        m = involved.get("metadata", {})
        uid = str(m.get("uid", ""))
        namespace = m.get("namespace") or "default"
        key = (uid, etype, reason, message, component)
        now = now_rfc3339()
        existing = self.event_index.get(key)
        if existing is not None:

            def bump(ev: JSON) -> None:
                ev["count"] = int(ev.get("count", 1)) + 1
                ev["lastTimestamp"] = now

            try:
                # live: no controller watches Events (client-go's recorder only writes them), and a cache
                # of them would hold every Event for kube-apiserver's 1 h TTL
                if await api.mutate(self.client.as_agent(user_agent), r.EVENTS, existing[0], existing[1],
                                    bump, live=True) is not None:
                    return
            except ApiError:
                pass  # a concurrent writer kept winning: write a new Event instead
        name = f"{m.get('name', 'unknown')}.{time.time_ns():x}"
        event: JSON = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": {
                "apiVersion": involved.get("apiVersion", ""),
                "kind": involved.get("kind", ""),
                "name": m.get("name", ""),
                "namespace": m.get("namespace", ""),
                "uid": uid,
                "resourceVersion": m.get("resourceVersion", ""),
            },
            "reason": reason,
            "message": message,
            "type": etype,
            "source": {"component": component, **({"host": host} if host else {})},
            "reportingComponent": component,
            "reportingInstance": host,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self.client.as_agent(user_agent).create(r.EVENTS, event, namespace=namespace)
        except ApiError:
            return  # the namespace is gone or terminating: the API server drops the event too
        self.event_index[key] = (namespace, name)
        if len(self.event_index) > EVENT_CACHE_SIZE:  # bounded like client-go's EventCorrelator cache
            del self.event_index[next(iter(self.event_index))]


def world_of(store: Store) -> World:
    """The :class:`World` that ``world.install`` attached to ``store``."""
    world = getattr(store, _WORLD_ATTR, None)
    if not isinstance(world, World):
        raise RuntimeError("conformance.sim.world.install() has not been called on this store")
    return world


def attach_world(store: Store, world: World) -> None:
    setattr(store, _WORLD_ATTR, world)


# ----------------------------------------------------------------------------- controller runtime
class WorkQueue:
    """A deduplicating FIFO of keys with delayed and rate-limited re-adds (client-go workqueue)."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._pending: set[Key] = set()
        self._failures: dict[Key, int] = {}

    def add(self, key: Key) -> None:
        if key in self._pending:
            return
        self._pending.add(key)
        self._queue.put_nowait(key)

    def add_after(self, key: Key, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        asyncio.get_running_loop().call_later(delay, self.add, key)

    def add_rate_limited(self, key: Key, base: float, cap: float) -> float:
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        delay: float = min(base * (2**n), cap)
        self.add_after(key, delay)
        return delay

    def forget(self, key: Key) -> None:
        self._failures.pop(key, None)

    def failures(self, key: Key) -> int:
        return self._failures.get(key, 0)

    async def get(self) -> Key:
        key = await self._queue.get()
        self._pending.discard(key)
        return key


class Requeue(Exception):
    """Raised by ``handle`` to retry the key: after ``delay`` seconds, or with backoff when None."""

    def __init__(self, delay: float | None = None, why: str = "") -> None:
        super().__init__(why)
        self.delay = delay


class Reconciler:
    """Base class: subclasses set ``name``, implement ``on_event``/``resync``/``handle``."""

    name = "reconciler"
    #: The kinds whose events ``on_event`` reads (controller-runtime ``For``/``Owns``; the HTTP transport
    #: watches the union of every reconciler's kinds).
    watches: ClassVar[tuple[ResourceType, ...]] = ()

    def __init__(self, world: World) -> None:
        self.world = world
        self.client = world.client
        self.config = world.config
        self.queue = WorkQueue()
        #: Set while the component runs; cleared while it is down (a rollout restarting it): its queue
        #: then keeps collecting keys and nothing is handled until it is set again.
        self.up = asyncio.Event()
        self.up.set()

    # subclasses ------------------------------------------------------------
    def on_event(self, ev: WatchEvent) -> None:
        """Enqueue the keys an event concerns (called synchronously for every store event)."""

    def resync(self) -> None:
        """Enqueue every key for the objects already in the store (the informers' initial list)."""

    async def handle(self, key: Key) -> None:
        """Reconcile one key; raise :class:`Requeue` to retry."""

    # runtime ---------------------------------------------------------------
    @property
    def backoff_base(self) -> float:
        return max(self.world.step, 0.001)

    @property
    def backoff_cap(self) -> float:
        return max(200 * self.world.step, 0.05)

    async def run(self) -> None:
        while True:
            key = await self.queue.get()
            if not self.up.is_set():
                await self.up.wait()
            if self.world.step:
                await asyncio.sleep(self.world.step)
            try:
                await self.handle(key)
            except Requeue as rq:
                if rq.delay is None:
                    self.queue.add_rate_limited(key, self.backoff_base, self.backoff_cap)
                else:
                    self.queue.add_after(key, rq.delay)
                continue
            except ApiError as err:
                # Conflicts and races with other writers: retry as the workqueue would.
                self.world.log(self.name, f"retrying {'/'.join(key)}: {err.code} {err.message}")
                self.queue.add_rate_limited(key, self.backoff_base, self.backoff_cap)
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.world.record_error(f"{self.name} {'/'.join(key)}", exc)
                self.queue.add_rate_limited(key, self.backoff_base, self.backoff_cap)
                continue
            self.queue.forget(key)


def watched_kinds(world: World) -> list[ResourceType]:
    """Every kind some reconciler of ``world`` reads (what the watch cache must list and watch)."""
    seen: dict[tuple[str, str], ResourceType] = {}
    for rec in world.reconcilers:
        for rt in rec.watches:
            seen.setdefault(rt.key, rt)
    return list(seen.values())


async def dispatch(world: World) -> None:
    """Feed every watch event to every reconciler; resync first (after subscribing, so nothing is lost,
    and after the client's first lists, so the resync sees the cluster)."""
    sub = world.client.subscribe(None)
    try:
        await world.client.synced()
        for rec in world.reconcilers:
            rec.resync()
        world.resynced.set()
        async for ev in sub:
            for rec in world.reconcilers:
                try:
                    rec.on_event(ev)
                except Exception as exc:
                    world.record_error(f"{rec.name} on_event", exc)
    finally:
        sub.close()


async def until(source: Store | api.Client, predicate: Any, what: str, timeout: float = 5.0) -> Any:
    """Wait, woken by watch events, until ``predicate(source)`` returns something truthy; return it.
    ``source`` is a store or a client (its reads see an event before the event is delivered).
    ``TimeoutError`` naming ``what`` (and the last value seen) after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    close: Callable[[], None]
    if isinstance(source, Store):
        raw, store = source.subscribe(None), source
        queue = raw.queue

        def close() -> None:
            store.unsubscribe(raw)
    else:
        sub = source.subscribe(None)
        queue, close = sub.queue, sub.close
    try:
        while True:
            value = predicate(source)
            if value:
                return value
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"expected {what} within {timeout:g}s; last saw {value!r}")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, 0.05)):
                    await queue.get()
    finally:
        close()


# ----------------------------------------------------------------------------- webhook view
class ReaderView:
    """``webhook.WebhookView`` over a :class:`~conformance.sim.api.Reader` (deep copies; read-only)."""

    def __init__(self, store: api.Reader) -> None:
        self._store = store

    def vmi(self, namespace: str, name: str) -> JSON | None:
        return self._store.get(r.VMIS, namespace, name)

    def namespace(self, name: str) -> JSON | None:
        return self._store.get(r.NAMESPACES, "", name)

    def subnet(self, name: str) -> JSON | None:
        return self._store.get(r.SUBNETS, "", name)

    def subnets(self) -> list[JSON]:
        return self._store.list(r.SUBNETS)

    def namespace_subnets(self, namespace: str) -> list[str]:
        return namespace_subnets(self._store, namespace)


def namespace_subnets(store: api.Reader, namespace: str) -> list[str]:
    """Subnets whose ``spec.namespaces`` lists ``namespace``, by name (what Kube-OVN's namespace
    controller writes into the namespace's ``ovn.kubernetes.io/logical_switch`` annotation)."""
    names = []
    for subnet in store.iter_raw(r.SUBNETS):
        if is_deleting(subnet):
            continue
        if namespace in ((subnet.get("spec") or {}).get("namespaces") or []):
            names.append(str(subnet["metadata"]["name"]))
    return sorted(names)

