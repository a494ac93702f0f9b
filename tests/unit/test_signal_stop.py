"""``kovc sim serve`` and ``kovc envtest serve`` stop on SIGTERM/SIGINT by setting a ``threading.Event`` the
main thread waits on. Set from the signal handler itself, that can deadlock: the handler runs in the main
thread, which may hold the event's lock at that moment (a second signal arriving while the first handler is
inside ``Event.set``, e.g. Ctrl-C to the process group and the run's own SIGTERM). Seen once here:
``kovc envtest serve`` hung with its real kube-apiserver and etcd running (py-spy: nested handlers blocked
in ``Event.set``)."""

from __future__ import annotations

import threading

from conformance.procs import set_from_signal_handler


def test_the_event_is_set_even_while_the_calling_thread_holds_its_lock() -> None:
    event = threading.Event()
    with event._cond:  # type: ignore[attr-defined]  # where a nested handler finds its own thread
        set_from_signal_handler(event)  # event.set() here would never return
        assert not event.is_set()
    assert event.wait(10), "the event was not set once the lock was free"
