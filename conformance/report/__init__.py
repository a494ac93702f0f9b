"""Certification output: the report bundle a run leaves in ``--report-dir``.

``write_bundle`` renders a :class:`~conformance.results.RunResult` as report.json, report.md,
junit.xml, the session-level Allure files and a PRODUCT.yaml template, then seals the bundle with
MANIFEST.sha256. ``kovc report verify`` (``verify.py``) decides whether a bundle is certifiable,
``kovc report show`` (``show.py``) re-renders its Markdown. Diagnostics of failed requirements are
collected by ``diagnostics.collect`` while the cluster still exists. Format: docs/report-format.md.
"""

from __future__ import annotations

from pathlib import Path

from ..cluster.base import ClusterInfo
from ..results import RunResult
from . import allure_env, bundle, json_report, junit
from .markdown import SIMULATED_BANNER, render_markdown

__all__ = ["SIMULATED_BANNER", "render_markdown", "write_bundle"]


def write_bundle(run: RunResult, report_dir: Path, *, info: ClusterInfo | None) -> Path:
    """Write report.json, report.md, junit.xml, allure-results/environment.properties +
    categories.json, PRODUCT.yaml (template, prefilled with versions), then MANIFEST.sha256 over every
    file in the bundle (diagnostics and allure results included; MANIFEST itself and the vendor's
    PRODUCT.yaml excluded). Returns report_dir.

    Call it last, once allure-pytest has written everything (session-scoped fixture containers
    included): a file added to the bundle after the manifest makes ``kovc report verify`` reject it.
    """
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    json_report.write(run, report_dir / json_report.FILENAME)
    (report_dir / bundle.MARKDOWN).write_text(render_markdown(run), encoding="utf-8")
    junit.write(run, report_dir / junit.FILENAME)
    allure_env.write(run, report_dir / allure_env.DIRNAME)
    bundle.write_product(run, report_dir, info)
    bundle.write_manifest(report_dir)
    return report_dir
