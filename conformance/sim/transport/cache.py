"""``WatchCache``: what the HTTP transport reads from - one list-and-watch loop per kind (client-go reflector).

Per kind: list, then watch from the list's resourceVersion with ``allowWatchBookmarks`` (bookmarks only move
the resume point), resume from the last resourceVersion seen when a watch ends or drops, and list again when
the server answers ``410 Expired``. A relist is a ``Replace`` (client-go ``DeltaFIFO.Replace``): keys that
vanished meanwhile are delivered as ``DELETED`` with their last known state - the Kube-OVN controller
releases an address on a pod's deletion, so a deletion missed during a gap must still arrive.

The cache is updated before an event is handed to subscribers, so a handler's reads see at least what its
event says. It keeps its objects in the same :class:`~conformance.sim.index.ObjectIndex` as the in-process
store (owner uids, field values, namespaces, caller-registered indexes), so ``by_owner``/``by_field`` and the
webhook's address lookup cost what they touch over HTTP too.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING

import aiohttp

from ..api import Subscription
from ..index import IndexFn, ObjectIndex
from ..store import JSON, ApiError, EventType, ResourceType, WatchEvent, copy_obj, deepcopy_json, matches
from .rest import resource_path, status_error

if TYPE_CHECKING:
    from .http import Sessions

log = logging.getLogger("conformance.sim.transport.cache")
#: ``list`` is shadowed by ``WatchCache.list`` inside the class body (for type checkers).
_Names = list[str]
_Objects = list[JSON]

#: ``timeoutSeconds`` of each watch request (the server ends it; the loop resumes from the last rv).
WATCH_TIMEOUT = 300
#: Backoff after a failed list or a dropped watch, seconds (doubling up to ``MAX_BACKOFF``).
BACKOFF = 0.05
MAX_BACKOFF = 2.0
#: Page size of lists (``limit``/``continue``).
PAGE = 500
CACHE_AGENT = "kovc-sim/watch-cache"


class Expired(Exception):
    """The watch's resourceVersion is too old (410): list again."""


def _rv(obj: JSON) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


def _key(rt: ResourceType, obj: JSON) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace", "")) if rt.namespaced else "", str(meta.get("name", "")))


class WatchCache:
    """Objects of ``kinds``, kept current by watches; see the module docstring."""

    def __init__(self, sessions: Sessions, kinds: Iterable[ResourceType]) -> None:
        self.sessions = sessions
        self.kinds: list[ResourceType] = []
        self._index = ObjectIndex()
        #: type -> key -> object: the index's buckets (written only through the index, by ``_deliver``)
        self._objects = self._index.objects
        self._synced: dict[tuple[str, str], asyncio.Event] = {}
        self._subs: list[Subscription] = []
        self._tasks: list[asyncio.Task[None]] = []
        #: Counters for tests and logs: lists done per kind, 410s seen.
        self.lists: dict[str, int] = {}
        self.expired = 0
        #: The last error a list or watch met (for a one-line diagnosis when a kind never syncs).
        self.last_error = ""
        #: Where each kind's watch resumes (kept across :meth:`stop`/:meth:`start`).
        self.resource_versions: dict[str, str] = {}
        for rt in kinds:
            self.add_kind(rt)

    def add_kind(self, rt: ResourceType) -> None:
        """Cache ``rt`` too (before :meth:`start`)."""
        if rt.key in self._objects:
            return
        if self._tasks:
            raise RuntimeError("WatchCache.add_kind after start()")
        self.kinds.append(rt)
        self._index.register(rt.key)
        self._synced[rt.key] = asyncio.Event()

    # reads ----------------------------------------------------------------------------------------
    def _bucket(self, rt: ResourceType) -> dict[tuple[str, str], JSON]:
        try:
            return self._objects[rt.key]
        except KeyError:
            raise ApiError(500, "InternalError", f"{rt.plural}.{rt.group or 'core'} is not in the watch cache "
                                                 "(add it to the cached kinds)") from None

    def get(self, rt: ResourceType, namespace: str, name: str) -> JSON | None:
        obj = self._bucket(rt).get((namespace if rt.namespaced else "", name))
        return copy_obj(obj) if obj is not None else None

    def list(self, rt: ResourceType, namespace: str | None = None, *, label_selector: str = "") -> list[JSON]:
        out = []
        for (ns, _name), obj in sorted(self._bucket(rt).items()):
            if namespace and rt.namespaced and ns != namespace:
                continue
            if matches(obj, label_selector):
                out.append(deepcopy_json(obj))
        return out

    def iter_raw(self, rt: ResourceType) -> Iterable[JSON]:
        return list(self._bucket(rt).values())

    def by_owner(self, rt: ResourceType, owner_uid: str) -> _Objects:
        """Cached objects of ``rt`` whose ownerReferences name ``owner_uid`` (read-only, sorted)."""
        self._bucket(rt)
        return [obj for _t, obj in self._index.by_owner(owner_uid, rt.key)]

    def by_field(self, rt: ResourceType, path: str, value: str) -> _Objects:
        """Cached objects of ``rt`` whose field ``path`` equals ``value`` (read-only, sorted; indexed)."""
        self._bucket(rt)
        return self._index.by_field(rt.key, path, value)

    def add_index(self, rt: ResourceType, name: str, fn: IndexFn) -> None:
        """As :meth:`Store.add_index <conformance.sim.store.Store.add_index>`, over the cached objects."""
        self._bucket(rt)
        self._index.add_index(rt.key, name, fn)

    def count_index(self, rt: ResourceType, name: str, value: str) -> int:
        """How many cached objects of ``rt`` index ``name`` files under ``value``."""
        return self._index.count(rt.key, name, value)

    def by_index(self, rt: ResourceType, name: str, value: str) -> _Objects:
        """As :meth:`Store.by_index <conformance.sim.store.Store.by_index>` (read-only, sorted)."""
        return self._index.by_index(rt.key, name, value)

    # subscribers ------------------------------------------------------------------------------------
    def subscribe(self, kinds: Collection[ResourceType] | None = None) -> Subscription:
        sub = Subscription(kinds, self._subs.remove)
        self._subs.append(sub)
        return sub

    def _deliver(self, etype: EventType, rt: ResourceType, obj: JSON) -> None:
        key = _key(rt, obj)
        if etype == "DELETED":
            self._index.drop(rt.key, key)
        else:
            self._index.put(rt.key, key, obj)
        event = WatchEvent(_rv(obj), etype, rt, obj)
        for sub in list(self._subs):
            sub.put(event)

    def unsynced(self) -> _Names:
        """Kinds whose first list has not finished, as ``plural.group``."""
        return [f"{rt.plural}.{rt.group}" if rt.group else rt.plural for rt in self.kinds
                if not self._synced[rt.key].is_set()]

    async def synced(self) -> None:
        for event in self._synced.values():
            await event.wait()

    # loops ------------------------------------------------------------------------------------------
    def start(self) -> None:
        for rt in self.kinds:
            self._tasks.append(asyncio.create_task(self._run(rt), name=f"kovc-cache-{rt.plural}"))

    async def stop(self) -> None:
        """Stop watching (the objects stay; :meth:`start` resumes each kind from its last resourceVersion)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def close(self) -> None:
        """Stop for good: subscribers' iterations end."""
        await self.stop()
        for sub in list(self._subs):
            sub.end()

    async def _run(self, rt: ResourceType) -> None:
        rv: str | None = self.resource_versions.get(rt.plural)
        delay = BACKOFF
        while True:
            try:
                if rv is None:
                    rv = await self._relist(rt)
                    self.resource_versions[rt.plural] = rv
                rv = await self._watch(rt, rv)
                delay = BACKOFF
            except Expired:
                self.expired += 1
                rv = None
            except asyncio.CancelledError:
                raise
            except (ApiError, aiohttp.ClientError, TimeoutError, ValueError) as exc:
                self.last_error = f"{rt.plural}: {exc}"
                log.debug("watch cache %s: %s; retrying in %.2fs", rt.plural, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF)

    async def _relist(self, rt: ResourceType) -> str:
        """List everything (paged) and replace the cache: ADDED/MODIFIED for what is new or changed,
        DELETED for what vanished. Returns the list's resourceVersion."""
        items: list[JSON] = []
        params: dict[str, str] = {"limit": str(PAGE)}
        while True:
            page = await self.sessions.request(CACHE_AGENT, "GET", resource_path(rt), params=params)
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            if not meta.get("continue"):
                break
            params = {"limit": str(PAGE), "continue": str(meta["continue"])}
        rv = str(meta.get("resourceVersion") or "")
        bucket = self._objects[rt.key]
        fresh: dict[tuple[str, str], JSON] = {}
        for obj in items:
            obj.setdefault("apiVersion", rt.api_version)
            obj.setdefault("kind", rt.kind)
            fresh[_key(rt, obj)] = obj
        for key in [k for k in bucket if k not in fresh]:
            self._deliver("DELETED", rt, bucket[key])
        for key, obj in fresh.items():
            old = bucket.get(key)
            if old is None:
                self._deliver("ADDED", rt, obj)
            elif _rv(old) != _rv(obj):
                self._deliver("MODIFIED", rt, obj)
        self.lists[rt.plural] = self.lists.get(rt.plural, 0) + 1
        self._synced[rt.key].set()
        return rv

    async def _watch(self, rt: ResourceType, rv: str) -> str:
        """Follow one watch request from ``rv``; returns the resourceVersion to resume from."""
        params = {"watch": "true", "allowWatchBookmarks": "true", "resourceVersion": rv,
                  "timeoutSeconds": str(WATCH_TIMEOUT)}
        session = self.sessions.session(CACHE_AGENT)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=WATCH_TIMEOUT + 30)
        async with session.get(resource_path(rt), params=params, timeout=timeout) as resp:
            if resp.status == 410:
                raise Expired()
            if resp.status >= 300:
                raise status_error(resp.status, await resp.text(), resp.headers)
            while True:
                line = await resp.content.readline()
                if not line:
                    return rv
                line = line.strip()
                if not line:
                    continue
                ev = json.loads(line)
                etype, obj = ev.get("type"), ev.get("object") or {}
                if etype == "ERROR":
                    if int(obj.get("code") or 0) == 410:
                        raise Expired()
                    raise ApiError(int(obj.get("code") or 500), str(obj.get("reason") or ""),
                                   str(obj.get("message") or "watch error"))
                new_rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                if etype == "BOOKMARK":
                    rv = self.resource_versions[rt.plural] = new_rv
                    continue
                if etype in ("ADDED", "MODIFIED", "DELETED"):
                    obj.setdefault("apiVersion", rt.api_version)
                    obj.setdefault("kind", rt.kind)
                    self._deliver(etype, rt, obj)
                    rv = self.resource_versions[rt.plural] = new_rv

