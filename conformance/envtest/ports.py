"""Free loopback ports for the control plane (after controller-runtime's ``addr/manager.go``): bind
port 0, then claim the number with a lock file so that parallel runs that probe at the same moment
do not both pick it before either has bound it. A claim expires after :data:`CLAIM_SECONDS`."""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import time
from pathlib import Path

CLAIM_SECONDS = 120.0
ATTEMPTS = 50


def lock_dir() -> Path:
    d = Path(tempfile.gettempdir()) / "kovc-ports"
    d.mkdir(mode=0o1777, parents=True, exist_ok=True)
    return d


def _claim(port: int, directory: Path) -> bool:
    path = directory / f"{port}.lock"
    with contextlib.suppress(FileNotFoundError):
        if time.time() - path.stat().st_mtime > CLAIM_SECONDS:
            path.unlink()
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        fh.write(str(os.getpid()))
    return True


def suggest_port(host: str = "127.0.0.1", directory: Path | None = None) -> int:
    """A port on ``host`` that was free a moment ago and that no other kovc run has claimed."""
    directory = directory or lock_dir()
    for _ in range(ATTEMPTS):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        if _claim(port, directory):
            return port
    raise OSError(f"no free port on {host} after {ATTEMPTS} attempts (claims in {directory})")
