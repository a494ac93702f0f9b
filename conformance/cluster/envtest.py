"""``--backend envtest [--assets DIR]``: real kube-apiserver + etcd + kube-controller-manager and
Kube-OVN's real webhook on loopback, with kovc's simulated controllers as API clients.

``provision`` starts ``python -m conformance envtest serve`` (:mod:`conformance.envtest.serve`) in a
process group of its own — so it outlives the xdist worker that started it, as ``--backend sim``'s
server does — and waits for its ready document. That supervisor starts every program as its child
(each dies with it), installs the CRDs, the suite's least-privilege account (``manifests/rbac.yaml``),
the webhook registration and the aggregated API, and writes a kubeconfig for that account: the suite
then talks to the real apiserver as ``system:serviceaccount:kovc-system:kovc``, so every verb it
needs is checked by the real authorizer. Logs and the apiserver's audit log go to
``<report dir>/control-plane/``. ``teardown`` sends SIGTERM; the supervisor stops its children in
reverse order and removes its temporary directory.

Bad input: no assets → one line naming ``kovc assets build`` (exit 2); a program that does not start →
its last log lines (exit 2).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..procs import log_tail, spawn_kovc
from .base import BackendError, ClusterInfo, Versions
from .select import BackendOptions
from .sim import _stop, pid_alive

#: Bound on the supervisor's start: control plane (≈10 s), CRDs, webhook canary, simulated controllers.
START_TIMEOUT = 300.0
READY_FILE = "envtest-ready.json"
LOG_DIR = "control-plane"


def components_line(components: list[dict[str, Any]]) -> str:
    """e.g. "real kube-apiserver v1.35.4 + real Kube-OVN webhook v1.16.2; KubeVirt and Kube-OVN
    controllers simulated — not a certification"."""
    real = [c for c in components if c.get("real")]
    names = {"kube-apiserver": "kube-apiserver", "kube-ovn-webhook": "Kube-OVN webhook"}
    parts = [(f"real {names[c['name']]} {c.get('version', '')}".rstrip()
              + (f" → {c['upgraded_to'].get('version')}" if c.get("upgraded_to") else "")) for c in real
             if c["name"] in names]
    simulated = [c["name"] for c in components if not c.get("real")]
    sim_words = []
    if any(n.startswith("kubevirt") for n in simulated):
        sim_words.append("KubeVirt")
    if "kube-ovn-controller" in simulated:
        sim_words.append("Kube-OVN")
    if "kube-ovn-webhook" in simulated:
        sim_words.append("the Kube-OVN webhook (modelled)")
    tail = ""
    if sim_words:
        tail = "; " + " and ".join(sim_words) + (" controllers" if "the Kube-OVN webhook (modelled)" not in sim_words
                                                  else "") + " simulated"
    return (" + ".join(parts) or "no real component") + tail + " — not a certification"


class EnvtestBackend:
    """A local real control plane for the run."""

    name = "envtest"

    def __init__(self, options: BackendOptions) -> None:
        self.options = options

    def command(self, workdir: Path) -> list[str]:
        o = self.options
        argv = [sys.executable, "-m", "conformance.envtest.serve",
                "--ready-file", str(workdir / READY_FILE),
                "--log-dir", str(Path(o.report_dir) / LOG_DIR),
                "--kube-ovn-version", o.install_version,
                "--kubevirt-version", o.kubevirt_version_or_default]
        if o.upgrade_from:
            argv += ["--upgrade-to", o.kube_ovn_version_or_default]
        if o.assets:
            argv += ["--assets", str(o.assets)]
        if o.k8s_version:
            argv += ["--k8s-version", o.k8s_version]
        if o.sim.webhook_policy:
            argv += ["--sim-webhook-policy", o.sim.webhook_policy]
        # The process that tears the run down (under xdist: the controller, this worker's parent): if it
        # dies without teardown, the control plane stops by itself instead of lingering.
        argv += ["--watch-pid", str(os.getppid() if os.environ.get("PYTEST_XDIST_WORKER") else os.getpid())]
        return argv

    def plan(self) -> list[str]:
        o = self.options
        return [
            "envtest backend: start on 127.0.0.1 (random free ports, generated certificates, a temp dir): "
            + " ".join(self.command(Path("<workdir>"))),
            "  etcd, kube-apiserver (RBAC, admission chain, front-proxy, audit log) and kube-controller-manager "
            "(garbage collector + namespace controller) from `kovc assets build`",
            f"  Kube-OVN {o.install_version}'s CRDs from its Go module, KubeVirt "
            f"{o.kubevirt_version_or_default}'s CRDs from virt-operator's generator, manifests/rbac.yaml",
            f"  Kube-OVN's real webhook {o.install_version} when built (else the modelled one), "
            "registered as the tag's yamls/webhook.yaml does; a canary pod must be denied first",
            "  the simulated controllers (kovc sim attach) as API clients; KubeVirt's subresource API as an "
            "aggregated APIService",
            *([f"upgrade (after the VMs are created on {o.install_version}): apply "
               f"{o.kube_ovn_version_or_default}'s CRDs, set the kube-ovn-controller and kube-ovn-webhook Deployment "
               f"images to kube-ovn:{o.kube_ovn_version_or_default} (as the operator: the admin account); the "
               f"simulated rollout restarts the simulated controller on {o.kube_ovn_version_or_default} (down "
               f"{o.sim.controller_downtime:g} s, state kept in the apiserver) and replaces the webhook in place: "
               f"{o.install_version}'s stopped, nothing serving for at least {o.sim.upgrade_window:g} s "
               f"(failurePolicy Ignore), {o.kube_ovn_version_or_default}'s started and registered as its "
               "yamls/webhook.yaml registers it; wait until both Deployments are Available"]
              if o.upgrade_from else []),
            "run the suite as system:serviceaccount:kovc-system:kovc; stop everything at the end",
        ]

    def upgrade(self, info: ClusterInfo, target: str, kube: Any, timeout: float) -> Any:
        """In place, as a rollout would, on the running control plane: the target's CRDs are applied
        (the supervisor, ``envtest/webhook_control.py``), the Deployments' images set as the operator
        (admin kubeconfig), and the simulated rollout (``sim/upgrade.py``, in ``kovc sim attach``)
        restarts the controller and swaps the webhook through the supervisor."""
        from ..envtest.webhook_control import ControlError, call
        from ..kube import Kube
        from .upgrade import in_place

        control = str(info.extra.get("webhook_control") or "")
        if not control:
            raise BackendError(f"envtest: this control plane was not started for an upgrade (no --upgrade-to "
                               f"{target}): run with --upgrade-from")
        source = info.versions.kube_ovn_webhook or self.options.install_version
        try:
            crds = call(control, {"op": "crds", "version": target})
        except ControlError as err:
            raise BackendError(f"envtest upgrade to {target}: {err}") from None
        real = any(c.get("name") == "kube-ovn-webhook" and c.get("real") for c in info.extra.get("components") or [])
        method = (f"in-place rollout on the real control plane: {crds}; kube-ovn-controller and kube-ovn-webhook "
                  f"Deployment images set to kube-ovn:{target}; simulated controller restarted on {target}; "
                  f"{'real' if real else 'modelled'} webhook {source} stopped, {target}'s started and registered as "
                  f"its yamls/webhook.yaml registers it (sim/upgrade.py + envtest/webhook_control.py)")
        admin = Kube(str(info.extra.get("admin_kubeconfig") or info.kubeconfig), None,
                     run_id=self.options.run_id or "envtest")
        try:
            outcome = in_place(kube, source, target, timeout, method, admin=admin)
        finally:
            admin.close()
        outcome.steps.insert(0, crds)
        return outcome

    def provision(self, workdir: Path) -> ClusterInfo:
        workdir.mkdir(parents=True, exist_ok=True)
        ready = workdir / READY_FILE
        with contextlib.suppress(FileNotFoundError):
            ready.unlink()
        log_path = workdir / "envtest-serve.log"
        argv = self.command(workdir)
        try:
            proc = spawn_kovc(argv, workdir, log_path)
        except OSError as err:
            raise BackendError(f"envtest: cannot start {argv[0]}: {err}") from None
        try:
            data = self._wait_ready(proc, ready, log_path)
        except BaseException:
            _stop(proc.pid, proc)
            raise
        return self._info(data, proc.pid, log_path)

    def _wait_ready(self, proc: subprocess.Popen[bytes], ready: Path, log_path: Path) -> dict[str, Any]:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if ready.exists():
                try:
                    data = json.loads(ready.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    data = None
                if isinstance(data, dict) and data.get("kubeconfig"):
                    return data
            try:
                code = proc.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                code = None
            if code is not None:
                lines = [r for r in log_path.read_text(errors="replace").splitlines() if r.startswith("kovc: ")]
                message = lines[-1][len("kovc: "):] if lines else f"exited with code {code}: {log_tail(log_path, 4)}"
                raise BackendError(message if message.startswith("envtest") else f"envtest: {message}")
            if time.monotonic() > deadline:
                raise BackendError(f"envtest: not ready after {START_TIMEOUT:.0f} s: {log_tail(log_path, 4)}")

    def _info(self, data: dict[str, Any], pid: int, log_path: Path) -> ClusterInfo:
        components: list[dict[str, Any]] = list(data.get("components") or [])
        by_name = {c.get("name"): c for c in components}
        api = by_name.get("kube-apiserver") or {}
        tag = str(data.get("kube_ovn_version") or self.options.kube_ovn_version_or_default)
        # Plain versions (what is modelled or run); which component was real is in ``components``.
        versions = Versions(kubernetes=str(api.get("version") or ""), kube_ovn_controller=tag, kube_ovn_webhook=tag,
                            kubevirt=str(data.get("kubevirt_version") or self.options.kubevirt_version_or_default))
        info = ClusterInfo(
            backend=self.name, kubeconfig=str(data["kubeconfig"]), simulated=True,
            sim_model=components_line(components), versions=versions, keep_vm_ip=True,
            warnings=[str(n) for n in data.get("notes") or []],
            extra={"pid": pid, "log": str(log_path), "components": components, "timings": data.get("timings"),
                   "admin_kubeconfig": data.get("admin_kubeconfig"), "audit_log": data.get("audit_log"),
                   "canary_denial": data.get("canary_denial"), "server": data.get("server"),
                   "webhook_control": data.get("webhook_control"), "upgrade_to": data.get("upgrade_to")},
        )
        return info

    def teardown(self, info: ClusterInfo) -> None:
        if self.options.keep_cluster:
            return
        pid = int(info.extra.get("pid") or 0)
        if pid > 0 and pid_alive(pid) and _is_supervisor(pid):
            _stop(pid, None)


def _is_supervisor(pid: int) -> bool:
    """Guard against pid reuse: the process must be ``… conformance.envtest.serve …``."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return not Path("/proc").is_dir()
    return any(a.decode(errors="replace") == "conformance.envtest.serve" for a in argv)
