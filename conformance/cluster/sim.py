"""``--backend sim``: the simulated cluster, served by ``kovc sim serve`` in a process of its own.

The server runs in its own process group (so it outlives the xdist worker that started it and a
Ctrl-C in the terminal does not reach it); the plugin's controller process tears it down once at the
end of the run. It also follows the controller's pid (``--exit-with-pid``): when the run dies
without a teardown — ``kill -9`` — the server stops by itself instead of serving on, re-parented to
init. (Not ``PR_SET_PDEATHSIG``: the server's parent may be an xdist worker that ends before the
controller's final sweep, which still needs the cluster.) Its kubeconfig lives in the run's work
directory; its audit log goes to the report directory (``sim-audit.jsonl``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..procs import log_tail, spawn_kovc
from ..settings import DEFAULT_WEBHOOK_NAME
from .base import BackendError, ClusterInfo, Versions
from .select import BackendOptions

#: Bound on the server's start (it starts in well under a second).
START_TIMEOUT = 30.0
#: Bound on a graceful stop before SIGKILL.
STOP_TIMEOUT = 10.0
AUDIT_LOG_NAME = "sim-audit.jsonl"


def _image_tag(image: str) -> str:
    name = image.rsplit("@", 1)[0]
    if ":" in name.rsplit("/", 1)[-1]:
        return name.rsplit(":", 1)[1]
    return ""


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _is_our_server(pid: int, kubeconfig: str) -> bool:
    """Guard against pid reuse: the process must be ``… sim serve --kubeconfig <ours>``."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return not Path("/proc").is_dir()  # no procfs: trust the recorded pid
    args = [a.decode(errors="replace") for a in argv]
    return "serve" in args and kubeconfig in args


class SimBackend:
    """A simulated cluster (``python -m conformance sim serve``) for the run."""

    name = "sim"

    def __init__(self, options: BackendOptions) -> None:
        self.options = options
        self.config = options.sim
        self.config.audit_log = str(Path(options.report_dir) / AUDIT_LOG_NAME)

    # ---- planning ---------------------------------------------------------------------------------

    def command(self, workdir: Path) -> list[str]:
        """The server's command line."""
        cfg = self.config
        argv = [sys.executable, "-m", "conformance", "sim", "serve",
                "--kubeconfig", str(workdir / "kubeconfig"),
                "--ready-file", str(workdir / "sim-ready.json"),
                "--audit-log", str(cfg.audit_log),
                "--kube-ovn-version", cfg.kube_ovn_version]
        if cfg.webhook_policy:
            argv += ["--sim-webhook-policy", cfg.webhook_policy]
        if cfg.webhook != "on":
            argv += ["--sim-webhook", cfg.webhook]
        if cfg.faults:
            argv += ["--sim-faults", repr(cfg.faults)]
        if cfg.seed is not None:
            argv += ["--sim-seed", str(cfg.seed)]
        if cfg.fault_retry_after != 1:
            argv += ["--sim-retry-after", str(cfg.fault_retry_after)]
        if not cfg.dual_stack:
            argv += ["--sim-without", "dual-stack"]
        if not cfg.multus:
            argv += ["--sim-without", "multus"]
        if cfg.ovn_default != "ipv4":
            argv += ["--sim-ovn-default", cfg.ovn_default]
        if self.options.owner_pid and not self.options.keep_cluster and "--exit-with-pid" in _serve_flags():
            argv += ["--exit-with-pid", str(self.options.owner_pid)]
        argv += ["--sim-step-delay", repr(cfg.step_delay)]
        optional = _serve_flags()
        if "--kubevirt-version" in optional and self.options.kubevirt_version:
            argv += ["--kubevirt-version", self.options.kubevirt_version]
        if "--k8s-version" in optional and self.options.k8s_version:
            argv += ["--k8s-version", self.options.k8s_version]
        return argv

    def plan(self) -> list[str]:
        return [
            f"start a simulated cluster ({self.config.model_name}; KubeVirt {self.config.kubevirt_version}, "
            f"Kubernetes {self.config.kubernetes_version}) on 127.0.0.1: "
            + " ".join(self.command(Path("<workdir>"))),
            f"write its audit log to {self.config.audit_log}",
            *([f"upgrade (after the VMs are created on {self.config.kube_ovn_version}): set the kube-ovn-controller "
               f"and kube-ovn-webhook Deployment images to kube-ovn:{self.options.kube_ovn_version_or_default}; "
               "the simulated cluster rolls them out in place (controller restarted on the new release, state "
               f"kept; webhook unavailable for {self.config.upgrade_window:g} s, failurePolicy Ignore); wait "
               "until both are Available"] if self.options.upgrade_from else []),
            "stop it at the end of the run",
        ]

    def upgrade(self, info: ClusterInfo, target: str, kube: Any, timeout: float) -> Any:
        """In place, as a rollout would: the Deployments' images are set to ``target`` through the API
        and the simulated cluster replaces its controller and webhook (``sim/upgrade.py``)."""
        from .upgrade import in_place

        method = ("in-place rollout: kube-ovn-controller and kube-ovn-webhook Deployment images set to "
                  f"kube-ovn:{target} (sim/upgrade.py)")
        return in_place(kube, self.config.kube_ovn_version, target, timeout, method)

    # ---- provisioning -----------------------------------------------------------------------------

    def provision(self, workdir: Path) -> ClusterInfo:
        workdir.mkdir(parents=True, exist_ok=True)
        Path(str(self.config.audit_log)).parent.mkdir(parents=True, exist_ok=True)
        ready = workdir / "sim-ready.json"
        log_path = workdir / "sim-server.log"
        kubeconfig = workdir / "kubeconfig"
        with contextlib.suppress(FileNotFoundError):
            ready.unlink()
        argv = self.command(workdir)
        try:
            proc = spawn_kovc(argv, workdir, log_path)
        except OSError as err:
            raise BackendError(f"simulated cluster: cannot start {argv[0]}: {err}") from None
        try:
            data = self._wait_ready(proc, ready, log_path)
            info = ClusterInfo(
                backend=self.name, kubeconfig=str(data.get("kubeconfig") or kubeconfig), simulated=True,
                sim_model=self.config.model_name,
                extra={"pid": proc.pid, "url": data.get("url"), "log": str(log_path),
                       "audit_log": self.config.audit_log},
            )
            self._detect(info)
            return info
        except BaseException:
            _stop(proc.pid, proc)
            raise

    def _wait_ready(self, proc: subprocess.Popen[bytes], ready: Path, log_path: Path) -> dict[str, Any]:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if ready.exists():
                try:
                    data = json.loads(ready.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    data = None  # being written
                if isinstance(data, dict) and data.get("url"):
                    return data
            try:
                code = proc.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                code = None
            if code is not None:
                tail = log_tail(log_path) or "no output"
                raise BackendError(f"simulated cluster exited with code {code} before it was ready: {tail}")
            if time.monotonic() > deadline:
                tail = log_tail(log_path) or "no output"
                raise BackendError(f"simulated cluster not ready after {START_TIMEOUT:.0f} s "
                                   f"(no {ready.name}): {tail}")

    def _detect(self, info: ClusterInfo) -> None:
        """Versions and webhook as the cluster presents them (falling back to the configuration)."""
        from ..kube import Kube, describe_error

        cfg = self.config
        versions = Versions(kubernetes=cfg.kubernetes_version, kube_ovn_controller=cfg.kube_ovn_version,
                            kube_ovn_webhook=cfg.kube_ovn_version, kubevirt=cfg.kubevirt_version)
        try:
            kube = Kube(info.kubeconfig, None, run_id=self.options.run_id or "sim")
        except Exception as err:
            raise BackendError(f"simulated cluster: its kubeconfig {info.kubeconfig} is unusable: "
                               f"{err}") from None
        try:
            code = kube.request("GET", "/version")
            if isinstance(code, dict) and code.get("gitVersion"):
                versions.kubernetes = str(code["gitVersion"])
            for dep in kube.list("Deployment"):
                name = (dep.get("metadata") or {}).get("name")
                pod_spec = ((dep.get("spec") or {}).get("template") or {}).get("spec") or {}
                containers = pod_spec.get("containers") or []
                tags = [_image_tag(str(c.get("image") or "")) for c in containers]
                tag = next((t for t in tags if t), "")
                if name == "kube-ovn-controller":
                    versions.kube_ovn_controller = tag or versions.kube_ovn_controller
                    args = [str(a) for c in containers
                            for a in (c.get("args") or []) + (c.get("command") or [])]
                    keep = [a.split("=", 1)[1] for a in args if a.startswith("--keep-vm-ip=")]
                    info.keep_vm_ip = (keep[-1].lower() != "false") if keep else True
                elif name == "kube-ovn-webhook":
                    versions.kube_ovn_webhook = tag or versions.kube_ovn_webhook
            kubevirts = kube.request("GET", "/apis/kubevirt.io/v1/kubevirts")
            for kv in kubevirts.get("items") or [] if isinstance(kubevirts, dict) else []:
                observed = (kv.get("status") or {}).get("observedKubeVirtVersion")
                if observed:
                    versions.kubevirt = str(observed)
            for vwc in kube.list("ValidatingWebhookConfiguration"):
                if any(w.get("name") == DEFAULT_WEBHOOK_NAME for w in vwc.get("webhooks") or []):
                    info.webhook_configuration = str(vwc["metadata"]["name"])
                    info.webhook_name = DEFAULT_WEBHOOK_NAME
                    break
            else:
                info.warnings.append(f"no ValidatingWebhookConfiguration has an entry {DEFAULT_WEBHOOK_NAME}")
        except Exception as err:
            raise BackendError(f"simulated cluster: reading its presented state failed: "
                               f"{describe_error(err)}") from None
        finally:
            kube.close()
        if versions.kube_ovn_controller != versions.kube_ovn_webhook:
            info.warnings.append(f"kube-ovn-controller {versions.kube_ovn_controller} and kube-ovn-webhook "
                                 f"{versions.kube_ovn_webhook} differ (the webhook's version decides "
                                 "admission)")
        info.versions = versions

    # ---- teardown ----------------------------------------------------------------------------------

    def teardown(self, info: ClusterInfo) -> None:
        """Stop the server (unless ``--keep-cluster``: then it keeps serving, pid in ``info.extra``)."""
        if self.options.keep_cluster:
            return
        pid = int(info.extra.get("pid") or 0)
        if pid <= 0 or not pid_alive(pid):
            return
        if not _is_our_server(pid, info.kubeconfig):
            return
        _stop(pid, None)


def _stop(pid: int, proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM to the server's process group, SIGKILL after :data:`STOP_TIMEOUT`."""
    for sig, bound in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + bound
        while time.monotonic() < deadline:
            if proc is not None:
                try:
                    proc.wait(timeout=0.05)
                    return
                except subprocess.TimeoutExpired:
                    continue
            if not pid_alive(pid):
                return
            # Not our child: nothing to wait on but the process table.
            time.sleep(0.05)


def _serve_flags() -> set[str]:
    """The flags ``kovc sim serve`` accepts (so optional ones are passed only when it has them)."""
    try:
        from ..sim import serve
    except ImportError:
        return set()
    parser = argparse.ArgumentParser(add_help=False)
    try:
        serve.add_arguments(parser)
    except Exception:
        return set()
    return {s for action in parser._actions for s in action.option_strings}
