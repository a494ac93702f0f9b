"""Child processes kovc starts itself (the simulated cluster's server, the envtest supervisor, the real
control plane's programs): their log tails for one-line errors, and the detached start of a kovc command."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path


def log_tail(path: Path, lines: int = 3) -> str:
    """The last non-empty ``lines`` of a log file, joined with `` | `` ("" when it cannot be read)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    rows = [r.strip() for r in text.strip().splitlines() if r.strip()]
    return " | ".join(rows[-lines:])


def spawn_kovc(argv: list[str], workdir: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``argv`` (a ``python -m conformance …`` command) in its own session, in ``workdir``, with this
    package importable and its output appended to ``log_path``. ``OSError`` when it cannot start."""
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    with open(log_path, "ab") as log:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env, cwd=str(workdir))


def set_from_signal_handler(event: threading.Event) -> None:
    """Set ``event`` from a signal handler without deadlocking: the handler runs in the main thread
    between two bytecodes, possibly while that thread holds ``event``'s own lock (inside ``event.wait``),
    and ``event.set()`` takes that lock. Observed: ``kovc envtest serve`` hung for good on SIGTERM with
    its real kube-apiserver and etcd still running (py-spy: the handler blocked in ``Event.set`` under
    ``Event.wait``). A short-lived thread sets it once the main thread lets go of the lock."""
    try:
        threading.Thread(target=event.set, name="kovc-signal", daemon=True).start()
    except RuntimeError:  # the interpreter is shutting down: it is stopping anyway
        pass
