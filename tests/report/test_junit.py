"""junit.xml: one testcase per requirement, versions as suite properties, parseable."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

from conformance.report import junit
from conformance.results import RunResult

Runs = dict[str, Callable[[], RunResult]]


def _parse(run: RunResult, tmp_path: Path) -> ET.Element:
    path = junit.write(run, tmp_path / "junit.xml")
    return ET.parse(path).getroot()


def test_one_testcase_per_requirement(any_run: RunResult, tmp_path: Path) -> None:
    root = _parse(any_run, tmp_path)
    cases = root.findall("testsuite/testcase")
    assert [c.get("name") for c in cases] == [r.id for r in any_run.requirements]
    for case, req in zip(cases, any_run.requirements, strict=True):
        assert case.get("classname") == req.id.split(".")[0]
    suite = root.find("testsuite")
    assert suite is not None
    assert suite.get("tests") == str(len(any_run.requirements))


def test_versions_are_suite_properties(runs: Runs, tmp_path: Path) -> None:
    run = runs["failing-sim"]()
    path = junit.write(run, tmp_path / "junit.xml")
    props = junit.read_suite_properties(path)
    assert props["version.kube_ovn_controller"] == "v1.14.2"
    assert props["version.kube_ovn_webhook"] == "v1.14.2"
    assert props["version.kubevirt"] == "v1.5.2"
    assert props["version.kubernetes"] == "v1.35.1"
    assert props["simulated"] == "true"
    assert props["backend"] == "sim"
    assert props["run_id"] == "r1a2b3"
    assert props["verdict"] == "non-conformant"


def test_failures_skips_and_subcases(runs: Runs, tmp_path: Path) -> None:
    root = _parse(runs["failing-sim"](), tmp_path)
    by_id = {c.get("name"): c for c in root.iter("testcase")}
    restart = by_id["allow.restart"]
    failure = restart.find("failure")
    assert failure is not None
    assert 'admission webhook "pod-ip-validating.kube-ovn.io" denied the request' in (failure.text or "")
    assert (failure.get("message") or "").startswith("allow.restart: expected the restart")
    prefix = by_id["deny.name-prefix"]
    props = {p.get("name"): p.get("value") for p in prefix.iter("property")}
    assert props["case.web/web-1.outcome"] == "passed"
    assert props["case.vm1/vm10.outcome"] == "failed"
    assert props["case.vm1/vm10.admitted_then"] == "took-over-address"
    assert props["level"] == "MUST"
    failure = prefix.find("failure")
    assert failure is not None and "took-over-address" in (failure.text or "")
    assert by_id["deny.clone"].find("skipped") is not None
    not_run = by_id["net.migration-downtime"].find("skipped")
    assert not_run is not None and (not_run.get("message") or "").startswith("not run:")
    assert by_id["allow.stop-start"].find("failure") is None
    assert by_id["allow.stop-start"].find("skipped") is None
    suite = root.find("testsuite")
    assert suite is not None and suite.get("failures") == "3" and suite.get("skipped") == "12"


def test_error_outcome_and_control_characters(runs: Runs, tmp_path: Path) -> None:
    run = runs["real-passing"]()
    run.requirements[3].outcome = "error"
    run.requirements[3].reason = "transport error\x00\x1b[31m: connection reset"
    root = _parse(run, tmp_path)  # must stay parseable
    case = root.findall("testsuite/testcase")[3]
    error = case.find("error")
    assert error is not None and "connection reset" in (error.text or "")
    assert junit.read_testcases(tmp_path / "junit.xml")[run.requirements[3].id] == "error"
