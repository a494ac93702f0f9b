"""One child program of the control plane (after controller-runtime's ``process/process.go``).

A :class:`ManagedProcess` runs in its own process group (a Ctrl-C in the terminal reaches only the
supervisor, which stops its children in order), dies with the process that started it
(``PR_SET_PDEATHSIG`` on Linux), writes its output to one log file, is ready when its health check
passes (polled until ready, early exit or timeout) and stops with SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from ..procs import log_tail

#: Seconds between health probes.
POLL_INTERVAL = 0.1

HealthCheck = Callable[[], bool]


class ProcessError(Exception):
    """A program did not start or did not become ready; ``str()`` is one line with its last log lines."""


def tail(path: Path, lines: int = 5) -> str:
    """The last non-empty ``lines`` of a log file, joined with `` | ``."""
    return log_tail(path, lines)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def flags(defaults: Mapping[str, str | None], overrides: Mapping[str, str | None] | None = None) -> list[str]:
    """``--name=value`` arguments from a defaults dict updated by ``overrides`` (a value of None drops
    the flag; an empty string gives ``--name=``), in key order."""
    merged = dict(defaults)
    merged.update(overrides or {})
    return [f"--{k}={v}" for k, v in merged.items() if v is not None]


def http_ok(url: str, context: ssl.SSLContext | None = None, timeout: float = 1.0) -> HealthCheck:
    """A health check: GET ``url`` answers 200."""

    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:
                return int(resp.status) == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    return check


class ManagedProcess:
    """A child program: ``start()`` → ready or :class:`ProcessError`; ``stop()`` always safe."""

    def __init__(self, name: str, argv: Sequence[str], *, log_path: Path, health: HealthCheck | None = None,
                 env: Mapping[str, str] | None = None, cwd: Path | None = None, start_timeout: float = 30.0,
                 stop_timeout: float = 10.0, die_with_parent: bool = True) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.health = health
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.die_with_parent = die_with_parent
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_seconds: float | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def launch(self) -> None:
        """Start the program without waiting for it."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            try:
                self.proc = subprocess.Popen(
                    self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    env=self.env, cwd=str(self.cwd) if self.cwd else None, start_new_session=True,
                    preexec_fn=_die_with_parent if self.die_with_parent else None)
            except OSError as err:
                raise ProcessError(f"{self.name}: cannot start {self.argv[0]}: {err.strerror or err}") from None

    def wait_ready(self, timeout: float | None = None) -> float:
        """Poll the health check until it passes (returns the seconds since launch), the program exits
        or ``timeout`` passes (:class:`ProcessError` with the log's last lines, the program stopped)."""
        assert self.proc is not None, "launch() first"
        t0 = time.monotonic()
        deadline = t0 + (self.start_timeout if timeout is None else timeout)
        while True:
            code = self.proc.poll()
            if code is not None:
                raise ProcessError(f"{self.name} exited with code {code} before it was ready "
                                   f"(log {self.log_path}): {tail(self.log_path) or 'no output'}")
            if self.health is None or self.health():
                self.ready_seconds = time.monotonic() - t0
                return self.ready_seconds
            if time.monotonic() > deadline:
                self.stop()
                raise ProcessError(f"{self.name} not ready after {deadline - t0:.0f} s "
                                   f"(log {self.log_path}): {tail(self.log_path) or 'no output'}")
            time.sleep(POLL_INTERVAL)

    def start(self) -> float:
        self.launch()
        return self.wait_ready()

    def stop(self) -> int | None:
        """SIGTERM to the process group, SIGKILL after ``stop_timeout``; returns the exit code."""
        proc = self.proc
        if proc is None:
            return None
        for sig, bound in ((signal.SIGTERM, self.stop_timeout), (signal.SIGKILL, 5.0)):
            if proc.poll() is not None:
                break
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            except PermissionError:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    proc.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=bound)
        # Whatever the program left in its group (it was the group leader).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        return proc.poll()
