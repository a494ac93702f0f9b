"""The webhook swap where the webhook is served over HTTPS (``kovc sim attach``) and, on envtest, stopped,
started and registered by the supervisor through its control socket - without real binaries: the
modelled webhook on a port of its own, a control server recording the steps."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from behaviour_helpers import UA, sim

from conformance import versions
from conformance.envtest.webhook_control import ControlError, ControlServer, call
from conformance.sim import resources as r
from conformance.sim import upgrade
from conformance.sim.attached import AttachedWebhook, ServedModel, _serving_ssl
from conformance.sim.store import Store
from conformance.sim.view import until, world_of
from conformance.sim.world import kube_ovn_admission


def _review(ip: str, name: str) -> dict[str, Any]:
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "default", "annotations": {"ovn.kubernetes.io/ip_address": ip}},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": str(uuid.uuid4()), "operation": "CREATE", "namespace": "default", "name": name,
                        "resource": {"group": "", "version": "v1", "resource": "pods"}, "object": pod,
                        "userInfo": {"username": "tester"}}}


async def _ask(port: int, ip: str, name: str) -> str:
    """"allowed", the denial message, or "refused" when nothing listens."""
    try:
        async with aiohttp.ClientSession() as session, session.post(
                f"https://127.0.0.1:{port}/validating", json=_review(ip, name), ssl=False) as resp:
            body = await resp.json()
    except aiohttp.ClientConnectorError:
        return "refused"
    answer = body["response"]
    return "allowed" if answer["allowed"] else str(answer["status"]["message"])


@pytest.fixture
def control(tmp_path: Path) -> Any:
    steps: list[dict[str, Any]] = []

    def handler(request: dict[str, Any]) -> str:
        steps.append(request)
        if request.get("op") == "start" and request.get("version") == "v9.9.9":
            raise RuntimeError("kube-ovn-webhook v9.9.9 exited with code 1 before it was ready")
        return f"did {request.get('op')}"

    server = ControlServer(tmp_path / "c.sock", handler)
    server.start()
    try:
        yield server, steps
    finally:
        server.stop()
    assert not (tmp_path / "c.sock").exists()


def test_control_socket_answers_each_step_and_a_failure_in_one_line(control: Any) -> None:
    server, steps = control
    assert call(str(server.path), {"op": "stop"}) == "did stop"
    with pytest.raises(ControlError, match=r"start v9\.9\.9: kube-ovn-webhook v9\.9\.9 exited with code 1"):
        call(str(server.path), {"op": "start", "version": "v9.9.9"})
    assert steps == [{"op": "stop"}, {"op": "start", "version": "v9.9.9"}]


def test_control_socket_gone_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ControlError, match="did not answer stop"):
        call(str(tmp_path / "none.sock"), {"op": "stop"})


def test_served_model_swap_closes_the_port_for_the_window_then_serves_the_new_release(control: Any) -> None:
    server, steps = control

    async def body(store: Store) -> None:
        world = world_of(store)
        addr = "10.16.0.70"
        store.create(r.PODS, {"metadata": {"name": "holder", "namespace": "default",
                                           "annotations": {"ovn.kubernetes.io/ip_address": addr}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
                     namespace="default", user_agent=UA)
        await until(store, lambda s: s.get(r.IPS, "", "holder.default"), "the holder's IP CR")
        model = ServedModel(world, 0, _serving_ssl(None, None, None))
        port = await model.listen(kube_ovn_admission(world))
        try:
            before = await _ask(port, addr, "before")
            assert before not in ("refused", "allowed"), f"expected the old webhook to deny, it said {before}"
            host = AttachedWebhook(model, str(server.path))
            seen: list[tuple[float, str]] = []

            async def probe() -> None:
                while True:
                    seen.append((time.time(), await _ask(port, addr, f"p{len(seen)}")))
                    await asyncio.sleep(0.05)

            prober = asyncio.create_task(probe())
            swap = await upgrade.replace_webhook(host, "v1.13.15", versions.kube_ovn_release("v1.16.2"), 0.5)
            await asyncio.sleep(0.2)
            prober.cancel()
            assert [s["op"] for s in steps] == ["stop", "start", "serve"]
            assert steps[1]["version"] == steps[2]["version"] == "v1.16.2"
            assert swap.gap >= 0.5 and "port closed" in swap.stopped and "did serve" in swap.served, swap
            during = [a for t, a in seen if swap.stopped_at < t < swap.serving_at - 0.05]
            after = [a for t, a in seen if t > swap.serving_at]
            assert during and set(during) == {"refused"}, seen
            assert after and all(a not in ("refused", "allowed") for a in after), seen
            assert world.config.kube_ovn_version == "v1.16.2"
        finally:
            await model.close()

    sim(body, kube_ovn_version="v1.13.15")


def test_a_program_started_by_a_control_step_outlives_the_answer(tmp_path: Path) -> None:
    """The successor webhook is started while answering ``start``; it dies with the thread that started it
    (PR_SET_PDEATHSIG), so that thread must be the control server's own, not one per request."""
    from conformance.envtest.process import ManagedProcess

    started: list[ManagedProcess] = []

    def handler(request: dict[str, Any]) -> str:
        proc = ManagedProcess("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"],
                              log_path=tmp_path / "sleeper.log")
        proc.start()
        started.append(proc)
        return f"started pid {proc.pid}"

    server = ControlServer(tmp_path / "c.sock", handler)
    server.start()
    try:
        assert call(str(server.path), {"op": "start", "version": "v1.16.2"}).startswith("started pid")
        time.sleep(1.0)
        assert started[0].running(), "the program started by the control step died after the answer"
    finally:
        for proc in started:
            proc.stop()
        server.stop()
