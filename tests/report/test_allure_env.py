"""allure-results/environment.properties and categories.json."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def _matches(category: dict[str, Any], status: str, message: str, trace: str) -> bool:
    """Allure's rule: the status is listed and each given regex matches the whole text."""
    if status not in category.get("matchedStatuses", []):
        return False
    for key, text in (("messageRegex", message), ("traceRegex", trace)):
        regex = category.get(key)
        if regex is not None and re.fullmatch(str(regex), text) is None:
            return False
    return True


TRACE_ALLOW = """ns = 'kovc-utns7', act = <conformance.verbs.Actions object at 0x7f1eb2c2ca90>

    @pytest.mark.conformance("allow.restart")
    def test_restart(ns: str, act: Actions) -> None:
        env = {"a": 1}
        vm, before = running_holder(act, ns, env.get("a"))
>       act.restart(vm)

tests/scenarios/test_allow.py:41:
E   AssertionError: expected VM kovc-utns7/h-kxwwbk (10.16.228.239) to run after restart; the webhook
E   denied its launcher pod: admission webhook "pod-ip-validating.kube-ovn.io" denied the request
"""
TRACE_DENY = """    @pytest.mark.conformance("deny.name-prefix")
    def test_name_prefix(ns: str, act: Actions) -> None:
>       act.expect_denied(challenger)
tests/scenarios/test_deny.py:88:
E   AssertionError: expected the challenger VM web-1 to be denied; seen: admitted, then took-over-address
"""
TRACE_STATE = """tests/scenarios/test_state.py:20:
E   AssertionError: state.ip-released-on-delete: IP CR h-1.ns still present after 6.0 s"""
TRACE_ENV = """    @pytest.mark.conformance("env.webhook-live")
tests/scenarios/test_env.py:12:
E   AssertionError: expected HTTP 400 '... not in cidr ...'; seen: admitted"""
TRACE_NET = """tests/scenarios/test_net.py:30:
E   AssertionError: longest gap 4.1 s > 3 s"""


@pytest.mark.parametrize(("status", "trace", "expected"), [
    ("failed", TRACE_ALLOW, "Legitimate operation denied"),
    ("failed", TRACE_DENY, "Collision admitted"),
    ("failed", TRACE_STATE, "State"),
    ("failed", TRACE_ENV, "Precondition failed"),
    ("failed", TRACE_NET, "Network"),
    ("broken", "urllib3.exceptions.MaxRetryError: connection refused\n" + TRACE_ALLOW, "Broken"),
])
def test_categories_classify(status: str, trace: str, expected: str, runs: Runs, tmp_path: Path) -> None:
    allure_env.write(runs["failing-sim"](), tmp_path)
    categories = json.loads((tmp_path / "categories.json").read_text())
    names = [c["name"] for c in categories]
    assert names == ["Precondition failed", "Legitimate operation denied", "Collision admitted", "State",
                     "Network", "Broken", "Not applicable"]
    message = trace.splitlines()[-1]
    matched = [c["name"] for c in categories if _matches(c, status, message, trace)]
    assert matched[:1] == [expected], matched


def test_an_id_is_matched_whole(runs: Runs) -> None:
    regex = allure_env.family_regex("allow", ["allow.restart"])
    assert re.fullmatch(regex, 'mark.conformance("allow.restart")')
    assert not re.fullmatch(regex, "allow.restart-later is another ID")
    assert not re.fullmatch(regex, "xallow.restart")
    assert not re.fullmatch(regex, "allow.restarts")
    assert re.fullmatch(regex, "tests/scenarios/test_allow.py:41")
