"""Real vs modelled verdict table: the suite against Kube-OVN's **real** webhook of a tag and against
kovc's **model** of that release, on the same real control plane, compared requirement by requirement.

Per tag three runs of ``kovc run --profile extended`` (each in a subprocess, its wall time measured):

* ``real``  — ``--backend envtest --kube-ovn-version TAG``: the tag's real ``kube-ovn-webhook`` binary;
* ``model`` — ``--backend envtest --kube-ovn-version TAG --sim-webhook-policy POLICY``, ``POLICY`` being
  the release's modelled policy (``versions.kube_ovn_release(TAG).webhook_policy``), served by
  ``kovc sim attach`` as an HTTPS AdmissionReview webhook under the very same registration;
* ``sim``   — optionally, the same model on ``--backend sim`` (the home-made API server).

``real`` vs ``model`` is *the* comparison: both runs share the real kube-apiserver, etcd, garbage
collector, CRDs, RBAC, admission chain, simulated controllers of the same release and the tag's webhook
registration, so a differing cell can only come from the process that answers the AdmissionReview —
the webhook model. ``model`` vs ``sim`` then isolates what the environment changes (the home-made API
server against the real one) for the same model: a cell that differs there and not in the first
comparison is the sim's fault, not the model's.

The comparison is pure (:func:`compare`, :func:`check_run`) so a unit test can feed it reports of a
deliberately wrong model; running is :func:`run_kovc` and :func:`build_table`; output is
:func:`render_markdown` and :meth:`Table.to_json`. ``tools/realtable.py`` is the command line.
"""

from __future__ import annotations

import fcntl
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import versions

JSON = dict[str, Any]

#: The runs of one tag, in table order.
RUN_KINDS = ("real", "model", "sim")
#: The line ``kovc envtest serve`` ends with when another run holds the webhook's certificate directory.
BUSY_MARK = "which another envtest run"
#: How long :func:`run_kovc` waits for another helper's real-webhook run to give the lock back.
BUSY_WAIT = 3600.0
#: Per-run bound (an extended run on the loaded 2-core machine takes 1.5-4 min).
RUN_TIMEOUT = 1800.0


def built_tags(assets: Path) -> list[str]:
    """Kube-OVN tags whose webhook is built in ``assets`` (oldest first)."""
    from . import assets as a

    base = assets / "kube-ovn"
    tags = [d.name for d in base.iterdir() if (d / a.WEBHOOK).is_file()] if base.is_dir() else []
    return sorted(tags, key=versions.parse)


def model_policy(tag: str) -> str:
    """The webhook policy kovc models ``tag`` with."""
    return versions.kube_ovn_release(tag).webhook_policy


def run_args(kind: str, tag: str, profile: str = "extended") -> list[str]:
    """``kovc run`` arguments of one run (without ``--report-dir``)."""
    if kind not in RUN_KINDS:
        raise ValueError(f"unknown run kind {kind!r}: expected one of {', '.join(RUN_KINDS)}")
    backend = "sim" if kind == "sim" else "envtest"
    args = ["--backend", backend, "--kube-ovn-version", tag, "--profile", profile]
    if kind != "real":
        args += ["--sim-webhook-policy", model_policy(tag)]
    return args


# --- one run --------------------------------------------------------------------------------------------


@dataclass
class Run:
    """One ``kovc run`` and what it left."""

    kind: str
    tag: str
    args: list[str]
    exit_code: int
    wall_s: float
    report_dir: Path
    report: JSON = field(default_factory=dict)
    output_tail: str = ""
    waited_for_lock_s: float = 0.0

    def outcomes(self) -> dict[str, str]:
        return outcomes(self.report)

    def webhook(self) -> JSON:
        """The report's ``kube-ovn-webhook`` component (``{}`` on the sim backend, which has none)."""
        return next((c for c in self.report.get("components") or [] if c.get("name") == "kube-ovn-webhook"), {})

    def to_json(self) -> JSON:
        hook = self.webhook()
        return {"kind": self.kind, "tag": self.tag, "args": self.args, "exit_code": self.exit_code,
                "wall_s": round(self.wall_s, 1), "waited_for_lock_s": round(self.waited_for_lock_s, 1),
                "report_dir": str(self.report_dir), "verdict": self.report.get("verdict"),
                "sim_model": self.report.get("sim_model"),
                "leaked_ip_crs": len(self.report.get("leaked_ips") or []),
                "webhook": {k: hook[k] for k in ("real", "version", "sha256", "program", "model") if k in hook},
                "outcomes": self.outcomes()}


def outcomes(report: JSON) -> dict[str, str]:
    """Requirement id → outcome of a normal run (the ``upgrade.*`` family belongs to upgrade runs)."""
    upgrade = report.get("upgrade") is not None
    return {str(r["id"]): str(r["outcome"]) for r in report.get("requirements") or []
            if upgrade or not str(r["id"]).startswith("upgrade.")}


def _lock_free() -> bool:
    """Whether no run holds the real webhook's certificate directory right now."""
    from .webhook import LOCK_FILE

    try:
        fh = LOCK_FILE.open("a+")
    except OSError:
        return True
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        fh.close()  # closing drops the probe's lock
    return True


def run_kovc(kind: str, tag: str, report_dir: Path, *, profile: str = "extended", extra: Sequence[str] = (),
             timeout: float = RUN_TIMEOUT, busy_wait: float = BUSY_WAIT,
             log: Callable[[str], None] = lambda _line: None) -> Run:
    """Run ``kovc run`` for one cell column and read its report. A real-webhook run refused because
    another envtest run holds the webhook's fixed certificate directory waits for it and tries again
    (``busy_wait`` seconds in all); the time waited is recorded apart from the run's wall time."""
    args = [*run_args(kind, tag, profile), *extra]
    cmd = [sys.executable, "-m", "conformance", "run", *args, "--report-dir", str(report_dir)]
    waited = 0.0
    give_up = time.monotonic() + busy_wait
    while True:
        if kind == "real" and not _lock_free():
            t = time.monotonic()
            log(f"{tag} {kind}: another envtest run holds the Kube-OVN webhook's certificate directory; waiting")
            while not _lock_free() and time.monotonic() < give_up:
                time.sleep(5)
            waited += time.monotonic() - t
        start = time.monotonic()
        report_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
            code, output = proc.returncode, proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as err:
            code = -1
            output = (err.stdout or b"").decode(errors="replace") if isinstance(err.stdout, bytes) else str(err.stdout)
            output += f"\nkovc run did not end within {timeout:.0f} s"
        wall = time.monotonic() - start
        if code == 2 and BUSY_MARK in output and time.monotonic() < give_up:
            waited += wall
            time.sleep(5)
            continue
        break
    report_file = report_dir / "report.json"
    try:
        report = json.loads(report_file.read_text(encoding="utf-8")) if report_file.is_file() else {}
    except ValueError:
        report = {}
    return Run(kind, tag, args, code, wall, report_dir, report, output[-3000:], waited)


def check_run(run: Run) -> list[str]:
    """Why this run cannot stand in its column ([] when it can): no report, not the extended profile,
    a real run whose webhook was not the real binary of its tag, a model run whose webhook was not the
    release's model."""
    problems: list[str] = []
    where = f"{run.tag} {run.kind} run ({run.report_dir})"
    if not run.report:
        return [f"{where}: no report.json; exit {run.exit_code}: {run.output_tail[-600:].strip()}"]
    if run.report.get("profile") != "extended":
        problems.append(f"{where}: profile {run.report.get('profile')!r}, expected 'extended'")
    want_backend = "sim" if run.kind == "sim" else "envtest"
    if run.report.get("backend") != want_backend:
        problems.append(f"{where}: backend {run.report.get('backend')!r}, expected {want_backend!r}")
    hook = run.webhook()
    if run.kind == "real":
        if hook.get("real") is not True or hook.get("version") != run.tag or len(str(hook.get("sha256", ""))) != 64:
            problems.append(f"{where}: expected Kube-OVN's real webhook {run.tag} (program, version, sha256) "
                            f"in report.json components, saw {hook or 'none'}")
    elif run.kind == "model":
        policy = model_policy(run.tag)
        if hook.get("real") is not False or hook.get("model") != policy:
            problems.append(f"{where}: expected the modelled webhook {policy}, saw {hook or 'none'}")
    return problems


# --- comparison -----------------------------------------------------------------------------------------


@dataclass
class Cell:
    """One requirement of one tag: the outcome per run, and the evidence when they differ."""

    requirement: str
    level: str
    outcomes: dict[str, str]
    evidence: dict[str, str] = field(default_factory=dict)
    #: Where the runs' *cases* differ (outcome, what happened after an admission) while the cell may
    #: agree - information, e.g. a race the webhook does not decide.
    case_notes: list[str] = field(default_factory=list)

    def agrees(self, a: str = "real", b: str = "model") -> bool:
        return self.outcomes.get(a) == self.outcomes.get(b)

    def to_json(self) -> JSON:
        out: JSON = {"requirement": self.requirement, "level": self.level, **self.outcomes,
                     "real_vs_model": "agree" if self.agrees() else "differ"}
        if "sim" in self.outcomes:
            out["model_vs_sim"] = "agree" if self.agrees("model", "sim") else "differ"
        if self.evidence:
            out["evidence"] = self.evidence
        if self.case_notes:
            out["case_notes"] = self.case_notes
        return out


def evidence_of(req: JSON) -> str:
    """What a requirement's report entry says happened: its reason, else its cases (outcome, message,
    what happened after admission), trimmed to what a table cell can carry."""
    parts: list[str] = []
    for case in req.get("cases") or []:
        text = f"[{case.get('outcome')}] {case.get('name')}"
        if case.get("message"):
            text += f": {case['message']}"
        if case.get("admitted_then"):
            text += f" (then: {case['admitted_then']})"
        parts.append(text)
    if not parts and req.get("reason"):
        parts.append(str(req["reason"]).splitlines()[0])
    text = " | ".join(parts) or f"outcome {req.get('outcome')}, no message"
    return text if len(text) <= 1200 else text[:1197] + "..."


#: Generated object names in case names (``c-tztjbz (loser)``, ``kovc-prefix-8nrep``): one per run.
_GENERATED = re.compile(r"\b([a-z][a-z0-9]*(?:-[a-z0-9]+)*?)-[a-z0-9]{5,6}\b")


def _case_key(case: JSON) -> str:
    name = _GENERATED.sub(lambda m: m.group(1) + "-*", str(case.get("name", "")))
    then = f", then {case['admitted_then']}" if case.get("admitted_then") else ""
    return f"{name}: {case.get('outcome')}{then}"


def case_differences(entries: dict[str, JSON]) -> list[str]:
    """The cases (generated names masked) whose outcome or after-admission fate is not the same in
    every run's entry of one requirement, as ``kind: case: outcome, then …``."""
    keys = {kind: sorted(_case_key(c) for c in req.get("cases") or []) for kind, req in entries.items()}
    if len({tuple(v) for v in keys.values()}) <= 1:
        return []
    common = set.intersection(*(set(v) for v in keys.values()))
    return [f"{kind}: {k}" for kind, v in keys.items() for k in v if k not in common]


def compare(reports: dict[str, JSON]) -> list[Cell]:
    """Cells of one tag from the reports of its runs (``real``, ``model`` and optionally ``sim``), in
    the order of the first report's requirements. A requirement missing from a report is ``absent``.
    Every cell where the runs do not all agree carries each run's evidence."""
    order: list[str] = []
    levels: dict[str, str] = {}
    entries: dict[str, dict[str, JSON]] = {}
    for kind, report in reports.items():
        upgrade = report.get("upgrade") is not None
        for req in report.get("requirements") or []:
            rid = str(req["id"])
            if rid.startswith("upgrade.") and not upgrade:
                continue
            if rid not in levels:
                order.append(rid)
                levels[rid] = str(req.get("level", ""))
            entries.setdefault(rid, {})[kind] = req
    cells = []
    for rid in order:
        got = {kind: str(entries[rid].get(kind, {}).get("outcome", "absent")) for kind in reports}
        cell = Cell(rid, levels[rid], got)
        if len(entries[rid]) > 1:
            cell.case_notes = case_differences(entries[rid])
        if len(set(got.values())) > 1:
            cell.evidence = {kind: evidence_of(entries[rid][kind]) if kind in entries[rid] else "not in report"
                             for kind in reports}
        cells.append(cell)
    return cells


@dataclass
class TagRow:
    """Everything measured for one tag."""

    tag: str
    policy: str
    runs: dict[str, Run]
    cells: list[Cell]
    problems: list[str]

    def differing(self, a: str = "real", b: str = "model") -> list[Cell]:
        if a not in self.runs or b not in self.runs:
            return []
        return [c for c in self.cells if not c.agrees(a, b)]

    def to_json(self) -> JSON:
        return {"tag": self.tag, "policy": self.policy, "runs": {k: r.to_json() for k, r in self.runs.items()},
                "problems": self.problems, "cells": [c.to_json() for c in self.cells],
                "real_vs_model_differ": [c.requirement for c in self.differing()],
                "model_vs_sim_differ": [c.requirement for c in self.differing("model", "sim")]}


@dataclass
class Table:
    rows: list[TagRow]
    wall_s: float
    started: str

    def agrees(self) -> bool:
        """Real and model agree on every cell of every tag, and every run was what its column claims."""
        return all(not r.problems and not r.differing() for r in self.rows)

    def to_json(self) -> JSON:
        return {"started": self.started, "wall_s": round(self.wall_s, 1), "agree": self.agrees(),
                "rows": [r.to_json() for r in self.rows]}


def tag_row(tag: str, runs: dict[str, Run]) -> TagRow:
    problems = [p for run in runs.values() for p in check_run(run)]
    cells = compare({k: r.report for k, r in runs.items()}) if all(r.report for r in runs.values()) else []
    return TagRow(tag, model_policy(tag), runs, cells, problems)


def build_table(tags: Iterable[str], out_dir: Path, *, with_sim: bool = False, extra: Sequence[str] = (),
                log: Callable[[str], None] = lambda _line: None) -> Table:
    """Run every tag's runs one after another (real first) into ``out_dir/<tag>/<kind>`` and compare."""
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    t0 = time.monotonic()
    rows = []
    kinds = RUN_KINDS if with_sim else RUN_KINDS[:2]
    for tag in tags:
        runs: dict[str, Run] = {}
        for kind in kinds:
            log(f"{tag} {kind}: kovc run {' '.join(run_args(kind, tag))}")
            run = run_kovc(kind, tag, out_dir / tag / kind, extra=extra, log=log)
            log(f"{tag} {kind}: exit {run.exit_code}, {run.report.get('verdict', 'no report')}, {run.wall_s:.0f} s")
            runs[kind] = run
        row = tag_row(tag, runs)
        for problem in row.problems:
            log(f"{tag}: {problem}")
        log(f"{tag}: real vs model differ on {[c.requirement for c in row.differing()] or 'nothing'}")
        rows.append(row)
    return Table(rows, time.monotonic() - t0, started)


# --- output ---------------------------------------------------------------------------------------------

_MARK = {"passed": "P", "failed": "F", "skipped": "S", "error": "E", "not-run": "·", "absent": "—"}


def _mark(outcome: str | None) -> str:
    return _MARK.get(outcome or "absent", outcome or "—")


def render_markdown(table: Table) -> str:
    """The table: one row per requirement, per tag the real / model (/ sim) outcomes; then the runs'
    exit codes and wall times; then the evidence of every differing cell."""
    rows = table.rows
    if not rows:
        return "No tag compared.\n"
    kinds = [k for k in RUN_KINDS if all(k in r.runs for r in rows)]
    head = "| requirement | level | " + " | ".join(f"{r.tag} ({'/'.join(kinds)})" for r in rows) + " |"
    waited = sum(run.waited_for_lock_s for r in rows for run in r.runs.values())
    lines = [f"Real vs modelled verdicts, `--profile extended`, measured {table.started} "
             f"(whole table {table.wall_s / 60:.1f} min, of which {waited / 60:.1f} min waiting for other "
             "runs' hold on the webhook's certificate directory). Cells: real / model"
             + (" / sim" if "sim" in kinds else "")
             + " outcome (`P` passed, `F` failed); **bold** where real and model differ.", "",
             head, "|---|---|" + "---|" * len(rows)]
    by_tag = [{c.requirement: c for c in r.cells} for r in rows]
    for rid, level in _requirements(rows):
        cells = []
        for cmap in by_tag:
            cell = cmap.get(rid)
            text = " / ".join(_mark(cell.outcomes.get(k)) for k in kinds) if cell else "—"
            cells.append(f"**{text}**" if cell and not cell.agrees() else text)
        lines.append(f"| {rid} | {level} | " + " | ".join(cells) + " |")
    lines += ["", "| tag | model policy | run | exit | verdict | wall | leaked IP CRs | webhook |",
              "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for kind in kinds:
            run = r.runs[kind]
            hook = run.webhook()
            who = ("real " + str(hook.get("version", "")) + " sha256 " + str(hook.get("sha256", ""))[:12]
                   if hook.get("real") else (f"model {hook.get('model')}" if hook else f"model {r.policy} (sim)"))
            lines.append(f"| {r.tag} | {r.policy} | {kind} | {run.exit_code} | {run.report.get('verdict', '—')} | "
                         f"{run.wall_s:.0f} s | {len(run.report.get('leaked_ips') or [])} | {who} |")
    lines += [""]
    problems = [p for r in rows for p in r.problems]
    if problems:
        lines += ["Runs that cannot stand in their column:", ""] + [f"* {p}" for p in problems] + [""]
    diffs = [(r, c) for r in rows for c in r.cells if len(set(c.outcomes.values())) > 1]
    if diffs:
        lines += ["Differing cells (evidence from each run's report.json):", ""]
        for r, c in diffs:
            which = "real ≠ model" if not c.agrees() else "model ≠ sim"
            lines.append(f"* **{r.tag} {c.requirement}** ({which}): "
                         + "; ".join(f"{k} {c.outcomes[k]}: {c.evidence.get(k, '')}" for k in kinds))
    else:
        lines.append("Every cell agrees between the runs.")
    notes = [(r, c) for r in rows for c in r.cells if c.case_notes and len(set(c.outcomes.values())) == 1]
    if notes:
        lines += ["", "Agreeing cells whose cases differ (information: same outcome, another path to it):", ""]
        lines += [f"* {r.tag} {c.requirement}: " + "; ".join(c.case_notes) for r, c in notes]
    return "\n".join(lines) + "\n"


def _requirements(rows: list[TagRow]) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for r in rows:
        for c in r.cells:
            seen.setdefault(c.requirement, c.level)
    return list(seen.items())
