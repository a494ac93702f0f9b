"""Mutation testing of the suite: each deliberately faulty webhook is caught by the requirement it
breaks, a correct webhook worded differently is not flagged, and a down webhook invalidates the run."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conformance import catalog
from conformance.sim.mutants import EXPECTED_FAILURES

from .conftest import Run
from .expected import table

MUSTS = {r.id for r in catalog.all_requirements() if r.level == "MUST"}

#: The blunt mutants make every scenario of the other family wait out its timeout for nothing: run only
#: the family they break (plus one legitimate operation for admit_all, which must still pass).
NARROW: dict[str, list[str]] = {
    "admit_all": [*sorted(rid for rid in MUSTS if rid.startswith("deny.")), "allow.restart"],
    "deny_all_static": sorted(rid for rid in MUSTS if rid.startswith("allow.")),
}


#: Correct webhooks in disguise: they must give the reference's outcomes (tested below).
CORRECT = ("reworded_reference", "stale_cache_reference")


@pytest.mark.parametrize("mutant", sorted(m for m in EXPECTED_FAILURES if m not in CORRECT))
def test_mutant_is_caught(kovc: Callable[..., Run], mutant: str) -> None:
    narrow = [arg for rid in NARROW.get(mutant, []) for arg in ("--requirement", rid)]
    run = kovc("--sim-webhook-policy", f"conformance.sim.mutants:{mutant}", "--profile", "baseline", *narrow)
    assert run.exit_code == 1, f"{mutant} must make the run non-conformant (exit 1): {run.explain()}"
    seen = run.outcomes()
    assert seen.get("env.webhook-live") == "passed", f"{mutant}: the run must stay valid: {run.explain()}"
    missed = [rid for rid in EXPECTED_FAILURES[mutant] if seen.get(rid) != "failed"]
    assert not missed, f"{mutant}: expected these to fail, they did not: {missed}\n{run.explain()}"
    assert any(seen.get(rid) == "failed" for rid in MUSTS), mutant
    if mutant == "admit_all":
        deny = [rid for rid in MUSTS if rid.startswith("deny.")]
        assert all(seen[rid] == "failed" for rid in deny), {rid: seen[rid] for rid in deny}
        assert seen["allow.restart"] == "passed", seen
    if mutant == "deny_all_static":
        # allow.attachment-restart's VM has no pod-network static IP: the webhook frame admits its pods
        # before any policy is asked (PodCreateHook's bypass), so even this mutant cannot deny them
        allow = [rid for rid in MUSTS if rid.startswith("allow.") and rid not in (
            "allow.live-migration", "allow.attachment-restart")]
        assert all(seen[rid] == "failed" for rid in allow), {rid: seen[rid] for rid in allow}


def test_reworded_correct_webhook_passes_like_the_reference(kovc: Callable[..., Run]) -> None:
    run = kovc("--sim-webhook-policy", "conformance.sim.mutants:reworded_reference", "--profile", "extended")
    assert run.outcomes() == table()["ref"], run.explain()
    assert run.exit_code == 0, run.explain()


def test_stale_cache_denial_is_ridden_out(kovc: Callable[..., Run]) -> None:
    """A webhook whose cache lags denies restarts for a moment: the suite waits out the grace period
    (a definitive denial ends a wait only once it has lasted that long) and passes like the reference,
    with the transient denial reported as a warning."""
    run = kovc("--sim-webhook-policy", "conformance.sim.mutants:stale_cache_reference", "--profile", "extended")
    assert run.outcomes() == table()["ref"], run.explain()
    assert run.exit_code == 0, run.explain()
    assert "transient webhook denial" in (run.report_dir / "report.json").read_text(), run.explain()


def test_webhook_off_makes_the_run_invalid(kovc: Callable[..., Run]) -> None:
    run = kovc("--sim-webhook", "off", "--profile", "quick")
    assert run.exit_code == 2, run.explain()
    assert run.report["verdict"] == "invalid"
    assert run.requirement("env.webhook-live")["outcome"] == "failed"
