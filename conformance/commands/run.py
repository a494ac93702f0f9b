"""``kovc run [options] [-- pytest args]``: run the conformance scenarios and exit with the verdict.

The options are the plugin's (one definition: ``conformance.settings.OPTIONS``), plus ``-n N`` for
xdist workers (with ``--dist loadgroup``, so ``exclusive`` scenarios share one worker). Bad input is
refused before anything is created: one line, exit 2. Exit codes: 0 conformant, 1 non-conformant,
2 invalid or bad input (an unusable ``--report-dir`` included), 3 incomplete (a MUST of the profile did
not run, or the run was stopped by SIGINT, SIGTERM or SIGHUP: scenarios stop, diagnostics and the
bundle are written and everything labelled with the run is deleted first).

The run id and the ``kovc cleanup`` command for it are printed before anything starts. The run writes
nothing into the source tree (no ``.pytest_cache``; byte code goes to ``~/.cache/kovc/pycache``, see
``conformance._bytecode``) and nothing that outlives it in
``$TMPDIR`` (pytest's base temp is a private directory deleted at the end, unless ``--keep-cluster``
keeps a simulated cluster serving from it).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import sys
import tempfile
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


EPILOG = """\
exit codes:
  0  conformant: every MUST and SHOULD the profile selected passed
  1  non-conformant: a selected MUST or SHOULD failed
  2  invalid: a precondition env.* failed, or bad input (one line, nothing created) -- unknown
     version, broken kubeconfig, unreachable API, unusable --report-dir
  3  incomplete: a MUST of the profile did not run, or the run was stopped by a signal

signals:
  SIGINT (Ctrl-C), SIGTERM and SIGHUP (what CI cancellations and timeouts send) stop the scenarios;
  diagnostics and the report bundle are still written, everything labelled with the run is deleted,
  and the exit code is 3. A second SIGTERM/SIGHUP during that cleanup is ignored.

report directory:
  a missing or empty --report-dir is used; one holding a previous kovc bundle has that bundle moved
  aside whole to <DIR>.previous (replacing an older <DIR>.previous bundle); anything else there, a
  file, or an unwritable path is refused with exit 2 before anything starts.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
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
    from ..cluster.select import check_network_options, sim_config_from_namespace

    check_network_options(args.backend, args)

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
            f"--alluredir={report_dir / 'allure-results'}",
            # nothing in the source tree: no .pytest_cache next to the scenarios
            "-p", "no:cacheprovider"]
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
    from ..report.reportdir import ReportDirError, prepare

    try:
        note = prepare(report_dir, run_id)
    except ReportDirError as err:
        print(f"kovc: {err}", file=sys.stderr)
        return 2
    print(start_line(args, run_id), flush=True)
    if note:
        print(f"kovc: {note}", flush=True)
    return _run_pytest(argv, report_dir, keep_temp=bool(args.keep_cluster))


def cleanup_command(args: argparse.Namespace, run_id: str) -> str:
    """The exact ``kovc cleanup`` command for this run's cluster."""
    words = ["kovc", "cleanup", "--run-id", run_id]
    if args.backend == "existing" and args.kubeconfig:
        words += ["--kubeconfig", str(Path(args.kubeconfig).absolute())]
        if args.context:
            words += ["--context", args.context]
    elif args.backend == "kind" and args.kubeconfig:
        words += ["--kubeconfig", str(Path(args.kubeconfig).absolute())]
    return shlex.join(words)


def start_line(args: argparse.Namespace, run_id: str) -> str:
    """Printed before anything starts, so a run killed at any point can still be cleaned up."""
    line = f"kovc: run {run_id}; if it is killed, delete what it left with: {cleanup_command(args, run_id)}"
    if args.backend == "sim":
        line += " (the simulated cluster itself stops with the run)"
    return line


def _run_pytest(argv: list[str], report_dir: Path, *, keep_temp: bool = False) -> int:
    import pytest

    from .. import plugin

    # Nothing in the source tree: byte code goes to kovc's own cache (``cli.main`` chose it; xdist workers
    # and the simulated cluster inherit the environment; see conformance._bytecode), and nothing left in
    # $TMPDIR: pytest's base temp is a private directory removed at the end.
    temp = Path(tempfile.mkdtemp(prefix="kovc-run-"))
    argv = [argv[0], f"--basetemp={temp / 'pytest'}", *argv[1:]]
    plugin.last_session = None
    try:
        code = pytest.main(argv)
    finally:
        if keep_temp:
            print(f"kovc: --keep-cluster: the cluster's work directory {temp} is kept", file=sys.stderr)
        else:
            with contextlib.suppress(OSError):
                shutil.rmtree(temp)
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
    if outcome.stopped_by:
        print(f"kovc: stopped by {outcome.stopped_by}: scenarios stopped, diagnostics and the report written, "
              f"the run's objects deleted; the run is incomplete (exit {EXIT_CODES['incomplete']})")
        return EXIT_CODES["incomplete"]
    return EXIT_CODES[outcome.result.verdict]
