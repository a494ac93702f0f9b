"""A VM action whose answer is lost after the server applied it (a dropped connection, a 5xx after the
write) is retried by :meth:`Kube.vm_action`; the retry must first see that the first attempt took
effect and stop there — never a second restart, never a 409 "VM is not running" for a stop that
worked — and a restart is judged on the VMI that follows the one seen before it."""

from __future__ import annotations

from typing import Any

import pytest
import urllib3
from verb_helpers import sim_actions

from conformance import templates
from conformance.kube import VMIS, Kube, VMState
from conformance.sim.cluster import SimCluster, world_available
from conformance.verbs import VM, Actions

pytestmark = pytest.mark.skipif(not world_available(), reason="conformance.sim.world is absent")

JSON = dict[str, Any]




def _drop_first_answer(kube: Kube, monkeypatch: pytest.MonkeyPatch, action: str) -> list[str]:
    """The first PUT of ``action`` reaches the server and is applied, then its answer is lost."""
    real = kube._once
    puts: list[str] = []

    def once(method: str, path: str, **kwargs: Any) -> Any:
        result = real(method, path, **kwargs)
        if method == "PUT" and path.endswith(f"/{action}"):
            puts.append(path)
            if len(puts) == 1:
                raise urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104))
        return result

    monkeypatch.setattr(kube, "_once", once)
    return puts


def _running_vm(kube: Kube, act: Actions, ns: str, name: str, ip: str) -> VM:
    body = templates.render_vm(name=name, namespace=ns, ip=ip, subnet=None, run_id=kube.run_id)
    kube.create_vm(ns, body)
    return act.wait_vm_running(VM(name=name, namespace=ns, ip=ip, subnet=None))


def _actions(kube: Kube) -> Actions:
    return sim_actions(kube)


def _audited(sim: SimCluster, ns: str, verb: str) -> list[JSON]:
    return [e for e in sim.audit() if e.get("namespace") == ns and e.get("verb") == verb]


def test_a_restart_whose_answer_was_lost_is_not_issued_again(
    sim_cluster: SimCluster, sim_namespace: str, kube: Kube, monkeypatch: pytest.MonkeyPatch
) -> None:
    act = _actions(kube)
    vm = _running_vm(kube, act, sim_namespace, "web", "10.16.0.41")
    first = vm.vmi_uid
    puts = _drop_first_answer(kube, monkeypatch, "restart")
    act.restart(vm)
    assert len(puts) == 1, f"expected one restart PUT, the retry saw it applied; got {len(puts)}"
    assert [e["code"] for e in _audited(sim_cluster, sim_namespace, "restart")] == [202]
    assert vm.vmi_uid != first
    # the VMI that runs is the one that followed the first: no further restart happened
    vmi = kube.require(VMIS, sim_namespace, "web")
    assert vmi["metadata"]["uid"] == vm.vmi_uid


def test_a_stop_whose_answer_was_lost_succeeds_once(
    sim_cluster: SimCluster, sim_namespace: str, kube: Kube, monkeypatch: pytest.MonkeyPatch
) -> None:
    act = _actions(kube)
    vm = _running_vm(kube, act, sim_namespace, "web", "10.16.0.42")
    puts = _drop_first_answer(kube, monkeypatch, "stop")
    act.stop(vm)  # on the original main: 409 "VM is not running" from the retried PUT
    assert len(puts) == 1
    assert [e["code"] for e in _audited(sim_cluster, sim_namespace, "stop")] == [202]
    puts = _drop_first_answer(kube, monkeypatch, "start")
    act.start(vm)
    assert len(puts) == 1
    assert [e["code"] for e in _audited(sim_cluster, sim_namespace, "start")] == [202]


def test_a_retry_after_an_unapplied_attempt_puts_again(
    sim_cluster: SimCluster, sim_namespace: str, kube: Kube, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check is no blanket success: an attempt that never reached the server is sent again."""
    act = _actions(kube)
    vm = _running_vm(kube, act, sim_namespace, "web", "10.16.0.43")
    real = kube._once
    puts: list[str] = []

    def once(method: str, path: str, **kwargs: Any) -> Any:
        if method == "PUT" and path.endswith("/restart"):
            puts.append(path)
            if len(puts) == 1:
                raise urllib3.exceptions.NewConnectionError(None, "refused")  # type: ignore[arg-type]
        return real(method, path, **kwargs)

    monkeypatch.setattr(kube, "_once", once)
    act.restart(vm)
    assert len(puts) == 2
    assert [e["code"] for e in _audited(sim_cluster, sim_namespace, "restart")] == [202]


def _state(**kw: Any) -> VMState:
    base: dict[str, Any] = {"exists": True, "strategy": "Always", "vmi_uid": "a", "vmi_active": True}
    base.update(kw)
    return VMState(**base)


@pytest.mark.parametrize(("action", "before", "after", "applied"), [
    ("restart", _state(), _state(requests=(("Stop", "a"), ("Start", ""))), True),
    ("restart", _state(), _state(vmi_uid="b"), True),
    ("restart", _state(), _state(vmi_uid=None, vmi_active=False), True),
    ("restart", _state(), _state(vmi_deleting=True, vmi_active=False), True),
    ("restart", _state(), _state(), False),
    ("restart", _state(requests=(("Stop", "z"),)), _state(requests=(("Stop", "z"),)), False),
    ("stop", _state(), _state(strategy="Halted"), True),
    ("stop", _state(), _state(), False),
    ("stop", _state(strategy="Manual"), _state(strategy="Manual", requests=(("Stop", "a"),)), True),
    ("start", _state(strategy="Halted", vmi_uid=None, vmi_active=False),
     _state(strategy="Always", vmi_uid=None, vmi_active=False), True),
    ("start", _state(strategy="Halted", vmi_uid=None, vmi_active=False),
     _state(strategy="Halted", vmi_uid=None, vmi_active=False), False),
    ("start", _state(strategy="Manual", vmi_uid=None, vmi_active=False),
     _state(strategy="Manual", requests=(("Start", ""),), vmi_uid=None, vmi_active=False), True),
    ("migrate", _state(migrations=frozenset({"m1"})), _state(migrations=frozenset({"m1", "m2"})), True),
    ("migrate", _state(migrations=frozenset({"m1"})), _state(migrations=frozenset({"m1"})), False),
])
def test_state_shows_the_action(action: str, before: VMState, after: VMState, applied: bool) -> None:
    assert after.shows(action, before) is applied


def test_a_restarted_follower_fails_clearly(sim_cluster: SimCluster, sim_namespace: str, kube: Kube) -> None:
    """Judged on the follower: when the VMI that followed the old one is itself replaced before it ran,
    the wait fails naming the three uids instead of latching onto whichever VMI runs last."""
    act = _actions(kube)
    vm = VM(name="ghost", namespace=sim_namespace, ip="10.16.0.44", subnet=None)
    vmis = [{"metadata": {"name": "ghost", "namespace": sim_namespace, "uid": uid, "resourceVersion": str(i)},
             "status": {"phase": "Scheduling"}} for i, uid in enumerate(("old", "second", "third"), 1)]

    def fake_watch_until(kube_: Kube, kind: Any, ns: str | None, evaluate: Any, **kw: Any) -> Any:
        for obj in vmis:
            got = evaluate({f"{sim_namespace}/ghost": obj})
            if got is not None:
                return got
        raise AssertionError("not reached")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("conformance.verbs.waits.watch_until", fake_watch_until)
        with pytest.raises(AssertionError, match="uid second, which followed uid old, was replaced by uid third"):
            act.wait_vm_running(vm, not_uid="old", after="after restart")
