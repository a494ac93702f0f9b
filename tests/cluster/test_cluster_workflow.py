"""``.github/workflows/conformance.yml``: the kind matrix and the offline job, kept in step with the
version table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from conformance import versions

ROOT = Path(__file__).resolve().parents[2]


def workflow() -> dict[str, Any]:
    doc = yaml.safe_load((ROOT / ".github" / "workflows" / "conformance.yml").read_text())
    assert isinstance(doc, dict)
    return doc


def run_lines(job: dict[str, Any]) -> str:
    return "\n".join(str(step.get("run", "")) for step in job["steps"])


def test_matrix_rows() -> None:
    rows = workflow()["jobs"]["kind"]["strategy"]["matrix"]["include"]
    by_name = {r["row"]: r for r in rows}
    assert len(rows) == 3
    default = by_name["default"]
    assert (default["kube-ovn"], default["kubevirt"], default["k8s"], default["expect"]) == (
        versions.KUBE_OVN_VERSION, versions.KUBEVIRT_VERSION, versions.K8S_VERSION, 0)
    bad = [r for r in rows if r["kube-ovn"] == "v1.14.2"]
    assert len(bad) == 1 and bad[0]["expect"] == 1
    assert versions.kube_ovn_release("v1.14.2").webhook_policy == "reverse-containment"
    older = [r for r in rows if r is not default and r["expect"] == 0]
    assert len(older) == 1
    assert versions.parse(older[0]["kube-ovn"]) < versions.parse(versions.KUBE_OVN_VERSION)
    assert versions.parse(older[0]["k8s"]) < versions.parse(versions.K8S_VERSION)
    assert versions.kube_ovn_release(older[0]["kube-ovn"]).webhook_policy == "owner-equality"
    for row in rows:
        release = versions.kube_ovn_release(row["kube-ovn"])
        versions.check_kubevirt_version(row["kubevirt"])
        versions.check_kubernetes_version(row["k8s"])
        if row is not default:  # the KubeVirt the Kube-OVN tag's own CI pins
            assert row["kubevirt"] == release.kubevirt_ci_version, row
        # kind paired with the row's node image (a kind release names it, or upstream CI uses it)
        assert row["kind"] == versions.kind_release_for(row["k8s"])[0], row
    assert by_name["default"]["kind"] == versions.KIND_MIN_VERSION
    # v1.14.2 installs as its own CI did (install.sh; its chart v2 2.0.0 never ran in that CI)
    assert versions.kube_ovn_release("v1.14.2").install_method == "install.sh"


def test_kind_job_runs_tox_kind_with_kvm_and_uploads_the_report() -> None:
    doc = workflow()
    job = doc["jobs"]["kind"]
    assert job["runs-on"].startswith("ubuntu")
    assert "KIND_VERSION" not in doc["env"], "the kind release is per row"
    assert job["env"]["KIND_VERSION"] == "${{ matrix.kind }}"
    text = run_lines(job)
    assert "99-kvm4all.rules" in text and "udevadm trigger --name-match=kvm" in text
    assert "tox -e kind -- --kube-ovn-version" in text and "--kubevirt-version" in text
    assert "--k8s-version" in text and 'test "${rc}" -eq "${{ matrix.expect }}"' in text
    assert "kind version" in text
    upload = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    assert len(upload) == 1 and upload[0]["if"] == "always()"
    assert upload[0]["with"]["path"] == "${{ env.KOVC_REPORT_DIR }}"
    assert "KOVC_REPORT_DIR" in job["env"]
    uses = {str(s.get("uses", "")).split("@")[0] for s in job["steps"]}
    assert {"azure/setup-helm", "azure/setup-kubectl"} <= uses
    kubectl = [s for s in job["steps"] if str(s.get("uses", "")).startswith("azure/setup-kubectl")]
    assert kubectl[0]["with"]["version"] == "${{ matrix.k8s }}", "kubectl within one minor of the row"


def test_offline_job_runs_tox() -> None:
    job = workflow()["jobs"]["offline"]
    assert any(str(s.get("run", "")).strip() == "tox" for s in job["steps"])


def test_tox_has_the_kind_env_the_workflow_calls() -> None:
    tox = (ROOT / "tox.ini").read_text()
    assert "[testenv:kind]" in tox and "kovc run --backend kind" in tox and "KOVC_REPORT_DIR" in tox
