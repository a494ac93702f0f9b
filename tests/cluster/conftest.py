"""Fixtures for the real-cluster backends, run without Docker (see cluster_helpers.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_helpers import (
    CONTROLLER_MANAGER,
    DOCKER_SCRIPT,
    HELM_SCRIPT,
    KIND_SCRIPT,
    REPO,
    SIM_LAUNCHER,
    ServedSim,
    StandIns,
    _kill_leftovers,
    _write_script,
    serve_sim,
    stop_process,
    write_manifests_dir,
)


@pytest.fixture
def standins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StandIns]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _write_script(bin_dir / "kind", KIND_SCRIPT)
    _write_script(bin_dir / "helm", HELM_SCRIPT)
    _write_script(bin_dir / "docker", DOCKER_SCRIPT)
    s = StandIns(bin_dir=bin_dir, log=tmp_path / "calls.jsonl", state=tmp_path / "kind-state")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("KOVC_STANDIN_LOG", str(s.log))
    monkeypatch.setenv("KOVC_STANDIN_STATE", str(s.state))
    monkeypatch.setenv("KOVC_SIM_LAUNCHER", SIM_LAUNCHER)
    monkeypatch.setenv("KOVC_STANDIN_CM", CONTROLLER_MANAGER)
    monkeypatch.setenv("KOVC_STANDIN_DOCKER_PRESENT", "*")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    for var in ("KIND_VERSION", "KIND_DOWNLOAD_URL", "KIND_EXPERIMENTAL_PROVIDER", "KUBECONFIG"):
        monkeypatch.delenv(var, raising=False)
    try:
        yield s
    finally:
        _kill_leftovers(s.state)

@pytest.fixture
def manifests_dir(tmp_path: Path) -> Path:
    return write_manifests_dir(tmp_path / "manifests")

@pytest.fixture
def served_sim(tmp_path: Path) -> Iterator[ServedSim]:
    sim = serve_sim(tmp_path)
    try:
        yield sim
    finally:
        stop_process(sim.proc)


@pytest.fixture(autouse=True)
def short_step_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    """A step that hangs against the simulated cluster fails in seconds, not after the real budgets."""
    from conformance.cluster import install

    for key in install.STEP_TIMEOUTS:
        monkeypatch.setitem(install.STEP_TIMEOUTS, key, 20.0)
