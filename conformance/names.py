"""Deterministic object names.

Holders are ``h-<rand>``, challengers ``c-<rand>``; neither is ever a substring of the other (the
only ``-`` in each sits right after its one-letter prefix), except in the pairs a requirement asks
for (:func:`prefix_pairs`). Every name is a DNS-1123 label of at most 40 characters, chosen before
the create, so a retried create meets 409 AlreadyExists instead of making a second object
(the suite never uses ``generateName``).
"""

from __future__ import annotations

import re
import secrets

#: The node label kovc's kind install puts on the nodes that may run VMs (the workers), and the KubeVirt
#: CR's ``spec.workloads.nodePlacement.nodeSelector``: virt-handler - and with it the node label
#: ``kubevirt.io/schedulable=true`` that every VMI's launcher pod selects - runs only there, so the
#: control plane stays free for net.migration-downtime's probe (a node neither source nor target).
VM_NODE_LABEL = "kovc.io/vm-node"
#: No vowels (no accidental words), as the API server's own generateName alphabet.
ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
MAX_LEN = 40
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def rand(n: int = 6) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(n))


def check(name: str) -> str:
    """``name`` when it is a DNS-1123 label of at most 40 characters, else ValueError (one line)."""
    if len(name) > MAX_LEN or not _DNS_LABEL.match(name):
        raise ValueError(f"invalid object name {name!r}: expected a DNS-1123 label of at most {MAX_LEN} "
                         "characters (lower-case letters, digits, '-')")
    return name


def holder() -> str:
    return check(f"h-{rand()}")


def challenger() -> str:
    return check(f"c-{rand()}")


def child(base: str, suffix: str) -> str:
    """A deterministic name derived from ``base`` (``<base>-<suffix>``), truncated to fit."""
    suffix = suffix.strip("-")
    room = MAX_LEN - len(suffix) - 1
    return check(f"{base[:room].rstrip('-')}-{suffix}")


def unique(prefix: str) -> str:
    """``<prefix>-<rand>`` for helper objects (probes, migrations, subnets…)."""
    return child(prefix, rand())


def launcher_like(vm: str) -> str:
    """A name shaped like a virt-launcher pod of ``vm`` (``virt-launcher-<vm>-<5 chars>``)."""
    return check(f"virt-launcher-{vm}-{rand(5)}")


def prefix_pairs() -> dict[str, tuple[str, str]]:
    """The requirement's name pairs that contain each other, literally: ``web``/``web-1`` and
    ``vm1``/``vm10`` (the first is a prefix of the second). Each sub-case runs in its own namespace,
    so literal names cannot collide between scenarios (IP CRs are ``<vm>.<ns>``)."""
    return {"web/web-1": ("web", "web-1"), "vm1/vm10": ("vm1", "vm10")}


def contains(a: str, b: str) -> bool:
    """Whether either name contains the other."""
    return a in b or b in a


def static_mac() -> str:
    """A fresh static MAC for ``ovn.kubernetes.io/mac_address``: unicast and locally administered
    (``02:``), ``6b`` ("k") as its second byte, four random bytes; lower case, as Kube-OVN prints MACs.
    Kube-OVN's own generated MACs start ``00:00:00`` (``util.GenerateMac``), so none collides with them."""
    return "02:6b:" + ":".join(f"{secrets.randbelow(256):02x}" for _ in range(4))
