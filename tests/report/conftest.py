"""Synthetic runs for the report tests: a passing simulated run, a failing one (an ``allow.*`` denial
and admitted ``deny.*`` challengers), an invalid one and a passing run on a "real" cluster."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest

from conformance.cluster.base import ClusterInfo, Versions
from conformance.results import CaseResult, RequirementResult, RunResult, TestRef

#: The catalog of issue 3 (id, level, title).
CATALOG: list[tuple[str, str, str]] = [
    ("env.webhook-live", "MUST", "The pod-IP webhook answers admission requests"),
    ("env.keep-vm-ip", "MUST", "keep-vm-ip is on"),
    ("allow.restart", "MUST", "A static-IP VM restarts and keeps its IP"),
    ("allow.stop-start", "MUST", "A static-IP VM stops, starts and keeps its IP"),
    ("allow.launcher-pod-deleted", "MUST", "A deleted launcher pod is replaced and keeps the IP"),
    ("allow.live-migration", "MUST", "Live migration keeps the IP"),
    ("allow.recreate", "MUST", "A deleted VM is recreated with the same IP"),
    ("allow.immediate-recreate", "SHOULD", "A VM recreated at once gets its IP"),
    ("allow.repeated-restarts", "MUST", "Five restarts in a row"),
    ("allow.concurrent-restarts", "MUST", "N VMs restarted at once"),
    ("allow.ip-reuse-after-delete", "MUST", "A released IP is reused by another VM"),
    ("allow.same-ip-other-subnet", "SHOULD", "The same IP in another VPC is no collision"),
    ("allow.same-ip-namespace-bound-vpc", "SHOULD", "The same IP in a namespace-bound VPC subnet"),
    ("allow.restart-dual-stack", "MUST", "Restart, stop/start and migration keep both addresses"),
    ("allow.static-mac-restart", "MUST", "Restart and migration keep a static MAC"),
    ("allow.attachment-restart", "MUST", "An attachment network's static IP survives restart and migration"),
    ("deny.other-vm", "MUST", "Another VM cannot take a running VM's IP"),
    ("deny.pod-takes-vm-ip", "MUST", "A plain pod cannot take a VM's IP"),
    ("deny.name-prefix", "MUST", "Names containing each other are no excuse"),
    ("deny.stopped-vm-ip", "MUST", "A stopped VM's IP cannot be taken"),
    ("deny.clone", "MUST", "A clone cannot take the holder's IP"),
    ("deny.spoofed-launcher", "MUST", "A pod posing as the launcher is denied"),
    ("deny.cross-namespace", "SHOULD", "A same-named VM in another namespace is denied"),
    ("deny.pod-named-like-vm", "SHOULD", "A pod named like the VM is denied"),
    ("deny.spoofed-migration", "SHOULD", "A pod faking a migration is denied"),
    ("deny.forged-owner-ref", "SHOULD", "A forged owner reference is denied"),
    ("deny.other-vm-ipv6", "MUST", "Another VM cannot take a running VM's IPv6"),
    ("deny.mac-collision", "SHOULD", "Another VM cannot run holding a running VM's MAC"),
    ("deny.attachment-other-vm", "MUST", "Another VM cannot take a VM's attachment-network IP"),
    ("state.ip-released-on-delete", "MUST", "The IP CR is released when the VM is deleted"),
    ("state.no-duplicate-ips", "MUST", "No two workloads hold one address"),
    ("state.concurrent-claims", "SHOULD", "Concurrent claims: at most one wins"),
    ("state.attachment-ip-released-on-delete", "SHOULD", "Deleting a VM releases its attachment IP CRs"),
    ("net.migration-downtime", "SHOULD", "Migration downtime within bounds"),
]
MUSTS = [i for i, level, _ in CATALOG if level == "MUST"]

DENIAL = ('admission webhook "pod-ip-validating.kube-ovn.io" denied the request: ip address 10.16.0.15 '
          "has been occupied by pod kovc-r1-restart/h-k2x9q")
RESTART_MESSAGE = ("allow.restart: expected the restart of VM kovc-r1-restart/h-k2x9q to be admitted and "
                   "the VM Running with 10.16.0.15; seen after 6.0 s: VMI h-k2x9q "
                   "Synchronized=False/FailedCreate: "
                   f"Error creating pod: {DENIAL}")
ADMITTED_MESSAGE = ("deny.other-vm: expected the create of launcher pod for VM c-7fq2m (10.16.0.22) to be "
                    "denied by pod-ip-validating.kube-ovn.io; seen: admitted "
                    "(pod virt-launcher-c-7fq2m-abcde created); then IPAM: AcquireAddressFailed "
                    "AddressConflict")


def _req(rid: str, level: str, title: str, outcome: str = "passed", **kw: object) -> RequirementResult:
    req = RequirementResult(id=rid, level=level, title=title,  # type: ignore[arg-type]
                            references=["kubeovn/kube-ovn#4803"] if rid.startswith(("allow", "deny")) else [],
                            outcome=outcome)  # type: ignore[arg-type]
    if outcome == "passed":
        req.cases = [CaseResult(name="main", outcome="passed", duration_s=1.25)]
        req.tests = [TestRef(nodeid=f"tests/scenarios/test_{rid.split('.')[0]}.py::test_{rid.split('.')[1]}",
                             outcome="passed")]
    for key, value in kw.items():
        setattr(req, key, value)
    return req


def passing_sim_run() -> RunResult:
    reqs = [_req(i, lvl, t) if lvl == "MUST" else _req(i, lvl, t, "not-run", reason="not in profile baseline")
            for i, lvl, t in CATALOG]
    return RunResult(
        suite_version="0.1.0", run_id="r1a2b3", started="2026-11-28T10:00:00Z",
        finished="2026-11-28T10:01:10Z",
        backend="sim", simulated=True, profile="baseline",
        versions={"kubernetes": "v1.35.1", "kube_ovn_controller": "v1.16.2", "kube_ovn_webhook": "v1.16.2",
                  "kubevirt": "v1.8.1", "kind_node_image": None},
        requirements=reqs, sim_model="kube-ovn v1.16.2", selected=list(MUSTS),
    )


def failing_sim_run() -> RunResult:
    run = passing_sim_run()
    run.sim_model = "kube-ovn v1.14.2"
    run.versions.update({"kube_ovn_controller": "v1.14.2", "kube_ovn_webhook": "v1.14.2",
                         "kubevirt": "v1.5.2"})
    by_id = {r.id: r for r in run.requirements}
    restart = by_id["allow.restart"]
    restart.outcome = "failed"
    restart.reason = RESTART_MESSAGE
    restart.cases = [CaseResult(name="restart", outcome="failed", duration_s=6.0, message=RESTART_MESSAGE)]
    restart.diagnostics = "diagnostics/allow.restart"
    restart.tests = [TestRef(nodeid="tests/scenarios/test_allow.py::test_restart[gw0]", outcome="failed")]
    other = by_id["deny.other-vm"]
    other.outcome = "failed"
    other.reason = "the challenger VM was admitted"
    other.cases = [CaseResult(name="other-vm", outcome="failed", duration_s=3.5, message=ADMITTED_MESSAGE,
                              admitted_then="blocked-by-ipam")]
    prefix = by_id["deny.name-prefix"]
    prefix.outcome = "failed"
    prefix.cases = [
        CaseResult(name="web/web-1", outcome="passed", duration_s=2.0,
                   message=f"denied as expected: {DENIAL}"),
        CaseResult(name="vm1/vm10", outcome="failed", duration_s=2.5,
                   message="deny.name-prefix: expected VM vm10 to be denied; seen: admitted | took the "
                           "address `10.16.0.30` (```fence``` test)",
                   admitted_then="took-over-address"),
    ]
    prefix.warnings = ["webhook cache: the probe was denied only after 2.1 s"]
    clone = by_id["deny.clone"]
    clone.outcome = "skipped"
    clone.reason = "the clone API (clone.kubevirt.io) is absent"
    clone.cases = []
    run.warnings = ["timeout scale 0.05 (simulated cluster)"]
    run.leaked_ips = [{"metadata": {"name": "h-stop.kovc-r1-leak"},
                       "spec": {"ipAddress": "10.16.0.40", "podName": "h-stop", "namespace": "kovc-r1-leak",
                                "subnet": "ovn-default"}}]
    return run


def invalid_run() -> RunResult:
    run = passing_sim_run()
    for req in run.requirements:
        if req.id == "env.webhook-live":
            req.outcome = "failed"
            req.reason = ("env.webhook-live: expected the dryRun pod with ovn.kubernetes.io/cidr "
                          "192.0.2.0/24 to be rejected with '... not in cidr ...' (HTTP 400) within 30 s; "
                          "seen: admitted (HTTP 201)")
            req.cases = []
        elif req.id != "env.keep-vm-ip":
            req.outcome = "not-run"
            req.reason = "a precondition failed"
            req.cases, req.tests = [], []
    return run


def real_passing_run() -> RunResult:
    run = passing_sim_run()
    run.backend, run.simulated, run.sim_model = "existing", False, None
    return run


def info_for(run: RunResult) -> ClusterInfo:
    v = run.versions
    return ClusterInfo(backend=run.backend, kubeconfig="/nonexistent/kubeconfig", simulated=run.simulated,
                       sim_model=run.sim_model,
                       versions=Versions(kubernetes=v["kubernetes"] or "",
                                         kube_ovn_controller=v["kube_ovn_controller"] or "",
                                         kube_ovn_webhook=v["kube_ovn_webhook"] or "",
                                         kubevirt=v["kubevirt"] or "",
                                         kind_node_image=v.get("kind_node_image")))


RUNS: dict[str, Callable[[], RunResult]] = {
    "passing-sim": passing_sim_run, "failing-sim": failing_sim_run, "invalid": invalid_run,
    "real-passing": real_passing_run,
}


@pytest.fixture(params=sorted(RUNS))
def any_run(request: pytest.FixtureRequest) -> RunResult:
    return RUNS[request.param]()


@pytest.fixture
def make_bundle(tmp_path: Path) -> Callable[..., Path]:
    """Write a bundle of a named synthetic run (with fake allure results and diagnostics first, as
    a real session leaves them) and return its directory."""
    from conformance.report import write_bundle

    counter = iter(range(1000))

    def make(name: str, run: RunResult | None = None) -> Path:
        run = copy.deepcopy(run) if run is not None else RUNS[name]()
        out = tmp_path / f"{name}-{next(counter)}"
        allure = out / "allure-results"
        allure.mkdir(parents=True)
        (allure / "0f1e2d3c-result.json").write_text('{"name": "test_restart", "status": "passed"}\n')
        (allure / "0f1e2d3c-attachment.yaml").write_text("kind: Pod\n")
        for req in run.requirements:
            if req.diagnostics:
                diag = out / req.diagnostics
                diag.mkdir(parents=True)
                (diag / "index.txt").write_text(f"diagnostics of {req.id}\n")
        return write_bundle(run, out, info=info_for(run))

    return make


@pytest.fixture
def runs() -> dict[str, Callable[[], RunResult]]:
    """The synthetic run factories by name."""
    return RUNS
