"""Upgrade gating: will static-IP VMs created on Kube-OVN X survive the upgrade to Y?

Runs only in an upgrade run (``kovc run --upgrade-from X [--kube-ovn-version Y]``). One sequence, set up
once for the module (``upgraded``), then one scenario per requirement reads it:

1. on X: VMs ``run-*`` (running), ``stopped`` (stopped), ``midrst`` (restart issued just before the
   upgrade starts) and ``gone`` (stopped, then deleted: before v1.14.0 its IP CR stays behind);
   their IP CRs are snapshotted;
2. a sampler lists the allocated pods of those addresses all through (duplicates, with timestamps);
3. the cluster is upgraded (``cluster_upgrade``: the backend's own method) while colliding plain pods
   claiming ``run-a``'s IP are created back to back: each admission is recorded with its timestamp and
   the pod deleted at once; the window is measured from the answers (last denial before the first
   admission, first denial after the last);
4. the after-checks, in this order: IP CRs unchanged; collisions denied (while every ``run-*`` VM still
   runs as created on X); live migration; restart, stop/start, launcher-pod deletion; the window's
   admissions; and the sampler's verdict.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from conformance import assertions, names, templates, upgrade
from conformance.assertions import IPIdentity
from conformance.kube import Kube
from conformance.recorder import Recorder
from conformance.upgrade import Prepared
from conformance.verbs import VM, Actions

SUBNET = upgrade.SUBNET
pytestmark = [pytest.mark.exclusive]


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S.%f")[:-3] + "Z"


class _Sampler(threading.Thread):
    """Lists allocated pods of the run's addresses every ``interval`` s; keeps the duplicates seen."""

    def __init__(self, kube: Kube, addresses: Callable[[], list[str]], interval: float) -> None:
        super().__init__(name="kovc-upgrade-sampler", daemon=True)
        self.kube, self.addresses, self.interval = kube, addresses, interval
        self.stop = threading.Event()
        self.samples = 0
        self.findings: list[str] = []
        self.gaps: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                for finding in assertions.duplicate_ip_findings(self.kube, self.addresses(), set()):
                    text = f"{_stamp(time.time())}: {finding}"
                    if not any(f.endswith(finding) for f in self.findings):
                        self.findings.append(text)
                self.samples += 1
            except Exception as exc:  # a sample the API did not answer is a gap, noted, not a verdict
                self.gaps.append(f"{_stamp(time.time())}: {exc!r}"[:300])
            self.stop.wait(self.interval)


@dataclass
class Attempt:
    at: float
    pod: str
    admitted: bool
    answer: str


@dataclass
class Upgraded:
    """The prepared VMs (``conformance.upgrade.Prepared``) and what was seen while upgrading."""

    prepared: Prepared
    target: str
    method: str
    observed: bool = True
    attempts: list[Attempt] = field(default_factory=list)
    sampler: _Sampler | None = None
    started: float = 0.0
    finished: float = 0.0
    error: str = ""
    #: What the rollout itself measured (``UpgradeOutcome.measured``: the webhook's gap, the controller's
    #: downtime), when the backend's rollout records it.
    measured: list[dict[str, Any]] = field(default_factory=list)

    def rollout_cases(self) -> list[str]:
        """The rollout's own measurements, one line each."""
        lines = []
        for m in self.measured:
            if m.get("component") == "kube-ovn-webhook":
                lines.append(f"rollout measured: webhook {m.get('old')} stop requested at "
                             f"{_stamp(float(m['stop_requested_at']))}, stopped in {m.get('stop_seconds')} s "
                             f"({m.get('stopped')}); {m.get('started')} started in {m.get('start_seconds')} s; "
                             f"serving at {_stamp(float(m['serving_at']))} ({m.get('served')}): nothing answered "
                             f"for {m.get('gap')} s")
            elif m.get("component") == "kube-ovn-controller":
                lines.append(f"rollout measured: kube-ovn-controller {m.get('old')} down at "
                             f"{_stamp(float(m['down_at']))}, {m.get('new')} up at {_stamp(float(m['up_at']))}: "
                             f"no controller for {m.get('downtime')} s")
        return lines

    @property
    def namespace(self) -> str:
        return self.prepared.namespace

    @property
    def source(self) -> str:
        return self.prepared.source

    @property
    def vms(self) -> dict[str, VM]:
        return self.prepared.vms

    @property
    def before(self) -> dict[str, IPIdentity]:
        return self.prepared.before

    @property
    def gone(self) -> VM:
        return self.prepared.gone

    @property
    def gone_ip_cr_before(self) -> bool:
        return self.prepared.gone_ip_cr_before

    @property
    def ips(self) -> list[str]:
        return self.prepared.ips

    def window(self) -> str:
        """The window as the collision attempts measured it."""
        admitted = [a for a in self.attempts if a.admitted]
        if not admitted:
            return (f"no attempt admitted ({len(self.attempts)} attempts between {_stamp(self.started)} and "
                    f"{_stamp(self.finished)}; the rollout took {self.finished - self.started:.2f} s)")
        first, last = admitted[0].at, admitted[-1].at
        before = [a.at for a in self.attempts if not a.admitted and a.at < first]
        after = [a.at for a in self.attempts if not a.admitted and a.at > last]
        lo = f"{last - first:.2f} s between the first and last admission"
        hi = (f"at most {after[0] - before[-1]:.2f} s between the last denial before it "
              f"({_stamp(before[-1])}) and the first denial after it ({_stamp(after[0])})"
              if before and after else "its bounds not both observed")
        return f"window at least {lo}, {hi}"


class _Attempts:
    """The collision attempts, appended by the attacker thread; waiters are woken on each new one."""

    def __init__(self, out: list[Attempt]) -> None:
        self.out = out
        self.changed = threading.Condition()

    def add(self, attempt: Attempt) -> None:
        with self.changed:
            self.out.append(attempt)
            self.changed.notify_all()

    def wait_denial(self, after: float, timeout: float) -> bool:
        """True once an attempt made after ``after`` (epoch seconds) was denied; False after ``timeout``."""
        with self.changed:
            return self.changed.wait_for(lambda: any(not a.admitted and a.at > after for a in self.out), timeout)


def _collide(kube: Kube, ns: str, ip: str, stop: threading.Event, out: _Attempts, interval: float,
             webhook: str) -> None:
    """Plain pods claiming ``ip`` back to back until ``stop``; an admitted one is deleted at once."""
    while not stop.is_set():
        name = f"kovc-win-{names.rand(5)}"
        body = templates.render_pod(name=name, namespace=ns, ip=ip, subnet=SUBNET, run_id=kube.run_id)
        at = time.time()
        try:
            kube.create_pod(ns, body)
        except Exception as exc:
            text = assertions.denial_text(exc)
            out.add(Attempt(at, name, False, text if assertions.is_webhook_denial(text, webhook, ip)
                            else f"not a webhook denial: {text}"))
        else:
            out.add(Attempt(at, name, True, "admitted"))
            try:
                kube.delete_pod(ns, name, grace_period=0)
            except Exception as exc:
                out.add(Attempt(time.time(), name, True, f"admitted; deleting it failed: {exc!r}"[:300]))
        stop.wait(interval)


@pytest.fixture(scope="module")
def upgraded(kube: Kube, settings: Any, addresses: Any, cluster_info: Any, upgrade_run: dict[str, Any],
             cluster_upgrade: Callable[[], Any]) -> Iterator[Upgraded]:
    """The whole before/upgrade sequence (module docstring), or - phase ``verify`` of ``kovc upgrade`` -
    the state ``kovc upgrade prepare`` recorded, after the operator's upgrade. The namespace is deleted
    at the end (with the run's other objects)."""
    phase = upgrade_run.get("phase")
    target = str(upgrade_run.get("to"))
    if phase == "verify":
        try:
            prepared = upgrade.load(kube, settings.run_id)
        except LookupError as err:
            pytest.fail(str(err))
        state = Upgraded(prepared=prepared, target=cluster_info.versions.kube_ovn_webhook or target,
                         method=str(upgrade_run.get("method")), observed=False)
        if state.target == prepared.source:
            state.error = (f"expected the cluster upgraded from {prepared.source} (recorded by `kovc upgrade "
                           f"prepare`); its webhook still runs {state.target}: upgrade Kube-OVN, then verify")
    else:
        act = Actions(kube, settings, Recorder(["upgrade.ips-kept"]), addresses)
        state = Upgraded(prepared=upgrade.prepare(kube, act, settings.run_id, cluster_info.versions.kube_ovn_webhook
                                                  or str(upgrade_run.get("from"))),
                         target=target, method=str(upgrade_run.get("method")))
    ns = state.namespace
    try:
        interval = max(0.02, 0.25 * settings.timeout_scale)
        sampler_kube = Kube(cluster_info.kubeconfig, cluster_info.context, run_id=settings.run_id)
        attack_kube = Kube(cluster_info.kubeconfig, cluster_info.context, run_id=settings.run_id)
        sampler = _Sampler(sampler_kube, lambda: state.ips, max(interval, 0.05))
        state.sampler = sampler
        sampler.start()
        stop = threading.Event()
        attempts = _Attempts(state.attempts)
        attacker = threading.Thread(target=_collide, name="kovc-upgrade-collide", daemon=True,
                                    args=(attack_kube, ns, state.vms["run-a"].ip, stop, attempts, interval,
                                          settings.webhook_name))
        if state.observed:
            try:
                state.started = time.time()
                attacker.start()
                # The window's lower bound needs a denial by the old webhook: the rollout starts only once
                # one was seen (on a starved machine the first attempt could otherwise land in the window).
                attempts.wait_denial(state.started - 1.0, settings.timeout(30.0))
                # The mid-restart VM: its restart is requested, not awaited, just before the upgrade starts.
                upgrade.start_midrestart(kube, state.prepared)
                outcome = cluster_upgrade()
                state.method = getattr(outcome, "method", state.method)
                state.measured = list(getattr(outcome, "measured", None) or [])
                state.finished = time.time()
                # Keep colliding until the new webhook has denied once after the rollout (or a bound).
                attempts.wait_denial(state.finished, settings.timeout(30.0))
            except AssertionError as err:
                state.error = str(err)
            finally:
                stop.set()
                if attacker.is_alive():
                    attacker.join(timeout=30)
        yield state
        sampler.stop.set()
        sampler.join(timeout=30)
        sampler_kube.close()
        attack_kube.close()
    finally:
        if not settings.keep_on_failure:
            kube.delete_namespace(ns)


def _require_upgrade(up: Upgraded, record: Recorder) -> None:
    record.addresses(*up.ips)
    if up.error:
        pytest.fail(up.error)


@pytest.mark.conformance("upgrade.ips-kept")
def test_ips_kept(upgraded: Upgraded, kube: Kube, act: Actions, record: Recorder) -> None:
    """Every pre-upgrade VM's IP CR is the same object with the same address, MAC and podName."""
    up = upgraded
    _require_upgrade(up, record)
    record.case(f"upgrade {up.source} -> {up.target}: {up.method}", "passed",
                message=(f"rollout from {_stamp(up.started)} to {_stamp(up.finished)}" if up.observed
                         else "performed by the operator between `kovc upgrade prepare` and `verify`"))
    for line in up.rollout_cases():
        record.case(line, "passed")
    problems: list[str] = []
    for role, vm in up.vms.items():
        before = up.before[role]
        try:
            assertions.assert_same_identity(kube, before, vm.name, vm.namespace,
                                            f"the upgrade {up.source} -> {up.target} ({role} VM)")
            record.case(f"{role} VM {vm.name}: IP CR {vm.ip_cr} unchanged", "passed")
        except AssertionError as err:
            record.case(f"{role} VM {vm.name}: IP CR {vm.ip_cr}", "failed", message=str(err))
            problems.append(str(err))
    left = kube.get_ip(up.gone.ip_cr)
    if left is not None:
        text = (f"IP CR {up.gone.ip_cr} ({up.gone.ip}) of VM {up.namespace}/{up.gone.name}, stopped then deleted "
                f"on {up.source}, is still there after the upgrade to {up.target}: left behind by "
                f"{up.source} (no handleDeleteVM before v1.14.0, #5367/#5390); {up.gone.ip} stays reserved for "
                f"{up.namespace}/{up.gone.name} until the controller's LSP GC removes it, and a new VM of that "
                "name would silently get it back")
        record.warn(text)
        record.case(f"stopped-then-deleted VM {up.gone.name}: leftover IP CR {up.gone.ip_cr} reported", "passed",
                    message=text)
    else:
        when = ("still present right after the delete, gone by this check" if up.gone_ip_cr_before
                else "already gone right after the delete")
        record.case(f"stopped-then-deleted VM {up.gone.name}: IP CR released ({when})", "passed")
    assert not problems, "; ".join(problems)


@pytest.mark.conformance("upgrade.collisions-denied-after")
def test_collisions_denied_after(upgraded: Upgraded, act: Actions, namespace_factory: Callable[..., str],
                                 record: Recorder) -> None:
    """A new VM and a plain pod claiming a pre-upgrade VM's IP are denied after the upgrade."""
    up = upgraded
    _require_upgrade(up, record)
    holder = up.vms["run-b"]
    act.wait_vm_running(holder)
    other = namespace_factory(prefix="kovc-upg-ch")
    results = [("a plain pod", act.challenge_with_pod(holder, other, names.challenger())),
               ("a new VM", act.challenge_with_vm(holder, up.namespace, names.challenger()))]
    bad = []
    for what, result in results:
        act.judge(f"{what} claims {holder.ip} of pre-upgrade VM {holder.name}", result)
        if not result.denied or result.holder_problems:
            bad.append(f"{what}: {result.message}")
    assert not bad, "; ".join(bad)


@pytest.mark.conformance("upgrade.restart-after")
def test_restart_after(upgraded: Upgraded, kube: Kube, act: Actions, record: Recorder) -> None:
    """Restart, stop/start and launcher-pod deletion of pre-upgrade VMs are admitted and keep the IPs."""
    up = upgraded
    _require_upgrade(up, record)
    failures: list[str] = []

    def check(case: str, fn: Callable[[], Any], vm: VM, role: str) -> None:
        try:
            fn()
            assertions.assert_same_identity(kube, up.before[role], vm.name, vm.namespace, case)
            record.case(case, "passed")
        except AssertionError as err:
            record.case(case, "failed", message=str(err))
            failures.append(f"{case}: {err}")

    a, b, c, s, m = (up.vms[k] for k in ("run-a", "run-b", "run-c", "stopped", "midrst"))
    check(f"the VM restarted as the upgrade began ({m.name}) runs", lambda: act.wait_vm_running(m), m, "midrst")
    check(f"start of {s.name}, stopped before the upgrade", lambda: act.start(s), s, "stopped")
    for vm in (a, b, c):
        act.wait_vm_running(vm)
    check(f"restart of {a.name}", lambda: act.restart(a), a, "run-a")
    def stop_start() -> None:
        act.stop(b)
        act.start(b)

    check(f"stop and start of {b.name}", stop_start, b, "run-b")
    check(f"launcher pod deletion of {c.name}", lambda: act.delete_launcher_pod(c), c, "run-c")
    assert not failures, "; ".join(failures)


@pytest.mark.conformance("upgrade.migrate-after")
def test_migrate_after(upgraded: Upgraded, kube: Kube, act: Actions, record: Recorder) -> None:
    """Live migration of a pre-upgrade VM keeps its IP after the upgrade."""
    up = upgraded
    _require_upgrade(up, record)
    nodes = kube.schedulable_vm_nodes()
    if len(nodes) < 2:
        pytest.skip("live migration needs two nodes labelled kubevirt.io/schedulable=true without "
                    f"NoSchedule taints; found {len(nodes)} ({', '.join(nodes) or 'none'})")
    vm = up.vms["run-m"]
    act.wait_vm_running(vm)
    source, target = act.migrate(vm)
    assert source != target, f"expected {vm} to move to another node; it stayed on {source}"
    assertions.assert_same_identity(kube, up.before["run-m"], vm.name, vm.namespace,
                                    f"live migration {source} -> {target} after the upgrade")
    record.case(f"live migration of {vm.name} {source} -> {target}: IP CR {vm.ip_cr} unchanged", "passed")


@pytest.mark.conformance("upgrade.window-admissions")
def test_window_admissions(upgraded: Upgraded, record: Recorder) -> None:
    """Collisions attempted while the webhook is replaced: every admission is reported."""
    up = upgraded
    _require_upgrade(up, record)
    if not up.observed:
        pytest.skip("the operator performed the upgrade between `kovc upgrade prepare` and `verify`: no "
                    "collision was attempted during it")
    if not up.attempts:
        pytest.fail("no collision was attempted during the upgrade (the attempts thread did not run)")
    admitted = [a for a in up.attempts if a.admitted]
    window = up.window()
    for line in up.rollout_cases():
        record.case(line, "passed")
    for a in admitted:
        record.case(f"pod {a.pod} claiming {up.vms['run-a'].ip} at {_stamp(a.at)}", "failed",
                    message=f"admitted during the upgrade {up.source} -> {up.target} ({window})")
    record.case(f"{len(up.attempts)} collision attempts from {_stamp(up.started)}, rollout done at "
                f"{_stamp(up.finished)}", "passed" if not admitted else "failed", message=window)
    assert not admitted, (f"expected every collision attempted during the upgrade {up.source} -> {up.target} to "
                          f"be denied; {len(admitted)} of {len(up.attempts)} were admitted (first at "
                          f"{_stamp(admitted[0].at)}, last at {_stamp(admitted[-1].at)}); {window}")


@pytest.mark.conformance("upgrade.no-duplicate-ips")
def test_no_duplicate_ips_through_upgrade(upgraded: Upgraded, kube: Kube, record: Recorder) -> None:
    """Sampled from before the upgrade to the end of the after-checks: no address held twice."""
    up = upgraded
    _require_upgrade(up, record)
    sampler = up.sampler
    assert sampler is not None, "the duplicate sampler did not run"
    now = assertions.duplicate_ip_findings(kube, up.ips, set())
    findings = [*sampler.findings, *now]
    gaps = f"; {len(sampler.gaps)} samples unanswered (first: {sampler.gaps[0]})" if sampler.gaps else ""
    record.case(f"{sampler.samples} samples from before the upgrade to the end of the after-checks, every "
                f"{sampler.interval:.2f} s{gaps}", "passed" if not findings else "failed",
                message="; ".join(findings) or None)
    assert not findings, f"expected no address held by two workloads; saw: {'; '.join(findings)}"
