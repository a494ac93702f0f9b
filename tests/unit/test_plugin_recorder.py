"""The ``record`` fixture: sub-case semantics, and a failed case turning a passed test into a failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance.recorder import PROP_ADDRESSES, PROP_CASE, PROP_WARNING, Recorder

pytest_plugins = ["pytester"]


def test_subcase_records_pass_and_swallows_assertion_failures() -> None:
    sink: list[tuple[str, object]] = []
    rec = Recorder(["deny.name-prefix"], sink=sink)
    with rec.subcase("web/web-1"):
        pass
    with rec.subcase("vm1/vm10"):
        raise AssertionError("expected a denial of vm10 (10.16.0.7); it was admitted")
    with rec.subcase("pytest.fail"):
        pytest.fail("expected 403; got 201")
    ran_after = True
    assert ran_after
    assert [(c["name"], c["outcome"]) for c in rec.cases] == [
        ("web/web-1", "passed"),
        ("vm1/vm10", "failed"),
        ("pytest.fail", "failed"),
    ]
    assert rec.cases[1]["message"] == "expected a denial of vm10 (10.16.0.7); it was admitted"
    assert rec.failed()
    assert rec.failure_text().splitlines() == [
        "vm1/vm10: expected a denial of vm10 (10.16.0.7); it was admitted",
        "pytest.fail: expected 403; got 201",
    ]
    assert [k for k, _ in sink] == [PROP_CASE] * 3
    assert all(c["duration_s"] >= 0 for c in rec.cases)


def test_subcase_propagates_other_exceptions_and_skips() -> None:
    rec = Recorder(["deny.clone"])
    with pytest.raises(RuntimeError), rec.subcase("boom"):
        raise RuntimeError("API down")
    with pytest.raises(pytest.skip.Exception), rec.subcase("clone"):
        pytest.skip("clone API absent")
    assert [(c["name"], c["outcome"], c["message"]) for c in rec.cases] == [
        ("boom", "error", "RuntimeError: API down"),
        ("clone", "skipped", "clone API absent"),
    ]


def test_case_warn_addresses_and_exemptions() -> None:
    sink: list[tuple[str, object]] = []
    rec = Recorder(["deny.other-vm"], sink=sink)
    rec.case("challenger", "failed", message="admitted", admitted_then="blocked-by-ipam", duration_s=1.23456)
    rec.warn("the webhook cache lagged 0.4 s")
    rec.addresses("10.16.0.5", "10.16.0.6")
    rec.addresses("10.16.0.5")
    rec.admitted_challenger("10.16.0.6")
    assert rec.cases[0]["duration_s"] == 1.235 and rec.cases[0]["admitted_then"] == "blocked-by-ipam"
    assert rec.used_addresses == ["10.16.0.5", "10.16.0.6"] and rec.exempt == {"10.16.0.6"}
    assert (PROP_WARNING, "the webhook cache lagged 0.4 s") in sink
    assert [v for k, v in sink if k == PROP_ADDRESSES] == [["10.16.0.5", "10.16.0.6"]]
    json.dumps(sink)  # JSON-able: it travels to the xdist controller
    with pytest.raises(ValueError, match="outcome"):
        rec.case("x", "ok")


def test_failed_case_turns_a_passed_test_into_a_failure(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(
        test_s="""
import pytest

@pytest.mark.conformance("deny.name-prefix")
def test_prefix(record):
    with record.subcase("web/web-1"):
        pass
    with record.subcase("vm1/vm10"):
        assert False, "expected a denial naming 10.16.0.7; admitted"
    with record.subcase("pod web in vm web-1"):
        record.case("inner", "passed")

@pytest.mark.conformance("allow.restart")
def test_restart(record):
    record.case("restart", "passed", duration_s=0.5)
    record.warn("transient denial for 0.2 s")
"""
    )
    result = pytester.runpytest("--report-dir", str(tmp_path / "r"))
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*vm1/vm10: expected a denial naming 10.16.0.7; admitted*"])
    result.stdout.fnmatch_lines(["FAIL  MUST   deny.name-prefix  (*"])
    data = json.loads((tmp_path / "r" / "report.json").read_text())
    reqs = {r["id"]: r for r in data["requirements"]}
    prefix = reqs["deny.name-prefix"]
    assert prefix["outcome"] == "failed"
    assert [(c["name"], c["outcome"]) for c in prefix["cases"]] == [
        ("web/web-1", "passed"),
        ("vm1/vm10", "failed"),
        ("inner", "passed"),
        ("pod web in vm web-1", "passed"),
    ]
    assert "expected a denial naming 10.16.0.7" in prefix["reason"]
    restart = reqs["allow.restart"]
    assert restart["outcome"] == "passed"
    assert restart["warnings"] == ["transient denial for 0.2 s"]
    assert restart["cases"] == [
        {"name": "restart", "outcome": "passed", "duration_s": 0.5, "message": None, "admitted_then": None}
    ]
    assert data["verdict"] == "invalid"  # no env.* scenario in this tiny suite
    # junit/allure see the failure too
    assert any("failed" in p.read_text() for p in (tmp_path / "r").glob("junit.xml"))


def test_duplicate_check_runs_after_each_scenario(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makeconftest("""
import pytest
import conformance.assertions
from conformance.plugin import STATE

@pytest.fixture(autouse=True)
def fake_cluster(request, monkeypatch):
    calls = []
    def findings(kube, addresses, exempt):
        calls.append((kube, list(addresses), set(exempt)))
        return [f"{ip}: two allocated pods hold it" for ip in addresses
                if ip.endswith(".9") and ip not in exempt]
    monkeypatch.setattr(request.config.stash[STATE], "kube", "FAKE-KUBE")
    monkeypatch.setattr(conformance.assertions, "duplicate_ip_findings", findings)
    yield
    assert all(c[0] == "FAKE-KUBE" for c in calls)
""")
    pytester.makepyfile(
        test_s="""
import pytest

@pytest.mark.conformance("allow.restart")
def test_restart(record):
    record.addresses("10.16.0.1")

@pytest.mark.conformance("deny.other-vm")
def test_other_vm(record):
    record.addresses("10.16.0.9")

@pytest.mark.conformance("deny.clone")
def test_clone(record):
    record.addresses("10.16.0.9")
    record.admitted_challenger("10.16.0.9")
    record.case("challenger", "failed", message="admitted", admitted_then="took-over-address")

@pytest.mark.conformance("deny.pod-takes-vm-ip")
def test_no_addresses(record):
    pass
"""
    )
    result = pytester.runpytest("--report-dir", str(tmp_path / "r"))
    result.assert_outcomes(passed=3, failed=1)
    reqs = {r["id"]: r for r in json.loads((tmp_path / "r" / "report.json").read_text())["requirements"]}
    dup = reqs["state.no-duplicate-ips"]
    assert dup["outcome"] == "failed"
    assert [(c["name"], c["outcome"]) for c in dup["cases"]] == [
        ("allow.restart", "passed"),
        ("deny.other-vm", "failed"),
        ("deny.clone", "passed"),
    ]
    assert "10.16.0.9: two allocated pods hold it" in dup["reason"]
    assert reqs["deny.other-vm"]["outcome"] == "passed"  # judged by state.no-duplicate-ips, not here
    assert reqs["deny.clone"]["outcome"] == "failed"
    assert reqs["deny.clone"]["cases"][0]["admitted_then"] == "took-over-address"
    result.stdout.fnmatch_lines(["FAIL  MUST   state.no-duplicate-ips  (*"])


def test_infrastructure_errors_are_errors_never_failures(pytester: pytest.Pytester, tmp_path: Path) -> None:
    """An API the suite could not get past (5xx/429 after the retries, a dropped connection, a wait
    whose API was unreachable at its deadline) is no answer about the cluster: the requirement is
    reported as error (report.json, junit.xml), never as failed; an assertion still fails."""
    pytester.makepyfile(
        test_s="""
import pytest
import urllib3
from kubernetes.client.exceptions import ApiException
from conformance.kube import InfrastructureError

@pytest.mark.conformance("allow.restart")
def test_restart(record):
    raise ApiException(status=503, reason="Service Unavailable")

@pytest.mark.conformance("allow.stop-start")
def test_stop_start(record):
    raise InfrastructureError("waiting for VMI x Running: the API was unreachable at the deadline")

@pytest.mark.conformance("deny.name-prefix")
def test_prefix(record):
    with record.subcase("web/web-1"):
        raise urllib3.exceptions.ProtocolError("Connection aborted.")

@pytest.mark.conformance("deny.clone")
def test_clone(record):
    with record.subcase("clone"):
        assert False, "expected a denial; admitted"
"""
    )
    result = pytester.runpytest("--report-dir", str(tmp_path / "r"))
    result.assert_outcomes(failed=4)
    data = json.loads((tmp_path / "r" / "report.json").read_text())
    reqs = {r["id"]: r for r in data["requirements"]}
    assert reqs["allow.restart"]["outcome"] == "error"
    assert "infrastructure error" in reqs["allow.restart"]["reason"]
    assert "HTTP 503" in reqs["allow.restart"]["reason"]
    assert reqs["allow.stop-start"]["outcome"] == "error"
    assert "unreachable at the deadline" in reqs["allow.stop-start"]["reason"]
    assert reqs["deny.name-prefix"]["outcome"] == "error"
    assert [(c["name"], c["outcome"]) for c in reqs["deny.name-prefix"]["cases"]] == [("web/web-1", "error")]
    assert reqs["deny.clone"]["outcome"] == "failed"
    assert data["summary"]["MUST"]["error"] == 3 and data["summary"]["MUST"]["failed"] == 1
    junit = (tmp_path / "r" / "junit.xml").read_text()
    assert junit.count("<error") == 3 and junit.count("<failure") == 1
