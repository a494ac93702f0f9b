"""report.md: the human summary of a run, and the short form ``kovc run`` prints at its end."""

from __future__ import annotations

from typing import Any

from ..results import EXIT_CODES, RequirementResult, RunResult

SIMULATED_BANNER = "SIMULATED CLUSTER — not a certification"
#: A run whose cluster was partly real (``--backend envtest``: the real kube-apiserver, and the real
#: Kube-OVN webhook unless a model was asked for; KubeVirt and Kube-OVN controllers simulated): still not a
#: certification, but not "simulated" either; report.md's first line names which component was which.
PARTLY_SIMULATED_BANNER = "PARTLY SIMULATED CLUSTER — not a certification"

_OUTCOME_MARK = {"passed": "PASS", "failed": "FAIL", "error": "ERROR", "skipped": "SKIP",
                 "not-run": "NOT RUN", "not-applicable": "NOT APPLICABLE"}
#: How many not-run MUST IDs the short form names before counting the rest.
_SHORT_MAX = 6
_VERSION_LABELS = (
    ("kubernetes", "Kubernetes"),
    ("kube_ovn_controller", "kube-ovn-controller"),
    ("kube_ovn_webhook", "kube-ovn-webhook"),
    ("kubevirt", "KubeVirt"),
    ("kind_node_image", "kind node image"),
)


NOT_A_CERTIFICATION = "not a certification"


def musts_not_run(run: RunResult) -> list[str]:
    """The MUSTs of the report that did not run (outside the profile, or the run stopped first)."""
    return [r.id for r in run.requirements if r.level == "MUST" and r.outcome == "not-run" and run.of_this_run(r.id)]


def verdict_line(run: RunResult) -> str:
    """``Verdict: CONFORMANT (exit 0)``; a conformant run of a profile that leaves catalog MUSTs out
    says so: ``Verdict: CONFORMANT for profile quick (14 MUSTs not run) — not a certification (exit 0)``."""
    verdict = run.verdict
    line = f"Verdict: {verdict.upper()}"
    missing = musts_not_run(run)
    if verdict == "conformant" and missing:
        line += f" for profile {run.profile} ({len(missing)} MUSTs not run) — {NOT_A_CERTIFICATION}"
    if run.stopped_by:  # what ``kovc run`` exits with: the run did not finish, whatever it saw
        line += f" — stopped by {run.stopped_by} before it finished (exit {EXIT_CODES['incomplete']})"
    else:
        line += f" (exit {EXIT_CODES[verdict]})"
    if run.simulated:
        partly = any(c.get("real") for c in run.components)
        line += f" — {PARTLY_SIMULATED_BANNER if partly else SIMULATED_BANNER}"
    return line


def _components_line(run: RunResult) -> str:
    """e.g. "real kube-apiserver v1.35.4 + real Kube-OVN webhook v1.16.2; KubeVirt and Kube-OVN
    controllers simulated — not a certification" (the backend's own summary when it gave one)."""
    if run.sim_model and "not a certification" in run.sim_model:
        return run.sim_model
    real = [f"real {c.get('name')} {c.get('version', '')}".rstrip() for c in run.components if c.get("real")]
    sim = [str(c.get("name")) for c in run.components if not c.get("real")]
    return (" + ".join(real) or "no real component") + (f"; {', '.join(sim)} simulated" if sim else "") + (
        " — not a certification" if run.simulated else "")


def _then(component: dict[str, Any], key: str, alone: str | None = None) -> str:
    """A component's ``key``; for an upgrade run's webhook the release it started on, then the one it was
    upgraded to (``upgraded_to``)."""
    up = component.get("upgraded_to")
    if isinstance(up, dict):
        return f"{component.get(key, '')} → {up.get(key, '')}"
    return alone if alone is not None else str(component.get(key, ''))


def _cell(text: str | None) -> str:
    """Text safe inside a Markdown table cell (one line, pipes escaped)."""
    if not text:
        return ""
    one = " ".join(text.split())
    return one.replace("\\", "\\\\").replace("|", "\\|")


def _fence(text: str) -> list[str]:
    """A fenced code block that cannot be closed early by backticks in ``text``."""
    longest = run = 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    return [fence + "text", text.rstrip("\n"), fence]


def _ids(run: RunResult, *outcomes: str) -> list[RequirementResult]:
    return [r for r in run.requirements if r.outcome in outcomes]


def _counts(counts: dict[str, int]) -> str:
    return (f"{counts['passed']} passed, {counts['failed']} failed, {counts['error']} error, "
            f"{counts['skipped']} skipped, {counts['not_run']} not run"
            + (f", {counts['not_applicable']} not applicable" if counts.get("not_applicable") else ""))


def _short(run: RunResult) -> str:
    lines = [f"kovc {verdict_line(run)}"]
    failed = _ids(run, "failed", "error")
    if failed:
        lines.append("failed: " + ", ".join(
            r.id + (" (error)" if r.outcome == "error" else "") for r in failed))
    skipped = _ids(run, "skipped")
    if skipped:
        lines.append("skipped: " + ", ".join(r.id for r in skipped))
    not_applicable = _ids(run, "not-applicable")
    if not_applicable:
        lines.append("not applicable: " + ", ".join(r.id for r in not_applicable))
    if run.upgrade is None:
        lines.append(f"capabilities: {run.certified_text()}")
    not_run_must = musts_not_run(run)
    if not_run_must:
        shown = ", ".join(not_run_must[:_SHORT_MAX])
        if len(not_run_must) > _SHORT_MAX:
            shown += f" and {len(not_run_must) - _SHORT_MAX} more"
        lines.append("not run (MUST): " + shown)
    summary = run.summary()
    lines.append(f"MUST: {_counts(summary['MUST'])}; SHOULD: {_counts(summary['SHOULD'])}")
    if run.leaked_ips:
        lines.append(f"leaked IP CRs: {len(run.leaked_ips)}")
    return "\n".join(lines) + "\n"


def _failure_section(req: RequirementResult) -> list[str]:
    out = [f"### {req.id} ({req.level}) — {req.outcome}", "", f"{req.title}", ""]
    if req.reason:
        out += ["**Expected vs seen:**", "", *_fence(req.reason), ""]
    bad_cases = [c for c in req.cases if c.outcome in ("failed", "error")]
    for case in bad_cases:
        out.append(f"- case `{case.name}`: **{case.outcome}** ({case.duration_s:.1f} s)"
                   + (f", admitted then: **{case.admitted_then}**" if case.admitted_then else ""))
        if case.message and case.message.strip() != (req.reason or "").strip():
            out += ["", *["  " + line if line else "" for line in _fence(case.message)], ""]
    if not req.reason and not any(c.message for c in bad_cases):
        out += ["(no message was recorded)", ""]
    if req.warnings:
        out += ["Warnings:", "", *[f"- {_cell(w)}" for w in req.warnings], ""]
    if req.diagnostics:
        out += [f"Diagnostics: `{req.diagnostics}`", ""]
    if req.tests:
        out += ["Tests: " + ", ".join(f"`{t.nodeid}` ({t.outcome})" for t in req.tests), ""]
    return out


def _leak_field(ip: dict[str, Any], key: str) -> str:
    """A field of a leaked IP CR, whether recorded as the whole object or as a flat summary."""
    meta = ip.get("metadata") if isinstance(ip.get("metadata"), dict) else {}
    spec = ip.get("spec") if isinstance(ip.get("spec"), dict) else {}
    value = (meta or {}).get(key) if key == "name" else (spec or {}).get(key)
    return str(value or ip.get(key) or "")


def render_markdown(run: RunResult, *, short: bool = False) -> str:
    """The Markdown summary of ``run`` (report.md); ``short`` gives the few lines ``kovc run`` prints:
    the verdict line, failed and skipped IDs and the counts per level."""
    if short:
        return _short(run)
    # The first line carries the verdict (with "not a certification" when catalog MUSTs did not run),
    # or, when some components are real (envtest), which ones were real and which simulated.
    lines = [f"# kovc conformance report — {verdict_line(run)}", "", f"**{verdict_line(run)}**", ""]
    if run.components:
        # First line: which components were real and which simulated (e.g. the envtest backend).
        lines = [_components_line(run), "", *lines, "| Component | Real | Version | Program / model | sha256 |",
                 "|---|---|---|---|---|"]
        for c in run.components:
            what = str(c.get('program') or c.get('model') or c.get('source') or '')
            lines.append(f"| {_cell(str(c.get('name', '')))} | {'real' if c.get('real') else 'simulated'} | "
                         f"{_cell(_then(c, 'version'))} | {_cell(_then(c, 'program', what))} | "
                         f"{_cell(_then(c, 'sha256'))} |")
        lines.append("")
    elif run.simulated:
        lines += [f"> **{SIMULATED_BANNER}.** The cluster under test was kovc's simulated cluster"
                  + (f" (model: {run.sim_model})" if run.sim_model else "")
                  + "; this report shows how the suite behaves, not how a product does.", ""]
    lines += [
        "| | |", "|---|---|",
        f"| Run ID | `{_cell(run.run_id)}` |",
        f"| Profile | {_cell(run.profile)} |",
        f"| Backend | {_cell(run.backend)}{' (simulated)' if run.simulated else ''} |",
    ]
    if run.sim_model:
        lines.append(f"| Simulated model | {_cell(run.sim_model)} |")
    if run.upgrade is not None:
        up = run.upgrade
        lines += [f"| Upgrade | {_cell(str(up.get('from') or '(prepared run)'))} → {_cell(str(up.get('to')))} "
                  f"(phase {_cell(str(up.get('phase')))}{', forced' if up.get('forced') else ''}) |",
                  f"| Upgrade method | {_cell(str(up.get('method') or '(unknown)'))} |"]
        if up.get("skipped_minors"):
            lines.append(f"| Minors skipped | {_cell(', '.join(up['skipped_minors']))} |")
    lines += [
        f"| Started | {_cell(run.started)} |",
        f"| Finished | {_cell(run.finished)} |",
        f"| Suite version | kovc {_cell(run.suite_version)} |",
        "",
        "## Versions", "",
        "| Component | Version |", "|---|---|",
    ]
    for key, label in _VERSION_LABELS:
        value = run.versions.get(key)
        if key == "kind_node_image" and not value:
            continue
        lines.append(f"| {label} | {_cell(value) or '(unknown)'} |")
    extra = sorted(k for k in run.versions if k not in dict(_VERSION_LABELS))
    for key in extra:
        lines.append(f"| {_cell(key)} | {_cell(run.versions[key]) or '(unknown)'} |")
    if run.upgrade is not None:
        when = ("after the operator's upgrade" if run.upgrade.get("phase") == "verify"
                else f"at provisioning, before the upgrade to {run.upgrade.get('to')}")
        lines += ["", f"Note: upgrade run — the versions above were detected {when}."]
    controller, webhook = run.versions.get("kube_ovn_controller"), run.versions.get("kube_ovn_webhook")
    if controller and webhook and controller != webhook:
        lines += ["", f"Note: kube-ovn-controller {controller} and kube-ovn-webhook {webhook} differ "
                      "(version skew)."]
    summary = run.summary()
    lines += ["", "## Summary", "",
              "| Level | Passed | Failed | Error | Skipped | Not run | Not applicable |",
              "|---|---|---|---|---|---|---|"]
    for level in ("MUST", "SHOULD"):
        c = summary[level]
        lines.append(f"| {level} | {c['passed']} | {c['failed']} | {c['error']} | {c['skipped']} | "
                     f"{c['not_run']} | {c.get('not_applicable', 0)} |")
    if run.upgrade is None:
        lines += ["", "## Capabilities", "", f"Certified: {run.certified_text()}", "",
                  "| Capability | Applies when | Status (its MUSTs) | Reason / SHOULDs failed |", "|---|---|---|---|"]
        for cap in run.capabilities():
            gaps = ", ".join(cap.get("should_failed") or [])
            lines.append(f"| {_cell(cap['capability'])} | {_cell(cap['condition'])} | {cap['status']} | "
                         f"{_cell(cap.get('reason') or (f'SHOULD failed: {gaps}' if gaps else None))} |")
    lines += ["", "## Requirements", "",
              "| ID | Level | Outcome | Title | Notes |", "|---|---|---|---|---|"]
    for req in run.requirements:
        notes: list[str] = []
        if req.outcome in ("skipped", "not-run", "not-applicable") and req.reason:
            notes.append(req.reason)
        elif req.outcome in ("failed", "error"):
            notes.append("see below")
        bad = [c.name for c in req.cases if c.outcome in ("failed", "error")]
        if bad:
            notes.append("failed cases: " + ", ".join(bad))
        admitted = sorted({c.admitted_then for c in req.cases if c.admitted_then})
        if admitted:
            notes.append("admitted then: " + ", ".join(admitted))
        if req.warnings:
            notes.append(f"{len(req.warnings)} warning(s)")
        lines.append(f"| `{req.id}` | {req.level} | {_OUTCOME_MARK.get(req.outcome, req.outcome)} | "
                     f"{_cell(req.title)} | {_cell('; '.join(notes))} |")
    if run.upgrade is not None:
        lines += ["", "## Upgrade evidence", "",
                  "An upgrade run is its own kind of run: it selects the preconditions and the upgrade.* "
                  "requirements only; the other families are not counted.", ""]
        for req in run.requirements:
            if req.family != "upgrade" or req.outcome == "not-run":
                continue
            lines.append(f"- `{req.id}` ({req.level}) — {req.outcome}")
            lines += [f"  - {_cell(c.name)}: {c.outcome}" + (f" — {_cell(c.message)}" if c.message else "")
                      for c in req.cases]
    failures = _ids(run, "failed", "error")
    if failures:
        lines += ["", "## Failures", ""]
        for req in failures:
            lines += _failure_section(req)
    warned = [r for r in run.requirements if r.warnings and r.outcome not in ("failed", "error")]
    if run.warnings or warned:
        lines += ["", "## Warnings", ""]
        lines += [f"- {_cell(w)}" for w in run.warnings]
        for req in warned:
            lines += [f"- `{req.id}`: {_cell(w)}" for w in req.warnings]
    if run.leaked_ips:
        lines += ["", "## Leaked IP CRs", "",
                  "IP CRs of the run's addresses that still existed after cleanup:", "",
                  "| Name | Address | Pod | Namespace | Subnet |", "|---|---|---|---|---|"]
        for ip in run.leaked_ips:
            cells = [_cell(_leak_field(ip, key)) for key in ("name", "ipAddress", "podName", "namespace",
                                                               "subnet")]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines).rstrip("\n") + "\n"
