"""The session-level Allure files: ``allure-results/environment.properties`` and ``categories.json``.

Steps, attachments and labels are written during the tests by allure-pytest (``--alluredir``); these
two files describe the whole run and are written once, at session end.

Allure matches a failed result against the categories in order, by status and by regular expressions
over the result's message and trace (Java ``Pattern.matches``: the whole text must match, so every
pattern starts with ``(?s).*``). A family category matches a trace that names one of the family's
requirement IDs (allure-pytest's trace shows the scenario's ``@pytest.mark.conformance("<id>")``
line and the assertion message) or the family's scenario module ``test_<family>.py``; transport and
infrastructure errors, which Allure reports as *broken*, fall into "Broken".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..results import NOT_APPLICABLE_PREFIX, RunResult
from .json_report import recorded_versions, run_facts

DIRNAME = "allure-results"
ENVIRONMENT = "environment.properties"
CATEGORIES = "categories.json"


def environment(run: RunResult) -> dict[str, str]:
    """The key/value pairs of environment.properties (``kovc report verify`` compares the versions,
    backend, simulated, run_id and profile with report.json)."""
    return {**recorded_versions(run), **run_facts(run)}


def _escape(text: str, *, key: bool) -> str:
    """Java ``Properties.store`` escaping (non-ASCII as ``\\uXXXX`` so the file stays ISO-8859-1
    clean, which is what Allure's reader expects)."""
    out: list[str] = []
    for i, ch in enumerate(text):
        if ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\f":
            out.append("\\f")
        elif ch in "=:#!" and (key or i == 0):
            out.append("\\" + ch)
        elif ch == " " and (key or i == 0):
            out.append("\\ ")
        elif ord(ch) < 0x20 or ord(ch) > 0x7E:
            if ord(ch) > 0xFFFF:
                encoded = ch.encode("utf-16-be")
                out.append("".join(f"\\u{int.from_bytes(encoded[j:j + 2], 'big'):04x}" for j in (0, 2)))
            else:
                out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def format_properties(values: dict[str, str]) -> str:
    return "".join(f"{_escape(k, key=True)}={_escape(v, key=False)}\n" for k, v in values.items())


def _unescape(text: str) -> str:
    out: list[str] = []
    i = 0
    simple = {"n": "\n", "r": "\r", "t": "\t", "f": "\f"}
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "u" and i + 6 <= len(text):
                try:
                    out.append(chr(int(text[i + 2:i + 6], 16)))
                    i += 6
                    continue
                except ValueError:
                    pass
            out.append(simple.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    # Re-join UTF-16 surrogate pairs written for characters beyond the BMP.
    return "".join(out).encode("utf-16", "surrogatepass").decode("utf-16")


def parse_properties(text: str) -> dict[str, str]:
    """Read a Java properties file (the subset kovc writes, plus ``:`` separators, comments and
    continuation lines)."""
    values: dict[str, str] = {}
    logical: list[str] = []
    pending = ""
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = pending + (raw.lstrip() if pending else raw)
        stripped = line.lstrip()
        if not pending and (not stripped or stripped[0] in "#!"):
            continue
        backslashes = len(line) - len(line.rstrip("\\"))
        if backslashes % 2 == 1:
            pending = line[:-1]
            continue
        pending = ""
        logical.append(stripped)
    if pending:
        logical.append(pending.lstrip())
    for line in logical:
        i = 0
        while i < len(line) and line[i] not in "=: \t\f":
            i += 2 if line[i] == "\\" else 1
        i = min(i, len(line))
        j = i
        while j < len(line) and line[j] in " \t\f":
            j += 1
        if j < len(line) and line[j] in "=:":
            j += 1
        while j < len(line) and line[j] in " \t\f":
            j += 1
        values[_unescape(line[:i])] = _unescape(line[j:])
    return values


#: (category name, family), in the order Allure tries them.
FAMILY_CATEGORIES: tuple[tuple[str, str], ...] = (
    ("Precondition failed", "env"),
    ("Legitimate operation denied", "allow"),
    ("Collision admitted", "deny"),
    ("State", "state"),
    ("Network", "net"),
)


def family_regex(family: str, ids: list[str]) -> str:
    """A Java-compatible regex matching a whole trace that names one of ``ids`` (as a whole ID, not a
    prefix of a longer one) or the family's scenario module."""
    alternatives = [i.replace(".", r"\.") for i in sorted(ids, key=len, reverse=True)]
    named = f"(?<![a-z0-9.-])(?:{'|'.join(alternatives)})(?![a-z0-9-])" if alternatives else None
    module = rf"\btest_{family}\.py\b"
    return "(?s).*(?:" + (f"{named}|" if named else "") + module + ").*"


def categories(run: RunResult) -> list[dict[str, Any]]:
    """Allure categories: one per requirement family for failed results (by the run's requirement
    IDs), then "Broken" for errors."""
    out: list[dict[str, Any]] = []
    for name, family in FAMILY_CATEGORIES:
        ids = [r.id for r in run.requirements if r.family == family]
        out.append({"name": name, "matchedStatuses": ["failed"], "traceRegex": family_regex(family, ids)})
    out.append({"name": "Broken", "matchedStatuses": ["broken"]})
    # a requirement whose applicability condition does not hold: a skipped result whose message says so
    # with the reason (NOT_APPLICABLE_PREFIX), its own category, never mixed with skips
    out.append({"name": "Not applicable", "matchedStatuses": ["skipped"],
                "messageRegex": "(?s).*" + NOT_APPLICABLE_PREFIX.strip() + ".*"})
    return out


def write(run: RunResult, allure_dir: Path) -> list[Path]:
    allure_dir.mkdir(parents=True, exist_ok=True)
    env_path = allure_dir / ENVIRONMENT
    env_path.write_text(format_properties(environment(run)), encoding="latin-1")
    cat_path = allure_dir / CATEGORIES
    cat_path.write_text(json.dumps(categories(run), indent=2) + "\n", encoding="utf-8")
    return [env_path, cat_path]


def read_environment(path: Path) -> dict[str, str]:
    return parse_properties(path.read_text(encoding="latin-1"))
