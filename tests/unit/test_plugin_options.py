"""The plugin's options coexist with pytest-kind-ng's (same flags), whichever loads first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conformance import settings
from conformance.cluster.select import BackendOptions

SHARED = (
    "--kubeconfig",
    "--keep-cluster",
    "--kind-bin",
    "--cluster-name",
    "--kind-image",
    "--kind-kubectl-bin",
)
OURS = (
    "--backend",
    "--profile",
    "--requirement",
    "--report-dir",
    "--timeout-scale",
    "--sim-faults",
    "--sim-webhook-policy",
    "--diagnostics",
    "--plan",
    "--manifests-dir",
)

CHECK = """
def test_options(pytestconfig):
    o = pytestconfig.option
    assert (o.kubeconfig, o.keep_cluster, o.kind_bin, o.cluster_name, o.kind_image, o.kind_kubectl_bin) == (
        "K", True, "/bin/kind", "c1", "img:1", "/bin/kubectl")
    assert (o.backend, o.profile) == ("existing", "quick")
"""


def pytest_cmd(tmp_path: Path, *args: str, autoload: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("PYTEST_ADDOPTS", None)
    if autoload:
        env.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
    else:
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "args, autoload",
    [
        ((), True),  # both installed: ours blocks it
        (("-p", "no:pytest-kind-ng"), True),  # disabled explicitly
        (("-p", "pytest_kind.plugin"), True),  # pytest-kind-ng loaded before us
        (("-p", "pytest_kind.plugin", "-p", "conformance.plugin"), False),
    ],
    ids=["both-installed", "kind-disabled", "kind-first", "no-autoload-kind-first"],
)
def test_help_and_shared_options(tmp_path: Path, args: tuple[str, ...], autoload: bool) -> None:
    proc = pytest_cmd(tmp_path, *args, "--help", autoload=autoload)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for flag in SHARED + OURS:
        assert flag in proc.stdout, f"{flag} missing from pytest --help"
    (tmp_path / "test_opts.py").write_text(CHECK)
    proc = pytest_cmd(
        tmp_path,
        *args,
        "-q",
        "test_opts.py",
        "--kubeconfig",
        "K",
        "--keep-cluster",
        "--kind-bin",
        "/bin/kind",
        "--cluster-name",
        "c1",
        "--kind-image",
        "img:1",
        "--kind-kubectl-bin",
        "/bin/kubectl",
        "--backend",
        "existing",
        "--profile",
        "quick",
        autoload=autoload,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_the_kind_cluster_fixture_is_not_offered_when_we_load_first(tmp_path: Path) -> None:
    proc = pytest_cmd(tmp_path, "--fixtures")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "cluster_info" in proc.stdout and "namespace_factory" in proc.stdout
    assert not [line for line in proc.stdout.splitlines() if line.startswith("kind_cluster")]


def test_cluster_name_default_is_ours_whoever_owns_the_option() -> None:
    assert settings.cluster_name(None) == "kovc"
    assert settings.cluster_name("pytest-kind") == "kovc"  # pytest-kind-ng's default, unchanged
    assert settings.cluster_name("ci-7") == "ci-7"
    import argparse

    ns = argparse.Namespace(
        backend="kind",
        cluster_name="pytest-kind",
        keep_cluster=True,
        kube_ovn_version="v1.15.0",
        sim_faults=0.1,
        sim_webhook="off",
        k8s_version="v1.34.0",
    )
    opts = BackendOptions.from_namespace(ns, run_id="r-1")
    assert (opts.cluster_name, opts.keep_cluster, opts.kube_ovn_version) == ("kovc", True, "v1.15.0")
    assert (opts.sim.kube_ovn_version, opts.sim.faults, opts.sim.webhook) == ("v1.15.0", 0.1, "off")
    assert opts.sim.kubernetes_version == "v1.34.0"
    assert opts.kubevirt_version is None and opts.kubevirt_version_or_default == "v1.8.1"


def test_one_option_list_for_pytest_and_kovc_run() -> None:
    import argparse

    from conformance.commands import run

    parser = argparse.ArgumentParser()
    run.add_arguments(parser)
    flags = {s for a in parser._actions for s in a.option_strings}
    for opt in settings.OPTIONS:
        assert set(opt.flags) <= flags
    args = parser.parse_args(
        [
            "--requirement",
            "deny.clone",
            "--requirement",
            "allow.restart",
            "--keep-on-failure",
            "--sim-faults",
            "0.05",
            "--kube-ovn-version",
            "v1.14.2",
            "-n",
            "2",
        ]
    )
    argv = run.pytest_args(args, "r-abc", Path("/tmp/rep"))
    assert "--requirement=deny.clone" in argv and "--requirement=allow.restart" in argv
    assert (
        "--keep-on-failure" in argv and "--sim-faults=0.05" in argv and "--kube-ovn-version=v1.14.2" in argv
    )
    assert argv[argv.index("-n") + 1] == "2" and argv[argv.index("--dist") + 1] == "loadgroup"
    assert "--run-id=r-abc" in argv and "--report-dir=/tmp/rep" in argv
    assert "--alluredir=/tmp/rep/allure-results" in argv
    assert not any(a.startswith(("--backend", "--profile", "--concurrency")) for a in argv), (
        "defaults not repeated"
    )
