"""A ``--sim-webhook-policy`` that raises is a broken model, not a webhook verdict: the first raise makes
the run invalid (exit 2) — the policy's name and its exception on the console and in report.md — and
voids the rest of the run instead of letting every scenario time out into NON-CONFORMANT."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import Run


def test_a_raising_policy_makes_the_run_invalid(kovc: Callable[..., Run], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "kovc_broken_policy.py").write_text(
        "def explode(pod, ip_crs, view):\n    return {}['no such key']\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    run = kovc("--sim-webhook-policy", "kovc_broken_policy:explode", "--profile", "baseline")
    assert run.exit_code == 2, run.explain()
    expected = "webhook policy 'kovc_broken_policy:explode' raised KeyError: 'no such key'"
    assert f"kovc: INVALID RUN: the simulated cluster's model is broken, no verdict: {expected}" in run.output
    assert run.report["verdict"] == "invalid"
    env = run.requirement("env.webhook-live")
    assert env["outcome"] == "failed" and expected in env["reason"], env
    markdown = (run.report_dir / "report.md").read_text()
    assert markdown.startswith("# kovc conformance report — Verdict: INVALID (exit 2)"), markdown[:300]
    assert expected in markdown
    outcomes = run.outcomes()
    # after the first raise nothing else is judged: the rest is skipped as void, not failed on timeouts
    failed = [r for r, o in outcomes.items() if o == "failed" and not r.startswith("env.")]
    assert len(failed) <= 1, outcomes
    assert sum(o == "skipped" for o in outcomes.values()) >= 10, outcomes
