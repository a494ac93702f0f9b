"""write_bundle: every file of the bundle, sealed by MANIFEST.sha256; PRODUCT.yaml prefilled."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from conformance.report import bundle

MakeBundle = Callable[..., Path]


def test_bundle_holds_every_file(make_bundle: MakeBundle) -> None:
    out = make_bundle("failing-sim")
    for name in ("report.json", "report.md", "junit.xml", "MANIFEST.sha256", "PRODUCT.yaml",
                 "allure-results/environment.properties", "allure-results/categories.json",
                 "diagnostics/allow.restart/index.txt"):
        assert (out / name).is_file(), name


def test_manifest_covers_every_file_but_itself_and_product(make_bundle: MakeBundle) -> None:
    out = make_bundle("failing-sim")
    listed = bundle.read_manifest(out / "MANIFEST.sha256")
    on_disk = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert sorted(listed) == [p for p in on_disk if p not in ("MANIFEST.sha256", "PRODUCT.yaml")]
    assert "allure-results/0f1e2d3c-result.json" in listed
    assert "diagnostics/allow.restart/index.txt" in listed
    for rel, digest in listed.items():
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == digest
    lines = (out / "MANIFEST.sha256").read_text().splitlines()
    assert all(len(line.split("  ", 1)[0]) == 64 for line in lines)


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="coreutils sha256sum is not installed")
def test_manifest_checks_with_sha256sum(make_bundle: MakeBundle) -> None:
    out = make_bundle("passing-sim")
    proc = subprocess.run(["sha256sum", "--check", "--strict", "MANIFEST.sha256"], cwd=out,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (out / "report.md").write_text("tampered\n")
    proc = subprocess.run(["sha256sum", "--check", "--quiet", "MANIFEST.sha256"], cwd=out,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 1 and "report.md: FAILED" in proc.stdout


def test_manifest_escapes_odd_names(tmp_path: Path) -> None:
    (tmp_path / "a\\b").write_text("x")
    (tmp_path / "plain").write_text("y")
    bundle.write_manifest(tmp_path)
    listed = bundle.read_manifest(tmp_path / "MANIFEST.sha256")
    assert set(listed) == {"a\\b", "plain"}
    assert bundle.check_manifest(tmp_path, listed).ok


def test_product_yaml_is_prefilled(make_bundle: MakeBundle) -> None:
    out = make_bundle("failing-sim")
    product = yaml.safe_load((out / "PRODUCT.yaml").read_text())
    assert product["kube_ovn_version"] == "v1.14.2"
    assert product["kubevirt_version"] == "v1.5.2"
    assert product["kubernetes_version"] == "v1.35.1"
    assert product["cluster_type"] == "simulated"
    assert product["run_id"] == "r1a2b3"
    for key in ("vendor", "name", "version", "website_url", "contact_email", "description"):
        assert product[key] == "", key
    real = yaml.safe_load((make_bundle("real-passing") / "PRODUCT.yaml").read_text())
    assert real["cluster_type"] == "existing"


def test_rewriting_a_bundle_reseals_it(make_bundle: MakeBundle) -> None:
    from conformance.report import write_bundle
    from conformance.report.verify import verify_bundle

    out = make_bundle("real-passing")
    (out / "allure-results" / "late-container.json").write_text("{}\n")
    assert not verify_bundle(out).certifiable
    from conformance.report.json_report import load

    write_bundle(load(out), out, info=None)
    assert verify_bundle(out).certifiable
