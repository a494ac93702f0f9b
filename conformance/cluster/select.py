"""Choosing a backend by name, from one object holding every backend-related option.

``kovc run`` and the pytest plugin both build a :class:`BackendOptions` from their parsed options
(the same dests, see ``conformance.settings.OPTIONS``) and call :func:`make_backend`. The kind and
existing backends are imported lazily, so the simulated path needs none of their dependencies.
"""

from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import settings as _settings
from .. import versions
from ..sim.config import SimConfig
from .base import Backend, BackendError

#: name → (module, class) of each backend.
BACKEND_CLASSES: dict[str, tuple[str, str]] = {
    "sim": ("conformance.cluster.sim", "SimBackend"),
    "envtest": ("conformance.cluster.envtest", "EnvtestBackend"),
    "kind": ("conformance.cluster.kind", "KindBackend"),
    "existing": ("conformance.cluster.existing", "ExistingBackend"),
}


@dataclass
class BackendOptions:
    """Every option a backend may need (None: not given, the backend's default applies)."""

    backend: str = "sim"
    kubeconfig: str | None = None
    context: str | None = None
    kube_ovn_version: str | None = None
    kubevirt_version: str | None = None
    k8s_version: str | None = None
    keep_cluster: bool = False
    kind_bin: str | None = None
    kind_kubectl_bin: str | None = None
    cluster_name: str = _settings.DEFAULT_CLUSTER_NAME
    kind_image: str | None = None
    manifests_dir: str | None = None
    #: ``--ip-family`` / ``--multus`` (kind): ``cluster.network``.
    ip_family: str = "ipv4"
    multus: bool = False
    #: ``--backend envtest``: where the built programs are (None: $KOVC_ASSETS or the default cache).
    assets: str | None = None
    plan: bool = False
    run_id: str = ""
    report_dir: Path = field(default_factory=lambda: Path("kovc-report"))
    timeout_scale: float | None = None
    #: Upgrade run: the release installed first (the target is ``kube_ovn_version``).
    upgrade_from: str | None = None
    force: bool = False
    #: The simulated cluster's settings (``--sim-*`` options and the versions above).
    sim: SimConfig = field(default_factory=SimConfig)
    #: The process whose end ends a simulated cluster (the run's controller: ``kovc run`` itself, or
    #: the xdist controller), so that even ``kill -9`` of the run leaves no server behind.
    owner_pid: int | None = None

    @property
    def kube_ovn_version_or_default(self) -> str:
        return self.kube_ovn_version or versions.KUBE_OVN_VERSION

    @property
    def install_version(self) -> str:
        """The Kube-OVN release installed at provisioning: the upgrade's source in an upgrade run."""
        return self.upgrade_from or self.kube_ovn_version_or_default

    @property
    def kubevirt_version_or_default(self) -> str:
        return self.kubevirt_version or versions.KUBEVIRT_VERSION

    @property
    def k8s_version_or_default(self) -> str:
        return self.k8s_version or versions.K8S_VERSION

    @classmethod
    def from_namespace(cls, ns: Any, *, run_id: str = "", report_dir: Path | None = None) -> BackendOptions:
        """From parsed options (argparse namespace or pytest ``config.option``)."""

        def opt(name: str, default: Any = None) -> Any:
            value = getattr(ns, name, default)
            return default if value is None else value

        return cls(
            backend=opt("backend", "sim"),
            kubeconfig=opt("kubeconfig"),
            context=opt("context"),
            kube_ovn_version=opt("kube_ovn_version"),
            kubevirt_version=opt("kubevirt_version"),
            k8s_version=opt("k8s_version"),
            keep_cluster=bool(opt("keep_cluster", False)),
            kind_bin=opt("kind_bin"),
            kind_kubectl_bin=opt("kind_kubectl_bin"),
            cluster_name=_settings.cluster_name(opt("cluster_name")),
            kind_image=opt("kind_image"),
            manifests_dir=opt("manifests_dir"),
            ip_family=opt("ip_family", "ipv4"),
            multus=bool(opt("multus", False)),
            assets=opt("assets"),
            plan=bool(opt("plan", False)),
            run_id=run_id or opt("run_id", ""),
            report_dir=Path(report_dir or opt("report_dir") or _settings.default_report_dir()),
            timeout_scale=opt("timeout_scale"),
            upgrade_from=opt("upgrade_from"),
            force=bool(opt("force", False)),
            sim=sim_config_from_namespace(ns),
        )


def sim_config_from_namespace(ns: Any) -> SimConfig:
    """The simulated cluster's settings from the ``--sim-*`` and version options; ValueError (one
    line: VersionError, SimOptionError) for a bad value."""
    from ..sim.config import SUITE_STEP_DELAY
    from ..sim.serve import sim_config_from_args

    upgrade_from = getattr(ns, "upgrade_from", None)
    if upgrade_from:
        check_upgrade_pair(upgrade_from, getattr(ns, "kube_ovn_version", None), bool(getattr(ns, "force", False)))
    cfg = sim_config_from_args(argparse.Namespace(
        # An upgrade run's simulated cluster starts on the source release (sim/upgrade.py moves it on).
        kube_ovn_version=upgrade_from or getattr(ns, "kube_ovn_version", None),
        kubevirt_version=getattr(ns, "kubevirt_version", None),
        sim_webhook_policy=getattr(ns, "sim_webhook_policy", None),
        sim_webhook=getattr(ns, "sim_webhook", None),
        sim_faults=getattr(ns, "sim_faults", None),
        sim_seed=getattr(ns, "sim_seed", None),
        sim_retry_after=getattr(ns, "sim_retry_after", None),
        sim_ovn_default=getattr(ns, "sim_ovn_default", None),
        sim_without=getattr(ns, "sim_without", None),
        k8s_version=getattr(ns, "k8s_version", None),
        sim_step_delay=getattr(ns, "sim_step_delay", None)))
    if getattr(ns, "sim_step_delay", None) is None:
        cfg.step_delay = SUITE_STEP_DELAY
    return cfg


def check_network_options(backend: str, ns: Any) -> None:
    """``--ip-family`` and ``--multus`` against the backend and release
    (``cluster.network.check_options``): :class:`BackendError`, one line."""
    from .network import check_options

    check_options(backend, ip_family=getattr(ns, "ip_family", None), multus=bool(getattr(ns, "multus", False)),
                  kube_ovn_version=getattr(ns, "upgrade_from", None) or getattr(ns, "kube_ovn_version", None))


def check_upgrade_pair(upgrade_from: str, target: str | None, force: bool) -> None:
    """Refuse an unsupported upgrade pair (``versions.check_upgrade``: VersionError, one line) unless
    ``force``; a pair with an unknown release is refused even with ``force``."""
    try:
        versions.check_upgrade(upgrade_from, target or versions.KUBE_OVN_VERSION)
    except versions.VersionError:
        if not force:
            raise
        versions.kube_ovn_release(upgrade_from)
        versions.kube_ovn_release(target or versions.KUBE_OVN_VERSION)


def make_backend(name: str, options: BackendOptions) -> Backend:
    """The backend called ``name`` (sim, envtest, kind, existing), built from ``options``."""
    try:
        module_name, class_name = BACKEND_CLASSES[name]
    except KeyError:
        raise BackendError(f"unknown backend {name!r}: choose one of {', '.join(BACKEND_CLASSES)}") from None
    check_network_options(name, options)
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise BackendError(f"backend {name} is not available: {err}") from None
    backend: Backend = getattr(module, class_name)(options)
    return backend


# --------------------------------------------------------------------------------------------------
# Kubeconfig checks shared by ``kovc run`` and ``kovc cleanup`` (bad input → one line, exit 2)


def check_kubeconfig(path: str, context: str | None = None) -> str:
    """Read ``path`` and check that it names a usable context; returns the API server URL.
    :class:`BackendError` (one line) when it cannot be read or used."""
    import yaml

    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise BackendError(f"kubeconfig {path}: cannot be read ({err.strerror or err})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        first = str(err).splitlines()[0] if str(err) else "invalid YAML"
        raise BackendError(f"kubeconfig {path}: not valid YAML ({first})") from None
    if not isinstance(data, dict):
        raise BackendError(f"kubeconfig {path}: not a kubeconfig (expected clusters and contexts)")
    contexts = {c.get("name"): c.get("context") or {}
                for c in data.get("contexts") or [] if isinstance(c, dict)}
    clusters = {c.get("name"): c.get("cluster") or {}
                for c in data.get("clusters") or [] if isinstance(c, dict)}
    name = context or data.get("current-context")
    if not name:
        raise BackendError(f"kubeconfig {path}: no current-context and no --context given")
    if name not in contexts:
        known = ", ".join(sorted(str(c) for c in contexts)) or "none"
        raise BackendError(f"kubeconfig {path}: context {name!r} not found (contexts: {known})")
    cluster = clusters.get(contexts[name].get("cluster"))
    if not cluster or not cluster.get("server"):
        raise BackendError(f"kubeconfig {path}: context {name!r} names no cluster with a server URL")
    return str(cluster["server"])


def check_reachable(path: str, context: str | None = None) -> str:
    """Check the kubeconfig and that its API server answers ``/version``; returns its gitVersion.
    :class:`BackendError` (one line) otherwise."""
    server = check_kubeconfig(path, context)
    from ..kube import Kube, api_code, api_message, transport_error

    try:
        kube = Kube(str(Path(path).expanduser()), context, run_id="preflight")
    except Exception as err:  # the loader raises several types for broken files
        raise BackendError(f"kubeconfig {path}: {_first_line(err)}") from None
    try:
        data = kube.request("GET", "/version", retry=lambda _exc: False)
    except Exception as err:
        code = api_code(err)
        if code:
            raise BackendError(f"API server {server} answered /version with HTTP {code}: "
                               f"{api_message(err)[:200]}") from None
        below = transport_error(err) or _first_line(err)
        if below.startswith("TLS: "):
            raise BackendError(f"API server {server}: TLS failure: {below[5:][:300]}") from None
        raise BackendError(f"API server {server} unreachable: {below[:300]}") from None
    finally:
        kube.close()
    return str(data.get("gitVersion", "")) if isinstance(data, dict) else ""


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
