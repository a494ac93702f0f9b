"""A run on ``--backend envtest``: report.json records each component real or simulated, report.md's
first line says which, and ``kovc report verify`` refuses it without ``--allow-simulated``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conformance.cluster.envtest import components_line
from conformance.results import RunResult

COMPONENTS: list[dict[str, Any]] = [
    {"name": "kube-apiserver", "real": True, "program": "/c/k8s/1.35.4-linux-amd64/kube-apiserver",
     "version": "v1.35.4", "sha256": "a" * 64},
    {"name": "etcd", "real": True, "program": "/c/k8s/1.35.4-linux-amd64/etcd", "version": "v3.6.17",
     "sha256": "b" * 64},
    {"name": "kube-ovn-webhook", "real": True, "program": "/c/kube-ovn/v1.16.2/kube-ovn-webhook",
     "version": "v1.16.2", "sha256": "c" * 64},
    {"name": "kubevirt-controllers", "real": False, "model": "kovc sim"},
    {"name": "kube-ovn-controller", "real": False, "model": "kovc sim"},
]


def envtest_run(runs: dict[str, Callable[[], RunResult]]) -> RunResult:
    run = runs["passing-sim"]()
    run.backend, run.simulated = "envtest", True
    run.components = COMPONENTS
    run.sim_model = components_line(COMPONENTS)
    return run


def test_components_line_names_real_and_simulated_parts() -> None:
    assert components_line(COMPONENTS) == ("real kube-apiserver v1.35.4 + real Kube-OVN webhook v1.16.2; "
                                           "KubeVirt and Kube-OVN controllers simulated — not a certification")
    modelled = [c if c["name"] != "kube-ovn-webhook" else {"name": "kube-ovn-webhook", "real": False}
                for c in COMPONENTS]
    assert components_line(modelled).startswith("real kube-apiserver v1.35.4; ")
    assert "Kube-OVN webhook (modelled)" in components_line(modelled)


def test_envtest_bundle_records_components_and_is_refused_without_allow_simulated(
        make_bundle: Callable[..., Path], runs: dict[str, Callable[[], RunResult]],
        capsys: pytest.CaptureFixture[str]) -> None:
    from conformance.cli import main

    out = make_bundle("passing-sim", envtest_run(runs))
    data = json.loads((out / "report.json").read_text())
    assert data["components"] == COMPONENTS
    first = (out / "report.md").read_text().splitlines()[0]
    assert first == components_line(COMPONENTS)
    capsys.readouterr()
    assert main(["report", "verify", str(out)]) == 1
    assert "simulated" in capsys.readouterr().out
    assert main(["report", "verify", "--allow-simulated", str(out)]) == 0, capsys.readouterr().out


def test_verdict_line_says_partly_simulated(runs: dict[str, Callable[[], RunResult]]) -> None:
    """The console's and report.md's verdict line of an envtest run does not call a real kube-apiserver and
    a real webhook a "SIMULATED CLUSTER"; it still says it is not a certification."""
    from conformance.report import render_markdown
    from conformance.report.markdown import PARTLY_SIMULATED_BANNER, SIMULATED_BANNER

    short = render_markdown(envtest_run(runs), short=True).splitlines()[0]
    assert short.endswith(f"(exit 0) — {PARTLY_SIMULATED_BANNER}"), short
    assert f"— {SIMULATED_BANNER}" not in short and "not a certification" in short
    assert SIMULATED_BANNER in render_markdown(runs["passing-sim"](), short=True).splitlines()[0]
