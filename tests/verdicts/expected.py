"""The expected outcome of every requirement under every modelled webhook, as derived from upstream
code in ``docs/verdict-derivation.md`` (a test keeps the two identical)."""

from __future__ import annotations

#: Column name -> kovc run arguments selecting that model.
MODELS: dict[str, list[str]] = {
    "v1.12": ["--kube-ovn-version", "v1.12.35"],
    "v1.13.0": ["--kube-ovn-version", "v1.13.0"],
    "v1.13.1-14": ["--kube-ovn-version", "v1.13.14"],
    "v1.14.0-4": ["--kube-ovn-version", "v1.14.2"],
    "v1.13.15": ["--kube-ovn-version", "v1.13.15"],
    "v1.14.5+": ["--kube-ovn-version", "v1.14.5"],
    "fwd": ["--sim-webhook-policy", "forward-containment"],
    "ref": ["--sim-webhook-policy", "reference"],
}

_ROWS = """
env.webhook-live                   P P P P P P P P
env.keep-vm-ip                     P P P P P P P P
allow.restart                      F F F F P P P P
allow.stop-start                   F F F F P P P P
allow.launcher-pod-deleted         F F F F P P P P
allow.live-migration               F P P P P P P P
allow.recreate                     P P P P P P P P
allow.repeated-restarts            F F F F P P P P
allow.concurrent-restarts          F F F F P P P P
allow.ip-reuse-after-delete        P P P P P P P P
allow.same-ip-other-subnet         P P P P P P P P
allow.same-ip-namespace-bound-vpc  F F F F F F F P
allow.immediate-recreate           P P P P P P P P
allow.restart-dual-stack           F F F F P P P P
allow.static-mac-restart           F F F F P P P P
allow.attachment-restart           P P P P P P P P
deny.other-vm                      P P P P P P P P
deny.pod-takes-vm-ip               P P P P P P P P
deny.name-prefix                   P P F F P P F P
deny.stopped-vm-ip                 P P P P P P P P
deny.clone                         P P P P P P P P
deny.spoofed-launcher              P P P P P P F P
deny.cross-namespace               P P P P F F F P
deny.pod-named-like-vm             F F F F F F F P
deny.spoofed-migration             P F F F F F F P
deny.forged-owner-ref              P P P P F F P P
deny.other-vm-ipv6                 P P P P P P P P
deny.mac-collision                 P P P P P P P P
deny.attachment-other-vm           F F F F F F F P
state.ip-released-on-delete        F F F P F P P P
state.no-duplicate-ips             P P P P P P P P
state.concurrent-claims            P P P P P P P P
state.attachment-ip-released-on-delete F F F P F P P P
net.migration-downtime             F P P P P P P P
"""

#: N: not applicable (the requirement's condition does not hold on the simulated cluster; none so far: it has
#: a dual-stack subnet and serves the NetworkAttachmentDefinition API unless --sim-without says otherwise).
OUTCOME = {"P": "passed", "F": "failed", "N": "not-applicable"}


def table() -> dict[str, dict[str, str]]:
    """model column -> requirement id -> expected outcome (``passed`` / ``failed``)."""
    columns = list(MODELS)
    out: dict[str, dict[str, str]] = {c: {} for c in columns}
    for line in _ROWS.strip().splitlines():
        req, *cells = line.split()
        assert len(cells) == len(columns), line
        for col, cell in zip(columns, cells, strict=True):
            out[col][req] = OUTCOME[cell]
    return out


def exit_code(expected: dict[str, str], levels: dict[str, str], profile: str) -> int:
    """The exit code ``kovc run`` must give for these outcomes in ``profile`` (baseline: MUSTs only)."""
    chosen = [r for r in expected if (profile == "extended" or levels[r] == "MUST")
              and expected[r] != "not-applicable"]
    if any(expected[r] == "failed" for r in chosen if r.startswith("env.")):
        return 2
    return 1 if any(expected[r] == "failed" for r in chosen) else 0
