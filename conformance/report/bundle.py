"""The report bundle on disk: which files it holds, PRODUCT.yaml and MANIFEST.sha256.

MANIFEST.sha256 uses ``sha256sum`` format (``<hex>  <relative path>``, so ``sha256sum -c`` checks it
from inside the bundle) and covers every file of the bundle except itself and PRODUCT.yaml, the
vendor's form, which is meant to be edited after the run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..cluster.base import ClusterInfo
from ..results import RunResult
from . import allure_env, json_report, junit

MANIFEST = "MANIFEST.sha256"
PRODUCT = "PRODUCT.yaml"
MARKDOWN = "report.md"
DIAGNOSTICS = "diagnostics"
#: Files a certifiable bundle must contain.
REQUIRED: tuple[str, ...] = (
    json_report.FILENAME, MARKDOWN, junit.FILENAME, MANIFEST,
    f"{allure_env.DIRNAME}/{allure_env.ENVIRONMENT}",
)
#: Files the manifest does not cover.
UNHASHED = frozenset({MANIFEST, PRODUCT})

PRODUCT_TEMPLATE = Path(__file__).resolve().parent.parent / "data" / PRODUCT


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def bundle_files(report_dir: Path) -> list[str]:
    """Relative POSIX paths of every file in the bundle the manifest covers, sorted."""
    out: list[str] = []
    for root, dirs, files in os.walk(report_dir):
        dirs.sort()
        for name in files:
            rel = (Path(root) / name).relative_to(report_dir).as_posix()
            if rel not in UNHASHED:
                out.append(rel)
    return sorted(out)


def _escape_name(name: str) -> tuple[str, str]:
    """sha256sum's escaping of names holding a backslash or a newline: (prefix, escaped name)."""
    if "\\" in name or "\n" in name or "\r" in name:
        return "\\", name.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    return "", name


def _unescape_name(name: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r"}.get(m.group(1), m.group(1)), name)


def write_manifest(report_dir: Path) -> Path:
    lines = []
    for rel in bundle_files(report_dir):
        prefix, name = _escape_name(rel)
        lines.append(f"{prefix}{sha256_file(report_dir / rel)}  {name}\n")
    path = report_dir / MANIFEST
    path.write_text("".join(lines), encoding="utf-8")
    return path


_LINE = re.compile(r"^(\\?)([0-9a-f]{64}) [ *](.+)$")


def read_manifest(path: Path) -> dict[str, str]:
    """relative path → sha256 from a MANIFEST.sha256; ValueError naming the first bad line."""
    out: dict[str, str] = {}
    text = path.read_text(encoding="utf-8")
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        m = _LINE.match(line)
        if not m:
            raise ValueError(f"{path.name} line {number} is not '<sha256>  <path>': {line[:80]!r}")
        name = _unescape_name(m.group(3)) if m.group(1) else m.group(3)
        if name in out:
            raise ValueError(f"{path.name} line {number} lists {name!r} twice")
        out[name] = m.group(2)
    return out


@dataclass
class ManifestCheck:
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)
    #: Listed paths that escape the bundle (absolute, ``..``) or name the manifest itself.
    invalid: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.changed or self.missing or self.unlisted or self.invalid)


def check_manifest(report_dir: Path, listed: dict[str, str]) -> ManifestCheck:
    result = ManifestCheck()
    for rel, digest in sorted(listed.items()):
        parts = Path(rel).parts
        if rel.startswith("/") or ".." in parts or rel in UNHASHED or not parts:
            result.invalid.append(rel)
            continue
        path = report_dir / rel
        if not path.is_file():
            result.missing.append(rel)
        elif sha256_file(path) != digest:
            result.changed.append(rel)
    result.unlisted = [rel for rel in bundle_files(report_dir) if rel not in listed]
    return result


def _cluster_type(run: RunResult, info: ClusterInfo | None) -> str:
    if run.simulated or (info is not None and info.simulated):
        return "simulated"
    return info.backend if info is not None else run.backend


def render_product(run: RunResult, info: ClusterInfo | None) -> str:
    """PRODUCT.yaml from the template, with what the run knows filled in."""
    versions = dict(run.versions)
    if info is not None:
        for key, value in vars(info.versions).items():
            if not versions.get(key) and value:
                versions[key] = value
    known = {
        "kube_ovn_version": versions.get("kube_ovn_controller") or "",
        "kubevirt_version": versions.get("kubevirt") or "",
        "kubernetes_version": versions.get("kubernetes") or "",
        "cluster_type": _cluster_type(run, info),
        "run_id": run.run_id,
        "suite_version": run.suite_version,
    }
    out = []
    for line in PRODUCT_TEMPLATE.read_text(encoding="utf-8").splitlines():
        m = re.match(r'^([a-z_]+): ""\s*$', line)
        if m and known.get(m.group(1)):
            # A JSON string is a valid YAML double-quoted scalar.
            line = f"{m.group(1)}: {json.dumps(known[m.group(1)])}"
        out.append(line)
    return "\n".join(out) + "\n"


def write_product(run: RunResult, report_dir: Path, info: ClusterInfo | None) -> Path:
    path = report_dir / PRODUCT
    path.write_text(render_product(run, info), encoding="utf-8")
    return path
