"""``kovc cleanup [--run-id ID | --all] [--kubeconfig K] [--context C]``: delete what a killed run left.

Only objects labelled ``kovc.io/run`` (``=ID``, or any value with ``--all``) are touched: VM clones,
migrations, VMs, pods and namespaces, then the cluster-scoped IP CRs, subnets and VPCs. Kinds whose
API group the cluster does not serve are skipped. The plugin reuses :func:`delete_run_objects` at the
end of every run (its own run id), so a scenario interrupted mid-way leaves nothing behind.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .. import RUN_LABEL
from ..cluster.base import BackendError

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


def delete_run_objects(kube: Kube, run_id: str | None, *, keep_namespaces: Iterable[str] = (),
                       include_cluster_scoped: bool = True) -> list[str]:
    """Delete every object labelled with ``run_id`` (any run when None), except inside
    ``keep_namespaces``; returns ``kind/[namespace/]name`` of each delete issued (404s excluded)."""
    from ..kube import NAMESPACES

    keep = set(keep_namespaces)
    sel = selector(run_id)
    deleted: list[str] = []
    for kind in NAMESPACED_ORDER:
        for obj in _list(kube, kind, sel):
            meta = obj.get("metadata") or {}
            if meta.get("namespace") in keep or meta.get("deletionTimestamp"):
                continue
            if kube.delete(kind, meta.get("namespace"), str(meta.get("name"))):
                deleted.append(_describe(kind, obj))
    for ns in _list(kube, NAMESPACES.kind, sel):
        meta = ns.get("metadata") or {}
        if meta.get("name") in keep or meta.get("deletionTimestamp"):
            continue
        if kube.delete(NAMESPACES, None, str(meta.get("name"))):
            deleted.append(_describe("Namespace", ns))
    if include_cluster_scoped:
        for kind in CLUSTER_ORDER:
            for obj in _list(kube, kind, sel):
                meta = obj.get("metadata") or {}
                if kind == "IP" and (obj.get("spec") or {}).get("namespace") in keep:
                    continue
                if meta.get("deletionTimestamp"):
                    continue
                if kube.delete(kind, None, str(meta.get("name"))):
                    deleted.append(_describe(kind, obj))
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--run-id", dest="run_id", metavar="ID", help="delete the objects of this run")
    which.add_argument("--all", dest="all_runs", action="store_true",
                       help=f"delete the objects of every kovc run (any {RUN_LABEL} label)")
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
    try:
        deleted = delete_run_objects(kube, run_id)
    except Exception as err:
        print(f"kovc: cleanup failed: {describe_error(err)}", file=sys.stderr)
        return 2
    finally:
        kube.close()
    what = f"run {run_id}" if run_id else "every kovc run"
    if not deleted:
        print(f"nothing labelled {selector(run_id)} left ({what})")
        return 0
    for line in deleted:
        print(f"deleted {line}")
    print(f"{len(deleted)} object(s) of {what} deleted")
    return 0
