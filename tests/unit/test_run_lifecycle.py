"""Issue 9 items 1 to 3, 5 and 14, end to end through ``kovc run --backend sim``:

* an unusable ``--report-dir`` (someone else's files, a file, ``/proc/x``) is one line and exit 2
  before anything starts, and nothing is created;
* the run id and the exact cleanup command are printed before the session starts;
* a quick run says "not a certification" on the console and in report.md, and ``kovc report verify``
  exits 1 naming the MUSTs that did not run;
* a second run into the same directory replaces the first bundle whole (moved to ``<dir>.previous``);
* the run writes nothing into the source tree (no .pytest_cache, no byte code: that goes to kovc's own
  cache, or nowhere with ``-B``) and leaves nothing in $TMPDIR.

The source-tree check runs kovc from a private copy of the package (``PYTHONPATH``), so concurrent
self-tests writing into the checkout cannot disturb it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conformance import catalog
from conformance.report.reportdir import MARKER

ROOT = Path(__file__).resolve().parents[2]
MUSTS = catalog.run_musts(upgrade=False)  # upgrade.* counts only in an upgrade run (issue 13)
QUICK = catalog.profile_ids("quick")


def kovc(cwd: Path, *args: str, env: dict[str, str] | None = None, python_flags: tuple[str, ...] = (),
         timeout: float = 180) -> subprocess.CompletedProcess[str]:
    base = dict(os.environ if env is None else env)
    base.pop("PYTEST_ADDOPTS", None)
    return subprocess.run([sys.executable, *python_flags, "-m", "conformance", *args], cwd=cwd, env=base,
                          capture_output=True, text=True, timeout=timeout)


def one_line_exit_2(proc: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in proc.stdout + proc.stderr and "INTERNALERROR" not in proc.stdout + proc.stderr
    assert "test session starts" not in proc.stdout, "pytest started before the report dir was checked"


def test_a_directory_holding_other_files_is_refused_untouched(tmp_path: Path) -> None:
    target = tmp_path / "mine"
    target.mkdir()
    (target / "thesis.tex").write_text("precious\n")
    proc = kovc(tmp_path, "run", "--backend", "sim", "--profile", "quick", "--report-dir", str(target))
    one_line_exit_2(proc, f"--report-dir {target} is not empty and holds no kovc bundle (thesis.tex)")
    assert sorted(p.name for p in target.iterdir()) == ["thesis.tex"]
    assert not (tmp_path / "mine.previous").exists()


@pytest.mark.parametrize("case", ["proc", "file", "under-a-file"])
def test_an_unwritable_report_dir_is_one_line_and_exit_2(case: str, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    target = {"proc": Path("/proc/x"), "file": tmp_path / "afile", "under-a-file": tmp_path / "afile" / "r"}[case]
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = kovc(tmp_path, "run", "--backend", "sim", "--report-dir", str(target))
    one_line_exit_2(proc, f"--report-dir {target}")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def _copy_source(dest: Path) -> Path:
    """The package, its scenarios and data, as an installed checkout would have them (no byte code)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    for name in ("conformance", "manifests", "clusters"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    shutil.copytree(ROOT / "tests" / "scenarios", dest / "tests" / "scenarios", ignore=ignore)
    shutil.copy2(ROOT / "pyproject.toml", dest / "pyproject.toml")
    return dest


def _snapshot(root: Path) -> dict[str, int]:
    """Every file with its mtime, every directory (present or not: Python writes the byte code of the few
    modules imported before kovc chooses its cache beside them, and kovc removes it again, which leaves
    their directories' mtimes changed)."""
    return {str(p.relative_to(root)): 0 if p.is_dir() else p.stat().st_mtime_ns for p in root.rglob("*")}


def test_quick_run_lifecycle(tmp_path: Path) -> None:
    src = _copy_source(tmp_path / "src")
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    cache = tmp_path / "xdg-cache"
    env.update(PYTHONPATH=str(src), TMPDIR=str(tmpdir), XDG_CACHE_HOME=str(cache))
    report = tmp_path / "report"
    work = tmp_path / "cwd"
    work.mkdir()
    before = _snapshot(src)

    # the default: byte code (the package's, the scenarios', pytest's) in kovc's cache, not beside the sources
    first = kovc(work, "run", "--backend", "sim", "--profile", "quick", "--report-dir", str(report), env=env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    # item 5: the run id and the exact cleanup command, before anything starts
    head = first.stdout.splitlines()[0]
    run_id = json.loads((report / "report.json").read_text())["run_id"]
    assert head.startswith(f"kovc: run {run_id}; if it is killed, delete what it left with: "
                           f"kovc cleanup --run-id {run_id}"), head
    assert first.stdout.index(head) < first.stdout.index("test session starts")
    # item 1: the console and report.md's first line
    phrase = f"CONFORMANT for profile quick ({len([m for m in MUSTS if m not in QUICK])} MUSTs not run) — " \
             "not a certification"
    assert phrase in first.stdout
    assert phrase in (report / "report.md").read_text(encoding="utf-8").splitlines()[0]
    verify = kovc(work, "report", "verify", "--allow-simulated", str(report), env=env, python_flags=("-B",))
    assert verify.returncode == 1, verify.stdout + verify.stderr
    missing = ", ".join(m for m in MUSTS if m not in QUICK)
    assert f"catalog MUSTs did not run (profile quick; a certification needs every MUST run and passed: " \
           f"profile baseline or extended): {missing}" in verify.stdout
    # item 14: nothing in the source tree, nothing left in $TMPDIR, no .pytest_cache in the cwd
    assert _snapshot(src) == before, sorted(set(_snapshot(src)) ^ set(before))
    assert list(tmpdir.iterdir()) == []
    assert list(work.iterdir()) == []
    cached = {p.relative_to(cache / "kovc" / "pycache").as_posix() for p in cache.rglob("*.pyc")}
    src_key = src.relative_to(src.anchor).as_posix()
    for module in ("conformance/plugin", "conformance/kube", "conformance/sim/store",
                   "tests/scenarios/test_allow"):  # the package, the simulated cluster, pytest's rewrite
        assert any(c.startswith(f"{src_key}/{module}.") for c in cached), (module, sorted(cached)[:20])
    cache_before = _snapshot(cache)

    # item 2: the same directory again: the first bundle is moved aside whole, nothing mixes
    second = kovc(work, "run", "--backend", "sim", "--profile", "quick", "--report-dir", str(report),
                  env=env, python_flags=("-B",))
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert f"the previous bundle in {report} was moved to {report}.previous" in second.stdout
    new_id = json.loads((report / "report.json").read_text())["run_id"]
    assert new_id != run_id
    previous = Path(f"{report}.previous")
    assert json.loads((previous / "report.json").read_text())["run_id"] == run_id
    assert json.loads((report / MARKER).read_text())["run_id"] == new_id
    results = list((report / "allure-results").glob("*-result.json"))
    assert len(results) == len(QUICK), [p.name for p in results]  # this run's tests only
    audit_ids = {json.loads(line).get("userAgent", "") for line in
                 (report / "sim-audit.jsonl").read_text().splitlines() if line}
    assert audit_ids, "no audit log"
    assert kovc(work, "report", "verify", "--allow-simulated", str(report), env=env,
                python_flags=("-B",)).stdout.count("modified bundle") == 0
    assert _snapshot(src) == before
    assert list(tmpdir.iterdir()) == []
    assert _snapshot(cache) == cache_before, "-B: no byte code written anywhere"


def test_venv_and_tox_dirs_are_ignored_by_git() -> None:
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    paths = [".venv/bin/python", ".tox/sim/sim-report/report.json", ".pytest_cache/v/cache/nodeids",
             "kovc-report/20261128T100000Z/report.json"]
    proc = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=ROOT, capture_output=True, text=True)
    assert proc.stdout.split() == paths, proc.stdout + proc.stderr


def test_a_run_stopped_before_its_preconditions_ran_is_incomplete_not_invalid() -> None:
    """Item 4: a signal that stops the run before env.* ran makes it incomplete (exit 3), matching
    what ``kovc run`` exits with; a precondition that ran and did not pass still makes it invalid."""
    from conformance.results import INTERRUPTED_REASON, RequirementResult, verdict

    reqs = [RequirementResult(id=r.id, level=r.level, title=r.title, outcome="not-run", reason=INTERRUPTED_REASON)
            for r in catalog.all_requirements()]
    selected = catalog.selection("baseline")
    assert verdict(reqs, selected, catalog.profile_ids("baseline")) == "incomplete"
    reqs[0].reason = "no scenario collected for it"  # not stopped: the precondition is simply missing
    assert verdict(reqs, selected, catalog.profile_ids("baseline")) == "invalid"
    reqs[0].outcome, reqs[0].reason = "skipped", "…"
    assert verdict(reqs, selected, catalog.profile_ids("baseline")) == "invalid"
