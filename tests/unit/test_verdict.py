"""The verdict rule and how the plugin decides one requirement from its tests and cases."""

from __future__ import annotations

import pytest

from conformance import catalog
from conformance.plugin import _TestRecord, decide, progress_line
from conformance.recorder import PROP_CASE, PROP_DIAGNOSTICS, PROP_FAILED_BY_CASES, PROP_WARNING
from conformance.results import EXIT_CODES, RequirementResult, RunResult, verdict


def results(profile: str = "baseline", **outcomes: str) -> tuple[list[RequirementResult], list[str]]:
    """Every catalog requirement: selected ones passed unless overridden, the rest not-run."""
    selected = catalog.profile_ids(profile)
    reqs = []
    for r in catalog.all_requirements():
        outcome = outcomes.get(r.id, "passed" if r.id in selected else "not-run")
        reqs.append(RequirementResult(id=r.id, level=r.level, title=r.title, outcome=outcome))  # type: ignore[arg-type]
    return reqs, selected


def test_conformant_when_every_selected_requirement_passed() -> None:
    reqs, selected = results()
    assert verdict(reqs, selected) == "conformant"
    assert EXIT_CODES["conformant"] == 0


def test_non_conformant_when_a_selected_must_or_should_failed() -> None:
    reqs, selected = results(**{"allow.restart": "failed"})
    assert verdict(reqs, selected) == "non-conformant"
    reqs, selected = results("extended", **{"deny.cross-namespace": "failed"})
    assert verdict(reqs, selected) == "non-conformant"
    reqs, selected = results(**{"deny.clone": "error"})
    assert verdict(reqs, selected) == "non-conformant"
    assert EXIT_CODES["non-conformant"] == 1


def test_invalid_when_a_precondition_failed_and_it_wins() -> None:
    reqs, selected = results(**{"env.webhook-live": "failed", "allow.restart": "failed"})
    assert verdict(reqs, selected) == "invalid"
    reqs, selected = results(**{"env.keep-vm-ip": "error"})
    assert verdict(reqs, selected) == "invalid"
    reqs, selected = results(**{"env.keep-vm-ip": "skipped"})
    assert verdict(reqs, selected) == "invalid"
    assert EXIT_CODES["invalid"] == 2


def test_incomplete_when_a_must_was_skipped_or_not_run() -> None:
    reqs, selected = results(**{"allow.live-migration": "skipped"})
    assert verdict(reqs, selected) == "incomplete"
    reqs, selected = results(**{"deny.clone": "not-run"})
    assert verdict(reqs, selected) == "incomplete"
    assert EXIT_CODES["incomplete"] == 3


def test_a_failure_outranks_a_skip() -> None:
    reqs, selected = results(**{"allow.live-migration": "skipped", "deny.clone": "failed"})
    assert verdict(reqs, selected) == "non-conformant"


def test_should_not_run_keeps_a_baseline_run_conformant() -> None:
    reqs, selected = results("baseline")
    assert all(r.outcome == "not-run" for r in reqs if r.level == "SHOULD")
    assert verdict(reqs, selected) == "conformant"


def test_run_result_json_carries_verdict_and_summary() -> None:
    reqs, selected = results(**{"deny.clone": "failed"})
    run = RunResult(
        suite_version="0",
        run_id="r-1",
        started="s",
        finished="f",
        backend="sim",
        simulated=True,
        profile="baseline",
        versions={},
        requirements=reqs,
        selected=selected,
    )
    data = run.to_json()
    assert data["verdict"] == "non-conformant"
    assert data["summary"]["MUST"]["failed"] == 1
    assert data["summary"]["SHOULD"]["not_run"] == 11


# ---- deciding one requirement ------------------------------------------------------------------------


def rec(
    nodeid: str,
    ids: list[str],
    outcome: str = "passed",
    *props: tuple[str, object],
    message: str | None = None,
    finished: bool = True,
) -> _TestRecord:
    return _TestRecord(nodeid, ids, outcome=outcome, message=message, finished=finished, props=list(props))


def case(
    name: str,
    outcome: str,
    requirement: str | None = None,
    message: str | None = None,
    admitted_then: str | None = None,
) -> tuple[str, object]:
    return (
        PROP_CASE,
        {
            "requirement": requirement,
            "name": name,
            "outcome": outcome,
            "duration_s": 0.5,
            "message": message,
            "admitted_then": admitted_then,
        },
    )


def test_passed_with_cases_tests_and_warnings() -> None:
    r = decide(
        "allow.restart",
        [
            rec(
                "t.py::test_restart",
                ["allow.restart"],
                "passed",
                case("restart", "passed"),
                (PROP_WARNING, "transient denial"),
            )
        ],
        selected=True,
        reason_not_selected="-",
    )
    assert r.outcome == "passed" and r.reason is None
    assert [c.name for c in r.cases] == ["restart"]
    assert r.warnings == ["transient denial"]
    assert [(t.nodeid, t.outcome) for t in r.tests] == [("t.py::test_restart", "passed")]


def test_failed_carries_the_message_and_cases() -> None:
    r = decide(
        "deny.other-vm",
        [
            rec(
                "t.py::test_other",
                ["deny.other-vm"],
                "failed",
                case("challenger", "failed", message="admitted", admitted_then="blocked-by-ipam"),
                (PROP_FAILED_BY_CASES, ["deny.other-vm"]),
                (PROP_DIAGNOSTICS, {"requirements": ["deny.other-vm"], "path": "diagnostics/deny.other-vm"}),
                message="challenger: admitted",
            )
        ],
        selected=True,
        reason_not_selected="-",
    )
    assert r.outcome == "failed"
    assert r.reason == "challenger: admitted"
    assert r.cases[0].admitted_then == "blocked-by-ipam"
    assert r.diagnostics == "diagnostics/deny.other-vm"


def test_failed_cases_only_blame_their_requirement() -> None:
    both = ["state.ip-released-on-delete", "allow.recreate"]
    record = rec(
        "t.py::test_both",
        both,
        "failed",
        case("stopped VM", "failed", requirement="state.ip-released-on-delete", message="IP CR kept"),
        case("recreate", "passed", requirement="allow.recreate"),
        (PROP_FAILED_BY_CASES, ["state.ip-released-on-delete"]),
        message="stopped VM: IP CR kept",
    )
    blamed = decide("state.ip-released-on-delete", [record], selected=True, reason_not_selected="-")
    other = decide("allow.recreate", [record], selected=True, reason_not_selected="-")
    assert blamed.outcome == "failed"
    assert other.outcome == "passed"
    assert [c.name for c in other.cases] == ["recreate"]


def test_an_assertion_outside_cases_fails_every_id_of_the_test() -> None:
    record = rec(
        "t.py::test_both",
        ["allow.recreate", "state.ip-released-on-delete"],
        "failed",
        message="AssertionError: boom",
    )
    for req in ("allow.recreate", "state.ip-released-on-delete"):
        assert decide(req, [record], selected=True, reason_not_selected="-").outcome == "failed"


def test_cases_aimed_at_another_requirement_decide_it() -> None:
    records = [
        rec(
            "t.py::test_restart",
            ["allow.restart"],
            "passed",
            case("allow.restart", "passed", requirement="state.no-duplicate-ips"),
        ),
        rec(
            "t.py::test_other",
            ["deny.other-vm"],
            "failed",
            case("deny.other-vm", "failed", requirement="state.no-duplicate-ips", message="10.16.0.9 twice"),
        ),
    ]
    r = decide("state.no-duplicate-ips", records, selected=True, reason_not_selected="-")
    assert r.outcome == "failed"
    assert "10.16.0.9 twice" in (r.reason or "")
    assert [(t.nodeid, t.outcome) for t in r.tests] == [
        ("t.py::test_restart", "passed"),
        ("t.py::test_other", "failed"),
    ]
    # the scenario's own requirement is not blamed for the duplicate
    assert decide("allow.restart", records, selected=True, reason_not_selected="-").outcome == "passed"


def test_skipped_and_error_and_not_run() -> None:
    skipped = decide(
        "allow.live-migration",
        [rec("t::m", ["allow.live-migration"], "skipped", message="needs two schedulable nodes")],
        selected=True,
        reason_not_selected="-",
    )
    assert (skipped.outcome, skipped.reason) == ("skipped", "needs two schedulable nodes")
    error = decide(
        "deny.clone",
        [rec("t::c", ["deny.clone"], "error", message="fixture broke")],
        selected=True,
        reason_not_selected="-",
    )
    assert (error.outcome, error.reason) == ("error", "fixture broke")
    unselected = decide("deny.clone", [], selected=False, reason_not_selected="not selected by profile quick")
    assert (unselected.outcome, unselected.reason) == ("not-run", "not selected by profile quick")
    missing = decide("deny.clone", [], selected=True, reason_not_selected="-")
    assert (missing.outcome, missing.reason) == ("not-run", "no scenario collected for it")
    interrupted = decide(
        "deny.clone",
        [rec("t::c", ["deny.clone"], finished=False)],
        selected=True,
        reason_not_selected="-",
        interrupted=True,
    )
    assert interrupted.outcome == "not-run"
    assert interrupted.reason == "the run was interrupted before it finished"


@pytest.mark.parametrize(
    "outcomes, expected",
    [
        (["passed", "skipped"], "skipped"),
        (["passed", "error"], "error"),
        (["error", "failed"], "failed"),
        (["passed", "passed"], "passed"),
    ],
)
def test_several_tests_of_one_requirement(outcomes: list[str], expected: str) -> None:
    records = [rec(f"t::{i}", ["deny.name-prefix"], o, message=o) for i, o in enumerate(outcomes)]
    assert decide("deny.name-prefix", records, selected=True, reason_not_selected="-").outcome == expected


def test_progress_line() -> None:
    r = RequirementResult(id="allow.restart", level="MUST", title="t", outcome="passed")
    assert progress_line(r, 2.14) == "PASS  MUST   allow.restart  (2.1 s)"
    r = RequirementResult(id="deny.cross-namespace", level="SHOULD", title="t", outcome="failed")
    assert progress_line(r, 0.0) == "FAIL  SHOULD deny.cross-namespace  (0.0 s)"
    r = RequirementResult(
        id="allow.live-migration", level="MUST", title="t", outcome="skipped", reason="needs two nodes\nmore"
    )
    assert progress_line(r, 1.0) == "SKIP  MUST   allow.live-migration  (1.0 s)  needs two nodes"


def test_quick_profile_judges_only_its_own_musts() -> None:
    reqs, selected = results("quick")
    assert verdict(reqs, selected, catalog.profile_ids("quick")) == "conformant"
    # Without the profile, every catalog MUST counts and the quick run is incomplete.
    assert verdict(reqs, selected) == "incomplete"


def test_requirement_narrowing_leaves_profile_musts_unselected() -> None:
    reqs, _ = results("baseline")
    narrowed = ["env.webhook-live", "env.keep-vm-ip", "allow.restart"]
    for r in reqs:
        if r.id not in narrowed:
            r.outcome = "not-run"
    assert verdict(reqs, narrowed, catalog.profile_ids("baseline")) == "incomplete"


def test_requirement_duration_is_its_scenarios_time() -> None:
    """Issue 10 ("Also"): a requirement's real duration - its own tests' setup+call+teardown, plus the cases
    other tests aimed at it - lands in report.json (duration_s) and junit.xml (testcase time)."""
    own = rec("t.py::test_restart", ["allow.restart"])
    own.duration = 12.5
    foreign_case = (PROP_CASE, {"name": "stopped", "outcome": "passed", "requirement": "allow.restart",
                                "duration_s": 2.25})
    other = rec("t.py::test_other", ["allow.recreate"], "passed", foreign_case)
    other.duration = 40.0
    result = decide("allow.restart", [own, other], selected=True, reason_not_selected="-")
    assert result.duration_s == 14.75
    assert decide("allow.recreate", [own, other], selected=True, reason_not_selected="-").duration_s == 40.0
    assert decide("allow.restart", [], selected=False, reason_not_selected="-").duration_s == 0.0

    from conformance.report import junit

    assert junit.requirement_time(result) == 14.75


def test_vm_wait_factor_only_for_a_real_emulated_cluster() -> None:
    from conformance.settings import EMULATION_VM_WAIT_FACTOR, Settings, vm_wait_factor

    assert vm_wait_factor(False, True) == EMULATION_VM_WAIT_FACTOR == 3.0
    assert vm_wait_factor(True, True) == 1.0 and vm_wait_factor(False, None) == 1.0
    settings = Settings(run_id="r", timeout_scale=0.5, vm_wait_factor=3.0, clock_scale=1.0)
    assert settings.vm_timeout(120) == 180.0 and settings.timeout(120) == 60.0
    assert settings.fixed(120) == 120.0, "a requirement's fixed bound ignores --timeout-scale"
