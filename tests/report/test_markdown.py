"""report.md and the short form printed at the end of ``kovc run``."""

from __future__ import annotations

from collections.abc import Callable

from conformance.report import SIMULATED_BANNER, render_markdown
from conformance.results import RunResult

Runs = dict[str, Callable[[], RunResult]]


def test_simulated_banner_on_the_verdict_line(runs: Runs) -> None:
    md = render_markdown(runs["passing-sim"]())
    verdict_line = next(line for line in md.splitlines() if "Verdict:" in line)
    assert "CONFORMANT" in verdict_line and "exit 0" in verdict_line
    assert "SIMULATED CLUSTER — not a certification" in verdict_line
    assert SIMULATED_BANNER in verdict_line


def test_real_cluster_has_no_banner(runs: Runs) -> None:
    md = render_markdown(runs["real-passing"]())
    assert SIMULATED_BANNER not in md
    assert "**Verdict: CONFORMANT (exit 0)**" in md


def test_versions_and_requirement_table(runs: Runs) -> None:
    run = runs["failing-sim"]()
    md = render_markdown(run)
    assert "| kube-ovn-controller | v1.14.2 |" in md
    assert "| KubeVirt | v1.5.2 |" in md
    assert "kind node image" not in md  # unknown on the simulated cluster: not shown
    for req in run.requirements:
        assert f"| `{req.id}` | {req.level} |" in md
    assert "| `allow.restart` | MUST | FAIL |" in md
    assert "| `deny.clone` | MUST | SKIP |" in md
    assert "the clone API (clone.kubevirt.io) is absent" in md


def test_failure_sections_show_expected_vs_seen_and_the_webhook_text(runs: Runs) -> None:
    md = render_markdown(runs["failing-sim"]())
    assert "**Verdict: NON-CONFORMANT (exit 1)" in md
    failures = md.split("## Failures", 1)[1]
    assert "### allow.restart (MUST) — failed" in failures
    assert 'admission webhook "pod-ip-validating.kube-ovn.io" denied the request' in failures
    assert "expected the restart of VM kovc-r1-restart/h-k2x9q to be admitted" in failures
    assert "### deny.other-vm (MUST) — failed" in failures
    assert "admitted then: **blocked-by-ipam**" in failures
    assert "admitted then: **took-over-address**" in failures
    assert "Diagnostics: `diagnostics/allow.restart`" in failures
    # a passed sub-case is not listed as a failure
    assert "case `web/web-1`" not in failures
    # messages holding backticks keep their fence intact
    assert "````text" in failures


def test_table_cells_escape_pipes(runs: Runs) -> None:
    run = runs["failing-sim"]()
    run.requirements[0].title = "a | b"
    md = render_markdown(run)
    assert "a \\| b" in md


def test_leaks_and_warnings(runs: Runs) -> None:
    md = render_markdown(runs["failing-sim"]())
    assert "## Leaked IP CRs" in md
    assert "| h-stop.kovc-r1-leak | 10.16.0.40 | h-stop | kovc-r1-leak | ovn-default |" in md
    assert "timeout scale 0.05 (simulated cluster)" in md
    assert "webhook cache: the probe was denied only after 2.1 s" in md


def test_short_form(runs: Runs) -> None:
    short = render_markdown(runs["failing-sim"](), short=True)
    lines = short.splitlines()
    assert lines[0].startswith("kovc Verdict: NON-CONFORMANT (exit 1)")
    assert SIMULATED_BANNER in lines[0]
    assert "failed: allow.restart, deny.other-vm, deny.name-prefix" in lines
    assert "skipped: deny.clone" in lines
    assert any(line.startswith("MUST: 19 passed, 3 failed, 0 error, 1 skipped, 0 not run; SHOULD: 0 passed")
               for line in lines), lines
    assert "leaked IP CRs: 1" in lines
    assert len(lines) <= 6


def test_short_form_invalid_run(runs: Runs) -> None:
    short = render_markdown(runs["invalid"](), short=True)
    assert short.startswith("kovc Verdict: INVALID (exit 2)")
    assert "failed: env.webhook-live" in short
    (not_run,) = [line for line in short.splitlines() if line.startswith("not run (MUST): ")]
    assert not_run.startswith("not run (MUST): allow.restart, allow.stop-start,")
    assert not_run.endswith(" and 15 more")


def test_a_case_message_equal_to_the_reason_is_shown_once(runs: Runs) -> None:
    from conformance.report import junit

    run = runs["failing-sim"]()
    md = render_markdown(run)
    assert md.count("expected the restart of VM kovc-r1-restart/h-k2x9q") == 1
    restart = next(r for r in run.requirements if r.id == "allow.restart")
    assert junit.failure_text(restart).count("expected the restart of VM") == 1
