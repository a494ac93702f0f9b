"""``kovc sim serve``: run a simulated cluster in the foreground until SIGINT/SIGTERM.

    kovc sim serve --kubeconfig /tmp/sim.kubeconfig [--kube-ovn-version v1.13.14]
                   [--kubevirt-version V] [--k8s-version V] [--sim-webhook-policy P]
                   [--sim-webhook on|off] [--sim-faults RATE] [--sim-seed N]
                   [--audit-log FILE] [--record-requests FILE] [--workers N] [--port N] [--ready-file F]

It serves TLS (a self-signed certificate, its CA in the kubeconfig) and requires the random bearer
token it writes into the kubeconfig (mode 0600) on every request but ``/healthz``, ``/readyz`` and
``/livez``; requests and bodies are checked as kube-apiserver checks them (``validation.py``).

Once serving it writes the kubeconfig and, with ``--ready-file``, a JSON document
``{"url": …, "pid": …, "kubeconfig": …}`` (written atomically; removed again on exit). Bad input
(unknown Kube-OVN version, unknown policy, a rate outside [0, 1]) is one line on stderr and exit 2.

The ``--sim-*`` options are shared with the pytest plugin: :data:`SIM_OPTIONS` lists them as
``(flag, kwargs)`` pairs, :func:`add_sim_options` registers them on an argparse parser/group or a
pytest option group, and :func:`sim_config_from_args` turns parsed options into a :class:`SimConfig`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import select
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from .. import versions
from ..procs import set_from_signal_handler
from .config import DEFAULT_STEP_DELAY, SUITE_STEP_DELAY, SimConfig

_DEFAULT_PREFIX = "--sim-"
#: The environment variable ``--record-requests`` defaults to: set it around ``kovc run --backend sim``
#: to record the suite's own requests (the run starts ``kovc sim serve`` with its environment).
RECORD_ENV = "KOVC_SIM_RECORD_REQUESTS"


class SimOptionError(ValueError):
    """A bad simulated-cluster option; the message is the one line shown to the user."""


_RATE_ERROR = "invalid fault rate {!r}: expected a number in [0, 1]"


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(_RATE_ERROR.format(text)) from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(_RATE_ERROR.format(text))
    return value


_STEP_ERROR = "invalid step delay {!r}: expected a number of seconds in [0, 1]"


_RETRY_AFTER_ERROR = "invalid --sim-retry-after {!r}: expected whole seconds from 0 to 60"


def _retry_after(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(_RETRY_AFTER_ERROR.format(text)) from None
    if not 0 <= value <= 60:
        raise argparse.ArgumentTypeError(_RETRY_AFTER_ERROR.format(text))
    return value


def _step_delay(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(_STEP_ERROR.format(text)) from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(_STEP_ERROR.format(text))
    return value


#: The options of the simulated cluster as ``(flag, kwargs)`` with the ``--sim-`` prefix; ``dest`` is
#: fixed so :func:`sim_config_from_args` finds them whatever prefix they were registered with.
SIM_OPTIONS: list[tuple[str, dict[str, Any]]] = [
    ("--sim-webhook-policy", {
        "dest": "sim_webhook_policy", "default": None, "metavar": "POLICY",
        "help": "override only the modelled webhook's conflict policy: a built-in name "
                "(e.g. owner-equality, reverse-containment) or package.module:callable",
    }),
    ("--sim-webhook", {
        "dest": "sim_webhook", "default": "on", "choices": ["on", "off"],
        "help": "off models a webhook that is down with failurePolicy Ignore (default: on)",
    }),
    ("--sim-faults", {
        "dest": "sim_faults", "default": 0.0, "type": _rate, "metavar": "RATE",
        "help": "share of API requests answered 500/429/dropped (default: 0)",
    }),
    ("--sim-retry-after", {
        "dest": "sim_retry_after", "default": None, "type": _retry_after, "metavar": "SECONDS",
        "help": "Retry-After of a throttled fault, whole seconds 0-60 (default: 1, as kube-apiserver)",
    }),
    ("--sim-step-delay", {
        "dest": "sim_step_delay", "default": None, "type": _step_delay, "metavar": "SECONDS",
        "help": "seconds each simulated controller step waits, modelled latency (default: "
                f"{SUITE_STEP_DELAY:g} for suite runs, {DEFAULT_STEP_DELAY:g} for kovc sim serve)",
    }),
    ("--sim-without", {
        "dest": "sim_without", "default": None, "action": "append", "choices": ["dual-stack", "multus"],
        "metavar": "CAPABILITY",
        "help": "leave a capability out of the simulated cluster (repeatable): dual-stack (no dual-stack "
                "subnet) or multus (no NetworkAttachmentDefinition API); the requirements that need it are "
                "then reported not applicable",
    }),
    ("--sim-ovn-default", {
        "dest": "sim_ovn_default", "default": None, "choices": ["ipv4", "dual"],
        "help": "the pod network's subnet ovn-default: ipv4 (default) or dual, as Kube-OVN's dual-stack "
                "install (DUAL_STACK=true) makes it (10.16.0.0/16,fd00:10:16::/112)",
    }),
    ("--sim-seed", {
        "dest": "sim_seed", "default": None, "type": int, "metavar": "N",
        "help": "seed of the simulated cluster's randomness (faults, generated names)",
    }),
]


def add_sim_options(parser_or_group: Any, prefix: str = _DEFAULT_PREFIX) -> None:
    """Register :data:`SIM_OPTIONS` on an argparse parser/group (``add_argument``) or a pytest
    option group (``addoption``), with ``prefix`` instead of ``--sim-``."""
    add = getattr(parser_or_group, "add_argument", None) or parser_or_group.addoption
    for flag, kwargs in SIM_OPTIONS:
        add(prefix + flag[len(_DEFAULT_PREFIX):], **kwargs)


def builtin_policies() -> list[str]:
    """Names of the built-in webhook conflict policies."""
    try:
        policies = importlib.import_module("conformance.sim.policies")
    except ImportError:
        policies = None
    names = getattr(policies, "BUILTIN", None)
    if isinstance(names, dict) and names:
        return sorted(str(n) for n in names)
    return sorted({versions.kube_ovn_release(v).webhook_policy for v in versions.REPRESENTATIVE_RELEASES})


def check_policy(name: str) -> None:
    """:class:`SimOptionError` unless ``name`` is a built-in policy or an importable callable (checked
    by ``conformance.sim.webhook.load_policy`` when the behaviour modules are present)."""
    try:
        webhook = importlib.import_module("conformance.sim.webhook")
    except ImportError:
        webhook = None
    load = getattr(webhook, "load_policy", None)
    if load is not None:
        try:
            load(name)
        except ValueError as err:
            raise SimOptionError(str(err)) from None
        return
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            module = importlib.import_module(module_name)
        except Exception as err:
            raise SimOptionError(f"webhook policy {name!r}: cannot import {module_name!r}: {err}") from None
        target = getattr(module, attr, None)
        if not callable(target):
            raise SimOptionError(f"webhook policy {name!r}: {module_name} has no callable {attr!r}")
        return
    known = builtin_policies()
    if name not in known:
        raise SimOptionError(f"unknown webhook policy {name!r}: built-in policies are {', '.join(known)} "
                             "(or give package.module:callable)")


def sim_config_from_args(args: argparse.Namespace | Any) -> SimConfig:
    """A :class:`SimConfig` from parsed options (missing attributes keep their defaults).

    Raises :class:`~conformance.versions.VersionError` for an unknown Kube-OVN version and
    :class:`SimOptionError` for other bad values (both ``ValueError``; the message is one line).
    """
    config = SimConfig()
    version = getattr(args, "kube_ovn_version", None) or config.kube_ovn_version
    versions.kube_ovn_release(version)
    config.kube_ovn_version = version
    kubevirt = getattr(args, "kubevirt_version", None)
    if kubevirt:
        config.kubevirt_version = versions.check_kubevirt_version(kubevirt)
    kubernetes = getattr(args, "k8s_version", None)
    if kubernetes:
        config.kubernetes_version = versions.check_kubernetes_version(kubernetes)
    policy = getattr(args, "sim_webhook_policy", None)
    if policy:
        check_policy(policy)
        config.webhook_policy = policy
    webhook = getattr(args, "sim_webhook", None) or "on"
    if webhook not in ("on", "off"):
        raise SimOptionError(f"invalid --sim-webhook {webhook!r}: expected on or off")
    config.webhook = "off" if webhook == "off" else "on"
    faults = getattr(args, "sim_faults", None)
    if faults is not None:
        rate = float(faults)
        if not 0.0 <= rate <= 1.0:
            raise SimOptionError(f"invalid fault rate {faults!r}: expected a number in [0, 1]")
        config.faults = rate
    ovn_default = getattr(args, "sim_ovn_default", None)
    if ovn_default is not None:
        if ovn_default not in ("ipv4", "dual"):
            raise SimOptionError(f"invalid --sim-ovn-default {ovn_default!r}: expected ipv4 or dual")
        config.ovn_default = "dual" if ovn_default == "dual" else "ipv4"
    after = getattr(args, "sim_retry_after", None)
    if after is not None:
        try:
            config.fault_retry_after = _retry_after(str(after))
        except argparse.ArgumentTypeError as exc:
            raise SimOptionError(str(exc)) from None
    step = getattr(args, "sim_step_delay", None)
    if step is not None:
        value = float(step)
        if not 0.0 <= value <= 1.0:
            raise SimOptionError(_STEP_ERROR.format(step))
        config.step_delay = value
    seed = getattr(args, "sim_seed", None)
    if seed is not None:
        config.seed = int(seed)
    raw = getattr(args, "sim_without", None) or []
    without = {part.strip() for item in ([raw] if isinstance(raw, str) else raw)
               for part in str(item).split(",") if part.strip()}
    unknown = without - {"dual-stack", "multus"}
    if unknown:
        raise SimOptionError(f"invalid --sim-without {sorted(unknown)[0]!r}: expected dual-stack or multus")
    config.dual_stack = "dual-stack" not in without
    config.multus = "multus" not in without
    audit_log = getattr(args, "audit_log", None)
    if audit_log:
        config.audit_log = str(audit_log)
    record = getattr(args, "record_requests", None)
    if record:
        config.record_requests = str(record)
    workers = getattr(args, "workers", None)
    if workers is not None:
        if int(workers) < 1:
            raise SimOptionError(f"invalid --workers {workers!r}: expected a positive number")
        config.workers = int(workers)
    event_ttl = getattr(args, "event_ttl", None)
    if event_ttl is not None:
        if not float(event_ttl) >= 0:
            raise SimOptionError(f"invalid --event-ttl {event_ttl!r}: expected a number of seconds >= 0")
        config.event_ttl = float(event_ttl)
    port = getattr(args, "port", None)
    if port is not None:
        if not 0 <= int(port) <= 65535:
            raise SimOptionError(f"invalid --port {port!r}: expected 0-65535")
        config.port = int(port)
    return config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", required=True, type=Path, metavar="PATH",
                        help="where to write the kubeconfig of the simulated cluster")
    parser.add_argument("--audit-log", metavar="FILE", help="append every mutating request as a JSON line")
    parser.add_argument("--record-requests", metavar="FILE", default=os.environ.get(RECORD_ENV) or None,
                        help="append every API request and its answer as a JSON line (default $"
                             f"{RECORD_ENV}; what `tools/apidiff.py` replays against kube-apiserver)")
    parser.add_argument("--kube-ovn-version", metavar="V", default=versions.KUBE_OVN_VERSION,
                        help=f"the modelled Kube-OVN release (default: {versions.KUBE_OVN_VERSION})")
    parser.add_argument("--kubevirt-version", metavar="V", default=None,
                        help=f"the modelled KubeVirt release (default: {versions.KUBEVIRT_VERSION})")
    parser.add_argument("--k8s-version", metavar="V", default=None,
                        help=f"the Kubernetes version /version reports (default: {versions.K8S_VERSION})")
    add_sim_options(parser)
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="number of workers the simulated cluster is sized for")
    parser.add_argument("--event-ttl", type=float, default=None, metavar="SECONDS",
                        help="seconds an Event lives after its last write (default 3600, as "
                             "kube-apiserver; 0 keeps them forever)")
    parser.add_argument("--port", type=int, default=0, metavar="N",
                        help="port to listen on (default: a free one)")
    parser.add_argument("--exit-with-pid", type=int, default=None, metavar="PID",
                        help="stop serving as soon as process PID ends (kovc run passes its own pid, so a killed "
                             "run never leaves its simulated cluster behind)")
    parser.add_argument("--ready-file", type=Path, metavar="F",
                        help="write {url, pid, kubeconfig} as JSON here once serving")


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def watch_pid(pid: int, stop: threading.Event) -> threading.Thread:
    """Set ``stop`` when process ``pid`` ends — however it ends, ``kill -9`` included. Follows a pidfd
    (readable when the process exits); without pidfd support (Linux < 5.3, other systems) it checks
    the process once a second. A pid that is already gone stops at once."""

    def gone() -> None:
        print(f"kovc sim: process {pid}, which this simulated cluster serves, ended: stopping", file=sys.stderr,
              flush=True)
        stop.set()

    def follow() -> None:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            gone()
            return
        except (AttributeError, OSError):
            fd = -1
        if fd >= 0:
            try:
                while not stop.is_set():
                    readable, _, _ = select.select([fd], [], [], 1.0)
                    if readable:
                        gone()
                        return
            finally:
                os.close(fd)
            return
        while not stop.wait(1.0):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                gone()
                return
            except PermissionError:
                continue

    thread = threading.Thread(target=follow, name=f"kovc-sim-watch-{pid}", daemon=True)
    thread.start()
    return thread


def run(args: argparse.Namespace) -> int:
    from .cluster import SimCluster, SimClusterError

    try:
        config = sim_config_from_args(args)
    except ValueError as err:  # VersionError, SimOptionError
        print(f"kovc: {err}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        set_from_signal_handler(stop)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    owner: int | None = getattr(args, "exit_with_pid", None)
    if owner is not None:
        watch_pid(owner, stop)
    cluster = SimCluster(config)
    ready_file: Path | None = args.ready_file
    try:
        try:
            cluster.start()
        except (SimClusterError, OSError) as err:
            if isinstance(err.__cause__, ValueError):  # bad input only the world could tell
                print(f"kovc: {err.__cause__}", file=sys.stderr)
                return 2
            print(f"kovc: cannot serve the simulated cluster: {err}", file=sys.stderr)
            return 1
        kubeconfig = cluster.write_kubeconfig(args.kubeconfig).resolve()
        if ready_file is not None:
            _write_atomically(ready_file, json.dumps({"url": cluster.url, "pid": os.getpid(),
                                                      "kubeconfig": str(kubeconfig)}))
        print(f"kovc sim: serving {cluster.url} ({config.model_name}) in {cluster.startup_seconds:.3f}s; "
              f"kubeconfig {kubeconfig}", flush=True)
        while not stop.wait(0.5):
            if not cluster.running:
                print("kovc: the simulated cluster stopped unexpectedly", file=sys.stderr)
                return 1
        return 0
    finally:
        cluster.stop()
        if ready_file is not None:
            ready_file.unlink(missing_ok=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
