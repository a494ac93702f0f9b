"""report.json: the machine-readable outcome of a run (``"schema": "kovc.report/v1"``).

The JSON Schema ships as package data (``conformance/data/report.schema.json``); ``kovc report
verify`` and the tests validate against it.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from ..results import RunResult

SCHEMA_ID = "kovc.report/v1"
FILENAME = "report.json"
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "data" / "report.schema.json"

#: The version keys every report carries (``kind_node_image`` only for kind clusters).
VERSION_KEYS: tuple[str, ...] = ("kubernetes", "kube_ovn_controller", "kube_ovn_webhook", "kubevirt",
                                 "kind_node_image")


def run_facts(run: RunResult) -> dict[str, str]:
    """The run facts every file of the bundle states (``kovc report verify`` checks they agree)."""
    return {
        "suite_version": run.suite_version,
        "run_id": run.run_id,
        "backend": run.backend,
        "simulated": "true" if run.simulated else "false",
        "sim_model": run.sim_model or "",
        "profile": run.profile,
        "verdict": run.verdict,
    }


def recorded_versions(run: RunResult) -> dict[str, str]:
    """The component versions as the bundle states them (``kind_node_image`` only when known)."""
    return {key: run.versions.get(key) or "" for key in VERSION_KEYS
            if run.versions.get(key) is not None or key != "kind_node_image"}


class ReportError(Exception):
    """A report file that cannot be used (unreadable, not JSON, not kovc.report/v1). The message is
    one line naming the file and what is wrong."""


@cache
def load_schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return data


def schema_errors(data: Any) -> list[str]:
    """Every violation of the kovc.report/v1 schema in ``data``, as ``<json path>: <message>``
    (empty when valid)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(load_schema())
    out = []
    for err in sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path]):
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        out.append(f"{where}: {err.message}")
    return out


def dumps(run: RunResult) -> str:
    return json.dumps(run.to_json(), indent=2, ensure_ascii=False) + "\n"


def write(run: RunResult, path: Path) -> Path:
    path.write_text(dumps(run), encoding="utf-8")
    return path


def load_data(path: Path) -> dict[str, Any]:
    """Read and schema-check a report.json; :class:`ReportError` (one line) when it is unusable."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReportError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ReportError(f"{path}: cannot read: {err}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ReportError(f"{path}: not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path}: expected a JSON object, found {type(data).__name__}")
    if data.get("schema") != SCHEMA_ID:
        raise ReportError(f"{path}: expected \"schema\": \"{SCHEMA_ID}\", found {data.get('schema')!r}")
    problems = schema_errors(data)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ReportError(f"{path}: does not match {SCHEMA_ID}: {problems[0]}{more}")
    return data


def load(path: Path) -> RunResult:
    """The :class:`RunResult` of a report.json (``path`` may also be the bundle directory)."""
    if path.is_dir():
        path = path / FILENAME
    data = load_data(path)
    try:
        return RunResult.from_json(data)
    except TypeError as err:
        raise ReportError(f"{path}: cannot be read as a kovc run: {err}") from None
