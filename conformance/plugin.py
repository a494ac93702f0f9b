"""The kovc pytest plugin (entry point ``pytest11``: ``conformance.plugin``).

It turns pytest tests marked ``@pytest.mark.conformance("allow.restart", ...)`` into a certification
run:

* options (one shared definition with ``kovc run``: ``conformance.settings.OPTIONS``), coexisting
  with pytest-kind-ng's clashing ``--kubeconfig``/``--keep-cluster``/``--kind-*`` options;
* the marker is validated against the catalog at collection (an unknown ID is a collection error);
  items outside the profile / ``--requirement`` selection are deselected (``env.*`` always kept);
  Allure labels per item; ``exclusive`` becomes ``xdist_group("exclusive")``;
* the cluster is provisioned lazily, only when a conformance test needs it (session fixture
  ``cluster_info``): under xdist the first worker provisions under a file lock in the shared basetemp
  and writes ``cluster.json``; the controller tears it down once at the end, also after failures
  and Ctrl-C;
* fixtures ``cluster_info``, ``settings``, ``kube``, ``addresses``, ``namespace_factory``, ``ns``,
  ``record``; after every scenario the state.no-duplicate-ips check on its recorded addresses;
* the controller aggregates results per requirement ID, prints one live line per requirement as
  soon as all its tests finished, sweeps what the run left, reports leaked IP CRs, computes the
  verdict and writes the report bundle into ``--report-dir``.

A pytest run without conformance tests (the project's own unit tests) never starts a cluster and
writes nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import string
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from . import RUN_LABEL, __version__, catalog
from .cluster.base import BackendError, ClusterInfo, Versions
from .recorder import (
    PROP_ADDRESSES,
    PROP_CASE,
    PROP_DIAGNOSTICS,
    PROP_FAILED_BY_CASES,
    PROP_INFRA_ERROR,
    PROP_KEPT_NAMESPACE,
    PROP_REQUIREMENTS,
    PROP_WARNING,
    Recorder,
)
from .results import INTERRUPTED_REASON, NOT_APPLICABLE_PREFIX, CaseResult, RequirementResult, RunResult, TestRef
from .settings import (
    OPTIONS,
    SIM_TIMEOUT_SCALE,
    Settings,
    default_report_dir,
    new_run_id,
    vm_wait_factor,
    xdist_worker,
)
from .sim.config import SIM_CLOCK_SCALE

KIND_PLUGIN = "pytest-kind-ng"
KIND_PLUGIN_MODULE = "pytest_kind.plugin"
MARKER = "conformance"
#: A requirement fed by cases of every scenario: decided when the run ends.
COLLECTOR_REQUIREMENTS = frozenset({"state.no-duplicate-ips"})
DUPLICATE_CHECK = "state.no-duplicate-ips"
#: Bound on the controller's wait for a worker still provisioning when the run ends.
FINISH_LOCK_TIMEOUT = 120.0

INTERRUPTED = INTERRUPTED_REASON
#: Signals that stop a run the way Ctrl-C does (what CI cancellations and timeouts send).
STOP_SIGNALS: tuple[str, ...] = ("SIGTERM", "SIGHUP")
LABELS = {"passed": "PASS", "failed": "FAIL", "error": "ERROR", "skipped": "SKIP", "not-run": "NOT-RUN",
          "not-applicable": "N/A"}


# --------------------------------------------------------------------------------------------------
# Options and markers


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    # pytest-kind-ng registers --kubeconfig, --keep-cluster, --kind-bin, --cluster-name, --kind-image,
    # --kind-kubectl-bin (group "kind") and a kind_cluster fixture we never use. Loaded before us (entry
    # point or -p): reuse its options, and block its other name so it is not registered twice. Not
    # loaded yet: block it under both names, so these options are ours and its fixture is absent.
    for name in (KIND_PLUGIN, KIND_PLUGIN_MODULE):
        if pluginmanager.get_plugin(name) is None:
            pluginmanager.set_blocked(name)
    group = parser.getgroup("kovc", "kovc: Kube-OVN x KubeVirt static-IP conformance")
    kind_group = parser.getgroup("kind", "kind cluster (shared with pytest-kind-ng)")
    for opt in OPTIONS:
        target = kind_group if opt.kind_shared else group
        try:
            target.addoption(*opt.flags, **opt.kwargs())
        except (ValueError, argparse.ArgumentError):
            if not opt.kind_shared:
                raise
            # already registered by pytest-kind-ng, with the same dest


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}(*ids): the catalog requirement IDs a scenario decides")
    config.addinivalue_line("markers", "exclusive: the scenario needs the nodes to itself (one worker)")
    config.addinivalue_line("markers", "window: the scenario observes for a fixed time, whatever the cluster "
                            "answers (it starts early, so the other scenarios fill the time beside it)")
    config.addinivalue_line("markers", "allure_label: allure label marker")
    config.addinivalue_line("markers", "xdist_group(name): run in one xdist worker (--dist loadgroup)")
    if not hasattr(config, "workerinput"):
        # Here, not in pytest_cmdline_main: whether xdist's cmdline_main (which turns ``-n N`` into
        # ``--dist load``) ran before ours depends on plugin load order; configure always runs after.
        _prefer_loadgroup(config)
    state = _RunState.from_config(config)
    config.stash[STATE] = state
    if not state.is_worker and getattr(config.option, "report_dir", None) and not getattr(config.option, "plan",
                                                                                       False):
        # An explicit --report-dir is made ready before anything starts (``kovc run`` did it already;
        # this covers a plain ``pytest`` run). First hook: before allure-pytest creates --alluredir in it.
        from .report.reportdir import ReportDirError, prepare

        try:
            note = prepare(state.report_dir, state.run_id, create=False)
        except ReportDirError as err:
            raise pytest.UsageError(str(err)) from None
        if note:
            print(f"kovc: {note}", file=sys.stderr)
    state.previous_handlers = _install_stop_handlers(state)
    if getattr(config, "workerinput", {}).get("kovc", {}).get("loadgroup"):
        config.option.loadgroup = True  # the controller chose loadgroup for a plain ``-n N``
    config.pluginmanager.register(_SessionPlugin(state), f"kovc-session-{id(config)}")


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is None:
        return
    for sig, handler in state.previous_handlers.items():
        with contextlib.suppress(ValueError, OSError, TypeError):
            signal.signal(sig, handler)
    state.previous_handlers = {}


def _install_stop_handlers(state: _RunState) -> dict[int, Any]:
    """SIGTERM and SIGHUP stop the run like Ctrl-C: the first one raises KeyboardInterrupt (pytest
    then stops the scenarios, tears their fixtures down and runs the end of the run: diagnostics,
    sweep, bundle); another one while that cleanup runs is ignored, so the cleanup completes."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if state.stopped_by is None:
            state.stopped_by = name
            state.interrupted = True
            raise KeyboardInterrupt(name)
        print(f"kovc: {name} received while the run is being stopped: finishing the cleanup first",
              file=sys.stderr)

    previous: dict[int, Any] = {}
    for name in STOP_SIGNALS:
        sig = getattr(signal, name, None)
        if sig is None:
            continue
        try:
            previous[sig] = signal.signal(sig, handler)
        except (ValueError, OSError):
            continue
    return previous


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: hand the run's identity and the shared directory to each worker."""
    state = node.config.stash[STATE]
    if state.shared_dir is None:
        state.shared_dir = _basetemp(node.config)
    node.workerinput["kovc"] = {"run_id": state.run_id, "report_dir": str(state.report_dir),
                                "shared_dir": str(state.shared_dir), "started": state.started,
                                "controller_pid": state.controller_pid,
                                "loadgroup": getattr(node.config.option, "dist", None) == "loadgroup"}


def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """``--plan``: print what the backend would do and stop, touching nothing."""
    if hasattr(config, "workerinput"):
        return None
    if not getattr(config.option, "plan", False):
        return None
    from .cluster.select import BackendOptions, make_backend

    try:
        options = BackendOptions.from_namespace(config.option)
        steps = make_backend(options.backend, options).plan()
    except (ValueError, BackendError) as err:  # VersionError, SimOptionError, BackendError
        print(f"kovc: {err}", file=sys.stderr)
        return 2
    for step in steps:
        print(step)
    return 0


def _prefer_loadgroup(config: pytest.Config) -> None:
    """With ``-n N`` and no explicit ``--dist``, xdist distributes with ``load``: use ``loadgroup``
    instead (identical for tests without ``xdist_group``), so ``exclusive`` scenarios share one worker."""
    if getattr(config.option, "dist", None) != "load" or not getattr(config.option, "numprocesses", None):
        return
    given = [*config.invocation_params.args, *config.getini("addopts"),
             *os.environ.get("PYTEST_ADDOPTS", "").split()]
    if any(str(a) in ("-d", "--dist", "--distload") or str(a).startswith("--dist=") for a in given):
        return
    config.option.dist = "loadgroup"


# --------------------------------------------------------------------------------------------------
# Run state (one per process)


STATE = pytest.StashKey["_RunState"]()
PHASES = pytest.StashKey[dict[str, pytest.TestReport]]()
RECORDER = pytest.StashKey[Recorder]()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _TestRecord:
    nodeid: str
    ids: list[str]
    outcome: str = "passed"
    message: str | None = None
    duration: float = 0.0
    finished: bool = False
    props: list[tuple[str, Any]] = field(default_factory=list)


@dataclass
class SessionOutcome:
    """What the last session in this process concluded (read by ``kovc run``)."""

    result: RunResult | None = None
    report_dir: Path | None = None
    provision_error: str | None = None
    error: str | None = None
    #: The signal that stopped the run (SIGINT, SIGTERM, SIGHUP), None when it ran to its end.
    stopped_by: str | None = None


#: Set at the end of every conformance session in this process (``kovc run`` runs pytest in-process).
last_session: SessionOutcome | None = None


class _RunState:
    def __init__(self, config: pytest.Config) -> None:
        from .cluster.select import BackendOptions

        self.config = config
        opt = config.option
        handed: dict[str, Any] = dict(getattr(config, "workerinput", {}).get("kovc", {}))
        self.is_worker = hasattr(config, "workerinput")
        self.worker = str(getattr(config, "workerinput", {}).get("workerid", "main"))
        self.run_id: str = handed.get("run_id") or getattr(opt, "run_id", None) or new_run_id()
        self.report_dir = Path(handed.get("report_dir") or getattr(opt, "report_dir", None)
                               or default_report_dir()).absolute()
        self.started: str = handed.get("started") or _now()
        self.shared_dir: Path | None = Path(handed["shared_dir"]) if handed.get("shared_dir") else None
        self.profile: str = getattr(opt, "profile", None) or catalog.DEFAULT_PROFILE
        self.requested: list[str] = list(getattr(opt, "requirements", None) or [])
        #: An upgrade run (``--upgrade-from``, or the verify phase of ``kovc upgrade``) is its own kind of
        #: run: it selects the preconditions and the upgrade.* family, nothing else.
        self.upgrade_from: str | None = getattr(opt, "upgrade_from", None)
        self.upgrade_phase: str = getattr(opt, "upgrade_phase", None) or "all"
        self.is_upgrade = bool(self.upgrade_from) or self.upgrade_phase != "all"
        self.selected: list[str] = catalog.selection(self.profile, self.requested, upgrade=self.is_upgrade)
        try:
            self.options = BackendOptions.from_namespace(opt, run_id=self.run_id, report_dir=self.report_dir)
        except ValueError as err:  # VersionError, SimOptionError: bad input
            raise pytest.UsageError(str(err)) from None
        # The process whose end ends the run (a simulated cluster follows it).
        self.controller_pid = int(handed.get("controller_pid") or os.getpid())
        self.options.owner_pid = self.controller_pid
        # collection
        self.conformance_run = False
        self.collection_errors = 0
        self.expected: dict[str, list[str]] = {}
        # results (controller / single process)
        self.tests: dict[str, _TestRecord] = {}
        self.printed: set[str] = set()
        self.interrupted = False
        self.stopped_by: str | None = None
        self.previous_handlers: dict[int, Any] = {}
        # cluster (per process)
        self.info: ClusterInfo | None = None
        self.provision_error: str | None = None
        self.kube: Any = None
        self.settings: Settings | None = None
        self.env_failure: str | None = None
        self.diagnostics_taken = False
        self.result: RunResult | None = None

    @classmethod
    def from_config(cls, config: pytest.Config) -> _RunState:
        return cls(config)

    # ---- selection -------------------------------------------------------------------------------

    def not_selected_reason(self, req_id: str = "") -> str:
        if catalog.is_upgrade(req_id) and not self.is_upgrade:
            return "upgrade run only (kovc run --upgrade-from X, kovc upgrade prepare|verify)"
        if self.is_upgrade and not catalog.is_upgrade(req_id):
            return "not part of an upgrade run"
        if self.requested:
            return "not selected by --requirement"
        return f"not selected by profile {self.profile}"

    # ---- the shared cluster ----------------------------------------------------------------------

    def shared(self) -> Path:
        if self.shared_dir is None:
            self.shared_dir = _basetemp(self.config)
        self.shared_dir.mkdir(parents=True, exist_ok=True)
        return self.shared_dir

    def ensure_cluster(self) -> ClusterInfo:
        """Provision once per run (first process to get the lock) or read what another provisioned."""
        if self.info is not None:
            return self.info
        if self.provision_error is not None:
            raise BackendError(self.provision_error)
        from filelock import FileLock

        from .cluster.select import make_backend

        shared = self.shared()
        record = shared / "cluster.json"
        with FileLock(str(shared / "cluster.lock")):
            if (shared / "finished").exists():
                raise BackendError("the run is finishing: no cluster is provisioned any more")
            if record.exists():
                data = json.loads(record.read_text(encoding="utf-8"))
            else:
                try:
                    backend = make_backend(self.options.backend, self.options)
                    info = backend.provision(shared / "cluster")
                    data = {"backend": self.options.backend, "info": info.to_json(), "by": self.worker}
                except BackendError as err:
                    data = {"backend": self.options.backend, "error": str(err), "by": self.worker}
                except Exception as err:
                    data = {"backend": self.options.backend, "by": self.worker,
                            "error": f"provisioning failed: {type(err).__name__}: {err}"}
                _write_json(record, data)
        if "error" in data:
            self.provision_error = str(data["error"])
            raise BackendError(self.provision_error)
        self.info = ClusterInfo.from_json(data["info"])
        return self.info


def _basetemp(config: pytest.Config) -> Path:
    """This process's pytest basetemp (under xdist the controller's is the workers' parent)."""
    factory: pytest.TempPathFactory = config._tmp_path_factory  # type: ignore[attr-defined]
    return factory.getbasetemp()


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(tmp, path)


def _state(config: pytest.Config) -> _RunState:
    return config.stash[STATE]


# --------------------------------------------------------------------------------------------------
# Collection


def marker_ids(item: pytest.Item) -> list[str]:
    """The catalog IDs of an item's ``conformance`` markers (function, class and module level)."""
    out: list[str] = []
    for mark in item.iter_markers(MARKER):
        if not mark.args:
            raise pytest.Collector.CollectError(
                f"{item.nodeid}: @pytest.mark.{MARKER}() needs at least one requirement ID")
        for arg in mark.args:
            if not isinstance(arg, str) or not catalog.exists(arg):
                raise pytest.Collector.CollectError(
                    f"{item.nodeid}: unknown requirement ID {arg!r} in @pytest.mark.{MARKER} "
                    "(see `kovc list` for the catalog)")
            if arg not in out:
                out.append(arg)
    return out


@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> Any:
    """Validate the marker while the module is collected: an unknown ID is that module's
    collection error, naming the ID."""
    result = yield
    items = result if isinstance(result, list) else [result]
    for item in items:
        if isinstance(item, pytest.Item) and item.get_closest_marker(MARKER) is not None:
            marker_ids(item)
    return result


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    state = _state(config)
    selected = set(state.selected)
    kept: list[pytest.Item] = []
    deselected: list[pytest.Item] = []
    for item in items:
        if item.get_closest_marker(MARKER) is None:
            kept.append(item)
            continue
        state.conformance_run = True
        ids = marker_ids(item)
        if not any(i in selected for i in ids):
            deselected.append(item)
            continue
        item.user_properties.append((PROP_REQUIREMENTS, list(ids)))
        reqs = [catalog.get(i) for i in ids]
        for family in dict.fromkeys(r.family for r in reqs):
            item.add_marker(pytest.mark.allure_label(family, label_type="epic"))
        for req in reqs:
            item.add_marker(pytest.mark.allure_label(req.id, label_type="story"))
        severity = "critical" if any(r.level == "MUST" for r in reqs) else "normal"
        item.add_marker(pytest.mark.allure_label(severity, label_type="severity"))
        if item.get_closest_marker("exclusive") is not None:
            item.add_marker(pytest.mark.xdist_group("exclusive"))
        kept.append(item)
    # Preconditions first: when one fails, the rest is skipped as void.
    kept.sort(key=lambda it: 0 if _is_env_only(it) else 1)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
    items[:] = kept


def _item_ids(item: pytest.Item) -> list[str]:
    for key, value in item.user_properties:
        if key == PROP_REQUIREMENTS and isinstance(value, list):
            return [str(v) for v in value]
    return []


def _is_env_only(item: pytest.Item) -> bool:
    if item.get_closest_marker(MARKER) is None:
        return False
    ids = [a for m in item.iter_markers(MARKER) for a in m.args]
    return bool(ids) and all(str(i).startswith("env.") for i in ids)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """Record which tests decide which requirement (after xdist suffixed the node IDs); a worker
    writes it for the controller (live progress needs to know when a requirement is complete)."""
    state = _state(session.config)
    expected = {item.nodeid: _item_ids(item) for item in session.items if _item_ids(item)}
    state.expected = expected
    if state.is_worker and (state.conformance_run or expected):
        _write_json(state.shared() / f"collection-{state.worker}.json",
                    {"conformance": True, "expected": expected})


# --------------------------------------------------------------------------------------------------
# Running


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Once a precondition failed, the other scenarios are void: skip them with the reason."""
    if item.get_closest_marker(MARKER) is None or _is_env_only(item):
        return
    state = _state(item.config)
    failure = state.env_failure
    if failure is None and state.shared_dir is not None:
        path = state.shared_dir / "env-failed.json"
        if path.exists():
            with contextlib.suppress(OSError, ValueError):
                failure = str(json.loads(path.read_text(encoding="utf-8")).get("reason"))
    if failure:
        pytest.skip(f"{failure}: every other verdict is void")


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A passed test whose recorder holds a failed case becomes a failed test (innermost wrapper,
    so Allure and xdist see the final outcome); a test that failed on an infrastructure error (the API
    could not be got past) is marked so that it is reported as an error, never as failed."""
    report: pytest.TestReport = yield
    item.stash.setdefault(PHASES, {})[report.when] = report
    if report.when == "call" and report.failed and call.excinfo is not None:
        from .kube import describe_error, is_infrastructure

        if is_infrastructure(call.excinfo.value):
            prop = (PROP_INFRA_ERROR, describe_error(call.excinfo.value))
            item.user_properties.append(prop)
            report.user_properties.append(prop)
    if report.when == "call":
        rec = item.stash.get(RECORDER, None)
        if rec is not None and rec.failed():
            reqs = sorted({str(c["requirement"]) for c in rec.failed_cases() if c.get("requirement")}
                          | ({*rec.requirements} if any(not c.get("requirement") for c in rec.failed_cases())
                             else set()))
            if report.passed:
                report.outcome = "failed"
                report.longrepr = rec.failure_text()
                item.user_properties.append((PROP_FAILED_BY_CASES, reqs))
                report.user_properties.append((PROP_FAILED_BY_CASES, reqs))
    return report


def _check_sim_model(item: pytest.Item, state: _RunState, rec: Recorder | None) -> None:
    """On a simulated cluster: when its webhook policy raised (a Warning Event with reason
    ``SIM_POLICY_RAISED`` about kube-system/kube-ovn-webhook), the model is broken and no verdict can
    come from it. The first time: a failed ``env.webhook-live`` case naming the policy and its
    exception (the run becomes invalid, exit 2), the rest of the run is void, and the console says so."""
    if state.env_failure is not None or state.info is None or not state.info.simulated or state.kube is None:
        return
    from . import SIM_POLICY_RAISED

    try:
        events = [e for e in state.kube.list("Event", "kube-system") if e.get("reason") == SIM_POLICY_RAISED]
    except Exception:  # the check is best effort; a later test checks again
        return
    if not events:
        return
    text = "; ".join(dict.fromkeys(str(e.get("message") or "") for e in events))
    message = f"the simulated cluster's model is broken, no verdict: {text}"
    if rec is None:
        rec = Recorder(_item_ids(item), item.user_properties)
    rec.case("simulated webhook policy", "failed", message=message, requirement="env.webhook-live")
    state.env_failure = f"precondition env.webhook-live failed ({text})"
    if state.shared_dir is not None:
        with contextlib.suppress(OSError):
            _write_json(state.shared_dir / "env-failed.json", {"reason": state.env_failure})
    reporter = item.config.pluginmanager.get_plugin("terminalreporter")
    capture = item.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None:
        with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
            reporter.write_line(f"kovc: INVALID RUN: {message}", red=True, bold=True)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """state.no-duplicate-ips after every scenario, before its fixtures (namespaces) are torn down;
    before it, on a simulated cluster, whether its model broke (:func:`_check_sim_model`)."""
    rec = item.stash.get(RECORDER, None)
    state = _state(item.config)
    if item.get_closest_marker(MARKER) is not None:
        _check_sim_model(item, state, rec)
    if rec is None or not rec.used_addresses or DUPLICATE_CHECK not in state.selected or state.kube is None:
        return
    ids = _item_ids(item)
    if not ids:
        return
    from .assertions import duplicate_ip_findings
    from .kube import describe_error

    name = ",".join(ids)
    try:
        findings = duplicate_ip_findings(state.kube, list(rec.used_addresses), set(rec.exempt))
    except Exception as err:
        rec.case(name, "error", message=f"the duplicate check could not run: {describe_error(err)}",
                 requirement=DUPLICATE_CHECK)
        return
    if findings:
        rec.case(name, "failed", message="\n".join(findings), requirement=DUPLICATE_CHECK)
    else:
        rec.case(name, "passed", requirement=DUPLICATE_CHECK)


# --------------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="session")
def cluster_info(request: pytest.FixtureRequest) -> ClusterInfo:
    """The cluster under test, provisioned on first use (once per run, shared by xdist workers)."""
    state = _state(request.config)
    try:
        return state.ensure_cluster()
    except BackendError as err:
        request.session.shouldstop = f"kovc: {err}"
        pytest.fail(f"kovc: cluster provisioning failed: {err}", pytrace=False)


@pytest.fixture(scope="session")
def settings(request: pytest.FixtureRequest, cluster_info: ClusterInfo) -> Settings:
    state = _state(request.config)
    opt = request.config.option
    worker, index, count = xdist_worker()
    scale = getattr(opt, "timeout_scale", None)
    if scale is None:
        scale = SIM_TIMEOUT_SCALE if cluster_info.simulated else 1.0
    state.settings = Settings(
        run_id=state.run_id, worker=worker, worker_index=index, worker_count=count,
        timeout_scale=float(scale), clock_scale=SIM_CLOCK_SCALE if cluster_info.simulated else 1.0,
        vm_wait_factor=vm_wait_factor(cluster_info.simulated, cluster_info.extra.get("kubevirt_use_emulation")),
        concurrency=int(getattr(opt, "concurrency", 3) or 3),
        max_migration_loss=float(getattr(opt, "max_migration_loss", 3.0) or 3.0),
        webhook_name=cluster_info.webhook_name, keep_on_failure=bool(getattr(opt, "keep_on_failure", False)),
        report_dir=state.report_dir, backend=cluster_info.backend, simulated=cluster_info.simulated,
        profile=state.profile, diagnostics=str(getattr(opt, "diagnostics", "each") or "each"),
    )
    return state.settings


@pytest.fixture(scope="session")
def kube(request: pytest.FixtureRequest, cluster_info: ClusterInfo) -> Iterator[Any]:
    """The suite's client (``conformance.kube.Kube``) for the cluster under test."""
    from .heartbeat import Heartbeat
    from .kube import Kube

    state = _state(request.config)
    client = Kube(cluster_info.kubeconfig, cluster_info.context, run_id=state.run_id)
    state.kube = client
    # The run's heartbeat (its own client: it renews from a thread), read by `kovc cleanup --all`.
    beat_client = Kube(cluster_info.kubeconfig, cluster_info.context, run_id=state.run_id)
    heartbeat = Heartbeat(beat_client, state.run_id)
    heartbeat.start()
    try:
        yield client
    finally:
        heartbeat.stop()
        beat_client.close()
        state.kube = None
        client.close()


@pytest.fixture(scope="session")
def upgrade_run(request: pytest.FixtureRequest) -> dict[str, Any]:
    """An upgrade run's parameters for the upgrade.* scenarios: ``from``, ``to``, ``phase`` (all|verify),
    ``run_id``, ``method``."""
    state = _state(request.config)
    block = upgrade_block(state) or {}
    return {**block, "run_id": state.run_id, "phase": state.upgrade_phase}


@pytest.fixture(scope="session")
def cluster_upgrade(request: pytest.FixtureRequest, cluster_info: ClusterInfo, kube: Any,
                    settings: Settings) -> Callable[[], Any]:
    """``perform()`` upgrades Kube-OVN on the cluster under test to the run's target release, through
    the backend that provisioned it (``Backend.upgrade``), and returns its ``UpgradeOutcome`` once the
    rollout is complete. Scenarios never see the backend."""
    from .cluster.base import BackendError
    from .cluster.select import make_backend

    state = _state(request.config)

    def perform() -> Any:
        backend = make_backend(state.options.backend, state.options)
        try:
            return backend.upgrade(cluster_info, state.options.kube_ovn_version_or_default, kube,
                                   settings.timeout(600.0, minimum=10.0))
        except BackendError as err:
            raise AssertionError(f"the upgrade to {state.options.kube_ovn_version_or_default} failed: {err}") from None

    return perform


@pytest.fixture(scope="session")
def capabilities(kube: Any) -> Any:
    """What the cluster offers beyond one IPv4 on the pod network (``conformance.capabilities``), read from
    the API once per process."""
    from .capabilities import detect

    return detect(kube)


@pytest.fixture(autouse=True)
def _applicability(request: pytest.FixtureRequest) -> None:
    """A scenario whose requirements all need a capability the cluster lacks is ``not-applicable``, with
    the reason, before any of its fixtures makes anything (autouse fixtures run first)."""
    ids = _item_ids(request.node)
    reqs = [catalog.get(i) for i in ids if catalog.exists(i)]
    needs = {r.applies_when for r in reqs}
    if not reqs or None in needs:
        return
    caps = request.getfixturevalue("capabilities")
    missing = [c for c in sorted(str(n) for n in needs) if not caps.has(c)]
    if missing:
        pytest.skip(NOT_APPLICABLE_PREFIX + "; ".join(
            f"{catalog.CAPABILITY_CONDITIONS[c]} does not hold: {caps.reason(c)}" for c in missing))


@pytest.fixture(scope="session")
def addresses(kube: Any, settings: Settings) -> Any:
    """The run's address pool (``conformance.addresses.AddressPool``)."""
    from .addresses import AddressPool

    return AddressPool(kube, settings)


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Recorder:
    """Sub-cases, warnings and addresses of this scenario (``conformance.recorder.Recorder``)."""
    item = request.node
    rec = Recorder(_item_ids(item) or [a for m in item.iter_markers(MARKER) for a in m.args],
                   sink=item.user_properties)
    item.stash[RECORDER] = rec
    return rec


_ALPHABET = string.ascii_lowercase + string.digits


def _rand(n: int = 5) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


@pytest.fixture
def namespace_factory(request: pytest.FixtureRequest, kube: Any, settings: Settings,
                      cluster_info: ClusterInfo, record: Recorder) -> Iterator[Callable[..., str]]:
    """``namespace_factory(prefix="kovc")`` creates a namespace ``<prefix>-<rand>`` labelled with the run
    id. At teardown, for a failed scenario, diagnostics are collected first; then the namespaces are
    deleted, unless ``--keep-on-failure`` and the scenario failed."""
    created: list[str] = []

    def make(prefix: str = "kovc") -> str:
        name = f"{prefix}-{_rand()}"
        kube.create_namespace(name, labels={RUN_LABEL: settings.run_id})
        created.append(name)
        return name

    try:
        yield make
    finally:
        _finish_namespaces(request.node, kube, settings, cluster_info, record, created)


@pytest.fixture
def ns(namespace_factory: Callable[..., str]) -> str:
    """One namespace of this scenario."""
    return namespace_factory()


def _scenario_failed(item: pytest.Item, rec: Recorder | None) -> bool:
    phases = item.stash.get(PHASES, {})
    if any(r.failed for r in phases.values()):
        return True
    return rec is not None and rec.failed()


def _finish_namespaces(item: pytest.Item, kube: Any, settings: Settings, info: ClusterInfo, rec: Recorder,
                       created: list[str]) -> None:
    if not created:
        return
    state = _state(item.config)
    failed = _scenario_failed(item, rec)
    once = settings.diagnostics == "once"
    if failed and (settings.diagnostics == "each" or (once and not _took_once(state))):
        _collect_diagnostics(item, kube, settings, info, rec, created)
    for name in created:
        if failed and settings.keep_on_failure:
            item.user_properties.append((PROP_KEPT_NAMESPACE, name))
            rec.warn(f"namespace {name} kept for debugging (--keep-on-failure); "
                     f"remove it with `kovc cleanup --run-id {settings.run_id}`")
            continue
        try:
            kube.delete_namespace(name)
        except Exception as err:
            from .kube import describe_error

            rec.warn(f"namespace {name} could not be deleted: {describe_error(err)}")


def _took_once(state: _RunState) -> bool:
    """``--diagnostics once``: true when some process already collected diagnostics in this run."""
    if state.diagnostics_taken:
        return True
    marker = state.shared() / "diagnostics-taken"
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        os.close(fd)
    except FileExistsError:
        return True
    except OSError:
        return False
    state.diagnostics_taken = True
    return False


def _collect_diagnostics(item: pytest.Item, kube: Any, settings: Settings, info: ClusterInfo, rec: Recorder,
                         namespaces: list[str]) -> None:
    ids = _item_ids(item) or ["unknown"]
    base = settings.report_dir / "diagnostics"
    out = base / ids[0]
    n = 2
    while out.exists() and any(out.iterdir()):
        out = base / f"{ids[0]}-{n}"
        n += 1
    try:
        from .report.diagnostics import collect

        collect(kube.api, out, namespaces=namespaces, ip_addresses=list(rec.used_addresses), info=info)
    except Exception as err:
        rec.warn(f"diagnostics could not be collected: {type(err).__name__}: {err}")
        return
    rel = str(out.relative_to(settings.report_dir))
    item.user_properties.append((PROP_DIAGNOSTICS, {"requirements": ids, "path": rel}))


# --------------------------------------------------------------------------------------------------
# Aggregation (controller, or the single process without xdist)


def _message(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    crash = getattr(longrepr, "reprcrash", None)
    text = getattr(crash, "message", None) if crash is not None else None
    if not text:
        text = report.longreprtext or ""
    return str(text).strip()


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    text = str(longrepr[2]) if isinstance(longrepr, tuple) and len(longrepr) == 3 else report.longreprtext or "skipped"
    return text.removeprefix("Skipped: ").strip()


def _record_report(state: _RunState, report: pytest.TestReport, ids: list[str]) -> _TestRecord | None:
    """Fold one phase report into its test's record; returns the record once the test finished."""
    rec = state.tests.get(report.nodeid)
    if rec is None:
        rec = state.tests[report.nodeid] = _TestRecord(report.nodeid, ids)
    rec.duration += float(report.duration or 0.0)
    when = report.when
    if when == "setup":
        if report.skipped and _skip_reason(report).startswith(NOT_APPLICABLE_PREFIX):
            rec.outcome, rec.message = "not-applicable", _skip_reason(report).removeprefix(NOT_APPLICABLE_PREFIX)
        elif report.skipped:
            rec.outcome, rec.message = "skipped", _skip_reason(report)
        elif report.failed:
            rec.outcome, rec.message = "error", _message(report)
    elif when == "call":
        infra = [str(v) for k, v in report.user_properties if k == PROP_INFRA_ERROR]
        if report.failed and infra:
            rec.outcome = "error"
            rec.message = f"infrastructure error, no verdict: the suite could not get past the API: {infra[-1]}"
        elif report.failed:
            rec.outcome, rec.message = "failed", _message(report)
        elif report.skipped:
            if hasattr(report, "wasxfail"):
                rec.outcome, rec.message = "failed", f"expected to fail (xfail): {report.wasxfail}"
            else:
                rec.outcome, rec.message = "skipped", _skip_reason(report)
        else:
            rec.outcome = "passed"
    elif when == "teardown":
        if report.failed and rec.outcome in ("passed", "skipped", "not-applicable"):
            rec.outcome, rec.message = "error", _message(report)
    else:  # xdist reports a crashed worker's item with when="???"
        rec.outcome, rec.message = "error", _message(report) or "the worker running it crashed"
    if when in ("setup", "call"):
        return None
    rec.props = list(report.user_properties)
    rec.finished = True
    return rec


def _note_env_failure(state: _RunState, report: pytest.TestReport, ids: list[str]) -> None:
    """A failed precondition voids the rest of the run: remember it (and tell the other workers)."""
    if not report.failed or not ids or not all(i.startswith("env.") for i in ids):
        return
    if state.provision_error is not None:
        return  # no cluster at all: every scenario errors on its own, nothing is "void"
    if state.env_failure is None:
        state.env_failure = f"precondition {', '.join(ids)} failed"
        if state.shared_dir is not None:
            with contextlib.suppress(OSError):
                _write_json(state.shared_dir / "env-failed.json", {"reason": state.env_failure})


def _cases(rec: _TestRecord, key: str = PROP_CASE) -> list[dict[str, Any]]:
    return [dict(v) for k, v in rec.props if k == key and isinstance(v, dict)]


def _failed_by_cases(rec: _TestRecord) -> list[str] | None:
    for k, v in rec.props:
        if k == PROP_FAILED_BY_CASES:
            return list(v)  # type: ignore[call-overload]
    return None


def decide(req_id: str, records: list[_TestRecord], *, selected: bool, reason_not_selected: str,
           interrupted: bool = False) -> RequirementResult:
    """The outcome of one requirement from the tests that carry it and the cases aimed at it."""
    req = catalog.get(req_id)
    result = RequirementResult(id=req.id, level=req.level, title=req.title, references=list(req.references))
    own = [r for r in records if req_id in r.ids]
    foreign = [r for r in records if req_id not in r.ids
               and any(c.get("requirement") == req_id for c in _cases(r))]
    outcomes: list[str] = []
    reasons: list[str] = []
    result.duration_s = round(sum(rec.duration for rec in own)
                              + sum(float(c.get("duration_s") or 0.0) for rec in foreign for c in _cases(rec)
                                    if c.get("requirement") == req_id), 3)
    for rec in own:
        outcome = rec.outcome if rec.finished else "not-run"
        if outcome == "failed":
            blamed = _failed_by_cases(rec)
            if blamed is not None and req_id not in blamed:
                outcome = "passed"
            elif blamed is not None:  # failed by its cases: only errored ones (no verdict) make an error
                verdicts = [c.get("outcome") for c in _cases(rec) if c.get("requirement") in (None, req_id)
                            and c.get("outcome") in ("failed", "error")]
                if verdicts and "failed" not in verdicts:
                    outcome = "error"
        outcomes.append(outcome)
        if outcome in ("failed", "error", "skipped", "not-applicable") and rec.message:
            reasons.append(rec.message)
        result.tests.append(TestRef(nodeid=rec.nodeid, outcome=outcome))  # type: ignore[arg-type]
        for case in _cases(rec):
            if case.get("requirement") in (None, req_id):
                result.cases.append(_case(case))
        for k, v in rec.props:
            if k == PROP_WARNING and str(v) not in result.warnings:
                result.warnings.append(str(v))
            if k == PROP_DIAGNOSTICS and isinstance(v, dict) and req_id in v.get("requirements", []):
                result.diagnostics = result.diagnostics or str(v.get("path"))
    for rec in foreign:
        mine = [c for c in _cases(rec) if c.get("requirement") == req_id]
        bad = [c for c in mine if c.get("outcome") in ("failed", "error")]
        outcome = "failed" if any(c.get("outcome") == "failed" for c in bad) else (
            "error" if bad else "passed")
        outcomes.append(outcome)
        result.tests.append(TestRef(nodeid=rec.nodeid, outcome=outcome))  # type: ignore[arg-type]
        result.cases.extend(_case(c) for c in mine)
        for c in bad:
            reasons.append(f"{c.get('name')}: {c.get('message') or c.get('outcome')}")
    if not outcomes:
        result.outcome = "not-run"
        if not selected:
            result.reason = reason_not_selected
        else:
            result.reason = INTERRUPTED if interrupted else "no scenario collected for it"
        return result
    for candidate in ("failed", "error", "skipped", "not-run", "passed", "not-applicable"):
        if candidate in outcomes:
            result.outcome = candidate  # type: ignore[assignment]
            break
    if result.outcome == "not-run":
        result.reason = INTERRUPTED if interrupted else "its scenarios did not run"
    elif result.outcome != "passed" and reasons:
        result.reason = "\n".join(dict.fromkeys(reasons))
    return result


def _case(case: dict[str, Any]) -> CaseResult:
    return CaseResult(name=str(case.get("name")), outcome=case.get("outcome", "passed"),
                      duration_s=float(case.get("duration_s") or 0.0), message=case.get("message"),
                      admitted_then=case.get("admitted_then"))


def progress_line(result: RequirementResult, duration: float) -> str:
    label = LABELS.get(result.outcome, result.outcome.upper())
    line = f"{label:<5} {result.level:<6} {result.id}  ({duration:.1f} s)"
    if result.outcome in ("skipped", "not-run", "not-applicable") and result.reason:
        line += f"  {result.reason.splitlines()[0]}"
    return line


def _progress(state: _RunState, *, final: bool = False) -> None:
    """Print one line per requirement whose tests are all finished (all remaining when ``final``)."""
    finished = {n for n, r in state.tests.items() if r.finished}
    expected = dict(state.expected)
    for nodeid, rec in state.tests.items():
        expected.setdefault(nodeid, rec.ids)
    for req_id in state.selected:
        if req_id in state.printed:
            continue
        mine = [n for n, ids in expected.items() if req_id in ids]
        complete = bool(mine) and all(n in finished for n in mine)
        if not final and (req_id in COLLECTOR_REQUIREMENTS or not complete):
            continue
        records = list(state.tests.values())
        result = decide(req_id, records, selected=True, reason_not_selected=state.not_selected_reason(),
                        interrupted=state.interrupted)
        duration = sum(state.tests[n].duration for n in mine if n in state.tests)
        state.printed.add(req_id)
        _write_line(state.config, progress_line(result, duration))


def _write_line(config: pytest.Config, line: str) -> None:
    tr: Any = config.pluginmanager.get_plugin("terminalreporter")
    if tr is None:
        return
    tw: Any = getattr(tr, "_tw", None)
    if tw is not None and int(getattr(tw, "width_of_current_line", 0) or 0) > 0:
        tw.line()  # after xdist's progress characters, which leave the line open
    tr.write_line(line, bold=line.startswith(("FAIL", "ERROR")))


# --------------------------------------------------------------------------------------------------
# End of the run (controller / single process)


class _SessionPlugin:
    """Per-config hooks that need the run state: result aggregation, live progress and the end of
    the run. Active in the xdist controller and in a process without xdist; inert in workers except
    for noting a failed precondition."""

    def __init__(self, state: _RunState) -> None:
        self.state = state

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        state = self.state
        if state.expected or state.shared_dir is None:
            return
        path = state.shared_dir / f"collection-{node.workerinput.get('workerid', '')}.json"
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(path.read_text(encoding="utf-8"))
            state.conformance_run = state.conformance_run or bool(data.get("conformance"))
            state.expected = {str(k): list(v) for k, v in (data.get("expected") or {}).items()}
        if state.conformance_run:
            _import_sweep_in_background()

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.state.collection_errors += 1

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        state = self.state
        ids: list[str] = []
        for key, value in report.user_properties:
            if key == PROP_REQUIREMENTS:
                ids = [str(v) for v in value]  # type: ignore[attr-defined]
        ids = ids or state.expected.get(report.nodeid, [])
        if not ids:
            return
        state.conformance_run = True
        _note_env_failure(state, report, ids)
        if state.is_worker:
            return
        if _record_report(state, report, ids) is not None:
            _progress(state)

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        self.state.interrupted = True
        if self.state.stopped_by is None:
            self.state.stopped_by = "SIGINT"

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """After every fixture was torn down and Allure wrote its files: sweep, leak check, teardown,
        verdict, report bundle."""
        state = self.state
        if state.is_worker:
            return
        if exitstatus == pytest.ExitCode.INTERRUPTED and not state.collection_errors:
            state.interrupted = True
        finish_run(state)

    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
        state = self.state
        if state.is_worker or state.result is None:
            return
        from .report.markdown import verdict_line

        terminalreporter.write_sep("=", "kovc")
        terminalreporter.write_line(f"kovc {verdict_line(state.result)}")
        terminalreporter.write_line(f"report: {state.report_dir}")


def finish_run(state: _RunState) -> SessionOutcome | None:
    """The controller's end of a run: cleanup and teardown of whatever was provisioned (always), then,
    for a conformance run that collected cleanly, the verdict and the report bundle."""
    global last_session
    data = _finish_cluster_record(state)
    if not (state.conformance_run or state.expected or state.tests or data):
        return None
    outcome = SessionOutcome(report_dir=state.report_dir, stopped_by=state.stopped_by)
    last_session = outcome
    warnings: list[str] = []
    info: ClusterInfo | None = None
    if data and "info" in data:
        info = ClusterInfo.from_json(data["info"])
        warnings.extend(info.warnings)
    elif data and "error" in data:
        outcome.provision_error = str(data["error"])
        warnings.append(f"cluster provisioning failed: {data['error']}")
    leaked: list[dict[str, Any]] = []
    if info is not None and data is not None:
        leaked, extra = _sweep_and_check_leaks(state, info)
        warnings.extend(extra)
        if state.options.keep_cluster:
            warnings.append(f"cluster kept (--keep-cluster): kubeconfig {info.kubeconfig}")
        try:
            from .cluster.select import make_backend

            make_backend(str(data.get("backend") or state.options.backend), state.options).teardown(info)
        except Exception as err:
            warnings.append(f"cluster teardown failed: {type(err).__name__}: {err}")
    if state.collection_errors:
        outcome.error = f"{state.collection_errors} error(s) during collection: no verdict"
        return outcome
    _progress(state, final=True)
    result = build_result(state, info, warnings, leaked)
    state.result = outcome.result = result
    try:
        write_report(result, state.report_dir, info)
    except Exception as err:
        outcome.error = f"the report could not be written to {state.report_dir}: {type(err).__name__}: {err}"
    return outcome


def _finish_cluster_record(state: _RunState) -> dict[str, Any] | None:
    """Mark the run finished (so no worker provisions any more) and read what was provisioned."""
    if state.shared_dir is None:
        return None
    from filelock import FileLock, Timeout

    shared = state.shared_dir
    record = shared / "cluster.json"
    if not shared.is_dir():
        return None
    try:
        with FileLock(str(shared / "cluster.lock"), timeout=FINISH_LOCK_TIMEOUT):
            (shared / "finished").touch()
            if record.exists():
                return dict(json.loads(record.read_text(encoding="utf-8")))
    except Timeout:
        if record.exists():
            return dict(json.loads(record.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None
    return None


def _import_sweep_in_background() -> None:
    """An xdist controller needs the Kubernetes client only for the end-of-run sweep; importing it then
    added ~0.2 s after the last scenario. It is imported while the workers run instead (the controller
    mostly waits on them), in a daemon thread: an import the sweep makes meanwhile waits for this one."""
    def load() -> None:
        with contextlib.suppress(Exception):
            from . import kube  # noqa: F401  (the Kubernetes client: ~0.15 s)
            from .commands import cleanup  # noqa: F401

    threading.Thread(target=load, name="kovc-import-sweep", daemon=True).start()


def _sweep_and_check_leaks(state: _RunState, info: ClusterInfo) -> tuple[list[dict[str, Any]], list[str]]:
    """Delete what the run left (except namespaces kept by --keep-on-failure), wait for its namespaces
    to go, then report IP CRs of the run's addresses that outlived it."""
    warnings: list[str] = []
    kept: set[str] = set()
    used: list[str] = []
    for rec in state.tests.values():
        for k, v in rec.props:
            if k == PROP_KEPT_NAMESPACE:
                kept.add(str(v))
            elif k == PROP_ADDRESSES:
                used.extend(str(a) for a in v)  # type: ignore[attr-defined]
    try:
        from .commands.cleanup import delete_run_objects, wait_namespaces_gone
        from .kube import Kube, describe_error
    except ImportError as err:
        return [], [f"cleanup at the end of the run skipped: {err}"]
    scale = state.options.timeout_scale or (SIM_TIMEOUT_SCALE if info.simulated else 1.0)
    try:
        kube = Kube(info.kubeconfig, info.context, run_id=state.run_id)
    except Exception as err:
        return [], [f"cleanup at the end of the run skipped: {type(err).__name__}: {err}"]
    leaked: list[dict[str, Any]] = []
    try:
        left = delete_run_objects(kube, state.run_id, keep_namespaces=kept, include_cluster_scoped=not kept)
        from .heartbeat import namespace_name

        left = [what for what in left if what != f"namespace/{namespace_name(state.run_id)}"]  # swept by design
        if left:
            warnings.append(f"deleted {len(left)} object(s) the scenarios left: {', '.join(left[:10])}"
                            + (" …" if len(left) > 10 else ""))
        remaining = wait_namespaces_gone(kube, state.run_id, max(120.0 * scale, 5.0), keep=kept)
        if remaining:
            warnings.append(f"namespaces still terminating at the end of the run: {', '.join(remaining)}")
        if used:
            leaked = leaked_ips(kube, set(used), timeout=max(30.0 * scale, 2.0), kept_namespaces=kept)
            for ip in leaked:
                warnings.append(f"leaked IP CR {ip['name']} ({ip['ipAddress']}, pod {ip['podName']} in "
                                f"{ip['namespace']}) outlived the run")
    except Exception as err:
        warnings.append(f"cleanup at the end of the run failed: {describe_error(err)}")
    finally:
        kube.close()
    return leaked, warnings


def leaked_ips(kube: Any, addresses: set[str], *, timeout: float,
               kept_namespaces: set[str]) -> list[dict[str, Any]]:
    """IP CRs holding one of ``addresses`` that are still present after ``timeout`` (following a watch
    on IP CRs for their deletion), as flat summaries."""
    import time

    def holds(obj: dict[str, Any]) -> bool:
        spec = obj.get("spec") or {}
        values = {spec.get("ipAddress"), spec.get("v4IpAddress"), spec.get("v6IpAddress")}
        values |= {v for s in list(values) if isinstance(s, str) for v in s.split(",")}
        return bool(values & addresses) and spec.get("namespace") not in kept_namespaces

    deadline = time.monotonic() + timeout
    while True:
        items, rv = kube.list_with_version("IP", None)
        present = {str(o["metadata"]["name"]): o for o in items if holds(o)}
        remaining = deadline - time.monotonic()
        if not present or remaining <= 0:
            break
        try:
            for event in kube.watch("IP", None, resource_version=rv,
                                    timeout_seconds=max(1, int(remaining + 0.999))):
                obj = event.get("object") or {}
                if event.get("type") == "DELETED":
                    present.pop(str((obj.get("metadata") or {}).get("name")), None)
                if not present or time.monotonic() > deadline:
                    break
        except Exception:
            pass
        if not present:
            break
    out = []
    for name, obj in sorted(present.items()):
        spec = obj.get("spec") or {}
        out.append({"name": name, "ipAddress": spec.get("ipAddress") or spec.get("v4IpAddress"),
                    "podName": spec.get("podName"), "podType": spec.get("podType"),
                    "namespace": spec.get("namespace"), "subnet": spec.get("subnet")})
    return out


def build_result(state: _RunState, info: ClusterInfo | None, warnings: list[str],
                 leaked: list[dict[str, Any]]) -> RunResult:
    selected = set(state.selected)
    records = list(state.tests.values())
    requirements = [decide(r.id, records if r.id in selected else [], selected=r.id in selected,
                           reason_not_selected=state.not_selected_reason(r.id), interrupted=state.interrupted)
                    for r in catalog.all_requirements()]
    versions = asdict(info.versions) if info is not None else asdict(Versions())
    backend = info.backend if info is not None else state.options.backend
    simulated = info.simulated if info is not None else state.options.backend == "sim"
    sim_model = info.sim_model if info is not None else (
        state.options.sim.model_name if state.options.backend == "sim" else None)
    if state.interrupted:
        warnings = [*warnings, "the run was interrupted" + (f" by {state.stopped_by}" if state.stopped_by else "")]
    return RunResult(
        suite_version=__version__, run_id=state.run_id, started=state.started, finished=_now(),
        backend=backend, simulated=simulated, profile=state.profile, versions=versions,
        requirements=requirements, sim_model=sim_model, warnings=list(dict.fromkeys(warnings)),
        leaked_ips=leaked, selected=list(state.selected), upgrade=upgrade_block(state),
        kubevirt_use_emulation=info.extra.get("kubevirt_use_emulation") if info is not None else None,
        vm_wait_factor=vm_wait_factor(simulated, info.extra.get("kubevirt_use_emulation")) if info else 1.0,
        components=list(info.extra.get("components") or []) if info is not None else [],
        stopped_by=state.stopped_by,  # what `kovc run` exits 3 for (SessionOutcome.stopped_by)
    )


def upgrade_block(state: _RunState) -> dict[str, Any] | None:
    """What the report states about an upgrade run: X, Y, the method, the phase (None otherwise)."""
    if not state.is_upgrade:
        return None
    from . import versions

    source = state.upgrade_from or ""
    target = state.options.kube_ovn_version_or_default
    method = ""
    if state.options.backend == "sim":
        method = ("in-place rollout of the simulated cluster (kube-ovn-controller and kube-ovn-webhook "
                  "Deployment images set to the target; sim/upgrade.py)")
    elif state.options.backend == "envtest":
        method = ("in-place rollout on the real control plane (the target's CRDs applied; kube-ovn-controller and "
                  "kube-ovn-webhook Deployment images set to the target; the simulated controller restarted, the "
                  "webhook - real when built - stopped, then the target's started and registered as its "
                  "yamls/webhook.yaml registers it; sim/upgrade.py + envtest/webhook_control.py)")
    elif state.options.backend == "existing":
        method = "performed by the operator between `kovc upgrade prepare` and `kovc upgrade verify`"
    elif source:
        with contextlib.suppress(versions.VersionError):
            method = versions.upgrade_method(source, target)
    skipped: list[str] = []
    if source:
        with contextlib.suppress(versions.VersionError):
            skipped = versions.skipped_minors(source, target)
    return {"from": source or None, "to": target, "method": method, "phase": state.upgrade_phase,
            "skipped_minors": skipped, "forced": bool(state.options.force)}


def write_report(result: RunResult, report_dir: Path, info: ClusterInfo | None) -> Path:
    from .report import write_bundle

    return write_bundle(result, report_dir, info=info)
