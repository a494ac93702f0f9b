"""``kovc``: the command-line entry point. Each sub-command lives in its own module and exposes
``add_arguments(parser)`` and ``run(args) -> int``; this file only dispatches.

Bad input anywhere (unknown version, broken kubeconfig, unreachable API, malformed IP) ends with one
line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol

from . import _bytecode
from ._version import __version__


class UsageError(Exception):
    """Bad input: the message is printed as one line and the exit code is 2."""


class _Command(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


#: (words, module, help). Modules are imported lazily so ``kovc list`` needs no cluster libraries.
COMMANDS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("run",), "conformance.commands.run", "run the conformance suite and print the verdict"),
    (("list",), "conformance.commands.catalog", "print the requirement catalog"),
    (("cleanup",), "conformance.commands.cleanup", "delete what a killed run left behind"),
    (("images",), "conformance.commands.images", "print every image a run needs"),
    (("sim", "serve"), "conformance.sim.serve", "serve a simulated cluster (TLS + token) until interrupted"),
    (("sim", "attach"), "conformance.sim.attach",
     "run the simulated controllers against a kube-apiserver and serve their webhooks and aggregated API"),
    (("report", "verify"), "conformance.report.verify", "check that a report bundle is certifiable"),
    (("report", "show"), "conformance.report.show", "re-render a report's Markdown summary"),
    (("upgrade", "prepare"), "conformance.commands.upgrade", "create and record VMs before upgrading Kube-OVN"),
    (("upgrade", "verify"), "conformance.commands.upgrade", "check the recorded VMs after the upgrade"),
    (("assets", "build"), "conformance.commands.assets",
     "build kube-apiserver, etcd and Kube-OVN's webhook from Go modules"),
    (("assets", "list"), "conformance.commands.assets", "list the built assets with versions and sha256"),
    (("envtest", "serve"), "conformance.envtest.serve", "run a real control plane on loopback until interrupted"),
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def _chosen(argv: Sequence[str] | None) -> str | None:
    """The module of the command ``argv`` names (None: no command, or an unknown one)."""
    if argv is None:
        return None
    words = [a for a in argv if not a.startswith("-")]
    for cmd_words, module, _help in COMMANDS:
        if tuple(words[:len(cmd_words)]) == cmd_words:
            return module
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole command tree. Only the chosen command's module is imported (for its arguments) when
    ``argv`` is given, so ``kovc list`` never imports the cluster libraries and ``kovc run`` never
    imports the report verifier; without ``argv`` every command module is imported."""
    chosen = _chosen(argv)
    parser = _Parser(prog="kovc", description="Kube-OVN x KubeVirt static-IP conformance suite")
    parser.add_argument("--version", action="version", version=f"kovc {__version__}")
    top = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    groups: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]] = {}
    for words, module, help_text in COMMANDS:
        if len(words) == 1:
            sub: argparse.ArgumentParser = top.add_parser(words[0], help=help_text)
        else:
            if words[0] not in groups:
                grp = top.add_parser(words[0], help=f"{words[0]} commands")
                groups[words[0]] = grp.add_subparsers(dest=f"{words[0]}_command", metavar="COMMAND",
                                                      parser_class=_Parser)
            sub = groups[words[0]].add_parser(words[1], help=help_text)
        sub.set_defaults(_module=module)
        if argv is None or module == chosen:
            mod: _Command = importlib.import_module(module)  # type: ignore[assignment]
            mod.add_arguments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _bytecode.configure()  # before the command's imports: byte code to kovc's cache, never beside the sources
    try:
        # ``kovc run [options] [-- pytest args]``: everything after ``--`` goes to pytest untouched.
        extra: list[str] = []
        if "--" in argv:
            cut = argv.index("--")
            argv, extra = argv[:cut], argv[cut + 1:]
        parser = build_parser(argv)
        args = parser.parse_args(argv)
        args.pytest_args = extra
        module = getattr(args, "_module", None)
        if module is None:
            parser.print_help()
            return 2
        cmd: _Command = importlib.import_module(module)  # type: ignore[assignment]
        return cmd.run(args)
    except UsageError as err:
        print(f"kovc: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kovc: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
