"""``kovc report verify [--allow-simulated] DIR``: is a report bundle certifiable?

A bundle is certifiable when it is complete (the required files are there), unmodified (every file
matches MANIFEST.sha256, no file was added, no symbolic link anywhere), self-consistent (report.json's
verdict and summary follow from its requirements; junit.xml and the Allure results state the same
outcomes), conformant — judged from the per-requirement outcomes and the catalog, never from the
stated ``verdict``: every MUST of the catalog ran and passed (so only a ``baseline`` or ``extended``
run can certify; a ``quick`` run is named with the MUSTs it did not run) and no requirement failed —,
its versions are recorded and agree across report.json, junit.xml and environment.properties (a
controller/webhook version skew is only a warning) and the cluster was real.

Exit 0 certifiable, 1 not (one line per broken rule), 2 bad input (one line).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..results import RequirementResult, RunResult, verdict
from . import allure_env, bundle, json_report, junit
from .markdown import SIMULATED_BANNER

#: The MUST requirements of the catalog (issue 3: IDs are a public contract, never renamed). A
#: certifiable report holds every one of them, passed - or, for one with an applicability condition
#: (issue 14), ``not-applicable`` with the reason. ``conformance.catalog`` is the source; this list
#: is the fallback when it cannot be imported, and a test keeps the two equal.
_CONTRACT_MUSTS: tuple[str, ...] = (
    "env.webhook-live", "env.keep-vm-ip",
    "allow.restart", "allow.stop-start", "allow.launcher-pod-deleted", "allow.live-migration",
    "allow.recreate", "allow.repeated-restarts", "allow.concurrent-restarts", "allow.ip-reuse-after-delete",
    "allow.restart-dual-stack", "allow.static-mac-restart", "allow.attachment-restart",
    "deny.other-vm", "deny.pod-takes-vm-ip", "deny.name-prefix", "deny.stopped-vm-ip", "deny.clone",
    "deny.spoofed-launcher", "deny.other-vm-ipv6", "deny.attachment-other-vm",
    "state.ip-released-on-delete", "state.no-duplicate-ips",
)


def _catalog_musts() -> tuple[str, ...]:
    try:
        from .. import catalog
    except ImportError:
        return _CONTRACT_MUSTS
    return tuple(catalog.run_musts(upgrade=False))


def _upgrade_musts() -> tuple[str, ...]:
    try:
        from .. import catalog
    except ImportError:
        return ()
    return tuple(catalog.run_musts(upgrade=True))


#: The MUSTs of a normal run (the upgrade.* family belongs to upgrade runs only).
CATALOG_MUSTS: tuple[str, ...] = _catalog_musts()
#: The MUSTs an upgrade run (``report.json`` ``upgrade`` set) must have run and passed.
UPGRADE_MUSTS: tuple[str, ...] = _upgrade_musts()
#: Versions a certification must name.
REQUIRED_VERSIONS: tuple[str, ...] = ("kubernetes", "kube_ovn_controller", "kubevirt")
SIMULATED_REASON = "simulated cluster: not a certification"
_MAX_NAMES = 10


class BadInput(Exception):
    """The input is not a bundle at all; the message is the one line shown (exit 2)."""


@dataclass
class Verification:
    report_dir: Path
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    run: RunResult | None = None

    @property
    def certifiable(self) -> bool:
        return not self.reasons


def _names(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_NAMES])
    if len(items) > _MAX_NAMES:
        shown += f" and {len(items) - _MAX_NAMES} more"
    return shown


def _norm(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def symlinks(report_dir: Path) -> list[str]:
    """Relative paths of every symbolic link inside the bundle (files and directories, not followed)."""
    found: list[str] = []
    for root, dirs, files in os.walk(report_dir, followlinks=False):
        for name in [*dirs, *files]:
            path = Path(root) / name
            if path.is_symlink():
                found.append(path.relative_to(report_dir).as_posix())
        dirs[:] = sorted(d for d in dirs if not (Path(root) / d).is_symlink())
    return sorted(found)


def _check_integrity(report_dir: Path, out: Verification) -> None:
    links = symlinks(report_dir)
    if links:
        out.reasons.append(f"symbolic links in the bundle (a bundle holds only regular files): {_names(links)}")
    missing = [name for name in bundle.REQUIRED if not (report_dir / name).is_file()]
    if missing:
        out.reasons.append(f"incomplete bundle: missing {_names(missing)}")
    manifest = report_dir / bundle.MANIFEST
    if not manifest.is_file():
        return
    try:
        listed = bundle.read_manifest(manifest)
    except (OSError, UnicodeDecodeError, ValueError) as err:
        out.reasons.append(f"modified bundle: {bundle.MANIFEST} is unreadable: {err}")
        return
    check = bundle.check_manifest(report_dir, listed)
    parts = []
    if check.changed:
        parts.append(f"changed since the run (hash mismatch): {_names(check.changed)}")
    if check.missing:
        parts.append(f"listed in {bundle.MANIFEST} but absent: {_names(check.missing)}")
    if check.unlisted:
        parts.append(f"not listed in {bundle.MANIFEST}: {_names(check.unlisted)}")
    if check.invalid:
        parts.append(f"invalid paths in {bundle.MANIFEST}: {_names(check.invalid)}")
    not_sealed = [name for name in bundle.REQUIRED
                  if name != bundle.MANIFEST and (report_dir / name).is_file() and name not in listed]
    if not_sealed and not check.unlisted:
        parts.append(f"not listed in {bundle.MANIFEST}: {_names(not_sealed)}")
    if parts:
        out.reasons.append("modified bundle: " + "; ".join(parts))


def _check_self_consistency(data: dict[str, Any], run: RunResult, report_dir: Path,
                            out: Verification) -> None:
    problems = []
    ids = [r.id for r in run.requirements]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        problems.append(f"requirements listed twice: {_names(dupes)}")
    recomputed = verdict(run.requirements, run.selected, run.profile_requirements())
    if data.get("verdict") != recomputed:
        problems.append(f"report.json states verdict {data.get('verdict')!r} but its requirements give "
                        f"{recomputed!r}")
    if data.get("summary") != run.summary():
        problems.append("report.json's summary does not match its requirements")
    junit_path = report_dir / junit.FILENAME
    if junit_path.is_file():
        try:
            cases = junit.read_testcases(junit_path)
        except (OSError, ValueError) as err:
            problems.append(f"junit.xml cannot be read: {err}")
        else:
            disagree = [f"{r.id} ({r.outcome} in report.json, {cases.get(r.id, 'absent')} in junit.xml)"
                        for r in run.requirements if cases.get(r.id) != r.outcome]
            extra = sorted(set(cases) - set(ids))
            if disagree:
                problems.append(f"junit.xml disagrees with report.json: {_names(disagree)}")
            if extra:
                problems.append(f"junit.xml has testcases absent from report.json: {_names(extra)}")
    if problems:
        out.reasons.append("inconsistent report: " + "; ".join(problems))


def _catalog_level(req: RequirementResult) -> str:
    """The requirement's level as the catalog states it (the report's own claim when unknown)."""
    try:
        from .. import catalog

        return catalog.get(req.id).level if catalog.exists(req.id) else req.level
    except ImportError:
        return "MUST" if req.id in _CONTRACT_MUSTS else req.level


def _applies_always(req_id: str) -> bool:
    try:
        from .. import catalog
    except ImportError:
        return False
    return catalog.exists(req_id) and catalog.get(req_id).applies_when is None


def _check_verdict(run: RunResult, out: Verification) -> None:
    """Certification, recomputed from the per-requirement outcomes and the catalog (the report's
    ``verdict``, ``selected`` and ``profile`` fields are not trusted): every catalog MUST ran and
    passed, no requirement failed or errored."""
    reqs = run.requirements
    by_id = {r.id: r for r in reqs}
    required = UPGRADE_MUSTS if run.upgrade is not None else CATALOG_MUSTS
    absent = [i for i in required if i not in by_id]
    downgraded = [i for i in required if i in by_id and by_id[i].level != "MUST"]
    if absent or downgraded:
        parts = []
        if absent:
            parts.append(f"absent from the report: {_names(absent)}")
        if downgraded:
            parts.append(f"reported as SHOULD: {_names(downgraded)}")
        out.reasons.append("MUST requirements of the catalog not covered: " + "; ".join(parts))
    musts = [by_id[i] for i in required if i in by_id]
    # Only a requirement with an applicability condition can be not applicable: any other one reported so
    # is a MUST the run left out.
    unconditional = [r.id for r in reqs if r.outcome == "not-applicable" and _applies_always(r.id)]
    if unconditional:
        out.reasons.append("reported not applicable although the catalog has no applicability condition for "
                           f"them: {_names(unconditional)}")
    not_run = [r.id for r in musts if r.outcome == "not-run"]
    if not_run:
        # Every one named: this is the list a vendor has to run before the bundle can certify.
        out.reasons.append(f"{len(not_run)} of {len(required)} catalog MUSTs did not run (profile "
                           f"{run.profile}; a certification needs every MUST run and passed: profile "
                           f"baseline or extended): {', '.join(not_run)}")
    # Requirements of the other kind of run (upgrade.* in a normal run, the rest in an upgrade run)
    # are reported not-run and never count.
    kind = set(required)
    recomputed = [RequirementResult(id=r.id, level=_catalog_level(r), title=r.title,  # type: ignore[arg-type]
                                    outcome=r.outcome) for r in reqs
                  if r.id in kind or r.outcome != "not-run"]
    certification = verdict(recomputed, [r.id for r in recomputed], None)
    if certification == "conformant":
        return
    parts = []
    env_bad = [r.id for r in recomputed if r.family == "env" and r.outcome != "passed"]
    failed = [r.id for r in recomputed if r.outcome == "failed" and r.family != "env"]
    errors = [r.id for r in recomputed if r.outcome == "error" and r.family != "env"]
    if env_bad:
        parts.append(f"precondition not met: {_names(env_bad)}")
    if failed:
        parts.append(f"failed: {_names(failed)}")
    if errors:
        parts.append(f"error: {_names(errors)}")
    must_skipped = [r.id for r in recomputed if r.level == "MUST" and r.outcome == "skipped"
                    and r.id not in env_bad]
    if must_skipped:
        parts.append(f"MUST skipped: {_names(must_skipped)}")
    if not parts:
        return  # only MUSTs that did not run: named above, once
    out.reasons.append(f"verdict {certification}" + (": " + "; ".join(parts) if parts else ""))


#: Allure result statuses and the requirement outcomes report.json may state for their stories.
_ALLURE_BAD = ("failed", "broken")
#: Slack around the run's start/finish for an Allure result's timestamps (clock granularity), seconds.
_ALLURE_SLACK_S = 120.0
#: Requirements fed by sub-cases of every scenario: a scenario can fail them alone.
_COLLECTED = ("state.no-duplicate-ips",)


def _epoch(stamp: str) -> float | None:
    try:
        return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except (TypeError, ValueError):
        return None


def _check_allure(run: RunResult, report_dir: Path, out: Verification) -> None:
    """Every Allure test result agrees with report.json: a failed or broken result belongs to a
    requirement reported failed/error, a passed one to a requirement that ran, and each was written
    during the run (a leftover of another run is named)."""
    results_dir = report_dir / allure_env.DIRNAME
    if not results_dir.is_dir():
        return
    outcome = {r.id: r.outcome for r in run.requirements}
    started, finished = _epoch(run.started), _epoch(run.finished)
    problems: list[str] = []
    for path in sorted(results_dir.glob("*-result.json")):
        if path.is_symlink():
            continue  # named by the symlink rule
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as err:
            problems.append(f"{path.name} is unreadable: {type(err).__name__}")
            continue
        if not isinstance(data, dict):
            problems.append(f"{path.name} is not an Allure result")
            continue
        status = str(data.get("status") or "unknown")
        name = str(data.get("fullName") or data.get("name") or "?")
        stories = [str(lab.get("value")) for lab in data.get("labels") or []
                   if isinstance(lab, dict) and lab.get("name") == "story"]
        where = f"{path.name} ({name}, {status}"
        unknown = [s for s in stories if s not in outcome]
        if unknown:
            problems.append(f"{where}) names requirements absent from report.json: {', '.join(unknown)}")
            continue
        if status in _ALLURE_BAD:
            blamed = [*stories, *_COLLECTED]
            if not any(outcome.get(s) in ("failed", "error") for s in blamed):
                problems.append(f"{where}) but report.json reports "
                                + ", ".join(f"{s} {outcome.get(s)}" for s in stories or ["(no story)"]))
        elif status == "passed" and any(outcome.get(s) == "not-run" for s in stories):
            problems.append(f"{where}) but report.json reports "
                            + ", ".join(f"{s} {outcome.get(s)}" for s in stories if outcome.get(s) == "not-run"))
        start = data.get("start")
        if started is not None and finished is not None and isinstance(start, int | float):
            when = float(start) / 1000.0
            if when < started - _ALLURE_SLACK_S or when > finished + _ALLURE_SLACK_S:
                problems.append(f"{where}) was written outside the run ({run.started} to {run.finished})")
    if problems:
        out.reasons.append("Allure results disagree with report.json (left over from another run?): "
                           + "; ".join(problems[:_MAX_NAMES])
                           + (f" and {len(problems) - _MAX_NAMES} more" if len(problems) > _MAX_NAMES else ""))


def _facts(run: RunResult) -> dict[str, str]:
    facts = {key: _norm(run.versions.get(key)) for key in json_report.VERSION_KEYS}
    facts.update({"backend": run.backend, "simulated": _norm(run.simulated),
                  "sim_model": _norm(run.sim_model), "run_id": run.run_id, "profile": run.profile,
                  "suite_version": run.suite_version, "verdict": run.verdict})
    return facts


def _check_versions(run: RunResult, report_dir: Path, out: Verification) -> dict[str, dict[str, str]]:
    """Compare report.json with junit.xml and environment.properties; return each source's facts."""
    sources: dict[str, dict[str, str]] = {"report.json": _facts(run)}
    junit_path = report_dir / junit.FILENAME
    if junit_path.is_file():
        try:
            props = junit.read_suite_properties(junit_path)
        except (OSError, ValueError) as err:
            out.reasons.append(f"inconsistent versions: {err}")
            props = None
        if props is not None:
            sources["junit.xml"] = {
                key: props.get(f"version.{key}" if key in json_report.VERSION_KEYS else key, "")
                for key in sources["report.json"]
            }
    env_path = report_dir / allure_env.DIRNAME / allure_env.ENVIRONMENT
    if env_path.is_file():
        try:
            env = allure_env.read_environment(env_path)
        except OSError as err:
            out.reasons.append(f"inconsistent versions: {allure_env.ENVIRONMENT} unreadable: {err}")
        else:
            sources["environment.properties"] = {key: env.get(key, "") for key in sources["report.json"]}
    versions: list[str] = []
    facts: list[str] = []
    for key, expected in sources["report.json"].items():
        seen = {name: values[key] for name, values in sources.items() if name != "report.json"}
        if any(value != expected for value in seen.values()):
            detail = ", ".join(f"{name} {value or '(none)'!s}" for name, value in seen.items())
            (versions if key in json_report.VERSION_KEYS else facts).append(
                f"{key}: report.json {expected or '(none)'}, {detail}")
    if versions:
        out.reasons.append("inconsistent versions: " + "; ".join(versions))
    if facts:
        out.reasons.append("inconsistent run facts: " + "; ".join(facts))
    unknown = [key for key in REQUIRED_VERSIONS if not run.versions.get(key)]
    if unknown:
        out.reasons.append(f"versions not recorded: {_names(unknown)}")
    controller, webhook = run.versions.get("kube_ovn_controller"), run.versions.get("kube_ovn_webhook")
    if not webhook:
        out.warnings.append("kube-ovn-webhook version not recorded")
    elif controller and controller != webhook:
        out.warnings.append(f"version skew: kube-ovn-controller {controller}, kube-ovn-webhook {webhook}")
    return sources


def _check_simulated(run: RunResult, sources: dict[str, dict[str, str]], allow_simulated: bool,
                     out: Verification) -> None:
    simulated = run.simulated or any(facts.get("simulated") == "true" for facts in sources.values())
    if not simulated:
        return
    if allow_simulated:
        out.warnings.append(f"{SIMULATED_BANNER} (accepted with --allow-simulated)")
    else:
        out.reasons.append(SIMULATED_REASON)


def _check_product(run: RunResult, report_dir: Path, out: Verification) -> None:
    path = report_dir / bundle.PRODUCT
    if not path.is_file():
        out.warnings.append(f"{bundle.PRODUCT} is missing: vendors submit it with the bundle")
        return
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        out.warnings.append(f"{bundle.PRODUCT} cannot be read: {' '.join(str(err).split())}")
        return
    if not isinstance(data, dict):
        out.warnings.append(f"{bundle.PRODUCT} is not a mapping")
        return
    empty = [key for key in ("vendor", "name", "version", "contact_email") if not data.get(key)]
    if empty:
        out.warnings.append(f"{bundle.PRODUCT} not filled in: {', '.join(empty)}")
    pairs = (("kube_ovn_version", "kube_ovn_controller"), ("kubevirt_version", "kubevirt"),
             ("kubernetes_version", "kubernetes"))
    for product_key, version_key in pairs:
        stated, measured = data.get(product_key), run.versions.get(version_key)
        if stated and measured and str(stated) != measured:
            out.warnings.append(f"{bundle.PRODUCT} says {product_key} {stated}, the run measured {measured}")


def verify_bundle(report_dir: Path, *, allow_simulated: bool = False) -> Verification:
    """Check a bundle; :class:`BadInput` when ``report_dir`` is not a usable bundle at all."""
    if not report_dir.exists():
        raise BadInput(f"{report_dir}: no such directory")
    if not report_dir.is_dir():
        raise BadInput(f"{report_dir}: not a directory")
    out = Verification(report_dir)
    _check_integrity(report_dir, out)
    report_path = report_dir / json_report.FILENAME
    if not report_path.is_file():
        return out
    try:
        data = json_report.load_data(report_path)
        run = RunResult.from_json(data)
    except json_report.ReportError as err:
        raise BadInput(str(err)) from None
    except TypeError as err:
        raise BadInput(f"{report_path}: cannot be read as a kovc run: {err}") from None
    out.run = run
    _check_self_consistency(data, run, report_dir, out)
    _check_allure(run, report_dir, out)
    _check_verdict(run, out)
    sources = _check_versions(run, report_dir, out)
    _check_simulated(run, sources, allow_simulated, out)
    _check_product(run, report_dir, out)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Check that a report bundle is certifiable: complete, unmodified (no symbolic links), "
                          "every catalog MUST run and passed (recomputed from the outcomes, never from the "
                          "stated verdict; a quick run is not a certification), report.json, junit.xml and "
                          "the Allure results agreeing, consistent versions, real cluster. Exit 0 certifiable, "
                          "1 not (each reason named), 2 bad input.")
    parser.add_argument("--allow-simulated", action="store_true",
                        help="accept a bundle from the simulated cluster (for testing the suite itself)")
    parser.add_argument("report_dir", metavar="DIR", type=Path, help="the run's --report-dir")


def run(args: argparse.Namespace) -> int:
    report_dir: Path = args.report_dir
    try:
        result = verify_bundle(report_dir, allow_simulated=args.allow_simulated)
    except BadInput as err:
        print(f"kovc: report verify: {err}", file=sys.stderr)
        return 2
    for reason in result.reasons:
        print(f"not certifiable: {reason}")
    if result.run is not None and result.run.upgrade is None:
        # what a certification of this bundle covers: every applicable MUST passed, per capability
        print(f"capabilities: {result.run.certified_text()}")
    for warning in result.warnings:
        print(f"warning: {warning}")
    if result.certifiable:
        assert result.run is not None
        versions = result.run.versions
        up = result.run.upgrade
        kube_ovn = (f"upgrade {up.get('from') or '(prepared)'} -> {up.get('to')}" if up is not None
                    else str(versions.get("kube_ovn_controller")))
        print(f"certifiable: {report_dir} (verdict {result.run.verdict}; Kube-OVN "
              f"{kube_ovn}, KubeVirt {versions.get('kubevirt')}, Kubernetes "
              f"{versions.get('kubernetes')})")
        return 0
    return 1
