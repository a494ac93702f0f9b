"""A live run's heartbeat, which ``kovc cleanup --all`` reads so it never destroys a run in progress.

Every process of a run that talks to the cluster (the single process, or each xdist worker) keeps
the namespace ``kovc-run-<run id>`` (labelled with the run, carrying kovc's creation marker) and
renews its annotation ``kovc.io/heartbeat`` (RFC 3339 UTC, the renewing machine's clock) every
:data:`INTERVAL` seconds. The end of the run deletes it with the run's other objects; a run killed
with ``kill -9`` leaves it, and its heartbeat goes stale. ``kovc cleanup --all`` skips every run
whose heartbeat is younger than ``--stale-after`` (default :data:`STALE_AFTER`) unless ``--force``.

A namespace, not a Lease or a ConfigMap: the run's RBAC (manifests/rbac.yaml) already allows
creating, patching and deleting namespaces, and nothing else needs granting.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from datetime import UTC, datetime
from typing import Any

from . import RUN_LABEL

HEARTBEAT_ANNOTATION = "kovc.io/heartbeat"
#: Label of the heartbeat namespaces (value: the run id), so cleanup finds them with one list.
HEARTBEAT_LABEL = "kovc.io/heartbeat-of"
#: Seconds between renewals.
INTERVAL = 10.0
#: Default age (seconds) after which ``kovc cleanup --all`` treats a heartbeat as stale.
STALE_AFTER = 120.0
_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

log = logging.getLogger(__name__)


def namespace_name(run_id: str) -> str:
    return f"kovc-run-{run_id}"


def now_stamp(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime(_FORMAT)


def last_beat(obj: dict[str, Any]) -> datetime | None:
    """When a heartbeat namespace was last renewed (None when it carries no readable stamp)."""
    stamp = ((obj.get("metadata") or {}).get("annotations") or {}).get(HEARTBEAT_ANNOTATION)
    try:
        return datetime.strptime(str(stamp), _FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


class Heartbeat:
    """Renews the run's heartbeat from a daemon thread until :meth:`stop`."""

    def __init__(self, kube: Any, run_id: str, interval: float = INTERVAL) -> None:
        self.kube = kube
        self.run_id = run_id
        self.interval = interval
        self.name = namespace_name(run_id)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None
        self._exists = False

    def beat(self) -> None:
        """Create the heartbeat namespace, or renew its stamp."""
        from .kube import NAMESPACES, api_code

        annotations = {HEARTBEAT_ANNOTATION: now_stamp()}
        if self._exists:
            try:
                self.kube.patch(NAMESPACES, None, self.name, {"metadata": {"annotations": annotations}})
                return
            except Exception as exc:
                if api_code(exc) != 404:
                    raise
        try:
            self.kube.create(NAMESPACES, None, {"metadata": {
                "name": self.name, "labels": {HEARTBEAT_LABEL: self.run_id, RUN_LABEL: self.run_id},
                "annotations": annotations}})
        except Exception as exc:
            if api_code(exc) != 409:  # another worker of the run created it first
                raise
            self.kube.patch(NAMESPACES, None, self.name, {"metadata": {"annotations": annotations}})
        self._exists = True

    def start(self) -> None:
        """First beat now (so the heartbeat exists before any scenario), then one per interval."""
        self._safe_beat()
        self._thread = threading.Thread(target=self._loop, name=f"kovc-heartbeat-{self.run_id}", daemon=True)
        self._thread.start()

    def _safe_beat(self) -> None:
        from .kube import describe_error

        try:
            self.beat()
            self.error = None
        except Exception as err:  # never fails the run: a missed beat only ages the heartbeat
            self.error = describe_error(err)
            log.warning("heartbeat of run %s not renewed: %s", self.run_id, self.error)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):  # a periodic renewal, not a wait for a condition
            self._safe_beat()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            with contextlib.suppress(RuntimeError):
                self._thread.join(timeout=self.interval + 5)
