"""``kovc upgrade prepare|verify``: upgrade gating on a cluster the operator upgrades (issue 13).

``kovc upgrade prepare --kubeconfig K`` creates the upgrade run's VMs on the release the cluster runs
now (``conformance.upgrade``), records them in ConfigMap ``kovc-upgrade-state`` (labelled with the run)
in the run's namespace, requests the mid-restart, and prints the run id. The operator then upgrades
Kube-OVN. ``kovc upgrade verify --run-id ID --kubeconfig K`` runs the upgrade.* after-checks against
that record (``kovc run --backend existing --upgrade-phase verify``) and writes the report bundle; at
its end the run's objects are deleted, as ``kovc cleanup --run-id ID`` does for a run that never got
verified. Exit codes: prepare 0 done, 2 bad input or the preparation failed (what it created is
deleted); verify as ``kovc run``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import settings as _settings
from ..cluster.base import BackendError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    if parser.prog.endswith("prepare"):
        parser.add_argument("--kubeconfig", metavar="PATH",
                            help="kubeconfig of the cluster (default $KUBECONFIG or ~/.kube/config)")
        parser.add_argument("--context", metavar="NAME", help="kubeconfig context (default: the current one)")
        parser.add_argument("--run-id", dest="run_id", type=_settings._run_id, metavar="ID",
                            help="run id (default: a new one, printed)")
        parser.add_argument("--timeout-scale", dest="timeout_scale", type=_settings._positive_float, default=1.0,
                            metavar="F", help="multiply every timeout (default 1)")
        parser.set_defaults(_upgrade="prepare")
    else:
        from .run import add_arguments as run_arguments

        run_arguments(parser)
        parser.set_defaults(_upgrade="verify", backend="existing")


def run(args: argparse.Namespace) -> int:
    if args._upgrade == "verify":
        return _verify(args)
    return _prepare(args)


def _verify(args: argparse.Namespace) -> int:
    from .run import run as run_suite

    if not args.run_id:
        print("kovc: kovc upgrade verify needs --run-id (printed by `kovc upgrade prepare`)", file=sys.stderr)
        return 2
    if args.upgrade_from:
        print("kovc: kovc upgrade verify takes no --upgrade-from (the prepared run recorded it)", file=sys.stderr)
        return 2
    args.upgrade_phase = "verify"
    return run_suite(args)


def _prepare(args: argparse.Namespace) -> int:
    from ..cluster.existing import ExistingBackend
    from ..cluster.select import BackendOptions, check_reachable
    from .run import _default_kubeconfig

    kubeconfig = args.kubeconfig or _default_kubeconfig()
    if not kubeconfig:
        print("kovc: kovc upgrade prepare needs --kubeconfig (or $KUBECONFIG)", file=sys.stderr)
        return 2
    run_id = args.run_id or _settings.new_run_id()
    try:
        check_reachable(kubeconfig, args.context)
        info = ExistingBackend(BackendOptions(backend="existing", kubeconfig=kubeconfig, context=args.context,
                                              run_id=run_id)).provision(Path("."))
    except BackendError as err:
        print(f"kovc: {err}", file=sys.stderr)
        return 2
    from .. import upgrade
    from ..addresses import AddressPool
    from ..kube import Kube
    from ..recorder import Recorder
    from ..settings import Settings
    from ..verbs import Actions

    source = info.versions.kube_ovn_webhook or info.versions.kube_ovn_controller or "(unknown)"
    print(f"kovc: upgrade run {run_id}: preparing VMs on Kube-OVN {source}; if it is killed, delete what it "
          f"left with: kovc cleanup --run-id {run_id} --kubeconfig {kubeconfig}", flush=True)
    kube = Kube(info.kubeconfig, info.context, run_id=run_id)
    settings = Settings(run_id=run_id, timeout_scale=args.timeout_scale, backend="existing",
                        simulated=info.simulated)
    try:
        act = Actions(kube, settings, Recorder(), AddressPool(kube, settings))
        prepared = upgrade.prepare(kube, act, run_id, source)
        upgrade.save(kube, prepared, run_id)
        upgrade.start_midrestart(kube, prepared)
    except Exception as err:  # the preparation failed: remove what it made, say why in one line
        from .cleanup import run as cleanup

        print(f"kovc: upgrade prepare failed: {' '.join(str(err).split())[:500]}", file=sys.stderr)
        cleanup(argparse.Namespace(run_id=run_id, all_runs=False, dry_run=False, force=False,
                                   stale_after=0.0, kubeconfig=kubeconfig, context=args.context))
        return 2
    finally:
        kube.close()
    ctx = f" --context {args.context}" if args.context else ""
    print(f"kovc: prepared upgrade run {run_id}: {len(prepared.vms) + 1} VMs in namespace {prepared.namespace} "
          f"on Kube-OVN {source} (state in ConfigMap {prepared.namespace}/{upgrade.STATE_NAME})")
    print(f"next: upgrade Kube-OVN, then: kovc upgrade verify --run-id {run_id} --kubeconfig {kubeconfig}{ctx}")
    print(run_id)
    return 0
