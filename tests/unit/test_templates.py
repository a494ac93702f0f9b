from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from conformance import RUN_LABEL, templates, versions
from conformance.verbs import ProbeResult, parse_ping_log

REFERENCE = Path(__file__).resolve().parents[2] / ".." / "shared" / "reference"
OPENAPI = REFERENCE / "kubevirt-openapi.json"


def _definitions() -> dict[str, Any]:
    if not OPENAPI.exists():
        pytest.skip(f"KubeVirt OpenAPI reference not found at {OPENAPI} (../shared/reference is absent)")
    return dict(json.loads(OPENAPI.read_text())["definitions"])


def _unknown_fields(obj: Any, schema: dict[str, Any], defs: dict[str, Any], path: str) -> list[str]:
    """Keys the schema does not declare (the schema allows them silently; the API server would prune
    or reject them)."""
    while "$ref" in schema:
        schema = defs[schema["$ref"].split("/")[-1]]
    out: list[str] = []
    if isinstance(obj, dict) and "properties" in schema:
        for key, value in obj.items():
            if key not in schema["properties"]:
                out.append(f"{path}.{key}")
            else:
                out.extend(_unknown_fields(value, schema["properties"][key], defs, f"{path}.{key}"))
    elif isinstance(obj, list) and "items" in schema:
        for i, item in enumerate(obj):
            out.extend(_unknown_fields(item, schema["items"], defs, f"{path}[{i}]"))
    return out


def test_vm_validates_against_kubevirt_openapi() -> None:
    defs = _definitions()
    vm = templates.render_vm(name="h-abc", namespace="ns", ip="10.16.0.9", subnet="ovn-default", run_id="r-1")
    schema = {"definitions": defs, "$ref": "#/definitions/v1.VirtualMachine"}
    jsonschema.Draft4Validator(schema).validate(vm)
    assert _unknown_fields(vm, defs["v1.VirtualMachine"], defs, "vm") == []


def test_vm_schema_rejects_a_broken_vm() -> None:
    defs = _definitions()
    vm = templates.render_vm(name="h-abc", namespace="ns", ip="10.16.0.9", subnet="ovn-default", run_id="r-1")
    vm["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"] = "bridge"
    with pytest.raises(jsonschema.ValidationError):
        schema = {"definitions": defs, "$ref": "#/definitions/v1.VirtualMachine"}
        jsonschema.Draft4Validator(schema).validate(vm)


def test_vm_carries_what_the_spec_requires() -> None:
    vm = templates.render_vm(name="h-abc", namespace="ns", ip="10.16.0.9", subnet="sub", run_id="r-1",
                             kubevirt_version="v1.5.2")
    tmpl = vm["spec"]["template"]
    anns = tmpl["metadata"]["annotations"]
    assert anns[templates.IP_ANNOTATION] == "10.16.0.9" and anns[templates.SWITCH_ANNOTATION] == "sub"
    assert anns[templates.BRIDGE_MIGRATION_ANNOTATION] == "true"
    assert vm["metadata"]["labels"][RUN_LABEL] == "r-1" == tmpl["metadata"]["labels"][RUN_LABEL]
    assert vm["spec"]["runStrategy"] == "Always"
    assert tmpl["spec"]["terminationGracePeriodSeconds"] == 0
    assert tmpl["spec"]["domain"]["resources"]["requests"]["memory"] == "128Mi"
    assert tmpl["spec"]["domain"]["devices"]["interfaces"] == [{"name": "default", "bridge": {}}]
    images = [v["containerDisk"]["image"] for v in tmpl["spec"]["volumes"] if "containerDisk" in v]
    assert images == [versions.cirros_image("v1.5.2")]
    assert any("cloudInitNoCloud" in v and v["cloudInitNoCloud"]["userData"] for v in tmpl["spec"]["volumes"])
    unbound = templates.render_vm(name="h", namespace="ns", ip="10.16.0.9", subnet=None, run_id="r-1")
    assert templates.SWITCH_ANNOTATION not in unbound["spec"]["template"]["metadata"]["annotations"]


def test_probe_annotations_drive_the_command() -> None:
    pod = templates.render_probe(name="probe-x", namespace="ns", target="10.16.0.9", run_id="r-1",
                                 interval_ms=200, count=15, node_name="n3")
    anns = pod["metadata"]["annotations"]
    assert anns[templates.PROBE_TARGET] == "10.16.0.9"
    assert anns[templates.PROBE_INTERVAL] == "200" and anns[templates.PROBE_COUNT] == "15"
    assert pod["metadata"]["labels"][templates.PROBE_LABEL] == "true"
    assert pod["spec"]["nodeName"] == "n3"
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in pod["spec"]["containers"][0]["env"]}
    assert env["TARGET"] == "metadata.annotations['kovc.io/probe-target']"
    with pytest.raises(ValueError):
        templates.render_probe(name="p", namespace="ns", target="1.2.3.4", run_id="r", count=0)


def test_ping_log_gap() -> None:
    log = "\n".join(f"64 bytes from 10.16.0.9: seq={i} ttl=64 time=0.3 ms" for i in (0, 1, 2, 6, 7, 9))
    log += "\n64 bytes from 10.16.0.99: seq=3 ttl=64 time=0.3 ms\n"
    replies = parse_ping_log(log, "10.16.0.9")
    assert replies == [0, 1, 2, 6, 7, 9]
    res = ProbeResult(target="10.16.0.9", sent=10, replies=replies, interval_ms=200, log=log)
    assert res.longest_gap_s() == pytest.approx(0.8)  # seq 2 -> 6
    assert ProbeResult("x", 5, [], 200, "").longest_gap_s() == float("inf")
    sim_log = ("2026-11-27T10:00:00.1Z reply from 10.16.0.9 seq=1\n"
               "2026-11-27T10:00:00.2Z no reply from 10.16.0.9 seq=2\n"
               "2026-11-27T10:00:00.3Z reply from 10.16.0.9 seq=3\n"
               "--- 10.16.0.9 probe statistics: 3 transmitted, 2 received\n")
    assert parse_ping_log(sim_log, "10.16.0.9") == [1, 3]
    assert parse_ping_log("64 bytes from fd00::9: seq=4 ttl=64 time=1 ms", "fd00::9") == [4]
    assert ProbeResult("x", 10, [0, 1], 200, "").longest_gap_s() == pytest.approx(1.8)  # trailing loss


def test_pod_and_network_objects() -> None:
    pod = templates.render_pod(name="c-1", namespace="ns", ip="10.16.0.9", subnet="ovn-default", run_id="r",
                               owner_references=[{"kind": "VirtualMachineInstance", "name": "h", "uid": "u"}])
    assert pod["metadata"]["ownerReferences"][0]["uid"] == "u"
    sub = templates.render_subnet(name="s", run_id="r", cidr="10.16.5.0/28", gateway="10.16.5.1", vpc="v",
                                  namespaces=["a"])
    assert sub["spec"]["excludeIps"] == ["10.16.5.1"] and sub["spec"]["namespaces"] == ["a"]
    assert templates.render_vpc(name="v", run_id="r", namespaces=["a"])["spec"]["namespaces"] == ["a"]


def test_attachment_nad_is_upstreams_ovn_attachment() -> None:
    """The run-owned NetworkAttachmentDefinition: upstream e2e's MakeOVNNetworkAttachmentDefinition config
    (cniVersion 0.3.1, type kube-ovn, kube-ovn-cni's socket), provider <nad>.<ns>.ovn, in the run's
    namespace with its run label."""
    nad = templates.render_nad(name="kovc-nad-x", namespace="kovc-ns", run_id="r-1")
    assert (nad["apiVersion"], nad["kind"]) == ("k8s.cni.cncf.io/v1", "NetworkAttachmentDefinition")
    assert (nad["metadata"]["namespace"], nad["metadata"]["name"]) == ("kovc-ns", "kovc-nad-x")
    assert nad["metadata"]["labels"][RUN_LABEL] == "r-1"
    assert json.loads(nad["spec"]["config"]) == {"cniVersion": "0.3.1", "type": "kube-ovn",
                                                 "server_socket": "/run/openvswitch/kube-ovn-daemon.sock",
                                                 "provider": "kovc-nad-x.kovc-ns.ovn"}
    attachment = templates.Attachment(nad="kovc-nad-x", nad_namespace="kovc-ns", subnet="s", ip="172.20.0.5")
    assert attachment.ip_key == "kovc-nad-x.kovc-ns.ovn.kubernetes.io/ip_address"
    assert attachment.ip_cr("vm", "kovc-ns") == "vm.kovc-ns.kovc-nad-x.kovc-ns.ovn"
