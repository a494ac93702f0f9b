"""The requirement catalog (a public contract), profiles, ``kovc list`` and conformance.yaml drift."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conformance import catalog
from conformance.commands import catalog as list_cmd

ROOT = Path(__file__).resolve().parents[2]

#: Exactly the catalog of issue #3, in its order, with levels. Never renamed.
SPEC = [
    ("env.webhook-live", "MUST"),
    ("env.keep-vm-ip", "MUST"),
    ("allow.restart", "MUST"),
    ("allow.stop-start", "MUST"),
    ("allow.launcher-pod-deleted", "MUST"),
    ("allow.live-migration", "MUST"),
    ("allow.recreate", "MUST"),
    ("allow.immediate-recreate", "SHOULD"),
    ("allow.repeated-restarts", "MUST"),
    ("allow.concurrent-restarts", "MUST"),
    ("allow.ip-reuse-after-delete", "MUST"),
    ("allow.same-ip-other-subnet", "SHOULD"),
    ("allow.same-ip-namespace-bound-vpc", "SHOULD"),
    ("allow.restart-dual-stack", "MUST"),
    ("allow.static-mac-restart", "MUST"),
    ("allow.attachment-restart", "MUST"),
    ("deny.other-vm", "MUST"),
    ("deny.pod-takes-vm-ip", "MUST"),
    ("deny.name-prefix", "MUST"),
    ("deny.stopped-vm-ip", "MUST"),
    ("deny.clone", "MUST"),
    ("deny.spoofed-launcher", "MUST"),
    ("deny.cross-namespace", "SHOULD"),
    ("deny.pod-named-like-vm", "SHOULD"),
    ("deny.spoofed-migration", "SHOULD"),
    ("deny.forged-owner-ref", "SHOULD"),
    ("deny.other-vm-ipv6", "MUST"),
    ("deny.mac-collision", "SHOULD"),
    ("deny.attachment-other-vm", "MUST"),
    ("state.ip-released-on-delete", "MUST"),
    ("state.no-duplicate-ips", "MUST"),
    ("state.concurrent-claims", "SHOULD"),
    ("state.attachment-ip-released-on-delete", "SHOULD"),
    ("net.migration-downtime", "SHOULD"),
]
#: Issue 14: the requirements beyond one IPv4 on the pod network, with their applicability condition
#: (a capability key of ``catalog.CAPABILITY_CONDITIONS``; None: always).
APPLIES_WHEN = {
    "allow.restart-dual-stack": "dual-stack",
    "deny.other-vm-ipv6": "dual-stack",
    "allow.static-mac-restart": None,
    "deny.mac-collision": None,
    "allow.attachment-restart": "multus",
    "deny.attachment-other-vm": "multus",
    "state.attachment-ip-released-on-delete": "multus",
}
#: Issue 13: the upgrade family, exactly as the issue names it (upgrade runs only).
UPGRADE_SPEC = [
    ("upgrade.ips-kept", "MUST"),
    ("upgrade.restart-after", "MUST"),
    ("upgrade.migrate-after", "MUST"),
    ("upgrade.collisions-denied-after", "MUST"),
    ("upgrade.no-duplicate-ips", "MUST"),
    ("upgrade.window-admissions", "SHOULD"),
]


def test_ids_and_levels_exactly_as_the_spec() -> None:
    assert [(r.id, r.level) for r in catalog.all_requirements()] == SPEC + UPGRADE_SPEC


def test_applicability_conditions_as_issue_14() -> None:
    conditional = {r.id: r.applies_when for r in catalog.all_requirements() if r.applies_when}
    assert conditional == {k: v for k, v in APPLIES_WHEN.items() if v}
    for rid, key in APPLIES_WHEN.items():
        assert catalog.get(rid).condition == (catalog.CAPABILITY_CONDITIONS[key] if key else "always")


def test_every_requirement_is_complete() -> None:
    ref = re.compile(r"^[\w.-]+/[\w.-]+(#\d+|:\S+)$")
    for req in catalog.all_requirements():
        assert req.title and len(req.title) <= 80, req.id
        assert req.level in req.statement, f"{req.id}: the statement must use its RFC 2119 word {req.level}"
        assert req.references, f"{req.id} cites no upstream issue/PR"
        for r in req.references:
            assert ref.match(r), f"{req.id}: reference {r!r} is not owner/repo#N"


def test_families_in_order() -> None:
    assert catalog.families() == ["env", "allow", "deny", "state", "net", "upgrade"]


def test_upgrade_family_only_in_upgrade_runs() -> None:
    env = ["env.webhook-live", "env.keep-vm-ip"]
    must = [i for i, level in UPGRADE_SPEC if level == "MUST"]
    assert catalog.selection("baseline", upgrade=True) == env + must
    assert catalog.selection("extended", upgrade=True) == env + [i for i, _ in UPGRADE_SPEC]
    # A normal run never selects them, not even by name; an upgrade run selects nothing else.
    assert not any(i.startswith("upgrade.") for i in catalog.selection("extended"))
    assert catalog.selection("baseline", ["upgrade.ips-kept"]) == env
    assert catalog.selection("baseline", ["allow.restart", "upgrade.ips-kept"], upgrade=True) == [
        *env, "upgrade.ips-kept"]
    assert catalog.run_musts(upgrade=True) == env + must
    assert not any(i.startswith("upgrade.") for i in catalog.run_musts(upgrade=False))
    stmt = catalog.get("upgrade.window-admissions").statement
    assert "timestamp" in stmt and "window" in stmt


def test_profiles() -> None:
    assert catalog.profile_ids("quick") == [
        "env.webhook-live",
        "env.keep-vm-ip",
        "allow.restart",
        "deny.other-vm",
    ]
    assert catalog.profile_ids("baseline") == [i for i, level in SPEC if level == "MUST"]
    assert catalog.profile_ids("extended") == [i for i, _ in SPEC]
    with pytest.raises(ValueError, match="unknown profile"):
        catalog.profile_ids("full")


def test_selection_by_requirement_keeps_the_preconditions() -> None:
    assert catalog.selection("baseline", ["deny.clone", "allow.immediate-recreate"]) == [
        "env.webhook-live",
        "env.keep-vm-ip",
        "allow.immediate-recreate",
        "deny.clone",
    ]
    assert catalog.selection("quick") == catalog.profile_ids("quick")
    with pytest.raises(catalog.UnknownRequirement, match=r"allow\.reboot"):
        catalog.selection("baseline", ["allow.reboot"])


def test_get() -> None:
    assert catalog.get("deny.clone").family == "deny"
    assert catalog.get("env.keep-vm-ip").precondition
    with pytest.raises(KeyError) as err:
        catalog.get("deny.nothing")
    assert "unknown requirement ID 'deny.nothing'" in str(err.value)


# ---- finding scenarios offline ------------------------------------------------------------------


SAMPLE = """
import pytest
from pytest import mark

conf = pytest.mark.conformance
pytestmark = [pytest.mark.exclusive]

@pytest.mark.conformance("allow.restart")
def test_restart(record): ...

@conf("deny.clone", "deny.other-vm")
def test_alias(): ...

@mark.parametrize("x", [pytest.param(1, marks=pytest.mark.conformance("deny.name-prefix"))])
def test_param(x): ...

def test_unmarked(): ...

def helper_not_a_test(): ...

@pytest.mark.conformance("allow.recreate")
class TestGroup:
    pytestmark = pytest.mark.conformance("state.ip-released-on-delete")

    def test_one(self): ...

    @pytest.mark.conformance("allow.restart")
    async def test_two(self): ...
"""


def test_scan_module_reads_every_marker_form() -> None:
    found = list_cmd.scan_module(SAMPLE, "test_x.py")
    assert found == {
        "test_x.py::test_restart": ["allow.restart"],
        "test_x.py::test_alias": ["deny.clone", "deny.other-vm"],
        "test_x.py::test_param": ["deny.name-prefix"],
        "test_x.py::TestGroup::test_one": ["allow.recreate", "state.ip-released-on-delete"],
        "test_x.py::TestGroup::test_two": ["allow.recreate", "state.ip-released-on-delete", "allow.restart"],
    }


def test_module_level_pytestmark(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "test_m.py").write_text(
        "import pytest\npytestmark = pytest.mark.conformance('net.migration-downtime')\ndef test_a(): ...\n"
    )
    (tmp_path / "test_broken.py").write_text("def test_(:\n")  # unparsable: ignored
    assert list_cmd.scenarios_by_id(tmp_path) == {"net.migration-downtime": ["sub/test_m.py::test_a"]}


def test_kovc_list_json_shape() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "conformance", "list", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert isinstance(data, list)
    assert [d["id"] for d in data] == [i for i, _ in SPEC + UPGRADE_SPEC]
    for entry in data:
        assert set(entry) == {"id", "level", "applies_when", "title", "statement", "references", "scenarios"}
        assert entry["level"] in ("MUST", "SHOULD")
        key = APPLIES_WHEN.get(entry["id"])
        assert entry["applies_when"] == (catalog.CAPABILITY_CONDITIONS[key] if key else "always"), entry["id"]
        assert isinstance(entry["references"], list) and isinstance(entry["scenarios"], list)
        assert all(isinstance(s, str) and "::" in s for s in entry["scenarios"])


def test_kovc_list_text() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "conformance", "list"], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == len(SPEC + UPGRADE_SPEC)
    assert lines[0].startswith("env.webhook-live ")


def test_conformance_yaml_has_not_drifted() -> None:
    committed = ROOT / "conformance.yaml"
    expected = list_cmd.render_yaml(list_cmd.entries())
    assert committed.exists(), "conformance.yaml is missing: run `kovc list --format yaml > conformance.yaml`"
    assert committed.read_text(encoding="utf-8") == expected, (
        "conformance.yaml differs from the catalog and the scenarios' markers: regenerate it with "
        "`kovc list --format yaml > conformance.yaml`"
    )
