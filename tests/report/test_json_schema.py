"""report.json follows the kovc.report/v1 schema shipped in conformance/data."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conformance.report import json_report
from conformance.results import RunResult


def test_schema_file_is_a_valid_draft_2020_12_schema() -> None:
    import jsonschema

    schema = json_report.load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["schema"]["const"] == "kovc.report/v1"


def test_every_synthetic_run_validates(any_run: RunResult) -> None:
    data = json.loads(json.dumps(any_run.to_json()))
    assert json_report.schema_errors(data) == []
    assert data["schema"] == "kovc.report/v1"
    for key in ("suite_version", "run_id", "started", "finished", "backend", "simulated", "sim_model",
                "profile", "versions", "verdict", "requirements", "summary", "leaked_ips", "warnings"):
        assert key in data, key


def test_round_trip_through_file(any_run: RunResult, tmp_path: Path) -> None:
    path = json_report.write(any_run, tmp_path / "report.json")
    back = json_report.load(path)
    assert back == any_run
    assert back.verdict == any_run.verdict


@pytest.mark.parametrize(("mutate", "where"), [
    (lambda d: d.pop("run_id"), "(top level)"),
    (lambda d: d.update(schema="kovc.report/v0"), "schema"),
    (lambda d: d.update(verdict="passed"), "verdict"),
    (lambda d: d["requirements"][0].update(outcome="xfail"), "requirements/0/outcome"),
    (lambda d: d["requirements"][0].update(id="allow restart"), "requirements/0/id"),
    (lambda d: d["requirements"][2]["cases"][0].update(duration_s=-1), "requirements/2/cases/0/duration_s"),
    (lambda d: d["summary"]["MUST"].pop("not_run"), "summary/MUST"),
    (lambda d: d["versions"].pop("kubevirt"), "versions"),
    (lambda d: d.update(simulated="yes"), "simulated"),
])
def test_schema_rejects_broken_reports(mutate: Callable[[dict[str, Any]], object], where: str,
                                       runs: dict[str, Callable[[], RunResult]]) -> None:
    data = json.loads(json.dumps(runs["passing-sim"]().to_json()))
    mutate(data)
    errors = json_report.schema_errors(data)
    assert errors, "the schema accepted a broken report"
    assert any(e.startswith(where + ":") for e in errors), errors


def test_load_data_one_line_errors(tmp_path: Path) -> None:
    bad = tmp_path / "report.json"
    bad.write_text("{not json")
    with pytest.raises(json_report.ReportError, match="not valid JSON"):
        json_report.load_data(bad)
    bad.write_text('{"schema": "other"}')
    with pytest.raises(json_report.ReportError, match=re.escape('expected "schema": "kovc.report/v1"')):
        json_report.load_data(bad)
    bad.write_text('{"schema": "kovc.report/v1"}')
    with pytest.raises(json_report.ReportError, match=re.escape("does not match kovc.report/v1")) as info:
        json_report.load_data(bad)
    assert "\n" not in str(info.value)
    with pytest.raises(json_report.ReportError, match="no such file"):
        json_report.load_data(tmp_path / "absent.json")


def test_readers_ignore_fields_added_later(runs: dict[str, Callable[[], RunResult]], tmp_path: Path) -> None:
    data = json.loads(json.dumps(runs["failing-sim"]().to_json()))
    data["future_top_level"] = {"x": 1}
    data["requirements"][2]["future_field"] = "y"
    assert json_report.schema_errors(data) == []
    path = tmp_path / "report.json"
    path.write_text(json.dumps(data))
    assert json_report.load(path) == runs["failing-sim"]()
