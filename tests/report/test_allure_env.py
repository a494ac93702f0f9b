"""allure-results/environment.properties and categories.json."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from conformance.report import allure_env
from conformance.results import RunResult

Runs = dict[str, Callable[[], RunResult]]


def test_environment_properties(runs: Runs, tmp_path: Path) -> None:
    run = runs["failing-sim"]()
    allure_env.write(run, tmp_path)
    env = allure_env.read_environment(tmp_path / "environment.properties")
    assert env["kube_ovn_controller"] == "v1.14.2"
    assert env["kube_ovn_webhook"] == "v1.14.2"
    assert env["kubevirt"] == "v1.5.2"
    assert env["kubernetes"] == "v1.35.1"
    assert env["backend"] == "sim"
    assert env["simulated"] == "true"
    assert env["sim_model"] == "kube-ovn v1.14.2"
    assert env["run_id"] == "r1a2b3"
    assert env["profile"] == "baseline"
    assert "kind_node_image" not in env


@pytest.mark.parametrize("value", ["plain", "a=b:c", " leading space", "multi\nline", "kindest/node:v1.35.1",
                                   "ünïcode — dash", "back\\slash", "emoji \U0001f600", "#not a comment", ""])
def test_properties_round_trip(value: str) -> None:
    text = allure_env.format_properties({"key": value, "odd key=:": value})
    assert allure_env.parse_properties(text) == {"key": value, "odd key=:": value}
    text.encode("latin-1")  # Allure reads ISO-8859-1


def test_parse_java_properties_variants() -> None:
    text = "# comment\n! also\n a : 1\nb=2\\\n   3\nc   4\n\n"
    assert allure_env.parse_properties(text) == {"a": "1", "b": "23", "c": "4"}


def _matches(category: dict[str, object], status: str, message: str) -> bool:
    """Allure's rule: the status is listed and the message matches the whole regex."""
    if status not in category.get("matchedStatuses", []):  # type: ignore[operator]
        return False
    regex = category.get("messageRegex")
    return regex is None or re.fullmatch(str(regex), message) is not None


@pytest.mark.parametrize(("status", "message", "expected"), [
    ("failed", "AssertionError: allow.restart: expected admitted; seen: denied",
     "Legitimate operation denied"),
    ("failed", "AssertionError: deny.other-vm: expected denial;\nseen: admitted", "Collision admitted"),
    ("failed", "env.webhook-live: expected HTTP 400", "Precondition failed"),
    ("failed", "state.no-duplicate-ips: two pods hold 10.16.0.5", "State"),
    ("failed", "net.migration-downtime: longest gap 4.1 s", "Network"),
    ("broken", "urllib3.exceptions.MaxRetryError: connection refused", "Broken"),
])
def test_categories_classify(status: str, message: str, expected: str, tmp_path: Path) -> None:
    allure_env.write(RunResult("0", "r", "s", "f", "sim", True, "quick", {}, []), tmp_path)
    categories = json.loads((tmp_path / "categories.json").read_text())
    names = [c["name"] for c in categories]
    assert names == ["Precondition failed", "Legitimate operation denied", "Collision admitted", "State",
                     "Network", "Broken"]
    first = next(c["name"] for c in categories if _matches(c, status, message))
    assert first == expected
