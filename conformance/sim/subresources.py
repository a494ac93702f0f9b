"""virt-api's VM subresources: ``PUT /apis/subresources.kubevirt.io/v1/namespaces/{ns}/virtualmachines/
{name}/{start|stop|restart|migrate}``, modelled on ``kubevirt/kubevirt@d923fdb8:pkg/virt-api/rest/
lifecycle.go`` (``StartVMRequestHandler`` L43, ``StopVMRequestHandler`` L162, ``RestartVMRequestHandler``,
``MigrateVMRequestHandler``). Success is HTTP 202 with an empty body; errors are the ``StatusError``s
virt-api writes:

* unknown VM → 404 ``virtualmachine.kubevirt.io "<name>" not found``;
* start: a non-final VMI → 409 ``VM is already running``; ``Always``/``Once`` → 409 ``<strategy> does not
  support manual start requests``; ``Halted`` → ``spec.runStrategy: Always`` (or ``spec.running: true``
  for a VM using the deprecated field); ``Manual``/``RerunOnFailure`` → a ``Start`` state-change request
  (``Stop`` + ``Start`` when the VMI is final);
* stop: ``Always``/``Once`` → ``spec.runStrategy: Halted`` (``spec.running: false``), even without a VMI;
  ``Halted`` with no running VMI → 409 ``VM is not running``, otherwise 409 ``Halted only supports manual
  stop requests with a shorter graceperiod`` unless a shorter ``gracePeriod`` is given;
  ``Manual``/``RerunOnFailure`` → a ``Stop`` request for the VMI's uid (409 ``VM is not running``
  without one);
* restart: ``gracePeriodSeconds`` > 0 → 400; ``Halted``/``Once`` → 409 ``RunStategy <s> does not support
  manual restart requests`` (sic); no VMI → 409 ``VM is not running: Halted``; otherwise
  ``status.stateChangeRequests = [Stop{uid: <vmi uid>}, Start]`` - the VMI is deleted and re-created with
  a new uid;
* a pending state-change request → 500 ``Internal error occurred: unable to complete request: stop/start
  already underway`` (``getChangeRequestJson``);
* migrate: the VMI must exist (404 ``virtualmachineinstance.kubevirt.io "<name>" not found``) and be
  ``Running`` (409 ``VM is not running``); then a VirtualMachineInstanceMigration with ``generateName:
  kubevirt-migrate-vm-`` is created (its admission errors come back as 500 ``Internal error occurred: …``).

``dryRun: ["All"]`` in the body validates without changing anything.
"""

from __future__ import annotations

from typing import Any

from . import api
from . import resources as r
from .controllers.kubevirt import FINAL, run_strategy
from .store import ApiError
from .view import JSON, World, is_deleting

VM_RESOURCE = "virtualmachine.kubevirt.io"


def _conflict(name: str, why: str, resource: str = VM_RESOURCE) -> ApiError:
    """``errors.NewConflict(v1.Resource("virtualmachine"), name, err)``."""
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {resource} "{name}": {why}',
        details={"name": name, "group": "kubevirt.io", "kind": resource.split(".")[0]},
    )


def _not_found(resource: str, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{resource} "{name}" not found',
        details={"name": name, "group": "kubevirt.io", "kind": resource.split(".")[0]},
    )


def _internal(message: str) -> ApiError:
    return ApiError(
        500,
        "InternalError",
        f"Internal error occurred: {message}",
        details={"causes": [{"message": message}]},
    )


def _dry_run(body: JSON) -> bool:
    return "All" in (body.get("dryRun") or [])


async def vm_action(world: World, namespace: str, name: str, action: str, body: JSON, user_agent: str) -> JSON:
    api_ua = f"virt-api/{world.config.kubevirt_version}"
    client = world.client.as_agent(api_ua)
    # virt-api reads live (a request must not act on a cache that lags the user's last write).
    vm = await client.get_live(r.VMS, namespace, name)
    if action == "restart":
        grace = body.get("gracePeriodSeconds")
        if grace is not None and int(grace) > 0:
            raise ApiError(400, "BadRequest", "For force restart, only gracePeriod=0 is supported for now")
        if grace is not None and int(grace) < 0:
            raise ApiError(400, "BadRequest", "gracePeriod has to be greater or equal to 0")
    if vm is None:
        raise _not_found(VM_RESOURCE, name)
    vmi = await client.get_live(r.VMIS, namespace, name)
    strategy = run_strategy(vm)
    dry = _dry_run(body)
    vmi_final = vmi is None or (vmi.get("status") or {}).get("phase") in FINAL

    async def patch_spec(running: bool) -> None:
        def edit(obj: JSON) -> None:
            spec = obj.setdefault("spec", {})
            if "runStrategy" in spec and spec["runStrategy"] is not None:
                spec["runStrategy"] = "Always" if running else "Halted"
            else:
                spec["running"] = running

        if not dry:
            await api.mutate(client, r.VMS, namespace, name, edit)

    async def request(*changes: JSON) -> None:
        current = list((vm.get("status") or {}).get("stateChangeRequests") or [])
        if current and not (len(changes) == 1 and changes[0].get("action") == "Stop"):
            raise _internal("unable to complete request: stop/start already underway")

        def edit(obj: JSON) -> None:
            obj.setdefault("status", {})["stateChangeRequests"] = [dict(c) for c in changes]
            obj["status"].pop("startFailure", None)

        if not dry:
            await api.mutate(client, r.VMS, namespace, name, edit, subresource="status")

    if action == "start":
        phase = (vmi.get("status") or {}).get("phase", "") if vmi is not None else ""
        if vmi is not None and not vmi_final and phase not in ("", "Unknown"):
            raise _conflict(name, "VM is already running")
        if strategy == "Halted":
            await patch_spec(True)
        elif strategy in ("Manual", "RerunOnFailure"):
            needs_restart = vmi is not None and (
                (strategy == "RerunOnFailure" and phase == "Succeeded")
                or (strategy == "Manual" and vmi_final)
            )
            if strategy == "RerunOnFailure" and vmi is not None and phase == "Failed":
                raise _conflict(name, "RerunOnFailure does not support starting VM from failed state")
            if needs_restart and vmi is not None:
                await request({"action": "Stop", "uid": vmi["metadata"]["uid"]}, {"action": "Start"})
            else:
                await request({"action": "Start"})
        else:
            raise _conflict(name, f"{strategy} does not support manual start requests")
        return {}
    if action == "stop":
        if strategy == "Halted":
            if vmi is None or vmi_final:
                raise _conflict(name, "VM is not running")
            grace = body.get("gracePeriod")
            current = (vmi.get("spec") or {}).get("terminationGracePeriodSeconds")
            if grace is None or (current is not None and int(grace) >= int(current)):
                raise _conflict(name, "Halted only supports manual stop requests with a shorter graceperiod")
            await request({"action": "Stop", "uid": vmi["metadata"]["uid"]})
        elif strategy in ("Manual", "RerunOnFailure"):
            if vmi is None or vmi_final:
                raise _conflict(name, "VM is not running")
            await request({"action": "Stop", "uid": vmi["metadata"]["uid"]})
        else:
            await patch_spec(False)
        return {}
    if action == "restart":
        if strategy in ("Halted", "Once"):
            raise _conflict(name, f"RunStategy {strategy} does not support manual restart requests")
        if vmi is None:
            raise _conflict(name, "VM is not running: Halted")
        if body.get("gracePeriodSeconds") == 0 and not dry:

            def force(obj: JSON) -> None:
                obj.setdefault("spec", {})["terminationGracePeriodSeconds"] = 1

            await api.mutate(client, r.VMIS, namespace, name, force)
        await request({"action": "Stop", "uid": vmi["metadata"]["uid"]}, {"action": "Start"})
        return {}
    if action == "migrate":
        if vmi is None:
            raise _not_found("virtualmachineinstance.kubevirt.io", name)
        if (vmi.get("status") or {}).get("phase") != "Running" or is_deleting(vmi):
            raise _conflict(name, "VM is not running")
        vmim: dict[str, Any] = {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachineInstanceMigration",
            "metadata": {"generateName": "kubevirt-migrate-vm-", "namespace": namespace},
            "spec": {"vmiName": name},
        }
        if body.get("addedNodeSelector"):
            vmim["spec"]["addedNodeSelector"] = dict(body["addedNodeSelector"])
        try:
            await client.create(r.VMIMS, vmim, namespace=namespace, dry_run=dry)
        except ApiError as exc:
            raise _internal(exc.message) from None
        return {}
    raise ApiError(404, "NotFound", "the server could not find the requested resource")
