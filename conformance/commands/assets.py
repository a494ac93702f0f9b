"""``kovc assets build`` and ``kovc assets list``: the real control-plane programs built from their
published Go modules (see :mod:`conformance.envtest.assets`).

    kovc assets build [--kubernetes-version V] [--etcd-version V] [--kube-ovn-version V …]
                      [--kubevirt-version V] [--dir D] [--force]
    kovc assets list [--dir D]
"""

from __future__ import annotations

import argparse
import sys
import time

from .. import versions as _versions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    if parser.prog.endswith("list"):
        parser.add_argument("--dir", metavar="D", help="asset directory (default $KOVC_ASSETS or ~/.cache/kovc/assets)")
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
        parser.set_defaults(_assets_action="list")
        return
    parser.add_argument("--kubernetes-version", metavar="V",
                        help=f"k8s.io/kubernetes version, vX.Y.Z or vX.Y for the newest patch served (default: "
                             f"the newest patch of {_versions.K8S_VERSION.rsplit('.', 1)[0]})")
    parser.add_argument("--etcd-version", metavar="V", help="etcd server version (default: the newest v3.6.x served)")
    parser.add_argument("--kube-ovn-version", action="append", metavar="V", dest="kube_ovn_versions",
                        help=f"Kube-OVN tag whose webhook to build (repeatable; default {_versions.KUBE_OVN_VERSION})")
    parser.add_argument("--kubevirt-version", metavar="V", default=_versions.KUBEVIRT_VERSION,
                        help=f"KubeVirt version whose CRDs to generate (default {_versions.KUBEVIRT_VERSION})")
    parser.add_argument("--dir", metavar="D", help="asset directory (default $KOVC_ASSETS or ~/.cache/kovc/assets)")
    parser.add_argument("--force", action="store_true", help="rebuild even what is up to date")
    parser.add_argument("--keep-going", action="store_true",
                        help="build the other assets when one fails (exit 1 at the end if any failed)")
    parser.set_defaults(_assets_action="build")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..envtest import assets as a

    root = Path(args.dir).expanduser() if args.dir else a.default_dir()
    if args._assets_action == "list":
        return _list(root, bool(args.json))
    for v in args.kube_ovn_versions or []:
        try:
            _versions.parse(v)
        except _versions.VersionError as err:
            print(f"kovc: {err}", file=sys.stderr)
            return 2
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        print(f"kovc: asset directory {root}: {err.strerror or err}", file=sys.stderr)
        return 2
    b = a.Builder(root=root, log_dir=root / ".work")
    failures: list[str] = []
    t0 = time.monotonic()

    def attempt(what: str, fn: object) -> None:
        try:
            fn()  # type: ignore[operator]
        except a.AssetError as err:
            if not args.keep_going:
                raise
            failures.append(f"{what}: {err}")
            print(f"kovc assets: {what} FAILED: {err}", file=sys.stderr, flush=True)

    try:
        k8s = a.resolve_kubernetes(b, args.kubernetes_version)
        etcd = a.resolve_etcd(b, args.etcd_version)
        attempt(f"etcd {etcd}", lambda: a.build_etcd(b, k8s, etcd, args.force))
        attempt(f"kube-apiserver {k8s}", lambda: a.build_kubernetes(b, k8s, args.force))
        for tag in args.kube_ovn_versions or [_versions.KUBE_OVN_VERSION]:
            attempt(f"kube-ovn-webhook {tag}", lambda tag=tag: a.build_webhook(b, tag, args.force))
        attempt(f"KubeVirt CRDs {args.kubevirt_version}",
                lambda: a.build_kubevirt_crds(b, args.kubevirt_version, args.force))
    except a.AssetError as err:
        print(f"kovc: {err}", file=sys.stderr)
        return 2
    print(f"kovc assets: done in {time.monotonic() - t0:.1f} s ({root})", file=sys.stderr)
    for line in failures:
        print(f"kovc assets: failed: {line}", file=sys.stderr)
    return 1 if failures else 0


def _list(root: object, as_json: bool) -> int:
    import json
    from pathlib import Path

    from ..envtest import assets as a

    assert isinstance(root, Path)
    rows = list(a.installed(root))
    if as_json:
        print(json.dumps([r.to_json() for r in rows], indent=2))
        return 0
    if not rows:
        print(f"no assets in {root}: run `kovc assets build`")
        return 0
    width = max(len(r.program) for r in rows)
    for r in rows:
        took = f"{r.build_seconds:.0f} s" if r.build_seconds is not None else "-"
        print(f"{r.program:<{width}}  {r.version:<9}  {r.sha256}  {took:>6}  {r.path}")
    return 0
