"""The comparison behind the real vs modelled verdict table (``conformance.envtest.realtable``): it finds
every cell where a deliberately wrong model disagrees with the "real" runs, with each run's evidence,
and it refuses runs that are not what their column claims. Offline: the reports are built here."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from conformance.envtest import realtable as rt

_spec = importlib.util.spec_from_file_location(
    "verdicts_expected", Path(__file__).resolve().parents[1] / "verdicts" / "expected.py")
assert _spec is not None and _spec.loader is not None
_expected = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_expected)
#: The derivation's expected outcomes per model column (tests/verdicts/expected.py).
EXPECTED: dict[str, dict[str, str]] = _expected.table()
DENIAL = ('admission webhook "pod-ip-validating.kube-ovn.io" denied the request: annotation static-ip '
          "10.16.0.9 is conflict with ip crd web.ns, ip 10.16.0.9")


def _report(column: str, *, backend: str = "envtest", webhook: dict[str, Any] | None = None,
            profile: str = "extended") -> dict[str, Any]:
    """A report.json whose outcomes are the expected table's ``column``; failed cells carry a message."""
    reqs = []
    for rid, outcome in EXPECTED[column].items():
        case = {"name": "the case", "outcome": outcome}
        if outcome == "failed":
            case["message"] = DENIAL if rid.startswith("allow.") else "expected a webhook denial; admitted"
            if rid.startswith("deny."):
                case["admitted_then"] = "took-over-address"
        reqs.append({"id": rid, "level": "MUST", "outcome": outcome, "cases": [case]})
    reqs.append({"id": "upgrade.ips-kept", "level": "MUST", "outcome": "not-run", "cases": []})
    components = [{"name": "kube-ovn-webhook", **webhook}] if webhook else []
    return {"backend": backend, "profile": profile, "requirements": reqs, "components": components,
            "upgrade": None, "verdict": "non-conformant"}


REAL_HOOK = {"real": True, "version": "v1.16.2", "sha256": "a" * 64, "program": "/x/kube-ovn-webhook"}


def _run(kind: str, report: dict[str, Any], tag: str = "v1.16.2") -> rt.Run:
    return rt.Run(kind, tag, rt.run_args(kind, tag), 1, 12.5, Path(f"/tmp/{kind}"), report)


def test_a_right_model_agrees_on_every_cell() -> None:
    row = rt.tag_row("v1.16.2", {
        "real": _run("real", _report("v1.14.5+", webhook=REAL_HOOK)),
        "model": _run("model", _report("v1.14.5+", webhook={"real": False, "model": "owner-equality"}))})
    assert row.problems == [] and row.differing() == []
    assert [c.requirement for c in row.cells] == list(EXPECTED["v1.14.5+"]), "upgrade.* is left out"
    assert all(not c.evidence for c in row.cells)
    assert rt.Table([row], 1.0, "t").agrees()


def test_a_deliberately_wrong_model_is_found_cell_by_cell_with_evidence() -> None:
    """v1.16.2's real webhook (the owner-equality outcomes) against the v1.13.1-14 model's outcomes:
    every cell where the two columns of the derivation differ is reported, and no other."""
    real = _report("v1.14.5+", webhook=REAL_HOOK)
    wrong = _report("v1.13.1-14", webhook={"real": False, "model": "owner-equality"})
    row = rt.tag_row("v1.16.2", {"real": _run("real", real), "model": _run("model", wrong)})
    want = sorted(r for r in EXPECTED["v1.14.5+"] if EXPECTED["v1.14.5+"][r] != EXPECTED["v1.13.1-14"][r])
    assert want, "the two columns differ somewhere"
    assert sorted(c.requirement for c in row.differing()) == want
    restart = next(c for c in row.cells if c.requirement == "allow.restart")
    assert restart.outcomes == {"real": "passed", "model": "failed"}
    assert "is conflict with ip crd web.ns" in restart.evidence["model"]
    assert restart.evidence["real"].startswith("[passed] the case")
    prefix = next(c for c in row.cells if c.requirement == "deny.name-prefix")
    assert "(then: took-over-address)" in prefix.evidence["model"]
    table_ = rt.Table([row], 1.0, "t")
    assert not table_.agrees()
    md = rt.render_markdown(table_)
    assert "| allow.restart | MUST | **P / F** |" in md
    assert "**v1.16.2 allow.restart** (real ≠ model)" in md
    doc = table_.to_json()
    assert doc["agree"] is False and sorted(doc["rows"][0]["real_vs_model_differ"]) == want


def test_a_requirement_missing_from_one_report_is_a_differing_cell() -> None:
    real = _report("v1.14.5+", webhook=REAL_HOOK)
    model = _report("v1.14.5+", webhook={"real": False, "model": "owner-equality"})
    model["requirements"] = [r for r in model["requirements"] if r["id"] != "deny.clone"]
    row = rt.tag_row("v1.16.2", {"real": _run("real", real), "model": _run("model", model)})
    clone = next(c for c in row.cells if c.requirement == "deny.clone")
    assert clone.outcomes["model"] == "absent" and clone.evidence["model"] == "not in report"
    assert [c.requirement for c in row.differing()] == ["deny.clone"]


@pytest.mark.parametrize(("kind", "webhook", "backend", "profile", "says"), [
    ("real", {"real": False, "model": "kovc model of v1.16.2"}, "envtest", "extended", "real webhook v1.16.2"),
    ("real", {**REAL_HOOK, "version": "v1.13.13"}, "envtest", "extended", "real webhook v1.16.2"),
    ("real", REAL_HOOK, "envtest", "baseline", "profile 'baseline'"),
    ("model", {"real": False, "model": "reverse-containment"}, "envtest", "extended",
     "modelled webhook owner-equality"),
    ("model", REAL_HOOK, "envtest", "extended", "modelled webhook owner-equality"),
    ("model", {"real": False, "model": "owner-equality"}, "sim", "extended", "backend 'sim'"),
])
def test_a_run_that_is_not_what_its_column_claims_is_refused(kind: str, webhook: dict[str, Any], backend: str,
                                                              profile: str, says: str) -> None:
    run = _run(kind, _report("v1.14.5+", webhook=webhook, backend=backend, profile=profile))
    problems = rt.check_run(run)
    assert problems and says in problems[0], problems


def test_a_run_without_report_is_refused_with_its_output() -> None:
    run = rt.Run("real", "v1.16.2", [], 2, 3.0, Path("/tmp/none"), {}, "kovc: envtest: no assets")
    assert "no report.json; exit 2: kovc: envtest: no assets" in rt.check_run(run)[0]
    row = rt.tag_row("v1.16.2", {"real": run, "model": _run("model", _report("v1.14.5+"))})
    assert row.cells == [] and not rt.Table([row], 1.0, "t").agrees()


def test_the_sim_column_is_compared_with_the_model() -> None:
    model_hook = {"real": False, "model": "owner-equality"}
    sim = _report("v1.14.5+", backend="sim")
    sim["requirements"][0]["outcome"] = "failed"
    row = rt.tag_row("v1.16.2", {"real": _run("real", _report("v1.14.5+", webhook=REAL_HOOK)),
                                 "model": _run("model", _report("v1.14.5+", webhook=model_hook)),
                                 "sim": _run("sim", sim)})
    assert row.problems == [] and row.differing() == []
    first = row.cells[0].requirement
    assert [c.requirement for c in row.differing("model", "sim")] == [first]
    table_ = rt.Table([row], 1.0, "t")
    assert table_.agrees(), "the sim column is information, not the real-vs-model verdict"
    assert "(model ≠ sim)" in rt.render_markdown(table_)


def test_run_arguments_select_the_release_model() -> None:
    assert rt.run_args("real", "v1.13.13") == ["--backend", "envtest", "--kube-ovn-version", "v1.13.13",
                                                "--profile", "extended"]
    assert rt.run_args("model", "v1.13.13")[-2:] == ["--sim-webhook-policy", "reverse-containment"]
    assert rt.run_args("sim", "v1.13.0")[:2] == ["--backend", "sim"]
    assert rt.model_policy("v1.13.0") == "pod-name-equality"
    with pytest.raises(ValueError):
        rt.run_args("kind", "v1.16.2")


def test_cases_that_differ_in_an_agreeing_cell_are_noted_with_generated_names_masked() -> None:
    hook = {"real": False, "model": "owner-equality"}
    real, model = _report("v1.14.5+", webhook=REAL_HOOK), _report("v1.14.5+", webhook=hook)
    for report, suffix, then in ((real, "tztjbz", "unallocated"), (model, "9lkdcj", "blocked-by-ipam")):
        req = next(r for r in report["requirements"] if r["id"] == "deny.forged-owner-ref")
        req["cases"] = [{"name": f"c-{suffix} (winner)", "outcome": "passed"},
                        {"name": "a forged owner", "outcome": "failed", "admitted_then": then}]
    row = rt.tag_row("v1.16.2", {"real": _run("real", real), "model": _run("model", model)})
    assert row.differing() == []
    cell = next(c for c in row.cells if c.requirement == "deny.forged-owner-ref")
    assert cell.case_notes == ["real: a forged owner: failed, then unallocated",
                               "model: a forged owner: failed, then blocked-by-ipam"]
    assert "* v1.16.2 deny.forged-owner-ref: real: a forged owner" in rt.render_markdown(rt.Table([row], 1, "t"))
