"""junit.xml: one ``<testcase>`` per requirement ID, for CI systems.

classname = the requirement's family (``allow``, ``deny``...), name = its ID; sub-cases are
``case.<name>.*`` properties of the testcase; a failure's text is the assertion message (the reason
and the failed cases' messages); skipped and not-run requirements are ``<skipped>``; the versions and
run facts are ``<testsuite>`` properties (``version.<key>``, ``backend``, ``simulated``...).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from ..results import RequirementResult, RunResult
from .json_report import recorded_versions, run_facts

FILENAME = "junit.xml"

# Characters XML 1.0 cannot carry at all (a parser rejects them even escaped).
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _x(text: object) -> str:
    return _INVALID_XML.sub("\ufffd", str(text))


def suite_properties(run: RunResult) -> dict[str, str]:
    """The ``<testsuite>`` properties; ``kovc report verify`` compares them with report.json."""
    props = {**run_facts(run), "started": run.started, "finished": run.finished}
    props.update({f"version.{key}": value for key, value in recorded_versions(run).items()})
    return props


def failure_text(req: RequirementResult) -> str:
    """The assertion message of a failed/errored requirement: its reason, then each failed case."""
    parts: list[str] = []
    if req.reason:
        parts.append(req.reason)
    for case in req.cases:
        if case.outcome not in ("failed", "error"):
            continue
        head = f"[{case.name}] {case.outcome}"
        if case.admitted_then:
            head += f" (admitted then: {case.admitted_then})"
        same = case.message and case.message.strip() == (req.reason or "").strip()
        parts.append(head + (f": {case.message}" if case.message and not same else ""))
    return "\n\n".join(parts) or f"{req.id} {req.outcome} (no message was recorded)"


def _prop(parent: ET.Element, name: str, value: object) -> None:
    ET.SubElement(parent, "property", {"name": _x(name), "value": _x(value)})


def requirement_time(req: RequirementResult) -> float:
    """A requirement's real duration (its scenarios' time); for a report from before ``duration_s``
    existed, the sum of its cases."""
    return req.duration_s or sum(c.duration_s for c in req.cases)


def render(run: RunResult) -> bytes:
    """junit.xml for ``run`` as UTF-8 bytes (with an XML declaration)."""
    reqs = run.requirements
    failures = sum(r.outcome == "failed" for r in reqs)
    errors = sum(r.outcome == "error" for r in reqs)
    skipped = sum(r.outcome in ("skipped", "not-run", "not-applicable") for r in reqs)
    total_time = sum(requirement_time(r) for r in reqs)
    counts = {"tests": str(len(reqs)), "failures": str(failures), "errors": str(errors),
              "skipped": str(skipped), "time": f"{total_time:.3f}"}
    root = ET.Element("testsuites", {"name": "kovc", **counts})
    suite = ET.SubElement(root, "testsuite", {"name": "kovc conformance", **counts,
                                               "timestamp": _x(run.started)})
    props = ET.SubElement(suite, "properties")
    for name, value in suite_properties(run).items():
        _prop(props, name, value)
    for warning in run.warnings:
        _prop(props, "warning", warning)
    for req in reqs:
        duration = requirement_time(req)
        case_el = ET.SubElement(suite, "testcase", {"classname": _x(req.family), "name": _x(req.id),
                                                    "time": f"{duration:.3f}"})
        cprops = ET.SubElement(case_el, "properties")
        _prop(cprops, "level", req.level)
        _prop(cprops, "title", req.title)
        _prop(cprops, "outcome", req.outcome)
        for ref in req.references:
            _prop(cprops, "reference", ref)
        for case in req.cases:
            _prop(cprops, f"case.{case.name}.outcome", case.outcome)
            _prop(cprops, f"case.{case.name}.duration_s", f"{case.duration_s:.3f}")
            if case.message:
                _prop(cprops, f"case.{case.name}.message", case.message)
            if case.admitted_then:
                _prop(cprops, f"case.{case.name}.admitted_then", case.admitted_then)
        for warning in req.warnings:
            _prop(cprops, "warning", warning)
        for test in req.tests:
            _prop(cprops, "test", f"{test.nodeid} ({test.outcome})")
        if req.diagnostics:
            _prop(cprops, "diagnostics", req.diagnostics)
        if req.outcome in ("failed", "error"):
            text = failure_text(req)
            first = text.strip().splitlines()[0] if text.strip() else text
            el = ET.SubElement(case_el, "failure" if req.outcome == "failed" else "error",
                               {"message": _x(first), "type": "AssertionError" if req.outcome == "failed"
                                else "Error"})
            el.text = _x(text)
        elif req.outcome in ("skipped", "not-run", "not-applicable"):
            # junit has no "not applicable": a <skipped> whose message says so, with the reason (and the
            # outcome property above), never a silent skip
            reason = req.reason or ("not run by this profile" if req.outcome == "not-run" else "skipped")
            label = {"not-run": "not run", "not-applicable": "not applicable"}.get(req.outcome, "skipped")
            ET.SubElement(case_el, "skipped", {"message": _x(f"{label}: {reason}")})
        if req.warnings:
            out = ET.SubElement(case_el, "system-out")
            out.text = _x("\n".join(f"warning: {w}" for w in req.warnings))
    ET.indent(root)
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return body + b"\n"


def write(run: RunResult, path: Path) -> Path:
    path.write_bytes(render(run))
    return path


def read_suite_properties(path: Path) -> dict[str, str]:
    """The ``<testsuite>`` properties of a kovc junit.xml (ValueError when it is not parseable)."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise ValueError(f"{path.name}: not well-formed XML: {err}") from None
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        raise ValueError(f"{path.name}: no <testsuite> element")
    out: dict[str, str] = {}
    for prop in suite.findall("properties/property"):
        name = prop.get("name")
        if name and name != "warning":
            out[name] = prop.get("value", "")
    return out


def read_testcases(path: Path) -> dict[str, str]:
    """requirement ID → outcome as junit.xml states it (``passed``, ``failed``, ``error``,
    ``skipped`` or ``not-run``); ValueError when it is not parseable."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise ValueError(f"{path.name}: not well-formed XML: {err}") from None
    out: dict[str, str] = {}
    for case in root.iter("testcase"):
        name = case.get("name", "")
        outcome = None
        for prop in case.findall("properties/property"):
            if prop.get("name") == "outcome":
                outcome = prop.get("value")
        if outcome is None:
            if case.find("failure") is not None:
                outcome = "failed"
            elif case.find("error") is not None:
                outcome = "error"
            elif case.find("skipped") is not None:
                outcome = "skipped"
            else:
                outcome = "passed"
        out[name] = outcome
    return out
