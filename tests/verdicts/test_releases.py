"""Every modelled Kube-OVN release (and the unreleased / reference policies) gets exactly the verdicts
docs/verdict-derivation.md derives from upstream code."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from conformance import catalog

from .conftest import Run
from .expected import MODELS, exit_code, table

#: The per-release tables cover a normal run's catalog (upgrade.* belongs to upgrade runs: test_upgrade.py).
LEVELS = {r.id: r.level for r in catalog.all_requirements() if not catalog.is_upgrade(r.id)}
EXPECTED = table()

CASES = [pytest.param(col, MODELS[col], id=col) for col in MODELS]
# The default release (no option at all) behaves as the v1.14.5+ column.
CASES.append(pytest.param("v1.14.5+", [], id="default-v1.16.2"))
# The sim's pacing is not part of any verdict: a failing and a passing release at the pace ``kovc sim
# serve`` keeps (5 ms per controller step, the suite's default before issue #12) decide the same cells
# as at the suite's default (SUITE_STEP_DELAY, every other case here).
CASES += [pytest.param(col, [*MODELS[col], "--sim-step-delay", "0.005"], id=f"{col}-step-5ms")
          for col in ("v1.14.0-4", "v1.14.5+") if col in MODELS]


def test_table_covers_the_catalog() -> None:
    for column, outcomes in EXPECTED.items():
        assert set(outcomes) == set(LEVELS), f"{column}: table rows differ from the catalog"


@pytest.mark.parametrize(("column", "args"), CASES)
def test_extended_verdicts(kovc: Callable[..., Run], column: str, args: list[str]) -> None:
    run = kovc(*args, "--profile", "extended")
    assert run.report, f"no report.json: {run.explain()}"
    seen = run.outcomes()
    wrong = {rid: (want, seen.get(rid)) for rid, want in EXPECTED[column].items() if seen.get(rid) != want}
    assert not wrong, f"{column}: requirement -> (expected, seen): {wrong}\n{run.explain()}"
    assert run.exit_code == exit_code(EXPECTED[column], LEVELS, "extended"), run.explain()
    _check_evidence(column, run)
    if column == "v1.14.0-4":
        _check_definitive_denial(run)


def _check_definitive_denial(run: Run) -> None:
    """v1.14.2 denies every restart: the restart's wait ends on the repeated denial (the VMI's condition
    and the Event's count as evidence), not on its timeout, and report.json and report.md quote
    the webhook by name. (Checked on the extended runs of v1.14.2, at both paces, instead of two more
    runs of their own: a baseline run and an allow.restart-only run proved the same on the same model.)"""
    restart = run.requirement("allow.restart")
    assert restart["outcome"] == "failed", run.explain()
    words = " ".join([restart.get("reason") or ""] + [c.get("message") or "" for c in restart["cases"]])
    assert 'admission webhook "pod-ip-validating.kube-ovn.io" denied the request' in words, words
    text = json.dumps(restart)
    assert "a definitive answer (not waiting out the" in text, run.explain()
    assert "Synchronized=False" in text and "Event FailedCreate x" in text, run.explain()
    md = (run.report_dir / "report.md").read_text()
    assert "allow.restart" in md and "denied the request" in md


def _check_evidence(column: str, run: Run) -> None:
    """A verdict is only as good as its reason: failures carry the webhook's own words."""
    for req in run.report["requirements"]:
        if req["outcome"] != "failed":
            continue
        text = " ".join([req.get("reason") or ""] + [c.get("message") or "" for c in req["cases"]])
        assert text.strip(), f"{column}: {req['id']} failed without a message"
        if req["id"] in ("allow.restart", "allow.stop-start", "allow.launcher-pod-deleted"):
            assert "denied the request" in text and "is conflict with ip crd" in text, \
                f"{column}: {req['id']} should quote the webhook's denial, saw: {text[:500]}"
        if req["id"].startswith("deny."):
            admitted = [c for c in req["cases"] if c.get("admitted_then")]
            assert admitted, f"{column}: {req['id']} failed but no case says what happened after admission"
    outcomes = {r["id"]: r for r in run.report["requirements"]}
    # allow.immediate-recreate says which order it saw; the sim's single queue always releases first
    order = [c for c in outcomes["allow.immediate-recreate"]["cases"] if c["name"] == "release and allocation order"]
    assert order and (order[0].get("message") or "").startswith(
        "the old VM's IP CR was released before the new launcher pod was allocated"), (column, order)
    if column in ("v1.14.5+", "v1.13.15"):
        then = {c.get("admitted_then") for c in outcomes["deny.cross-namespace"]["cases"]}
        assert "blocked-by-ipam" in then, f"{column}: cross-namespace challenger should be stopped by IPAM: {then}"
        then = {c.get("admitted_then") for c in outcomes["deny.pod-named-like-vm"]["cases"]}
        assert "took-over-address" in then, f"{column}: pod named like the VM should take over: {then}"
    if column in ("v1.12", "v1.13.0", "v1.13.1-14", "v1.13.15"):
        # Released only by markAndCleanLSP 6-12 min late: the stopped case fails on the fixed bound, the
        # running case passes.
        cases = {c["name"]: c for c in outcomes["state.ip-released-on-delete"]["cases"]}
        stopped, running = cases.get("stopped VM deleted") or {}, cases.get("running VM deleted") or {}
        assert stopped.get("outcome") == "failed" and "within the fixed 120 s" in (stopped.get("message") or ""), \
            f"{column}: the stopped-then-deleted VM's late release is not reported: {stopped}"
        assert running.get("outcome") == "passed", f"{column}: {running}"


def test_default_baseline_fails_only_the_attachment_must(kovc: Callable[..., Run]) -> None:
    """With Multus present (the simulated cluster's default), v1.16.2 fails exactly one MUST: no released
    webhook reads an attachment network's static address."""
    run = kovc("--profile", "baseline")
    assert run.exit_code == 1, run.explain()
    failed = [r["id"] for r in run.report["requirements"] if r["outcome"] in ("failed", "error")]
    assert failed == ["deny.attachment-other-vm"], run.explain()
    assert run.report["certified"] == ("nothing certified; IPv4 pod network passed; dual-stack passed; "
                                       "attachment networks failed"), run.report["certified"]


def test_default_baseline_without_multus_is_conformant(kovc: Callable[..., Run]) -> None:
    """Without Multus the attachment requirements are not applicable (with the reason): v1.16.2 certifies
    the IPv4 pod network and dual-stack."""
    run = kovc("--profile", "baseline", "--sim-without", "multus")
    assert run.exit_code == 0, run.explain()
    assert run.report["verdict"] == "conformant"
    assert run.report["simulated"] is True
    should = [r for r in run.report["requirements"] if r["level"] == "SHOULD"]
    assert should and all(r["outcome"] == "not-run" for r in should)
    na = {r["id"]: r["reason"] for r in run.report["requirements"] if r["outcome"] == "not-applicable"}
    assert sorted(na) == ["allow.attachment-restart", "deny.attachment-other-vm"], na
    assert all("network-attachment-definitions.k8s.cni.cncf.io" in reason for reason in na.values()), na
    assert run.report["certified"] == "IPv4 pod network, dual-stack; attachment networks not applicable"
