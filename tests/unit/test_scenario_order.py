"""The order the scenarios run in (tests/scenarios/conftest.py): the preconditions first, then the scenarios
that observe for a fixed time (``window``), the whole-run duplicate check last.

Why the windows come early (issue #12): under ``-n N`` xdist gives a worker its next scenario only when
the ones it holds are nearly done, and the ``exclusive`` group is one unit run in collection order; a
window started last (net.migration-downtime's 90 s probe was the exclusive group's fifth of six) keeps one
worker busy while the other has run out of work.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WINDOWS = {"test_net.py::test_migration_downtime", "test_state.py::test_concurrent_claims"}


def collected() -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           "tests/scenarios", "--backend", "sim", "--profile", "extended"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    ids = [line.split("/", 2)[-1] for line in proc.stdout.splitlines() if line.startswith("tests/scenarios/")]
    assert ids, proc.stdout[-2000:] + proc.stderr[-2000:]
    return ids


def test_preconditions_then_windows_then_the_rest_and_the_whole_run_check_last() -> None:
    ids = collected()
    env = [i for i in ids if i.startswith("test_env.py::")]
    assert ids[:len(env)] == env and env, ids
    assert set(ids[len(env):len(env) + len(WINDOWS)]) == WINDOWS, (
        f"expected the fixed-window scenarios {sorted(WINDOWS)} right after the preconditions; saw {ids}")
    assert ids[-1] == "test_state.py::test_no_duplicate_ips_whole_run", ids
    files: list[str] = []  # the rest keeps its file order: each file's scenarios together
    for scenario in ids[len(env) + len(WINDOWS):-1]:
        name = scenario.split("::")[0]
        if not files or files[-1] != name:
            assert name not in files, f"{scenario} is apart from the other scenarios of {name}: {ids}"
            files.append(name)

