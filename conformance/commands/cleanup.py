"""``kovc cleanup (--run-id ID | --all) [--dry-run] [--force] [--stale-after S] [--kubeconfig K] [--context C]``:
delete what a killed run left.

What it deletes — only what kovc created:

* namespaces labelled ``kovc.io/run`` **and** carrying kovc's creation marker (annotation
  ``kovc.io/created-by-run`` equal to the label: set by kovc when it creates them), with the VM clones,
  migrations, VMs and pods labelled with the run inside them; a labelled namespace without the marker
  (a user's) and anything labelled outside kovc's namespaces are left alone and listed as skipped;
* cluster-scoped IP CRs, Subnets and VPCs labelled with the run and carrying the marker.

Live runs: each run keeps a heartbeat (``conformance.heartbeat``: namespace ``kovc-run-<id>``,
renewed every 10 s). ``--all`` skips every run whose heartbeat is younger than ``--stale-after``
seconds (default 120) unless ``--force``; ``--run-id`` names one run explicitly, so it proceeds, with
a warning when that run's heartbeat is fresh. ``--dry-run`` prints what would be deleted and deletes
nothing. Kinds whose API group the cluster does not serve are skipped. The plugin reuses
:func:`delete_run_objects` at the end of every run (its own run id), so a scenario interrupted mid-way
leaves nothing behind.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .. import CREATED_ANNOTATION, RUN_LABEL
from ..cluster.base import BackendError
from ..heartbeat import HEARTBEAT_LABEL, STALE_AFTER, last_beat

if TYPE_CHECKING:
    from ..kube import Kube

#: (kind name in conformance.kube, namespaced), in deletion order: dependants before what they need.
NAMESPACED_ORDER = ("VirtualMachineClone", "VirtualMachineInstanceMigration", "VirtualMachine", "Pod")
CLUSTER_ORDER = ("IP", "Subnet", "Vpc")


def selector(run_id: str | None) -> str:
    """The label selector of one run's objects (``None``: any run's)."""
    return f"{RUN_LABEL}={run_id}" if run_id else RUN_LABEL


def _served(exc: BaseException) -> bool:
    """False when a list failed because the cluster does not serve the kind (404)."""
    from ..kube import api_code

    return api_code(exc) != 404


def _list(kube: Kube, kind: str, label_selector: str) -> list[dict[str, Any]]:
    try:
        return kube.list(kind, None, label_selector=label_selector)
    except Exception as exc:
        if not _served(exc):
            return []
        raise


def _describe(kind: str, obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{kind.lower()}/{ns}/{meta.get('name')}" if ns else f"{kind.lower()}/{meta.get('name')}"


def _run_of(obj: dict[str, Any]) -> str:
    return str(((obj.get("metadata") or {}).get("labels") or {}).get(RUN_LABEL) or "")


def created_by_kovc(obj: dict[str, Any]) -> bool:
    """kovc's creation marker is on ``obj`` and names the run its label names."""
    meta = obj.get("metadata") or {}
    marker = (meta.get("annotations") or {}).get(CREATED_ANNOTATION)
    return bool(marker) and marker == _run_of(obj)


@dataclass
class LiveRun:
    run_id: str
    age_s: float


def live_runs(kube: Kube, stale_after: float, now: datetime | None = None) -> dict[str, LiveRun]:
    """Runs whose heartbeat is younger than ``stale_after`` seconds, by run id."""
    from ..kube import NAMESPACES

    now = now or datetime.now(UTC)
    out: dict[str, LiveRun] = {}
    for ns in _list(kube, NAMESPACES.kind, HEARTBEAT_LABEL):
        if not created_by_kovc(ns) or (ns.get("metadata") or {}).get("deletionTimestamp"):
            continue
        beat = last_beat(ns)
        if beat is None:
            continue
        age = (now - beat).total_seconds()
        if age < stale_after:
            out[_run_of(ns)] = LiveRun(_run_of(ns), max(age, 0.0))
    return out


@dataclass
class Plan:
    """What a cleanup deletes (kind, namespace, name, description), in order, and what it leaves."""

    delete: list[tuple[str, str | None, str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def plan_cleanup(kube: Kube, run_id: str | None, *, keep_namespaces: Iterable[str] = (),
                 include_cluster_scoped: bool = True, skip_runs: Iterable[str] = ()) -> Plan:
    """The objects of ``run_id`` (any run when None) kovc may delete: see the module docstring."""
    from ..kube import NAMESPACES

    keep, skip = set(keep_namespaces), set(skip_runs)
    sel = selector(run_id)
    plan = Plan()
    ours: set[str] = set()
    namespaces = _list(kube, NAMESPACES.kind, sel)
    for ns in namespaces:
        name = str((ns.get("metadata") or {}).get("name"))
        if created_by_kovc(ns):
            ours.add(name)
        else:
            plan.skipped.append(f"namespace/{name}: labelled {RUN_LABEL}={_run_of(ns)} but not created by kovc "
                                f"(no {CREATED_ANNOTATION} marker): left alone, with everything in it")
    for kind in NAMESPACED_ORDER:
        for obj in _list(kube, kind, sel):
            meta = obj.get("metadata") or {}
            ns_name = str(meta.get("namespace"))
            if ns_name in keep or meta.get("deletionTimestamp") or _run_of(obj) in skip:
                continue
            if ns_name not in ours:
                if ns_name not in {str((n.get("metadata") or {}).get("name")) for n in namespaces}:
                    plan.skipped.append(f"{_describe(kind, obj)}: labelled {RUN_LABEL}={_run_of(obj)} in namespace "
                                        f"{ns_name}, which kovc did not create: left alone")
                continue
            plan.delete.append((kind, ns_name, str(meta.get("name")), _describe(kind, obj)))
    heartbeats: list[tuple[str, str | None, str, str]] = []
    for ns in namespaces:
        meta = ns.get("metadata") or {}
        name = str(meta.get("name"))
        if name not in ours or name in keep or meta.get("deletionTimestamp") or _run_of(ns) in skip:
            continue
        entry = (NAMESPACES.kind, None, name, _describe("Namespace", ns))
        # the heartbeat goes last: while anything of the run remains, the run stays recognisable
        (heartbeats if HEARTBEAT_LABEL in (meta.get("labels") or {}) else plan.delete).append(entry)
    if include_cluster_scoped:
        for kind in CLUSTER_ORDER:
            for obj in _list(kube, kind, sel):
                meta = obj.get("metadata") or {}
                if kind == "IP" and (obj.get("spec") or {}).get("namespace") in keep:
                    continue
                if meta.get("deletionTimestamp") or _run_of(obj) in skip:
                    continue
                if not created_by_kovc(obj):
                    plan.skipped.append(f"{_describe(kind, obj)}: labelled {RUN_LABEL}={_run_of(obj)} but not "
                                        f"created by kovc (no {CREATED_ANNOTATION} marker): left alone")
                    continue
                plan.delete.append((kind, None, str(meta.get("name")), _describe(kind, obj)))
    plan.delete.extend(heartbeats)
    return plan


def delete_run_objects(kube: Kube, run_id: str | None, *, keep_namespaces: Iterable[str] = (),
                       include_cluster_scoped: bool = True, skip_runs: Iterable[str] = (),
                       plan: Plan | None = None) -> list[str]:
    """Delete what :func:`plan_cleanup` selects (or ``plan``); returns ``kind/[namespace/]name`` of each
    delete issued (404s excluded)."""
    if plan is None:
        plan = plan_cleanup(kube, run_id, keep_namespaces=keep_namespaces,
                            include_cluster_scoped=include_cluster_scoped, skip_runs=skip_runs)
    deleted: list[str] = []
    for kind, namespace, name, what in plan.delete:
        if kube.delete(kind, namespace, name):
            deleted.append(what)
    return deleted


def wait_namespaces_gone(kube: Kube, run_id: str, timeout: float, keep: Iterable[str] = ()) -> list[str]:
    """Follow a watch until no namespace of the run (outside ``keep``) exists; returns those still
    present when ``timeout`` expires (empty: all gone)."""
    from ..kube import NAMESPACES

    keep = set(keep)
    deadline = time.monotonic() + timeout
    while True:
        items, rv = kube.list_with_version(NAMESPACES, None, label_selector=selector(run_id))
        left = {str((n.get("metadata") or {}).get("name")) for n in items} - keep
        remaining = deadline - time.monotonic()
        if not left or remaining <= 0:
            return sorted(left)
        try:
            for event in kube.watch(NAMESPACES, None, resource_version=rv, label_selector=selector(run_id),
                                    timeout_seconds=max(1, int(remaining + 0.999))):
                obj = event.get("object") or {}
                if event.get("type") == "DELETED":
                    left.discard(str((obj.get("metadata") or {}).get("name")))
                    if not left:
                        return []
                if time.monotonic() > deadline:
                    break
        except Exception:  # 410 or a cut watch: relist
            continue


# --------------------------------------------------------------------------------------------------
# The command


EPILOG = f"""\
what is deleted:
  only what kovc created: namespaces labelled {RUN_LABEL} that also carry kovc's creation marker
  (annotation {CREATED_ANNOTATION}, set when kovc creates them), the run's VMs, migrations, clones
  and pods inside those namespaces, and the run's IP CRs, Subnets and VPCs carrying the marker. A
  labelled namespace kovc did not create, and anything labelled outside kovc's namespaces, is left
  alone and listed as skipped.

live runs:
  every run renews a heartbeat (namespace kovc-run-<id>, annotation kovc.io/heartbeat) every 10 s.
  --all skips each run whose heartbeat is younger than --stale-after seconds (default
  {STALE_AFTER:.0f}) and says so; --force deletes them anyway (the run then fails). --run-id names one
  run explicitly: it proceeds, warning when that run's heartbeat is fresh.

exit codes:
  0 done (or nothing to delete); 2 bad input or the cluster could not be reached / a delete failed.
"""


def _non_negative(value: str) -> float:
    try:
        out = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {value!r}") from None
    if out < 0:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {value!r}")
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--run-id", dest="run_id", metavar="ID", help="delete the objects of this run")
    which.add_argument("--all", dest="all_runs", action="store_true",
                       help=f"delete the objects of every kovc run (any {RUN_LABEL} label) that is not live")
    parser.add_argument("--dry-run", dest="dry_run", action="store_true",
                        help="print what would be deleted (and what is skipped), delete nothing")
    parser.add_argument("--force", action="store_true",
                        help="with --all: delete runs with a fresh heartbeat too (live runs then fail)")
    parser.add_argument("--stale-after", dest="stale_after", type=_non_negative, default=STALE_AFTER,
                        metavar="SECONDS",
                        help=f"a heartbeat older than this is stale: its run is not live (default {STALE_AFTER:.0f})")
    parser.add_argument("--kubeconfig", metavar="PATH",
                        help="kubeconfig of the cluster (default $KUBECONFIG or ~/.kube/config)")
    parser.add_argument("--context", metavar="NAME", help="kubeconfig context (default: the current one)")


def _default_kubeconfig() -> str:
    env = os.environ.get("KUBECONFIG", "")
    if env:
        return env.split(os.pathsep)[0]
    return os.path.expanduser("~/.kube/config")


def run(args: argparse.Namespace) -> int:
    from ..cluster.select import check_reachable
    from ..settings import _RUN_ID_RE

    run_id: str | None = None if args.all_runs else args.run_id
    if run_id is not None and not _RUN_ID_RE.match(run_id):
        print(f"kovc: invalid run id {run_id!r}", file=sys.stderr)
        return 2
    kubeconfig = args.kubeconfig or _default_kubeconfig()
    try:
        check_reachable(kubeconfig, args.context)
    except BackendError as err:
        print(f"kovc: {err}", file=sys.stderr)
        return 2
    from ..kube import Kube, describe_error

    kube = Kube(kubeconfig, args.context, run_id=run_id or "cleanup")
    dry_run = bool(getattr(args, "dry_run", False))
    try:
        live = live_runs(kube, float(getattr(args, "stale_after", STALE_AFTER)))
        skip: set[str] = set()
        if run_id is None:
            for rid, lr in sorted(live.items()):
                if getattr(args, "force", False):
                    print(f"warning: run {rid} is live (heartbeat {lr.age_s:.0f} s ago): deleted anyway (--force)")
                else:
                    skip.add(rid)
                    print(f"skipped run {rid}: live (heartbeat {lr.age_s:.0f} s ago); --force deletes it anyway")
        elif run_id in live:
            print(f"warning: run {run_id} has a fresh heartbeat ({live[run_id].age_s:.0f} s ago): if it is still "
                  "running, it will fail")
        plan = plan_cleanup(kube, run_id, skip_runs=skip)
        for line in plan.skipped:
            print(f"skipped {line}")
        if dry_run:
            for _kind, _ns, _name, what in plan.delete:
                print(f"would delete {what}")
            deleted: list[str] = []
        else:
            deleted = delete_run_objects(kube, run_id, plan=plan)
    except Exception as err:
        print(f"kovc: cleanup failed: {describe_error(err)}", file=sys.stderr)
        return 2
    finally:
        kube.close()
    what = f"run {run_id}" if run_id else "every kovc run"
    if dry_run:
        print(f"{len(plan.delete)} object(s) of {what} would be deleted (--dry-run: nothing deleted)")
        return 0
    if not deleted:
        print(f"nothing labelled {selector(run_id)} left ({what})")
        return 0
    for line in deleted:
        print(f"deleted {line}")
    print(f"{len(deleted)} object(s) of {what} deleted")
    return 0
