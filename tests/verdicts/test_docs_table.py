"""docs/verdict-derivation.md and tests/verdicts/expected.py say the same thing."""

from __future__ import annotations

from pathlib import Path

from .expected import MODELS, table

DOC = Path(__file__).resolve().parents[2] / "docs" / "verdict-derivation.md"


def test_docs_table_matches_expected() -> None:
    rows: dict[str, list[str]] = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 + len(MODELS) or "." not in cells[0] or cells[0].startswith("`"):
            continue
        rid = cells[0].replace("·", "").strip()
        values = []
        for cell in cells[1:1 + len(MODELS)]:
            cell = cell.replace("*", "")
            values.append("passed" if cell.startswith("P") else "failed" if cell.startswith("F") else
                          "not-applicable" if cell.startswith("N") else "?")
        rows[rid] = values
    expected = table()
    columns = list(MODELS)
    for rid in expected[columns[0]]:
        assert rid in rows, f"{rid} missing from {DOC.name}"
        assert rows[rid] == [expected[c][rid] for c in columns], f"{rid}: docs {rows[rid]}"
