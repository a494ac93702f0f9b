"""``ObjectIndex``: objects by type and key with the indexes every read path of the simulated cluster uses.

One implementation shared by the in-process :class:`~conformance.sim.store.Store` and the HTTP transport's
:class:`~conformance.sim.transport.cache.WatchCache`, so a controller's ``by_owner``/``by_field``/address
lookups cost what they touch (not the size of the world) over every transport (issue 12). Objects are
indexed by namespace, by uid, by the uids their ownerReferences name, and by any index a caller registers
(:meth:`add_index` / :meth:`by_index`; :meth:`by_field` registers one per field path on first use).

Stored objects are treated as read-only: every write replaces the dict (never changes it in place), which
is what lets the indexes stay right without copying.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

JSON = dict[str, Any]
TypeKey = tuple[str, str]  # (group, plural)
ObjKey = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped kinds
#: An index function: the keys an object is found under (``add_index``).
IndexFn = Callable[[JSON], Iterable[str]]


def field_value(obj: JSON, path: str) -> str:
    """The value of the dotted field ``path`` of ``obj`` as a field selector compares it (missing: "")."""
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    return "" if cur is None else str(cur)


class ObjectIndex:
    """Objects of registered types, kept with their indexes by :meth:`put` and :meth:`drop` (the only
    writes). Reads return the stored dicts themselves (read-only for callers)."""

    def __init__(self) -> None:
        self.objects: dict[TypeKey, dict[ObjKey, JSON]] = {}
        self._by_ns: dict[TypeKey, dict[str, set[str]]] = {}
        self._by_uid: dict[str, tuple[TypeKey, ObjKey]] = {}
        self._by_owner: dict[str, set[tuple[TypeKey, ObjKey]]] = {}
        #: type -> index name -> (function, value -> keys)
        self._indexes: dict[TypeKey, dict[str, tuple[IndexFn, dict[str, set[ObjKey]]]]] = {}

    def register(self, tkey: TypeKey) -> None:
        self.objects.setdefault(tkey, {})
        self._by_ns.setdefault(tkey, {})

    def bucket(self, tkey: TypeKey) -> dict[ObjKey, JSON]:
        """Every object of the type, by key (the live dict: do not change it)."""
        return self.objects[tkey]

    # writes -------------------------------------------------------------------------------------------
    def put(self, tkey: TypeKey, key: ObjKey, obj: JSON) -> None:
        """Store ``obj`` under ``key`` (replacing what was there) and keep every index current."""
        bucket = self.objects[tkey]
        old = bucket.get(key)
        if old is not None:
            self._unindex(tkey, key, old)
        bucket[key] = obj
        self._by_ns[tkey].setdefault(key[0], set()).add(key[1])
        meta = obj.get("metadata") or {}
        uid = meta.get("uid")
        if uid:
            self._by_uid[str(uid)] = (tkey, key)
        for ref in meta.get("ownerReferences") or ():
            self._by_owner.setdefault(str(ref.get("uid", "")), set()).add((tkey, key))
        for fn, index in (self._indexes.get(tkey) or {}).values():
            for value in fn(obj):
                index.setdefault(value, set()).add(key)

    def drop(self, tkey: TypeKey, key: ObjKey) -> JSON | None:
        """Remove what is stored under ``key`` (and its index entries); returns it (None when absent)."""
        obj = self.objects[tkey].pop(key, None)
        if obj is None:
            return None
        self._unindex(tkey, key, obj)
        by_ns = self._by_ns[tkey]
        names = by_ns.get(key[0])
        if names is not None:
            names.discard(key[1])
            if not names:
                del by_ns[key[0]]
        return obj

    def _unindex(self, tkey: TypeKey, key: ObjKey, obj: JSON) -> None:
        meta = obj.get("metadata") or {}
        uid = meta.get("uid")
        if uid and self._by_uid.get(str(uid)) == (tkey, key):
            del self._by_uid[str(uid)]
        for ref in meta.get("ownerReferences") or ():
            owner = str(ref.get("uid", ""))
            deps = self._by_owner.get(owner)
            if deps is not None:
                deps.discard((tkey, key))
                if not deps:
                    del self._by_owner[owner]
        for fn, index in (self._indexes.get(tkey) or {}).values():
            for value in fn(obj):
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]

    # indexes ------------------------------------------------------------------------------------------
    def add_index(self, tkey: TypeKey, name: str, fn: IndexFn) -> None:
        """Index objects of the type by the keys ``fn(obj)`` returns (idempotent per ``name``); read with
        :meth:`by_index`. ``fn`` must depend on the object only."""
        per_type = self._indexes.setdefault(tkey, {})
        if name in per_type:
            return
        index: dict[str, set[ObjKey]] = {}
        for key, obj in self.objects[tkey].items():
            for value in fn(obj):
                index.setdefault(value, set()).add(key)
        per_type[name] = (fn, index)

    def has_index(self, tkey: TypeKey, name: str) -> bool:
        return name in (self._indexes.get(tkey) or {})

    def by_index(self, tkey: TypeKey, name: str, value: str) -> list[JSON]:
        """Objects that index ``name`` files under ``value`` (sorted by namespace/name). ``KeyError``
        when no such index was added."""
        _fn, index = self._indexes[tkey][name]
        objects = self.objects[tkey]
        return [objects[k] for k in sorted(index.get(value, ()))]

    def count(self, tkey: TypeKey, name: str, value: str) -> int:
        """How many objects index ``name`` files under ``value`` (no list, no sort). ``KeyError`` when no
        such index was added."""
        return len(self._indexes[tkey][name][1].get(value, ()))

    def by_field(self, tkey: TypeKey, path: str, value: str) -> list[JSON]:
        """Objects whose field ``path`` (dotted, as a field selector; missing = "") equals ``value``
        (sorted). The index is built on first use and kept current."""
        name = f"field:{path}"
        self.add_index(tkey, name, lambda obj: (field_value(obj, path),))
        return self.by_index(tkey, name, value)

    def by_uid(self, uid: str) -> tuple[TypeKey, JSON] | None:
        found = self._by_uid.get(uid)
        if found is None:
            return None
        tkey, key = found
        return tkey, self.objects[tkey][key]

    def by_owner(self, owner_uid: str, tkey: TypeKey | None = None) -> list[tuple[TypeKey, JSON]]:
        """Objects (of ``tkey``, or any type) whose ownerReferences name ``owner_uid``, with their type
        (sorted by type, namespace and name)."""
        return [(t, self.objects[t][key]) for t, key in sorted(self._by_owner.get(owner_uid, ()))
                if tkey is None or t == tkey]

    def names_in(self, tkey: TypeKey, namespace: str) -> list[str]:
        """Names of the type's objects in ``namespace``, sorted (no scan of other namespaces)."""
        return sorted(self._by_ns[tkey].get(namespace, ()))

    def in_namespace(self, tkey: TypeKey, namespace: str) -> list[JSON]:
        objects = self.objects[tkey]
        return [objects[(namespace, n)] for n in self.names_in(tkey, namespace)]
