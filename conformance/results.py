"""The outcome of a conformance run, independent of how it is rendered.

The pytest plugin fills a :class:`RunResult` (scenarios record sub-cases and warnings through the
``record`` fixture; xdist workers send them back in ``user_properties``); ``conformance.report``
renders it as report.json, report.md, junit.xml and Allure results; ``kovc run`` turns
:func:`verdict` into its exit code.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Outcome = Literal["passed", "failed", "skipped", "error", "not-run", "not-applicable"]
Level = Literal["MUST", "SHOULD"]
Verdict = Literal["conformant", "non-conformant", "invalid", "incomplete"]

#: The prefix of a skip reason that means "the requirement's applicability condition does not hold on this
#: cluster" (``conformance.capabilities``): such a requirement is ``not-applicable`` - never passed, never
#: counted as missing from a certification - and its reason is the rest of the text.
NOT_APPLICABLE_PREFIX = "not applicable: "

#: The reason of a requirement the run never reached because it was stopped (signal, Ctrl-C).
INTERRUPTED_REASON = "the run was interrupted before it finished"

#: Exit codes of ``kovc run`` per verdict.
EXIT_CODES: dict[str, int] = {"conformant": 0, "non-conformant": 1, "invalid": 2, "incomplete": 3}


@dataclass
class CaseResult:
    """One sub-case of a requirement (e.g. ``web/web-1`` of ``deny.name-prefix``)."""

    name: str
    outcome: Outcome
    duration_s: float = 0.0
    message: str | None = None
    #: For an admitted challenger: what happened next (``blocked-by-ipam``, ``took-over-address``,
    #: ``unallocated``, ``running-without-address``...).
    admitted_then: str | None = None


@dataclass
class TestRef:
    nodeid: str
    outcome: Outcome


@dataclass
class RequirementResult:
    id: str
    level: Level
    title: str
    references: list[str] = field(default_factory=list)
    outcome: Outcome = "not-run"
    reason: str | None = None
    warnings: list[str] = field(default_factory=list)
    cases: list[CaseResult] = field(default_factory=list)
    tests: list[TestRef] = field(default_factory=list)
    #: Diagnostics folder (relative to the report dir) collected for a failure.
    diagnostics: str | None = None
    #: Seconds its scenarios took (setup, call and teardown of every test carrying it, plus the cases other
    #: tests aimed at it); what junit.xml gives as the testcase time.
    duration_s: float = 0.0

    @property
    def family(self) -> str:
        return self.id.split(".", 1)[0]


@dataclass
class RunResult:
    suite_version: str
    run_id: str
    started: str
    finished: str
    backend: str
    simulated: bool
    profile: str
    versions: dict[str, str | None]
    requirements: list[RequirementResult]
    sim_model: str | None = None
    warnings: list[str] = field(default_factory=list)
    #: IP CRs of the run's addresses that outlived the run (e.g. the pre-v1.14 stopped-VM leak).
    leaked_ips: list[dict[str, Any]] = field(default_factory=list)
    #: The requirement IDs the chosen profile/selection runs.
    selected: list[str] = field(default_factory=list)
    #: An upgrade run (its own kind of run: the preconditions and upgrade.* only): {"from", "to",
    #: "method", "phase", "skipped_minors", "forced"}; None for a normal run.
    upgrade: dict[str, Any] | None = None
    #: The KubeVirt CR's ``useEmulation`` as detected (None: unknown), and the factor the run applied to
    #: its VM waits because of it (``settings.vm_wait_factor``).
    kubevirt_use_emulation: bool | None = None
    vm_wait_factor: float = 1.0
    #: Per component of the cluster under test (``--backend envtest``): whether it was the real program
    #: (``program``, ``version``, ``sha256``) or simulated (``model``).
    components: list[dict[str, Any]] = field(default_factory=list)
    #: The signal that stopped the run before it finished (SIGINT, SIGTERM, SIGHUP); None when it ran to
    #: its end. A stopped run exits 3 (incomplete) whatever its verdict says of what it saw.
    stopped_by: str | None = None

    @property
    def verdict(self) -> Verdict:
        return verdict(self.requirements, self.selected, self.profile_requirements())

    def profile_requirements(self) -> list[str] | None:
        """The IDs of the run's profile (None for an unknown profile: every MUST then counts)."""
        try:
            from . import catalog

            if self.upgrade is not None:
                return catalog.upgrade_ids(self.profile)
            return list(catalog.profile_ids(self.profile))
        except (ImportError, KeyError, ValueError):
            return None

    def of_this_run(self, req_id: str) -> bool:
        """Whether ``req_id`` belongs to this kind of run: ``upgrade.*`` only to an upgrade run, every
        other family (the preconditions aside) only to a normal run. The others are reported
        ``not-run`` and counted nowhere."""
        family = req_id.split(".", 1)[0]
        return family == "env" or (family == "upgrade") == (self.upgrade is not None)

    def summary(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for level in ("MUST", "SHOULD"):
            counts = {"passed": 0, "failed": 0, "skipped": 0, "error": 0, "not_run": 0, "not_applicable": 0}
            for req in self.requirements:
                if req.level == level and (req.outcome != "not-run" or self.of_this_run(req.id)):
                    counts[req.outcome.replace("-", "_")] += 1
            out[level] = counts
        return out

    def capabilities(self) -> list[dict[str, Any]]:
        """What the run certified, per capability (:func:`capability_statuses`)."""
        return capability_statuses(self.requirements, self.selected, self.verdict)

    def certified_text(self) -> str:
        """One line: e.g. ``IPv4 pod network, dual-stack; attachment networks not applicable``."""
        return certified_text(self.capabilities())

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["schema"] = "kovc.report/v1"
        data["verdict"] = self.verdict
        data["summary"] = self.summary()
        data["capabilities"] = self.capabilities()
        data["certified"] = self.certified_text()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunResult:
        reqs = []
        req_fields = set(RequirementResult.__dataclass_fields__)
        for r in data.get("requirements", []):
            # kovc.report/v1 only ever adds fields: a reader ignores the ones it does not know.
            r = {k: v for k, v in r.items() if k in req_fields}
            r["cases"] = [CaseResult(**c) for c in r.get("cases", [])]
            r["tests"] = [TestRef(**t) for t in r.get("tests", [])]
            reqs.append(RequirementResult(**r))
        known = {f for f in cls.__dataclass_fields__}
        kwargs = {k: v for k, v in data.items() if k in known and k != "requirements"}
        return cls(requirements=reqs, **kwargs)


def verdict(requirements: list[RequirementResult], selected: list[str],
            profile: list[str] | None = None) -> Verdict:
    """The run's verdict for the requirements it selected.

    invalid (a selected precondition ``env.*`` did not pass, unless the run was stopped before it
    ran; this wins) > non-conformant (any selected
    requirement failed or errored, MUST or SHOULD) > incomplete (a MUST of the profile was skipped
    or not selected — e.g. narrowed away by ``--requirement``) > conformant. ``profile`` is the IDs
    of the chosen profile; without it every MUST of the catalog counts.
    """
    chosen = set(selected)
    for req in requirements:
        if req.family == "env" and req.outcome in ("failed", "error"):
            return "invalid"
    for req in requirements:
        # A precondition that did not pass voids the run; one the run never reached because it was
        # stopped first leaves it incomplete, below.
        stopped_first = req.outcome == "not-run" and req.reason == INTERRUPTED_REASON
        if req.family == "env" and req.outcome != "passed" and not stopped_first and req.id in chosen:
            return "invalid"
    if any(r.outcome in ("failed", "error") for r in requirements if r.id in chosen):
        return "non-conformant"
    if profile is None:
        # Every MUST of the catalog for this kind of run: an upgrade run (it selected upgrade.*)
        # counts the preconditions and the upgrade MUSTs, a normal run every other MUST.
        with contextlib.suppress(ImportError):
            from . import catalog

            profile = catalog.run_musts(upgrade=any(i.startswith("upgrade.") for i in chosen))
    in_profile = set(profile) if profile is not None else None
    for req in requirements:
        if in_profile is not None and req.id not in in_profile:
            continue
        if req.level == "MUST" and req.outcome in ("skipped", "not-run"):
            return "incomplete"
    return "conformant"


#: A capability's status in a run, decided by its MUSTs as the certification is (a failed SHOULD is named
#: in ``should_failed`` and in the one-line text, never a failed capability): ``certified`` (a conformant
#: run, every selected MUST of it passed or not applicable), ``passed`` (likewise, but the run as a whole
#: is no certification: something else failed), ``failed`` (one of its MUSTs failed or errored),
#: ``incomplete`` (a MUST of it skipped or not run), ``not applicable`` (every selected requirement of it
#: was not applicable, with the reason), ``not run`` (none of its requirements was selected).
CapabilityStatus = Literal["certified", "passed", "failed", "incomplete", "not applicable", "not run"]


def capability_statuses(requirements: list[RequirementResult], selected: list[str],
                        verdict_: str) -> list[dict[str, Any]]:
    """Per capability (the requirements without a condition: the IPv4 pod network; then one per
    applicability condition of the catalog), its status and the reason when it is not applicable."""
    try:
        from . import catalog
    except ImportError:  # pragma: no cover - the catalog is part of the package
        return []
    chosen = set(selected)
    out: list[dict[str, Any]] = []
    for key, name in catalog.CAPABILITY_NAMES.items():
        mine = [r for r in requirements if r.id in chosen and r.family not in ("env", catalog.UPGRADE_FAMILY)
                and catalog.exists(r.id) and catalog.get(r.id).applies_when == key]
        status: CapabilityStatus
        reason = None
        if not mine:
            status = "not run"
        elif all(r.outcome == "not-applicable" for r in mine):
            status, reason = "not applicable", next((r.reason for r in mine if r.reason), None)
        elif any(r.level == "MUST" and r.outcome in ("failed", "error") for r in mine):
            status = "failed"
        elif any(r.level == "MUST" and r.outcome in ("skipped", "not-run") for r in mine):
            status = "incomplete"
        else:
            status = "certified" if verdict_ == "conformant" else "passed"
        out.append({"capability": name, "condition": catalog.CAPABILITY_CONDITIONS.get(key or "", catalog.ALWAYS),
                    "status": status, "reason": reason,
                    "requirements": [r.id for r in mine],
                    "should_failed": [r.id for r in mine if r.level != "MUST" and r.outcome in ("failed", "error")]})
    return out


def _named(capability: dict[str, Any], text: str) -> str:
    """``text`` with the capability's failed SHOULDs, which never decide its status, counted after it."""
    gaps = len(capability.get("should_failed") or [])
    return f"{text} ({gaps} SHOULD{'s' if gaps != 1 else ''} failed)" if gaps else text


def certified_text(capabilities: list[dict[str, Any]]) -> str:
    """``IPv4 pod network, dual-stack; attachment networks not applicable`` (what was certified first,
    then the other statuses)."""
    certified = [_named(c, c["capability"]) for c in capabilities if c["status"] == "certified"]
    rest = [_named(c, f"{c['capability']} {c['status']}") for c in capabilities if c["status"] != "certified"
            and c["status"] != "not run"]
    head = ", ".join(certified) if certified else "nothing certified"
    return "; ".join([head, *rest])
