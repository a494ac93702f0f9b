"""A wait ends at its deadline, not at the next whole second (issue #12: the definitive-denial grace of
1.5 s on the sim was waited 2.0 s). The API's ``timeoutSeconds`` is whole seconds and a read timeout counts
from the last byte, so :meth:`Kube.watch` cuts its own connection at ``deadline``. These tests check
the mechanism, not a speed: the server's timeout is made far longer than the deadline, and a watch that
ignored the deadline would run into it."""

from __future__ import annotations

import threading
import time

import pytest

from conformance import waits
from conformance.kube import Kind, Kube

CONFIGMAPS = Kind("", "v1", "configmaps", "ConfigMap", True)
#: The server-side end of each watch here; a watch still open this long ignored its deadline.
SERVER_TIMEOUT = 20



def _churn(kube: Kube, ns: str, stop: threading.Event) -> None:
    """A ConfigMap written every 50 ms: the watch never goes quiet, so no read timeout can end it."""
    kube.create(CONFIGMAPS, ns, {"metadata": {"name": "churn"}, "data": {"n": "0"}})
    n = 0
    while not stop.wait(0.05):
        n += 1
        kube.patch(CONFIGMAPS, ns, "churn", {"data": {"n": str(n)}})


def test_a_watch_ends_at_its_deadline_while_events_keep_coming(kube: Kube, sim_namespace: str) -> None:
    stop = threading.Event()
    writer = threading.Thread(target=_churn, args=(kube, sim_namespace, stop), daemon=True)
    writer.start()
    try:
        _items, rv = kube.list_with_version(CONFIGMAPS, sim_namespace)
        start = time.monotonic()
        seen = sum(1 for _ in kube.watch(CONFIGMAPS, sim_namespace, resource_version=rv,
                                         timeout_seconds=SERVER_TIMEOUT, read_timeout=SERVER_TIMEOUT,
                                         deadline=start + 0.5))
        elapsed = time.monotonic() - start
    finally:
        stop.set()
        writer.join(5)
    assert seen > 0, "the churning ConfigMap produced no event: the watch did not follow it"
    assert elapsed < SERVER_TIMEOUT / 2, \
        f"expected the watch to end at its 0.5 s deadline; it ran {elapsed:.1f}s (server timeout {SERVER_TIMEOUT}s)"


def test_a_quiet_watch_ends_at_its_deadline(kube: Kube, sim_namespace: str) -> None:
    _items, rv = kube.list_with_version(CONFIGMAPS, sim_namespace)
    start = time.monotonic()
    events = list(kube.watch(CONFIGMAPS, sim_namespace, resource_version=rv, timeout_seconds=SERVER_TIMEOUT,
                             read_timeout=SERVER_TIMEOUT, deadline=start + 0.3))
    elapsed = time.monotonic() - start
    assert [e for e in events if e["type"] != "BOOKMARK"] == []
    assert elapsed < SERVER_TIMEOUT / 2, f"expected the watch to end at its 0.3 s deadline; it ran {elapsed:.1f}s"


def test_watch_until_ends_at_its_timeout_after_a_late_event(kube: Kube, sim_namespace: str) -> None:
    """``watch_until(timeout=2.2)`` asks the server for ``timeoutSeconds=3`` and a read timeout of 2.3 s;
    one event at 1 s restarted that read timeout, so the wait used to end when the server ended the
    stream, at 3 s. Now its deadline ends it (and its message still says 2.2 s)."""
    kube.create(CONFIGMAPS, sim_namespace, {"metadata": {"name": "late"}, "data": {}})
    timer = threading.Timer(1.0, lambda: kube.patch(CONFIGMAPS, sim_namespace, "late", {"data": {"n": "1"}}))
    start = time.monotonic()
    timer.start()
    try:
        with pytest.raises(waits.WaitTimeout) as info:
            waits.watch_until(kube, CONFIGMAPS, sim_namespace, lambda objects: None, timeout=2.2,
                              what="nothing (never true)")
        elapsed = time.monotonic() - start
    finally:
        timer.cancel()
    assert "2.2s" in str(info.value), str(info.value)
    # the deadline, not the server's whole-second end, ended it: an order, not a speed
    assert elapsed < 3.0, f"expected the wait to end at its 2.2 s deadline, before the server's 3 s; {elapsed:.2f}s"
