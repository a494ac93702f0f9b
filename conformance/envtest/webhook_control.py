"""The webhook's half of an in-place upgrade on ``--backend envtest``.

The rollout (``sim/upgrade.py``'s :class:`~conformance.sim.upgrade.Rollout`, run by ``kovc sim attach``)
decides *when* the webhook is replaced and measures the gap (``replace_webhook``); Kube-OVN's real
webhook binary, its fixed certificate directory and the registration belong to ``kovc envtest serve``.
So the supervisor serves a small control socket (a Unix socket in its temp dir, one JSON request and one
JSON answer per connection) that the rollout's :class:`~conformance.sim.upgrade.WebhookHost` calls:

* ``{"op": "crds", "version": Y}`` - Y's CRDs applied, as the release's install does before its
  Deployments roll (the backend's ``upgrade`` sends it before it sets the images);
* ``{"op": "stop"}`` - the running webhook stops (real: its process ends; the certificate directory
  stays locked for the successor). Nothing answers the registration afterwards: ``failurePolicy:
  Ignore`` admits every pod unchecked;
* ``{"op": "start", "version": Y}`` - Y's real webhook starts on a new port and becomes ready
  (``/readyz``), not yet registered; with the modelled webhook nothing happens here (``kovc sim
  attach`` starts the model itself);
* ``{"op": "serve", "version": Y}`` - Y's registration, as Y's ``yamls/webhook.yaml`` has it, applied
  with the new server's URL: the API server calls Y's webhook from now on.

Answers: ``{"ok": true, "said": "<one line>"}`` or ``{"ok": false, "error": "<one line>"}``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import socketserver
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

Handler = Callable[[dict[str, Any]], str]
#: Bound on one request (starting a real webhook waits for its /readyz: 60 s at most).
TIMEOUT = 120.0


class ControlError(Exception):
    """The supervisor refused or failed a step (``str``: its one line)."""


class ControlServer:
    """A thread answering requests on the Unix socket ``path`` with ``handler(request) -> said``, one at a
    time, all on that one thread: a program it starts (the successor webhook) dies with the *thread* that
    started it (``PR_SET_PDEATHSIG``), so no request may run on a thread that ends after answering."""

    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = path
        self.handler = handler
        self._server: socketserver.UnixStreamServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        outer = self

        class Request(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                line = self.rfile.readline()
                try:
                    request = json.loads(line)
                    if not isinstance(request, dict):
                        raise ValueError("not a JSON object")
                    answer: dict[str, Any] = {"ok": True, "said": outer.handler(request)}
                except Exception as err:  # every failure is an answer, the server keeps serving
                    answer = {"ok": False, "error": str(err).splitlines()[0] if str(err) else repr(err)}
                self.wfile.write(json.dumps(answer).encode() + b"\n")

        self.path.unlink(missing_ok=True)
        self._server = socketserver.UnixStreamServer(str(self.path), Request)
        self._thread = threading.Thread(target=self._server.serve_forever, name="kovc-webhook-control",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.path.unlink(missing_ok=True)


def call(path: str, request: dict[str, Any], timeout: float = TIMEOUT) -> str:
    """One request from a synchronous caller (the backend's ``upgrade``); the supervisor's line."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(path)
            s.sendall(json.dumps(request).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError as err:
            raise ControlError(f"the envtest supervisor's webhook control {path} did not answer "
                               f"{request.get('op')}: {err}") from None
    return _said(request, data)


async def acall(path: str, request: dict[str, Any], timeout: float = TIMEOUT) -> str:
    """One request from the rollout's event loop."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_unix_connection(path)
            try:
                writer.write(json.dumps(request).encode() + b"\n")
                await writer.drain()
                data = await reader.readline()
            finally:
                writer.close()
    except (OSError, TimeoutError) as err:
        raise ControlError(f"the envtest supervisor's webhook control {path} did not answer "
                           f"{request.get('op')}: {err!r}") from None
    return _said(request, data)


def _said(request: dict[str, Any], data: bytes) -> str:
    try:
        answer = json.loads(data)
    except ValueError:
        raise ControlError(f"webhook control: {request.get('op')}: unreadable answer {data[:200]!r}") from None
    if not isinstance(answer, dict) or not answer.get("ok"):
        error = answer.get("error") if isinstance(answer, dict) else answer
        raise ControlError(f"webhook control: {request.get('op')} {request.get('version', '')}: {error}".replace(
            "  ", " "))
    return str(answer.get("said", ""))
