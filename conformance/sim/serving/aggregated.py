"""KubeVirt's aggregated API ``subresources.kubevirt.io`` (virt-api), served to kube-apiserver.

* discovery: ``GET /apis``, ``/apis/subresources.kubevirt.io`` and ``/apis/subresources.kubevirt.io/<v>``
  for ``v1`` and ``v1alpha3`` (an APIService turns ``Available`` only once its version answers);
* ``PUT /apis/subresources.kubevirt.io/<v>/namespaces/<ns>/virtualmachines/<name>/<start|stop|restart|migrate>``
  → ``subresources.vm_action`` (the same code ``--backend sim`` serves), 202 as virt-api answers.

Authentication is kube-apiserver's front proxy: with a request-header CA, the TLS client certificate must be
signed by it (checked during the handshake) and ``X-Remote-User`` names the user; without one, nothing is
checked (tests only). Errors are ``Status`` bodies.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Awaitable, Callable

from aiohttp import web

from .. import resources as r
from ..store import JSON, ApiError

GROUP = r.SUBRESOURCE_GROUP
VERSIONS = ("v1", "v1alpha3")
#: ``(namespace, name, action, body, user) -> response body``
Action = Callable[[str, str, str, JSON, str], Awaitable[JSON]]


def _status(err: ApiError) -> web.Response:
    return web.json_response(err.status(), status=err.code)


def _group() -> JSON:
    versions = [{"groupVersion": f"{GROUP}/{v}", "version": v} for v in VERSIONS]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": GROUP, "versions": versions,
            "preferredVersion": versions[0]}


def _resources(version: str) -> JSON:
    resources: list[JSON] = [
        {"name": f"virtualmachines/{action}", "singularName": "", "namespaced": True, "kind": "VirtualMachine",
         "verbs": ["update"]}
        for action in r.VM_ACTIONS
    ]
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{GROUP}/{version}",
            "resources": resources}


def server_ssl(cert_file: str, key_file: str, requestheader_ca: str | None) -> ssl.SSLContext:
    """The serving context; with ``requestheader_ca`` a client certificate signed by it is required."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_file, key_file)
    if requestheader_ca:
        ctx.load_verify_locations(requestheader_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def app(action: Action, *, require_front_proxy: bool) -> web.Application:
    """The aggregated API. ``require_front_proxy``: refuse requests without a verified client certificate
    and ``X-Remote-User`` (the TLS layer verified the certificate against the request-header CA)."""

    def user_of(request: web.Request) -> str:
        user = request.headers.get("X-Remote-User", "")
        if require_front_proxy:
            transport = request.transport
            cert = transport.get_extra_info("peercert") if transport is not None else None
            if not cert or not user:
                raise ApiError(401, "Unauthorized", "Unauthorized: a front-proxy client certificate and "
                                                    "X-Remote-User are required")
        return user

    async def apis(request: web.Request) -> web.Response:
        try:
            user_of(request)
        except ApiError as err:
            return _status(err)
        return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group()]})

    async def group(request: web.Request) -> web.Response:
        try:
            user_of(request)
        except ApiError as err:
            return _status(err)
        return web.json_response(_group())

    async def version(request: web.Request) -> web.Response:
        try:
            user_of(request)
            if request.match_info["version"] not in VERSIONS:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
        except ApiError as err:
            return _status(err)
        return web.json_response(_resources(request.match_info["version"]))

    async def put_action(request: web.Request) -> web.Response:
        info = request.match_info
        try:
            user = user_of(request)
            if info["version"] not in VERSIONS or info["action"] not in r.VM_ACTIONS:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            raw = await request.read()
            try:
                body = json.loads(raw) if raw.strip() else {}
            except ValueError:
                raise ApiError.bad_request("the request body is not JSON") from None
            if not isinstance(body, dict):
                raise ApiError.bad_request(f"the {info['action']} options must be an object")
            result = await action(info["namespace"], info["name"], info["action"], body, user)
        except ApiError as err:
            return _status(err)
        if not result:
            return web.Response(status=202)
        return web.json_response(result, status=202)

    application = web.Application()
    application.router.add_get("/apis", apis)
    application.router.add_get(f"/apis/{GROUP}", group)
    application.router.add_get(f"/apis/{GROUP}/{{version}}", version)
    application.router.add_put(f"/apis/{GROUP}/{{version}}/namespaces/{{namespace}}/virtualmachines/{{name}}/"
                               "{action}", put_action)

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    application.router.add_get("/healthz", healthz)
    return application
