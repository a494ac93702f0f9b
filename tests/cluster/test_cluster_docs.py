"""docs/real-clusters.md says what has run where, labels estimates, and matches the version table and
the CI matrix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conformance import versions
from conformance.cluster import install

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "real-clusters.md"


def text() -> str:
    return DOC.read_text()


def test_says_nothing_has_run_on_a_real_cluster_and_how_to_report() -> None:
    t = text()
    assert "## What has run on a real cluster: none yet" in t
    assert "**none yet**" in t and "### Reporting the first real run" in t
    assert "report.json" in t and "cluster-logs/" in t and "kind-logs/" in t


def test_wall_times_are_labelled_estimates() -> None:
    t = text()
    heading = "## Expected wall time per profile (estimates — not measured yet)"
    assert heading in t
    section = t.split(heading, 1)[1].split("\n## ", 1)[0]
    for profile in ("`quick`", "`baseline`", "`extended`"):
        assert profile in section
    assert section.count("(estimate)") >= 2


def test_versions_match_the_table() -> None:
    t = text()
    for value in (versions.KUBE_OVN_VERSION, versions.KUBEVIRT_VERSION, versions.K8S_VERSION,
                  versions.CERT_MANAGER_VERSION, versions.KIND_MIN_VERSION, versions.PROBE_IMAGE):
        assert value in t, value


def test_ci_rows_match_the_workflow() -> None:
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "conformance.yml").read_text())
    t = text()
    for row in wf["jobs"]["kind"]["strategy"]["matrix"]["include"]:
        assert any(ln.startswith("| ") and f"| {row['kube-ovn']} " in ln and row["kubevirt"] in ln
                   and row["k8s"] in ln and f"| {row['kind']} " in ln and f"exit {row['expect']}" in ln
                   for ln in t.splitlines()), row


def test_guide_mentions_every_prerequisite_and_file() -> None:
    t = text()
    for needle in ("--kind-bin", "KIND_VERSION", "--keep-cluster", "--manifests-dir", "kovc images --manifests",
                   "manifests/rbac.yaml", "clusters/kind-config.yaml", "clusters/kube-ovn-values-v2.yaml",
                   "clusters/kube-ovn-install.env", "useEmulation", "Snapshot", "kubevirt.io:migrate",
                   "pod-ip-validating.kube-ovn.io", "+kovc-sim"):
        assert needle in t, needle
    assert max(install.STEP_TIMEOUTS.values()) <= 25 * 60


@pytest.mark.parametrize("where", ["repository", "elsewhere"])
def test_pytest_help_works_with_both_plugins(where: str, tmp_path: Path) -> None:
    """pytest-kind-ng's plugin and ours are both installed (entry points): ``pytest --help`` works and
    shows our options, inside the repository (its addopts) and in a folder without configuration."""
    pytest.importorskip("pytest_kind")
    pytest.importorskip("conformance.plugin")
    cwd = ROOT if where == "repository" else tmp_path
    proc = subprocess.run([sys.executable, "-m", "pytest", "--help"], cwd=cwd, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTEST_ADDOPTS": ""})
    assert proc.returncode == 0, proc.stderr[-2000:]
    for option in ("--backend", "--kind-bin", "--keep-cluster", "--kubeconfig", "--cluster-name"):
        assert option in proc.stdout, option
