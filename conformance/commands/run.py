"""``kovc run [options] [-- pytest args]``: run the conformance scenarios and exit with the verdict.

The options are the plugin's (one definition: ``conformance.settings.OPTIONS``), plus ``-n N`` for
xdist workers (with ``--dist loadgroup``, so ``exclusive`` scenarios share one worker). Bad input is
refused before anything is created: one line, exit 2. Exit codes: 0 conformant, 1 non-conformant,
2 invalid or bad input, 3 incomplete.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from .. import settings as _settings
from ..cluster.base import BackendError
from ..results import EXIT_CODES


def _workers(value: str) -> str:
    if value in ("auto", "logical"):
        return value
    try:
        if int(value) >= 0:
            return value
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"expected a number of workers or 'auto', got {value!r}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _settings.add_arguments(parser)
    parser.add_argument("-n", "--numprocesses", dest="numprocesses", type=_workers, metavar="N",
                        help="run the scenarios in N pytest-xdist workers ('auto': one per CPU)")


def _default_kubeconfig() -> str | None:
    env = os.environ.get("KUBECONFIG", "")
    if env:
        return env.split(os.pathsep)[0]
    path = Path("~/.kube/config").expanduser()
    return str(path) if path.exists() else None


def validate(args: argparse.Namespace) -> None:
    """Refuse bad input before anything is created (raises BackendError with one line)."""
    from ..cluster.select import check_kubeconfig, check_reachable

    if args.backend == "existing":
        args.kubeconfig = args.kubeconfig or _default_kubeconfig()
        if not args.kubeconfig:
            raise BackendError("--backend existing needs --kubeconfig (or $KUBECONFIG)")
        if not args.plan:
            check_reachable(args.kubeconfig, args.context)
        else:
            check_kubeconfig(args.kubeconfig, args.context)
    elif args.backend == "envtest" and not args.plan:
        from ..envtest.assets import AssetError
        from ..envtest.controlplane import Binaries

        try:
            Binaries.find(Path(args.assets).expanduser() if getattr(args, "assets", None) else None,
                          getattr(args, "k8s_version", None))
        except AssetError as err:
            raise BackendError(f"envtest: {err}") from None
    elif args.backend == "sim" and args.kubeconfig:
        check_kubeconfig(args.kubeconfig, args.context)
        print("kovc: note: --kubeconfig is not used by --backend sim (the simulated cluster writes its own)",
              file=sys.stderr)
    from ..cluster.select import sim_config_from_namespace

    try:
        sim_config_from_namespace(args)
    except ValueError as err:  # VersionError, SimOptionError
        raise BackendError(str(err)) from None


def pytest_args(args: argparse.Namespace, run_id: str, report_dir: Path) -> list[str]:
    """The pytest command line equivalent to ``args``."""
    from .._data import scenarios_dir

    out = [str(scenarios_dir())]
    for opt in _settings.OPTIONS:
        value = getattr(args, opt.dest, None)
        flag = opt.flags[0]
        if opt.dest in ("run_id", "report_dir"):
            continue
        if opt.action == "store_true":
            if value:
                out.append(flag)
        elif opt.action == "append":
            for item in value or []:
                out.append(f"{flag}={item}")
        elif value is not None and value != opt.default:
            out.append(f"{flag}={value}")
    out += [f"--run-id={run_id}", f"--report-dir={report_dir}",
            f"--alluredir={report_dir / 'allure-results'}"]
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        out += ["-p", "conformance.plugin", "-p", "allure_pytest.plugin"]
        if args.numprocesses:
            out += ["-p", "xdist.plugin"]
    if args.numprocesses and args.numprocesses != "0":
        out += ["-n", str(args.numprocesses), "--dist", "loadgroup"]
    out += list(getattr(args, "pytest_args", None) or [])
    return out


def run(args: argparse.Namespace) -> int:
    from ..cluster.select import BackendOptions, make_backend

    try:
        validate(args)
    except BackendError as err:
        print(f"kovc: {err}", file=sys.stderr)
        return 2
    run_id = args.run_id or _settings.new_run_id()
    report_dir = Path(args.report_dir or _settings.default_report_dir()).absolute()
    if args.plan:
        try:
            options = BackendOptions.from_namespace(args, run_id=run_id, report_dir=report_dir)
            steps = make_backend(args.backend, options).plan()
        except BackendError as err:
            print(f"kovc: {err}", file=sys.stderr)
            return 2
        for step in steps:
            print(step)
        return 0
    try:
        argv = pytest_args(args, run_id, report_dir)
    except FileNotFoundError as err:
        print(f"kovc: {err}", file=sys.stderr)
        return 2
    return _run_pytest(argv, report_dir)


def _run_pytest(argv: list[str], report_dir: Path) -> int:
    import pytest

    from .. import plugin

    plugin.last_session = None
    code = pytest.main(argv)
    outcome: Any = plugin.last_session
    plugin.last_session = None
    sys.stdout.flush()
    if outcome is None:
        print(f"kovc: no conformance scenario ran (pytest exit code {int(code)})", file=sys.stderr)
        return 2
    if outcome.provision_error:
        print(f"kovc: {outcome.provision_error}", file=sys.stderr)
        return 2
    if outcome.error or outcome.result is None:
        print(f"kovc: {outcome.error or 'no verdict'} (pytest exit code {int(code)})", file=sys.stderr)
        return 2
    from ..report import render_markdown

    print()
    print(render_markdown(outcome.result, short=True), end="")
    print(f"report: {report_dir}")
    return EXIT_CODES[outcome.result.verdict]
