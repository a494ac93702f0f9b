"""Issue 9 item 1: a bundle certifies only when every catalog MUST ran and passed — recomputed from
the per-requirement outcomes and the catalog, never from the stated verdict — with junit.xml and the
Allure results agreeing with report.json and no symbolic link anywhere in it."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conformance import catalog, cli
from conformance.report import bundle, render_markdown
from conformance.results import RunResult

MakeBundle = Callable[..., Path]
QUICK = catalog.profile_ids("quick")
MUSTS = catalog.run_musts(upgrade=False)  # the upgrade.* family certifies only in an upgrade run


def verify(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = cli.main(["report", "verify", *[str(a) for a in argv]])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, [line for line in out.splitlines() if line.startswith("not certifiable: ")]


def quick_run(runs: dict[str, Callable[[], RunResult]]) -> RunResult:
    """A real-cluster run of profile quick where everything it selected passed."""
    run = runs["real-passing"]()
    run.profile = "quick"
    run.selected = list(QUICK)
    for req in run.requirements:
        if req.id not in QUICK:
            req.outcome, req.reason, req.cases, req.tests = "not-run", "not selected by profile quick", [], []
    return run


def test_quick_run_is_conformant_for_its_profile_but_not_a_certification(
        runs: dict[str, Callable[[], RunResult]]) -> None:
    run = quick_run(runs)
    assert run.verdict == "conformant"  # the run keeps its meaning for its profile
    missing = [i for i in MUSTS if i not in QUICK]
    phrase = f"CONFORMANT for profile quick ({len(missing)} MUSTs not run) — not a certification"
    md = render_markdown(run)
    assert phrase in md.splitlines()[0], md.splitlines()[0]
    assert phrase in render_markdown(run, short=True).splitlines()[0]
    baseline = runs["real-passing"]()
    assert "not a certification" not in render_markdown(baseline).splitlines()[0]


def test_verify_rejects_a_quick_bundle_naming_every_must_that_did_not_run(
        make_bundle: MakeBundle, runs: dict[str, Callable[[], RunResult]],
        capsys: pytest.CaptureFixture[str]) -> None:
    out = make_bundle("real-passing", quick_run(runs))
    code, reasons = verify(capsys, out)
    assert code == 1
    missing = [i for i in MUSTS if i not in QUICK]
    named = [r for r in reasons if "catalog MUSTs did not run" in r]
    assert len(named) == 1, reasons
    assert f"{len(missing)} of {len(MUSTS)} catalog MUSTs did not run (profile quick" in named[0]
    assert named[0].endswith(", ".join(missing)), named[0]  # every one, none elided


def test_verify_ignores_a_stated_profile_that_hides_not_run_musts(
        make_bundle: MakeBundle, runs: dict[str, Callable[[], RunResult]],
        capsys: pytest.CaptureFixture[str]) -> None:
    """A baseline run whose report claims profile quick (stated verdict recomputes to conformant)."""
    run = runs["real-passing"]()
    for req in run.requirements:
        if req.id == "deny.clone":
            req.outcome, req.cases, req.tests = "not-run", [], []
    run.profile, run.selected = "quick", list(QUICK)
    out = make_bundle("real-passing", run)
    assert json.loads((out / "report.json").read_text())["verdict"] == "conformant"
    code, reasons = verify(capsys, out)
    assert code == 1
    assert any(r.endswith("did not run (profile quick; a certification needs every MUST run and passed: "
                          "profile baseline or extended): deny.clone") for r in reasons), reasons


def test_a_leftover_failed_allure_result_is_named(make_bundle: MakeBundle, capsys: pytest.CaptureFixture[str],
                                                  runs: dict[str, Callable[[], RunResult]]) -> None:
    out = make_bundle("real-passing")
    started = int(datetime(2026, 11, 28, 10, 0, 30, tzinfo=UTC).timestamp() * 1000)  # during the run
    leftover = {"name": "test_restart", "status": "failed", "fullName": "tests.scenarios.test_allow#test_restart",
                "start": started, "stop": started + 10,
                "labels": [{"name": "story", "value": "allow.restart"}]}
    (out / "allure-results" / "deadbeef-result.json").write_text(json.dumps(leftover))
    bundle.write_manifest(out)  # resealed: only the cross-check can catch it
    code, reasons = verify(capsys, out)
    assert code == 1
    allure = [r for r in reasons if "Allure results disagree with report.json" in r]
    assert len(allure) == 1, reasons
    assert "deadbeef-result.json (tests.scenarios.test_allow#test_restart, failed)" in allure[0]
    assert "allow.restart passed" in allure[0]


def test_an_allure_result_written_outside_the_run_is_named(make_bundle: MakeBundle,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = make_bundle("real-passing")
    old = {"name": "test_restart", "status": "passed", "fullName": "tests.scenarios.test_allow#test_restart",
           "start": 1700000000000, "labels": [{"name": "story", "value": "allow.restart"}]}
    (out / "allure-results" / "0ld-result.json").write_text(json.dumps(old))
    bundle.write_manifest(out)
    code, reasons = verify(capsys, out)
    assert code == 1
    assert any("0ld-result.json" in r and "written outside the run" in r for r in reasons), reasons


@pytest.mark.parametrize("kind", ["file", "directory"])
def test_symlinks_anywhere_in_the_bundle_are_rejected(kind: str, make_bundle: MakeBundle, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = make_bundle("real-passing")
    code, _ = verify(capsys, out)
    assert code == 0
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "evidence.txt").write_text("whatever\n")
    if kind == "file":
        os.symlink(outside / "evidence.txt", out / "allure-results" / "evidence.txt")
    else:
        os.symlink(outside, out / "diagnostics-linked")
    bundle.write_manifest(out)  # resealed: the manifest alone cannot tell
    code, reasons = verify(capsys, out)
    assert code == 1
    link = "allure-results/evidence.txt" if kind == "file" else "diagnostics-linked"
    assert any(r.startswith("not certifiable: symbolic links in the bundle") and link in r for r in reasons), reasons
