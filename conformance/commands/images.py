"""``kovc images``: every image (and, with ``--manifests``, every upstream file) a run needs, offline.

Air-gapped use::

    kovc images | xargs -n1 docker pull          # on a connected machine, then docker save / load
    kovc images --manifests                      # FILE URL pairs for --manifests-dir
    kovc images --multus --ip-family dual        # what `kovc run --backend kind --multus --ip-family dual` adds
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from .. import versions
from ..cluster.base import BackendError
from ..cluster.images import RunVersions, run_images, run_manifests
from ..cluster.network import check_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kube-ovn-version", default=None, metavar="VERSION",
                        help=f"Kube-OVN release (default {versions.KUBE_OVN_VERSION})")
    parser.add_argument("--kubevirt-version", default=None, metavar="VERSION",
                        help=f"KubeVirt release (default {versions.KUBEVIRT_VERSION})")
    parser.add_argument("--k8s-version", default=None, metavar="VERSION",
                        help=f"Kubernetes version of the kind node image (default {versions.K8S_VERSION})")
    parser.add_argument("--kind-image", default=None, metavar="IMAGE",
                        help="kind node image (default kindest/node:<--k8s-version>)")
    parser.add_argument("--ip-family", choices=("ipv4", "dual", "ipv6"), default="ipv4",
                        help="as `kovc run --backend kind --ip-family` (dual adds no image; ipv6 is refused)")
    parser.add_argument("--multus", action="store_true",
                        help="as `kovc run --backend kind --multus`: adds the release's Multus image (and, with "
                             "--manifests, its multus-daemonset-thick.yml)")
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help="text: one image per line; json: an array of {image, components, loadable}")
    parser.add_argument("--manifests", action="store_true",
                        help="print the upstream files instead: FILENAME URL per line, the names "
                             "--manifests-dir expects")


def run(args: argparse.Namespace) -> int:
    try:
        v = RunVersions.resolve(args.kube_ovn_version, args.kubevirt_version, args.k8s_version,
                                args.kind_image, ip_family=args.ip_family, multus=args.multus)
        check_options("kind", ip_family=args.ip_family, multus=args.multus,
                      kube_ovn_version=args.kube_ovn_version)
    except (versions.VersionError, BackendError) as err:
        print(f"kovc images: {err}", file=sys.stderr)
        return 2
    if args.manifests:
        manifests = run_manifests(v)
        if args.format == "json":
            text = json.dumps([{"filename": m.filename, "url": m.url, "purpose": m.purpose}
                               for m in manifests], indent=2)
        else:
            text = "\n".join(f"{m.filename} {m.url}" for m in manifests)
    else:
        images = run_images(v)
        if args.format == "json":
            text = json.dumps([{"image": i.image, "components": list(i.components), "loadable": i.loadable}
                               for i in images], indent=2)
        else:
            text = "\n".join(i.image for i in images)
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # `kovc images | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
