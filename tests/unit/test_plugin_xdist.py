"""Results of xdist workers are aggregated per requirement by the controller, with live progress."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

SCENARIOS = """
import os
import pytest

def where(record):
    record.warn("ran on " + os.environ.get("PYTEST_XDIST_WORKER", "main"))

@pytest.mark.conformance("env.webhook-live")
def test_webhook_live(record):
    where(record)

@pytest.mark.conformance("env.keep-vm-ip")
def test_keep_vm_ip(record):
    where(record)

@pytest.mark.conformance("deny.name-prefix")
@pytest.mark.parametrize("pair", ["web/web-1", "web-1/web", "vm1/vm10", "vm10/vm1"])
def test_prefix(record, pair):
    where(record)
    with record.subcase(pair):
        assert pair != "vm10/vm1", f"expected {pair} to be denied; admitted"

@pytest.mark.exclusive
@pytest.mark.conformance("allow.concurrent-restarts")
def test_concurrent(record):
    where(record)
    record.case("3 VMs", "passed")

@pytest.mark.exclusive
@pytest.mark.conformance("allow.live-migration")
def test_migration(record):
    where(record)
    pytest.skip("live migration needs two schedulable nodes; found 1")

@pytest.mark.conformance("allow.restart")
def test_restart(record):
    where(record)
"""


def test_two_workers_aggregate_per_requirement(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(test_s=SCENARIOS)
    report_dir = tmp_path / "r"
    result = pytester.runpytest_subprocess(
        "-n", "2", "--report-dir", str(report_dir), "--run-id", "r-xdist1", timeout=120
    )
    result.assert_outcomes(passed=7, failed=1, skipped=1)
    data = json.loads((report_dir / "report.json").read_text())
    assert data["run_id"] == "r-xdist1"
    reqs = {r["id"]: r for r in data["requirements"]}
    prefix = reqs["deny.name-prefix"]
    assert prefix["outcome"] == "failed"
    assert sorted(c["name"] for c in prefix["cases"]) == ["vm1/vm10", "vm10/vm1", "web-1/web", "web/web-1"]
    assert [c["outcome"] for c in prefix["cases"] if c["name"] == "vm10/vm1"] == ["failed"]
    assert len(prefix["tests"]) == 4
    assert "expected vm10/vm1 to be denied; admitted" in prefix["reason"]
    assert reqs["allow.concurrent-restarts"]["outcome"] == "passed"
    # a plain ``-n 2`` distributes with loadgroup: the exclusive scenarios share one worker
    assert reqs["allow.concurrent-restarts"]["tests"][0]["nodeid"].endswith("@exclusive")
    assert reqs["allow.live-migration"]["tests"][0]["nodeid"].endswith("@exclusive")
    assert reqs["allow.concurrent-restarts"]["warnings"] == reqs["allow.live-migration"]["warnings"]
    assert reqs["allow.live-migration"]["outcome"] == "skipped"
    assert reqs["allow.live-migration"]["reason"] == "live migration needs two schedulable nodes; found 1"
    assert reqs["allow.restart"]["outcome"] == "passed"
    workers = {w for r in data["requirements"] for w in r["warnings"]}
    assert workers == {"ran on gw0", "ran on gw1"}, "both workers ran scenarios"
    assert data["verdict"] == "non-conformant"
    # one live line per requirement, each as soon as it is decided
    lines = result.stdout.lines
    for label, req in [
        ("PASS", "env.webhook-live"),
        ("PASS", "env.keep-vm-ip"),
        ("FAIL", "deny.name-prefix"),
        ("PASS", "allow.concurrent-restarts"),
        ("SKIP", "allow.live-migration"),
        ("PASS", "allow.restart"),
    ]:
        assert sum(1 for line in lines if line.startswith(f"{label}  MUST   {req}  (")) == 1, (req, lines)
    first_final = next(i for i, line in enumerate(lines) if line.startswith("NOT-RUN"))
    assert all(i < first_final for i, line in enumerate(lines) if line.startswith("PASS  MUST   env.")), (
        "requirements decided by finished tests are printed before the end of the run"
    )
    assert (report_dir / "junit.xml").exists() and (report_dir / "MANIFEST.sha256").exists()
