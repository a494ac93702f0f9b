"""The audit log: every mutating request (successful, dry-run, denied, failed) with its user agent,
in memory and as JSON lines in ``config.audit_log``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from conformance.sim.cluster import SimCluster
from conformance.sim.resources import CONFIGMAPS, NAMESPACES
from conformance.sim.store import AdmissionRequest, ApiError


def deny_named_bad(req: AdmissionRequest) -> None:
    if req.rt.key == CONFIGMAPS.key and req.name == "bad":
        raise ApiError(400, "BadRequest", 'admission webhook "test.kovc.io" denied the request: bad name')


def test_audit_log_file_records_every_mutating_request(
    api_only_cluster: Callable[..., SimCluster], tmp_path: Path
) -> None:
    log_file = tmp_path / "audit.jsonl"
    sim = api_only_cluster(audit_log=str(log_file))

    def setup(store: object) -> None:
        assert hasattr(store, "validators")
        store.validators.append(deny_named_bad)
        store.create(NAMESPACES, {"metadata": {"name": "a"}}, user_agent="kovc-tests/setup")

    sim.call(setup)
    api = k8s_config.new_client_from_config(str(sim.write_kubeconfig(tmp_path / "kc")))
    api.user_agent = "kovc/9.9.9 (audit test)"
    core = k8s.CoreV1Api(api)
    core.create_namespaced_config_map("a", {"metadata": {"name": "good"}})
    core.patch_namespaced_config_map("good", "a", {"data": {"x": "1"}})
    core.create_namespaced_config_map("a", {"metadata": {"name": "dry"}}, dry_run="All")
    with pytest.raises(ApiException):
        core.create_namespaced_config_map("a", {"metadata": {"name": "bad"}})
    with pytest.raises(ApiException):
        core.delete_namespaced_config_map("missing", "a")
    core.read_namespaced_config_map("good", "a")  # reads are not audited
    core.delete_namespaced_config_map("good", "a")
    api.close()

    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert sim.audit()[: len(lines)] == lines, "the file mirrors the in-memory audit log"
    mine = [
        (e["verb"], e["name"], e["code"], e["dryRun"])
        for e in lines
        if e["userAgent"] == "kovc/9.9.9 (audit test)"
    ]
    assert mine == [
        ("create", "good", 201, False),
        ("patch", "good", 200, False),
        ("create", "dry", 201, True),
        ("create", "bad", 400, False),
        ("delete", "missing", 404, False),
        ("delete", "good", 200, False),
    ], mine
    first = next(e for e in lines if e["name"] == "good")
    assert first["path"].startswith("/api/v1/namespaces/a/configmaps") and first["resource"] == "configmaps"
    assert first["namespace"] == "a" and first["time"].endswith("Z")
    setup_entries = [e for e in lines if e["userAgent"] == "kovc-tests/setup"]
    assert [(e["verb"], e["resource"], e["name"]) for e in setup_entries] == [("create", "namespaces", "a")]
