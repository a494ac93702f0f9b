"""The slice of the kubelet API kube-apiserver proxies to: ``pods/log``.

kube-apiserver answers ``GET …/pods/{name}/log`` by calling the node's kubelet at
``https://<node address>:<daemonEndpoints.kubeletEndpoint.Port>/containerLogs/{namespace}/{pod}/{container}``.
``kovc sim attach`` serves that path for every simulated node (they all report its loopback address and port),
with the same text ``--backend sim`` serves (``scheduler.pod_log_text``: probe lines, component logs).
Query options (``tailLines``, ``timestamps``, ``follow``) are ignored: the text is what the model has.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from .. import resources as r
from ..controllers import scheduler
from ..view import World


def app(world_of: Callable[[], World | None]) -> web.Application:
    """``world_of`` returns the running world (None until it is built: 503)."""

    async def container_logs(request: web.Request) -> web.Response:
        world = world_of()
        if world is None:
            return web.Response(status=503, text="the simulated kubelet is starting")
        info = request.match_info
        pod = world.client.get(r.PODS, info["namespace"], info["pod"])
        if pod is None:
            return web.Response(status=404, text=f"pod {info['namespace']}/{info['pod']} not found")
        containers = {c.get("name") for c in (pod.get("spec") or {}).get("containers") or []}
        if info["container"] not in containers:
            return web.Response(status=404, text=f"container {info['container']} is not in pod {info['pod']}")
        return web.Response(text=scheduler.pod_log_text(world, pod))

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    application = web.Application()
    application.router.add_get("/containerLogs/{namespace}/{pod}/{container}", container_logs)
    application.router.add_get("/healthz", healthz)
    return application
