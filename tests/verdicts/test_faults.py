"""With 5 % of API requests failing or dropped (before or after the write) and watches cut, the
verdicts are the same: no transport error becomes a pass or a fail."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conformance import catalog

from .conftest import Run
from .expected import table

MUSTS = {r.id for r in catalog.all_requirements() if r.level == "MUST"}


@pytest.mark.parametrize(("column", "args", "seed"), [
    pytest.param("v1.14.5+", [], "7", id="default"),
    pytest.param("v1.14.0-4", ["--kube-ovn-version", "v1.14.2"], "11", id="v1.14.2"),
])
def test_faults_do_not_change_verdicts(kovc: Callable[..., Run], column: str, args: list[str], seed: str) -> None:
    run = kovc(*args, "--sim-faults", "0.05", "--sim-seed", seed, "--profile", "baseline")
    expected = {rid: out for rid, out in table()[column].items() if rid in MUSTS}
    seen = {rid: out for rid, out in run.outcomes().items() if rid in MUSTS}
    assert seen == expected, f"with faults: {run.explain()}"
