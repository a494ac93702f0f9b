"""The plugin's collection: marker validation, profile/--requirement selection, labels, no-op runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["pytester"]

SCENARIOS = """
import pytest

@pytest.mark.conformance("env.webhook-live")
def test_webhook_live(record):
    record.case("probe", "passed")

@pytest.mark.conformance("allow.restart")
def test_restart(record):
    pass

@pytest.mark.conformance("deny.clone")
def test_clone(record):
    pass

@pytest.mark.conformance("allow.immediate-recreate")
def test_immediate(record):
    pass

def test_not_a_scenario():
    pass
"""


def report(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((path / "report.json").read_text())
    return data


def outcomes(data: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    return {r["id"]: (r["outcome"], r.get("reason")) for r in data["requirements"]}


def test_quick_profile_deselects_the_rest(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(test_s=SCENARIOS)
    result = pytester.runpytest("--profile", "quick", "--report-dir", str(tmp_path / "r"))
    result.assert_outcomes(passed=3, deselected=2)
    got = outcomes(report(tmp_path / "r"))
    assert got["allow.restart"] == ("passed", None)
    assert got["env.webhook-live"] == ("passed", None)
    assert got["deny.clone"] == ("not-run", "not selected by profile quick")
    assert got["allow.immediate-recreate"] == ("not-run", "not selected by profile quick")
    assert report(tmp_path / "r")["selected"] == [
        "env.webhook-live",
        "env.keep-vm-ip",
        "allow.restart",
        "deny.other-vm",
    ]


def test_baseline_profile_runs_the_musts(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(test_s=SCENARIOS)
    result = pytester.runpytest("--report-dir", str(tmp_path / "r"))
    result.assert_outcomes(passed=4, deselected=1)
    data = report(tmp_path / "r")
    got = outcomes(data)
    assert got["deny.clone"] == ("passed", None)
    assert got["allow.immediate-recreate"] == ("not-run", "not selected by profile baseline")
    assert got["deny.other-vm"] == ("not-run", "no scenario collected for it")
    assert data["profile"] == "baseline"
    assert data["verdict"] == "invalid"  # env.keep-vm-ip has no scenario here: a precondition not checked


def test_requirement_option_selects_ids_and_keeps_preconditions(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makepyfile(test_s=SCENARIOS)
    result = pytester.runpytest(
        "--requirement", "allow.immediate-recreate", "--report-dir", str(tmp_path / "r")
    )
    result.assert_outcomes(passed=3, deselected=2)  # env + immediate + the unmarked test
    got = outcomes(report(tmp_path / "r"))
    assert got["allow.immediate-recreate"] == ("passed", None)
    assert got["allow.restart"] == ("not-run", "not selected by --requirement")


def test_unknown_requirement_option_is_a_usage_error(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(test_s=SCENARIOS)
    result = pytester.runpytest("--requirement", "allow.reboot", "--report-dir", str(tmp_path / "r"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown requirement ID 'allow.reboot'*"])
    assert not (tmp_path / "r").exists()


def test_unknown_marker_id_is_a_collection_error(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(
        test_s="""
import pytest

@pytest.mark.conformance("allow.restart", "allow.reboot")
def test_x(record):
    pass
""",
        test_ok="def test_fine(): pass",
    )
    result = pytester.runpytest("--report-dir", str(tmp_path / "r"))
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*ERROR collecting test_s.py*", "*unknown requirement ID 'allow.reboot'*"])
    assert not (tmp_path / "r").exists()


def test_marker_without_id_is_a_collection_error(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(test_s="import pytest\n@pytest.mark.conformance()\ndef test_x(): pass\n")
    result = pytester.runpytest("--report-dir", str(tmp_path / "r"))
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*needs at least one requirement ID*"])


def test_labels_and_exclusive_group(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(
        test_s="""
import pytest

def labels(node):
    return sorted((m.kwargs["label_type"], m.args[0]) for m in node.iter_markers("allure_label"))

@pytest.mark.exclusive
@pytest.mark.conformance("allow.concurrent-restarts", "state.no-duplicate-ips")
def test_concurrent(request):
    assert request.node.get_closest_marker("xdist_group").args == ("exclusive",)
    assert labels(request.node) == [("epic", "allow"), ("epic", "state"), ("severity", "critical"),
                                    ("story", "allow.concurrent-restarts"),
                                    ("story", "state.no-duplicate-ips")]

@pytest.mark.conformance("deny.cross-namespace")
def test_should(request):
    assert request.node.get_closest_marker("xdist_group") is None
    assert ("severity", "normal") in labels(request.node)
"""
    )
    result = pytester.runpytest("--profile", "extended", "--report-dir", str(tmp_path / "r"))
    result.assert_outcomes(passed=2)


def test_preconditions_run_first_and_their_failure_voids_the_rest(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makepyfile(
        test_a="""
import pytest

@pytest.mark.conformance("allow.restart")
def test_restart(record):
    pass
""",
        test_z="""
import pytest

@pytest.mark.conformance("env.webhook-live")
def test_webhook_live():
    assert False, "expected HTTP 400 'not in cidr' from pod-ip-validating.kube-ovn.io; got 201 Created"
""",
    )
    result = pytester.runpytest("--report-dir", str(tmp_path / "r"))
    result.assert_outcomes(failed=1, skipped=1)
    data = report(tmp_path / "r")
    got = outcomes(data)
    assert got["env.webhook-live"][0] == "failed"
    assert "got 201 Created" in (got["env.webhook-live"][1] or "")
    assert got["allow.restart"] == (
        "skipped",
        "precondition env.webhook-live failed: every other verdict is void",
    )
    assert data["verdict"] == "invalid"


def test_a_run_without_scenarios_writes_nothing(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(test_plain="def test_a(): pass\ndef test_b(): pass\n")
    result = pytester.runpytest("--report-dir", str(tmp_path / "r"))
    result.assert_outcomes(passed=2)
    assert not (tmp_path / "r").exists()
    assert "report:" not in result.stdout.str() and "Verdict" not in result.stdout.str()
    assert not list(pytester.path.glob("kovc-report*"))


def test_live_progress_one_line_per_requirement(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(
        test_s="""
import pytest

@pytest.mark.conformance("env.webhook-live")
def test_webhook_live():
    pass

@pytest.mark.conformance("deny.name-prefix")
@pytest.mark.parametrize("pair", ["web/web-1", "vm1/vm10"])
def test_prefix(pair):
    pass

@pytest.mark.conformance("allow.live-migration")
def test_migration():
    pytest.skip("needs two schedulable nodes; found 1")
"""
    )
    result = pytester.runpytest("--report-dir", str(tmp_path / "r"))
    lines = result.stdout.lines
    assert sum(1 for line in lines if line.startswith("PASS  MUST   deny.name-prefix  (")) == 1
    assert sum(1 for line in lines if line.startswith("PASS  MUST   env.webhook-live  (")) == 1
    result.stdout.fnmatch_lines(
        ["SKIP  MUST   allow.live-migration  (*)  needs two schedulable nodes; found 1"]
    )
    # decided as soon as its last test finished: before the live-migration line
    prefix = next(i for i, line in enumerate(lines) if "deny.name-prefix  (" in line)
    migration = next(i for i, line in enumerate(lines) if "allow.live-migration  (" in line)
    assert prefix < migration
    result.stdout.fnmatch_lines(["NOT-RUN MUST   deny.other-vm  (0.0 s)  no scenario collected for it"])
    result.stdout.fnmatch_lines(["kovc Verdict: *", f"report: {tmp_path / 'r'}"])


def test_plan_prints_and_touches_nothing(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(test_s=SCENARIOS)
    result = pytester.runpytest("--plan", "--kube-ovn-version", "v1.13.0",
                                "--report-dir", str(tmp_path / "r"))
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*sim serve*--kube-ovn-version v1.13.0*"])
    assert not (tmp_path / "r").exists()
