"""The modelled admission checks served as real ``AdmissionReview`` v1 webhooks (aiohttp).

Each path maps an AdmissionReview request onto the same :class:`~conformance.sim.store.AdmissionRequest` /
``Validator`` machinery the in-process store runs (``world.kube_ovn_admission`` / ``kubevirt.make_validators``),
so there is one implementation of each policy. The validators read through the world's client - over HTTP
that is the watch cache, as upstream's webhook reads its informers. A denial (:class:`ApiError`) becomes
``response.allowed=false`` with its code, reason and message; kube-apiserver itself then prefixes
``admission webhook "<name>" denied the request:`` (so the prefix our validators write is removed here).

Paths (what the registration points at):

* ``/validating`` - Kube-OVN's ``pod-ip-validating.kube-ovn.io`` (and the subnet CIDR check), as upstream's
  ``kube-ovn-webhook`` serves it;
* ``/virtualmachines-validate``, ``/migration-validate-create`` - virt-api's ``virtualmachine-validator`` and
  ``migration-create-validator`` paths.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence

from aiohttp import web

from .. import resources as r
from ..store import JSON, AdmissionRequest, ApiError, ResourceType, Validator

log = logging.getLogger("conformance.sim.serving.webhook")

KUBE_OVN_PATH = "/validating"
VM_PATH = "/virtualmachines-validate"
MIGRATION_PATH = "/migration-validate-create"
_PREFIX = re.compile(r'^admission webhook "[^"]*" denied the request: ')
_OPERATIONS = ("CREATE", "UPDATE", "DELETE")


def _types() -> dict[tuple[str, str], ResourceType]:
    return {rt.key: rt for rt in r.ALL}


def review(validators: Sequence[Validator], body: object,
           types: Mapping[tuple[str, str], ResourceType] | None = None) -> JSON:
    """The ``AdmissionReview`` response for one request body (``ValueError`` when it is not a review)."""
    if not isinstance(body, dict) or not isinstance(body.get("request"), dict):
        raise ValueError("the body is not an AdmissionReview with a request")
    req = body["request"]
    uid = str(req.get("uid", ""))
    api_version = str(body.get("apiVersion") or "admission.k8s.io/v1")
    response: JSON = {"uid": uid, "allowed": True}
    resource = req.get("resource") or {}
    rt = (types or _types()).get((str(resource.get("group", "")), str(resource.get("resource", ""))))
    operation = str(req.get("operation", ""))
    if rt is not None and operation in _OPERATIONS and not req.get("subResource"):
        obj = req.get("object") if isinstance(req.get("object"), dict) else None
        old = req.get("oldObject") if isinstance(req.get("oldObject"), dict) else None
        name = str(req.get("name") or ((obj or old or {}).get("metadata") or {}).get("name") or "")
        user = str((req.get("userInfo") or {}).get("username", ""))
        admission = AdmissionRequest(operation, rt, str(req.get("namespace") or ""), name, obj, old,  # type: ignore[arg-type]
                                     bool(req.get("dryRun")), user)
        try:
            for validator in validators:
                validator(admission)
        except ApiError as err:
            status: JSON = {"status": "Failure", "code": err.code, "message": _PREFIX.sub("", err.message)}
            if err.reason:
                status["reason"] = err.reason
            if err.details:
                status["details"] = err.details
            response = {"uid": uid, "allowed": False, "status": status}
    return {"apiVersion": api_version, "kind": "AdmissionReview", "response": response}


def app(routes: Mapping[str, Sequence[Validator]]) -> web.Application:
    """An aiohttp application serving ``POST <path>`` for each path → validators."""

    def handler(validators: Sequence[Validator]) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            try:
                body = json.loads(await request.read())
                out = review(validators, body)
            except ValueError as err:
                return web.json_response({"error": f"bad AdmissionReview: {err}"}, status=400)
            return web.json_response(out)

        return handle

    application = web.Application()
    for path, validators in routes.items():
        application.router.add_post(path, handler(validators))

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    application.router.add_get("/healthz", healthz)
    return application
