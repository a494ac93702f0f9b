"""``kovc report show [--short] DIR``: re-render a bundle's Markdown summary from its report.json."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import json_report
from .markdown import render_markdown


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Print the Markdown summary of a report bundle, rendered from its report.json."
    parser.add_argument("--short", action="store_true",
                        help="only the verdict line, the failed and skipped IDs and the counts")
    parser.add_argument("report_dir", metavar="DIR", type=Path,
                        help="the run's --report-dir (or the report.json itself)")


def run(args: argparse.Namespace) -> int:
    path: Path = args.report_dir
    if not path.exists():
        print(f"kovc: report show: {path}: no such file or directory", file=sys.stderr)
        return 2
    try:
        result = json_report.load(path)
    except json_report.ReportError as err:
        print(f"kovc: report show: {err}", file=sys.stderr)
        return 2
    sys.stdout.write(render_markdown(result, short=args.short))
    return 0
