"""``kovc sim attach``: the simulated controllers as API clients of any kube-apiserver.

    kovc sim attach --kubeconfig K [--kube-ovn-version V] [--sim-webhook-policy P]
                    [--serving-cert C --serving-key K] [--requestheader-ca CA]
                    [--webhook-port P] [--aggregated-port P] [--kubelet-port P] [--no-webhook]

Runs the KubeVirt, Kube-OVN, scheduler and kubelet models over :class:`~conformance.sim.transport.http.HttpClient`
(a watch cache of every kind they read; writes as each component's user agent), and SERVES - without
registering anything:

* the modelled admission webhooks at ``https://127.0.0.1:<webhook-port>`` (``serving/webhook.py`` paths:
  ``/validating`` for Kube-OVN's pod webhook, ``/virtualmachines-validate`` and ``/migration-validate-create``
  for virt-api's) - unless ``--no-webhook`` (Kube-OVN's real webhook binary is registered instead; the
  virt-api checks are served either way). With ``--kube-ovn-webhook-port`` Kube-OVN's ``/validating`` is on
  a server of its own there, which an in-place upgrade (``sim/upgrade.py``) stops and restarts on the new
  release; ``--webhook-control`` makes that rollout also go through the envtest supervisor (the real
  webhook's process, the registration: ``envtest/webhook_control.py``);
* KubeVirt's aggregated API ``subresources.kubevirt.io`` at ``https://127.0.0.1:<aggregated-port>``
  (``serving/aggregated.py``), front-proxy authenticated with ``--requestheader-ca``;
* the kubelets' ``/containerLogs`` at ``https://127.0.0.1:<kubelet-port>`` (``serving/kubelet.py``): the nodes it
  creates report that address (InternalIP only) and port, so kube-apiserver's ``pods/log`` reaches it.

It creates the installed objects a kind + Kube-OVN + KubeVirt cluster has (nodes ``kovc-sim-*`` labelled
``kovc.io/simulated=true``, the install namespaces, Subnets/Vpc, Deployments, component pods, the KubeVirt
CR; create-or-skip) but no webhook configuration or Service for it: registration belongs to the backend.
Garbage collection and namespace deletion are left to the cluster (kube-controller-manager on envtest).

Prints exactly ``kovc-attach ready`` on stdout once the caches are synced and the servers listen (ports and
URLs go to stderr). SIGTERM/SIGINT stop it cleanly; it also stops when its parent process dies. Bad input
(broken kubeconfig, unknown version or policy, unreadable certificates, an API that never answers) is one
line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys

from .. import versions


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent dies (``PR_SET_PDEATHSIG``)."""
    import ctypes

    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .serve import add_sim_options

    parser.add_argument("--kubeconfig", required=True, metavar="PATH", help="the kube-apiserver to attach to")
    parser.add_argument("--context", default=None, metavar="NAME", help="kubeconfig context (default: current)")
    parser.add_argument("--kube-ovn-version", metavar="V", default=versions.KUBE_OVN_VERSION,
                        help=f"the modelled Kube-OVN release (default: {versions.KUBE_OVN_VERSION})")
    parser.add_argument("--kubevirt-version", metavar="V", default=None,
                        help=f"the modelled KubeVirt release (default: {versions.KUBEVIRT_VERSION})")
    add_sim_options(parser)
    parser.add_argument("--serving-cert", metavar="FILE", default=None,
                        help="TLS certificate of the webhook and aggregated servers (default: self-signed)")
    parser.add_argument("--serving-key", metavar="FILE", default=None, help="its private key")
    parser.add_argument("--requestheader-ca", metavar="FILE", default=None,
                        help="CA of kube-apiserver's front-proxy client certificate (aggregated API auth)")
    parser.add_argument("--webhook-port", type=int, default=0, metavar="P", help="webhook port (default: free)")
    parser.add_argument("--aggregated-port", type=int, default=0, metavar="P",
                        help="aggregated API port (default: free)")
    parser.add_argument("--kubelet-port", type=int, default=0, metavar="P",
                        help="port of the simulated kubelets' API (pods/log; default: free)")
    parser.add_argument("--no-webhook", action="store_true",
                        help="do not serve Kube-OVN's modelled webhook (the real one is registered)")
    parser.add_argument("--kube-ovn-webhook-port", type=int, default=None, metavar="P",
                        help="serve Kube-OVN's modelled webhook (/validating) on a server of its own on this port "
                             "(0: free), which an in-place upgrade stops and restarts (default: on --webhook-port)")
    parser.add_argument("--webhook-control", default=None, metavar="SOCKET",
                        help="the envtest supervisor's webhook control socket: an in-place upgrade's rollout "
                             "stops, starts and registers the webhook through it (envtest/webhook_control.py)")


def run(args: argparse.Namespace) -> int:
    import asyncio
    import ssl

    from .serve import sim_config_from_args

    _die_with_parent()
    try:
        config = sim_config_from_args(args)
    except ValueError as err:
        print(f"kovc: {err}", file=sys.stderr)
        return 2
    if bool(args.serving_cert) != bool(args.serving_key):
        print("kovc: --serving-cert and --serving-key go together", file=sys.stderr)
        return 2
    for flag in ("serving_cert", "serving_key", "requestheader_ca"):
        value = getattr(args, flag)
        if value and not os.access(value, os.R_OK):
            print(f"kovc: --{flag.replace('_', '-')} {value}: not a readable file", file=sys.stderr)
            return 2
    for flag in ("webhook_port", "aggregated_port", "kubelet_port", "kube_ovn_webhook_port"):
        if getattr(args, flag) is not None and not 0 <= int(getattr(args, flag)) <= 65535:
            print(f"kovc: invalid --{flag.replace('_', '-')} {getattr(args, flag)}: expected 0-65535",
                  file=sys.stderr)
            return 2
    try:
        from .transport.http import Connection

        conn = Connection.from_kubeconfig(args.kubeconfig, args.context)
    except (ValueError, OSError, ssl.SSLError) as err:
        print(f"kovc: {err}", file=sys.stderr)
        return 2
    try:
        from .attached import main

        return asyncio.run(main(args, config, conn))
    except KeyboardInterrupt:
        return 0
