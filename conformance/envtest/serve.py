"""``kovc envtest serve``: a real control plane on loopback until interrupted.

    kovc envtest serve [--assets DIR] [--kube-ovn-version V] [--kubevirt-version V] [--k8s-version V]
                       [--webhook real|model|none] [--sim-webhook-policy P] [--no-attach]
                       [--log-dir D] [--ready-file F]

Starts etcd, kube-apiserver and kube-controller-manager (GC + namespace controllers); installs the
real Kube-OVN CRDs of the tag, KubeVirt's CRDs, the install namespaces and ``manifests/rbac.yaml``;
starts Kube-OVN's real webhook (``--webhook real``, the default when it is built) and registers it as
the tag's ``yamls/webhook.yaml`` does, then waits until it denies a conflicting canary pod; starts the
simulated controllers (``python -m conformance sim attach``) as API clients and registers what they
serve (the modelled webhook when the real one is not used, KubeVirt's aggregated subresource API).
Then it writes ``--ready-file`` (JSON: kubeconfigs, components real or simulated, timings) and runs
until SIGTERM/SIGINT, stopping everything in reverse order. This is the process ``--backend envtest``
starts; every child dies with it.

Bad input (no assets, an asset that does not start) ends with one line and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .. import versions as _versions
from ..procs import set_from_signal_handler

EXIT_BAD_INPUT = 2
ATTACH_READY_LINE = "kovc-attach ready"
REPO_MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--assets", metavar="DIR", help="asset directory (default $KOVC_ASSETS or "
                        "~/.cache/kovc/assets; a KUBEBUILDER_ASSETS directory works too)")
    parser.add_argument("--kube-ovn-version", default=_versions.KUBE_OVN_VERSION, metavar="vX.Y.Z")
    parser.add_argument("--kubevirt-version", default=_versions.KUBEVIRT_VERSION, metavar="vX.Y.Z")
    parser.add_argument("--k8s-version", default=None, metavar="vX.Y.Z",
                        help="use this kube-apiserver version from the assets (default: the newest there)")
    parser.add_argument("--webhook", choices=("real", "model", "none"), default=None,
                        help="Kube-OVN's real webhook (default when built), the modelled one, or none")
    parser.add_argument("--sim-webhook-policy", default=None, metavar="POLICY",
                        help="serve this modelled webhook policy instead of the real webhook")
    parser.add_argument("--no-attach", action="store_true",
                        help="do not start the simulated controllers (control plane, CRDs and webhook only)")
    parser.add_argument("--log-dir", metavar="DIR", help="where the programs' logs go (default: a temp dir)")
    parser.add_argument("--ready-file", metavar="FILE", help="write the ready document (JSON) here")
    parser.add_argument("--watch-pid", type=int, default=0, metavar="PID",
                        help="stop when this process is gone (the run that started it)")
    parser.add_argument("--upgrade-to", default=None, metavar="vX.Y.Z",
                        help="an upgrade run's target release: its webhook, CRDs and registration are made ready "
                             "for the in-place rollout (webhook_control.py), which the simulated rollout drives")
    parser.add_argument("--rbac", metavar="FILE", default=str(REPO_MANIFESTS / "rbac.yaml"),
                        help="the suite's least-privilege account (default manifests/rbac.yaml)")


def attach_available() -> bool:
    """Whether this kovc has ``sim attach`` (the simulated controllers over HTTP)."""
    from .. import cli

    return any(words == ("sim", "attach") for words, _m, _h in cli.COMMANDS)


class Supervisor:
    """Everything one ``kovc envtest serve`` runs; ``up()`` then ``down()``."""

    def __init__(self, args: argparse.Namespace) -> None:
        import tempfile

        self.args = args
        self._own_log_dir = not args.log_dir
        self.log_dir = Path(args.log_dir) if args.log_dir else Path(tempfile.mkdtemp(prefix="kovc-envtest-logs-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.components: list[dict[str, Any]] = []
        self.timings: dict[str, float] = {}
        self.notes: list[str] = []
        self.plane: Any = None
        self.webhook: Any = None
        self.attach: Any = None
        self.ready: dict[str, Any] = {}
        self.canary_denial = ""
        self.mode = ""
        #: An upgrade run's target: its module dir, registration and (real) webhook binary; the
        #: control server the rollout calls; the successor webhook between ``start`` and ``serve``.
        self.upgrade: dict[str, Any] = {}
        self.control: Any = None
        self.successor: Any = None
        #: Where the modelled webhook is served (model mode) and the CA of its certificate.
        self.model_url = ""
        self.model_ca = b""

    def _log(self, line: str) -> None:
        print(f"kovc envtest: {line}", file=sys.stderr, flush=True)

    def up(self) -> dict[str, Any]:
        from . import assets as a
        from . import install as inst
        from .controlplane import Binaries, ControlPlane

        args = self.args
        t0 = time.monotonic()
        root = Path(args.assets).expanduser() if args.assets else a.default_dir()
        binaries = Binaries.find(root, args.k8s_version)
        self.plane = plane = ControlPlane(binaries, self.log_dir)
        plane.start()
        self.timings.update(plane.timings)
        for prog, path in (("kube-apiserver", binaries.kube_apiserver), ("etcd", binaries.etcd),
                           ("kube-controller-manager", binaries.kube_controller_manager)):
            if path is not None:
                version = _k8s_version(binaries.k8s_dir) if prog != "etcd" else ""
                info = a.read_info(path, prog, version)
                self.components.append({"name": prog, "real": True, "program": str(path),
                                        "version": info.version, "sha256": info.sha256})
        self._log(f"kube-apiserver {plane.endpoints.apiserver} ready in {self.timings['apiserver+etcd ready']:.1f} s "
                  "(with etcd)")
        if binaries.kube_controller_manager is None:
            self.notes.append("kube-controller-manager not built: no garbage collection, namespaces never finish")
        client = plane.admin_client()

        # -- CRDs, namespaces, the suite's account ---------------------------------------------------
        tag = args.kube_ovn_version
        module_dir = _kube_ovn_module(root, tag)
        t = time.monotonic()
        crds, crd_file = inst.kube_ovn_crds(module_dir)
        inst.install_crds(client, crds)
        self.components.append({"name": "kube-ovn-crds", "real": True, "version": tag,
                                "source": f"github.com/kubeovn/kube-ovn@{tag} {crd_file}", "count": len(crds)})
        kv_file = a.kubevirt_crds_path(root, args.kubevirt_version)
        if kv_file.is_file():
            kv_crds = inst.kubevirt_crds_from_file(kv_file)
            info = a.read_info(kv_file, "kubevirt-crds", args.kubevirt_version)
            self.components.append({"name": "kubevirt-crds", "real": True, "version": args.kubevirt_version,
                                    "source": "virt-operator's generator, kubevirt.io/kubevirt@"
                                              + args.kubevirt_version,
                                    "sha256": info.sha256, "count": len(kv_crds)})
        else:
            kv_crds = inst.fallback_kubevirt_crds()
            self.components.append({"name": "kubevirt-crds", "real": False, "version": args.kubevirt_version,
                                    "source": "schemaless stand-ins from kovc's resource table (KubeVirt's "
                                              "generator not built: kovc assets build)", "count": len(kv_crds)})
        inst.install_crds(client, kv_crds)
        self.timings["CRDs installed"] = time.monotonic() - t
        inst.apply_all(client, inst.namespaces(inst.INSTALL_NAMESPACES))
        rbac_docs = inst.rbac_manifest(Path(args.rbac))
        inst.apply_all(client, rbac_docs)
        sa_ns, sa_name = inst.rbac_account(rbac_docs)
        user, groups = inst.service_account_user(sa_ns, sa_name)
        suite_kubeconfig = plane.kubeconfig_for(user, groups, name="kovc")

        # -- the webhook -------------------------------------------------------------------------------
        mode = args.webhook or ("model" if args.sim_webhook_policy else "real")
        webhook_binary = a.webhook_path(root, tag)
        if mode == "real" and not webhook_binary.is_file():
            if args.webhook == "real":
                raise a.AssetError(f"kube-ovn-webhook {tag} is not built in {root}: run `kovc assets build "
                                   f"--kube-ovn-version {tag}`")
            self.notes.append(f"Kube-OVN's webhook {tag} is not built ({webhook_binary}): the modelled webhook "
                              "is registered instead")
            mode = "model"
        if args.upgrade_to:
            mode = self._prepare_upgrade(root, args.upgrade_to, mode)
        self.mode = mode
        registration = inst.webhook_registration(module_dir)
        if mode == "real":
            self._start_real_webhook(webhook_binary, tag, registration)
        if args.upgrade_to:
            from .webhook_control import ControlServer

            self.control = ControlServer(plane.dir / "webhook-control.sock", self._control)
            self.control.start()

        # -- the simulated controllers -------------------------------------------------------------------
        if not args.no_attach:
            self._start_attach(mode, registration)
        elif mode == "model":
            self.notes.append("--no-attach: nothing serves the modelled webhook, none registered")

        self.timings["total"] = time.monotonic() - t0
        self.ready = {
            "pid": os.getpid(), "kubeconfig": str(suite_kubeconfig), "admin_kubeconfig": str(plane.admin_kubeconfig),
            "server": plane.endpoints.apiserver, "suite_user": user, "workdir": str(plane.dir),
            "log_dir": str(self.log_dir), "audit_log": str(self.log_dir / "kube-apiserver-audit.jsonl"),
            "kube_ovn_version": tag, "kubevirt_version": args.kubevirt_version, "webhook": mode,
            "components": self.components, "timings": {k: round(v, 2) for k, v in self.timings.items()},
            "notes": self.notes, "endpoints": vars(plane.endpoints), "canary_denial": self.canary_denial,
            "upgrade_to": args.upgrade_to, "webhook_control": str(self.control.path) if self.control else None,
        }
        self._log(f"ready in {self.timings['total']:.1f} s: {json.dumps(self.ready['timings'])}")
        return self.ready

    def _prepare_upgrade(self, root: Path, target: str, mode: str) -> str:
        """Everything an upgrade to ``target`` needs, checked before the run starts (an unbuilt webhook
        or an unfetchable module is one line now, not a failure mid-rollout); the webhook mode of the run
        (real only when both releases' webhooks are built)."""
        from . import assets as a
        from . import install as inst

        _versions.kube_ovn_release(target)  # VersionError: an unknown release
        module_dir = _kube_ovn_module(root, target)
        binary = a.webhook_path(root, target)
        self.upgrade = {"version": target, "module_dir": module_dir, "binary": binary,
                        "registration": inst.webhook_registration(module_dir)}
        if mode == "real" and not binary.is_file():
            if self.args.webhook == "real":
                raise a.AssetError(f"kube-ovn-webhook {target} (the upgrade's target) is not built in {root}: run "
                                   f"`kovc assets build --kube-ovn-version {target}`")
            self.notes.append(f"Kube-OVN's webhook {target} (the upgrade's target) is not built ({binary}): the "
                              f"modelled webhooks of {self.args.kube_ovn_version} and {target} are used instead")
            return "model"
        return mode

    def _control(self, request: dict[str, Any]) -> str:
        """One step of the webhook's in-place upgrade (``webhook_control.py``), asked by the rollout."""
        from . import assets as a
        from . import install as inst

        op = str(request.get("op") or "")
        target = str(self.upgrade.get("version") or "")
        if op in ("crds", "start", "serve") and str(request.get("version") or "") != target:
            raise ValueError(f"{op} {request.get('version')}: this control plane was prepared for the upgrade to "
                             f"{target} only")
        client = self.plane.admin_client()
        if op == "crds":
            crds, crd_file = inst.kube_ovn_crds(self.upgrade["module_dir"])
            inst.install_crds(client, crds)
            return f"Kube-OVN {target}'s {len(crds)} CRDs ({crd_file}) applied"
        if op == "stop":
            hook = self.webhook
            if self.mode != "real" or hook is None:
                return "modelled webhook: kovc sim attach stops serving it"
            pid = hook.process.pid if hook.process is not None else None
            hook.stop_process()
            return f"real kube-ovn-webhook {hook.version} (pid {pid}) stopped"
        if op == "start":
            if self.mode != "real":
                return f"modelled webhook {target}: kovc sim attach serves it"
            binary: Path = self.upgrade["binary"]
            self.successor = new = self.webhook.successor(binary, target)
            seconds = new.start()
            info = a.read_info(binary, a.WEBHOOK, target)
            return (f"real kube-ovn-webhook {target} (sha256 {info.sha256[:12]}…) ready on {new.url} after "
                    f"{seconds:.2f} s")
        if op == "serve":
            if self.mode == "real":
                if self.successor is None:
                    raise ValueError(f"serve {target}: its webhook was not started")
                url, ca = self.successor.url, self.successor.ca.cert_pem
                self.webhook, self.successor = self.successor, None
            else:
                url, ca = self.model_url, self.model_ca
            registration = self.upgrade["registration"]
            inst.apply_all(client, [inst.with_url(registration, url, ca)])
            hooks = ", ".join(str(h.get("name")) for h in registration.get("webhooks") or [])
            return f"registered as {target}'s yamls/webhook.yaml registers it ({hooks}) at {url}"
        raise ValueError(f"unknown webhook control step {op!r}")

    def _start_real_webhook(self, binary: Path, tag: str, registration: dict[str, Any]) -> None:
        from . import assets as a
        from . import install as inst
        from .webhook import SERVICE_ACCOUNT, RealWebhook

        plane = self.plane
        client = plane.admin_client()
        user, _groups = inst.service_account_user(*SERVICE_ACCOUNT)
        inst.apply_all(client, inst.read_only_role("kovc:kube-ovn-webhook-read", user))
        self.webhook = hook = RealWebhook(binary, tag, plane)
        self.timings["kube-ovn-webhook ready"] = hook.start()
        inst.apply_all(client, [inst.with_url(registration, hook.url, hook.ca.cert_pem)])
        self._canary(client)
        info = a.read_info(binary, a.WEBHOOK, tag)
        component: dict[str, Any] = {"name": "kube-ovn-webhook", "real": True, "program": str(binary),
                                     "version": info.version, "sha256": info.sha256,
                                     "canary_denial": self.canary_denial}
        if self.upgrade:
            target = a.read_info(self.upgrade["binary"], a.WEBHOOK, self.upgrade["version"])
            component["upgraded_to"] = {"version": target.version, "program": str(self.upgrade["binary"]),
                                        "sha256": target.sha256}
        self.components.append(component)

    def _canary(self, client: Any) -> None:
        from . import install as inst

        ip = inst.canary_ip_cr()
        client.apply(ip)
        try:
            denial = inst.wait_denied(client)
        finally:
            client.delete(ip)
        self.timings["webhook denies canary"] = denial.seconds
        self.canary_denial = denial.message
        self._log(f"webhook live after {denial.seconds:.1f} s: {denial.message}")

    def _start_attach(self, mode: str, registration: dict[str, Any]) -> None:
        from . import install as inst
        from .certs import TinyCA
        from .ports import suggest_port
        from .process import ManagedProcess, tail

        if not attach_available():
            raise RuntimeError("the simulated controllers (`kovc sim attach`) are not part of this kovc yet: "
                               "run with --no-attach for the control plane and webhook alone")
        plane = self.plane
        serving_ca = TinyCA("kovc-sim-serving-ca")
        names = [f"{inst.AGGREGATED_SERVICE}.{inst.KUBEVIRT_NAMESPACE}.svc", "kube-ovn-webhook.kube-system.svc"]
        crt, key = serving_ca.serving("kovc-sim", names).write(plane.pki / "sim", "serving")
        (plane.pki / "sim" / "ca.crt").write_bytes(serving_ca.cert_pem)
        kubeconfig = plane.kubeconfig_for("kovc-sim-controllers", ["system:masters"], name="sim-controllers")
        webhook_port, aggregated_port, kube_ovn_port = suggest_port(), suggest_port(), suggest_port()
        argv = [sys.executable, "-m", "conformance", "sim", "attach", "--kubeconfig", str(kubeconfig),
                "--kube-ovn-version", self.args.kube_ovn_version, "--serving-cert", str(crt),
                "--serving-key", str(key), "--requestheader-ca", str(plane.pki / "front-proxy-ca.crt"),
                "--kubevirt-version", self.args.kubevirt_version,
                "--webhook-port", str(webhook_port), "--aggregated-port", str(aggregated_port)]
        if mode != "model":
            argv.append("--no-webhook")
        else:
            # Kube-OVN's modelled webhook on a server of its own, which an upgrade's rollout stops and restarts.
            argv += ["--kube-ovn-webhook-port", str(kube_ovn_port)]
            self.model_url, self.model_ca = f"https://127.0.0.1:{kube_ovn_port}", serving_ca.cert_pem
        if self.control is not None:
            argv += ["--webhook-control", str(self.control.path)]
        if self.args.sim_webhook_policy:
            argv += ["--sim-webhook-policy", self.args.sim_webhook_policy]
        log = self.log_dir / "sim-attach.log"

        def attached() -> bool:
            try:
                return ATTACH_READY_LINE in log.read_text(errors="replace")
            except OSError:
                return False

        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
        self.attach = ManagedProcess("kovc sim attach", argv, log_path=log, health=attached, env=env,
                                     start_timeout=120.0)
        self.timings["simulated controllers ready"] = plane.add_process(self.attach)
        self.components += [
            {"name": "kubevirt-controllers", "real": False, "model": "kovc sim (virt-controller, virt-handler)"},
            {"name": "kube-ovn-controller", "real": False, "model": "kovc sim (IPAM, IP CRs, subnets)"},
            {"name": "scheduler+kubelet", "real": False, "model": "kovc sim"},
            {"name": "virt-api subresources", "real": False, "model": "kovc sim, aggregated via APIService"},
        ]
        client = plane.admin_client()
        if mode == "model":
            inst.apply_all(client, [inst.with_url(registration, self.model_url, serving_ca.cert_pem)])
            self._canary(client)
            model = self.args.sim_webhook_policy or f"kovc model of {self.args.kube_ovn_version}"
            if self.upgrade and not self.args.sim_webhook_policy:
                model += f", upgraded in place to the model of {self.upgrade['version']}"
            self.components.append({"name": "kube-ovn-webhook", "real": False, "model": model,
                                    "canary_denial": self.canary_denial})
        from . import assets as a

        root = Path(self.args.assets).expanduser() if self.args.assets else a.default_dir()
        virt_api = inst.virt_api_registration(a.kubevirt_crds_path(root, self.args.kubevirt_version).parent
                                              / a.VIRT_API_WEBHOOKS, f"https://127.0.0.1:{webhook_port}",
                                              serving_ca.cert_pem)
        if virt_api is not None:
            inst.apply_all(client, [virt_api])
            self.components.append({"name": "virt-api-webhooks", "real": False,
                                    "model": "kovc sim, registered as virt-operator generates it: "
                                             + ", ".join(h["name"] for h in virt_api.get("webhooks") or [])})
        else:
            self.notes.append("virt-api's webhook configuration not generated (kovc assets build): its admission "
                              "checks are not registered")
        docs = inst.aggregated_api(aggregated_port, serving_ca.cert_pem)
        inst.apply_all(client, docs)
        try:
            inst.wait_available(client, [f"{v}.{inst.SUBRESOURCE_GROUP}" for v in inst.SUBRESOURCE_VERSIONS])
        except inst.InstallError as err:
            raise inst.InstallError(f"{err} (sim attach log: {tail(log)})") from None

    def down(self) -> None:
        if self.control is not None:
            self.control.stop()
        if self.successor is not None:
            self.successor.release()
        if self.webhook is not None:
            self.webhook.release()
        if self.plane is not None:
            self.plane.stop()
        if self._own_log_dir:
            import shutil

            shutil.rmtree(self.log_dir, ignore_errors=True)


def _alive(pid: int) -> bool:
    from ..cluster.sim import pid_alive

    return pid_alive(pid)


def _k8s_version(k8s_dir: Path) -> str:
    return "v" + k8s_dir.name.split("-", 1)[0] if k8s_dir.name[:1].isdigit() else ""


def _kube_ovn_module(root: Path, tag: str) -> Path:
    """The Kube-OVN module directory of ``tag``: recorded by the webhook's build, else in the Go module
    cache, else fetched with ``go mod download`` (the proxy)."""
    from . import assets as a

    meta = a.meta_path(a.webhook_path(root, tag))
    if meta.is_file():
        try:
            d = Path(json.loads(meta.read_text()).get("extra", {}).get("module_dir", ""))
            if d.is_dir():
                return d
        except ValueError:
            pass
    found = a.kube_ovn_module_dir(tag)
    if found is not None:
        return found
    builder = a.Builder(root=root, progress=lambda _line: None)
    info = builder.module_info("github.com/kubeovn/kube-ovn", tag)
    return Path(info["Dir"])


def run(args: argparse.Namespace) -> int:
    from .assets import AssetError
    from .install import InstallError
    from .process import ProcessError
    from .webhook import WebhookBusy

    sup = Supervisor(args)
    stop = threading.Event()

    def on_signal(_sig: int, _frame: object) -> None:
        set_from_signal_handler(stop)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        ready = sup.up()
    except (AssetError, ProcessError, InstallError, WebhookBusy, RuntimeError, OSError,
            _versions.VersionError) as err:
        sup.down()
        print(f"kovc: envtest: {err}", file=sys.stderr, flush=True)
        return EXIT_BAD_INPUT
    except BaseException:
        sup.down()
        raise
    if args.ready_file:
        tmp = Path(args.ready_file + ".tmp")
        tmp.write_text(json.dumps(ready, indent=2))
        tmp.replace(args.ready_file)
    print(json.dumps({"kubeconfig": ready["kubeconfig"], "server": ready["server"]}), flush=True)
    try:
        while not stop.wait(0.5):
            # A program not launched yet (an upgrade's successor webhook being started) is not dead.
            dead = [p.name for p in (sup.plane.processes if sup.plane else [])
                    if p.proc is not None and not p.running()]
            if dead:
                print(f"kovc: envtest: {', '.join(dead)} exited; stopping", file=sys.stderr, flush=True)
                return 1
            if args.watch_pid and not _alive(args.watch_pid):
                print(f"kovc: envtest: the run (pid {args.watch_pid}) is gone; stopping", file=sys.stderr, flush=True)
                return 0
    finally:
        sup.down()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kovc envtest serve")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
