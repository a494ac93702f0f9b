"""Issue 14: a requirement whose applicability condition does not hold is ``not-applicable`` with the
reason - never skipped silently, never passed - in report.json, report.md, junit.xml and ``kovc report
verify``; a certification needs every *applicable* MUST passed, and says which capabilities it covers."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from conformance import catalog, cli
from conformance.report import render_markdown
from conformance.report.junit import render as render_junit
from conformance.results import RunResult

NO_MULTUS = ("Multus is present (the CRD network-attachment-definitions.k8s.cni.cncf.io is served) does not "
             "hold: Multus is not present: the API k8s.cni.cncf.io/v1 (CRD "
             "network-attachment-definitions.k8s.cni.cncf.io) is not served")
MULTUS_IDS = [r.id for r in catalog.all_requirements() if r.applies_when == "multus"]
Runs = dict[str, Callable[[], RunResult]]
Kovc = Callable[..., tuple[int, str]]


@pytest.fixture
def kovc(capsys: pytest.CaptureFixture[str]) -> Kovc:
    def run(*argv: str | Path) -> tuple[int, str]:
        capsys.readouterr()
        code = cli.main([str(a) for a in argv])
        return code, capsys.readouterr().out

    return run


def _reasons(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("not certifiable: ")]


@pytest.fixture
def no_multus_run(runs: Runs) -> Callable[[], RunResult]:
    return lambda: _no_multus(runs["real-passing"]())


def _no_multus(run: RunResult) -> RunResult:
    """A real, otherwise passing run on a cluster without Multus."""
    for req in run.requirements:
        if req.id in MULTUS_IDS:
            req.outcome, req.reason, req.cases = "not-applicable", NO_MULTUS, []
            for t in req.tests:
                t.outcome = "not-applicable"
    return run


def test_not_applicable_musts_do_not_block_a_certification(no_multus_run: Callable[[], RunResult]) -> None:
    run = no_multus_run()
    assert run.verdict == "conformant"
    assert run.summary()["MUST"]["not_applicable"] == 2  # allow.attachment-restart, deny.attachment-other-vm
    caps = {c["capability"]: c for c in run.capabilities()}
    assert caps["attachment networks"]["status"] == "not applicable"
    assert caps["attachment networks"]["reason"] == NO_MULTUS
    assert caps["dual-stack"]["status"] == "certified"
    assert run.certified_text() == "IPv4 pod network, dual-stack; attachment networks not applicable"


def test_a_failed_applicable_must_is_not_certified(no_multus_run: Callable[[], RunResult]) -> None:
    run = no_multus_run()
    next(r for r in run.requirements if r.id == "deny.other-vm-ipv6").outcome = "failed"
    assert run.verdict == "non-conformant"
    assert run.certified_text() == ("nothing certified; IPv4 pod network passed; dual-stack failed; "
                                    "attachment networks not applicable")


def test_a_failed_should_names_the_gap_but_never_fails_the_capability(
        no_multus_run: Callable[[], RunResult]) -> None:
    """A capability's status is its MUSTs': a run whose pod-network SHOULDs failed is no certification (any
    failed requirement makes it non-conformant), but the pod network's MUSTs passed, and the text says how
    many SHOULDs it missed (not "IPv4 pod network failed", which would name a MUST failure)."""
    run = no_multus_run()
    shoulds = [r for r in run.requirements if r.level == "SHOULD" and r.family != "env"
               and catalog.get(r.id).applies_when is None]
    assert shoulds, "the fixture run has no pod-network SHOULD"
    for r in shoulds[:2]:
        r.outcome = "failed"
    run.selected = sorted(set(run.selected) | {r.id for r in shoulds[:2]})
    assert run.verdict == "non-conformant"
    caps = {c["capability"]: c for c in run.capabilities()}
    assert caps["IPv4 pod network"]["status"] == "passed"
    assert caps["IPv4 pod network"]["should_failed"] == [r.id for r in shoulds[:2]]
    assert run.certified_text() == ("nothing certified; IPv4 pod network passed (2 SHOULDs failed); "
                                    "dual-stack passed; attachment networks not applicable")
    assert f"SHOULD failed: {shoulds[0].id}, {shoulds[1].id}" in render_markdown(run)


def test_report_json_md_and_junit_say_not_applicable_with_the_reason(
        no_multus_run: Callable[[], RunResult]) -> None:
    run = no_multus_run()
    data = run.to_json()
    assert data["certified"] == "IPv4 pod network, dual-stack; attachment networks not applicable"
    assert RunResult.from_json(json.loads(json.dumps(data))).requirements == run.requirements
    md = render_markdown(run)
    assert "Certified: IPv4 pod network, dual-stack; attachment networks not applicable" in md
    assert "| `deny.attachment-other-vm` | MUST | NOT APPLICABLE | " in md and NO_MULTUS in md
    short = render_markdown(run, short=True)
    assert "not applicable: " + ", ".join(MULTUS_IDS) in short
    root = ET.fromstring(render_junit(run))
    case = next(c for c in root.iter("testcase") if c.get("name") == "allow.attachment-restart")
    skipped = case.find("skipped")
    assert skipped is not None and skipped.get("message") == f"not applicable: {NO_MULTUS}"
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["outcome"] == "not-applicable"


def test_verify_certifies_and_states_the_capabilities(make_bundle: Callable[..., Path], kovc: Kovc,
                                                     no_multus_run: Callable[[], RunResult]) -> None:
    out = make_bundle("real-passing", no_multus_run())
    code, stdout = kovc("report", "verify", out)
    assert code == 0, stdout
    assert "capabilities: IPv4 pod network, dual-stack; attachment networks not applicable" in stdout.splitlines()


def test_verify_refuses_not_applicable_without_a_condition(make_bundle: Callable[..., Path], kovc: Kovc,
                                                           no_multus_run: Callable[[], RunResult]) -> None:
    run = no_multus_run()
    restart = next(r for r in run.requirements if r.id == "allow.restart")
    restart.outcome, restart.reason, restart.cases = "not-applicable", "made up", []
    code, stdout = kovc("report", "verify", make_bundle("real-passing", run))
    assert code == 1
    assert any("reported not applicable although the catalog has no applicability condition for them: "
               "allow.restart" in r for r in _reasons(stdout)), stdout
