"""``kovc sim serve --record-requests`` (``SimConfig.record_requests``): every request with its body and
answer, what the differential check against kube-apiserver replays (conformance/envtest/apidiff.py)."""

from __future__ import annotations

import json
from pathlib import Path

from conformance.envtest import apidiff
from conformance.sim.cluster import SimCluster
from conformance.sim.config import SimConfig


def test_requests_are_recorded_with_body_and_answer_and_replay_as_cases(tmp_path: Path) -> None:
    recording = tmp_path / "requests.jsonl"
    with SimCluster(SimConfig(record_requests=str(recording)), world=False) as sim:
        body = json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "rec"}})
        for method, path, data in (("POST", "/api/v1/namespaces", body), ("GET", "/api/v1/namespaces/rec", None),
                                   ("GET", "/api/v1/namespaces/nope", None)):
            conn = sim.http_connection(timeout=10)
            headers = {**sim.auth_headers, "User-Agent": "kovc/test", "Content-Type": "application/json"}
            conn.request(method, path, body=data, headers=headers)
            conn.getresponse().read()
            conn.close()
    entries = apidiff.load_recording(recording)
    assert [(e["method"], e["path"], e["code"]) for e in entries] == [
        ("POST", "/api/v1/namespaces", 201), ("GET", "/api/v1/namespaces/rec", 200),
        ("GET", "/api/v1/namespaces/nope", 404)]
    created = entries[0]
    assert json.loads(created["body"])["metadata"]["name"] == "rec" and created["uid"] and created["resourceVersion"]
    assert entries[2]["reason"] == "NotFound"
    cases, skipped = apidiff.recorded_cases(entries)
    assert not skipped and [c.method for c in cases] == ["POST", "GET", "GET"]
    assert cases[0].save == {"uid0": "metadata.uid", "rv0": "metadata.resourceVersion"}
