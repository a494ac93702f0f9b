"""Issue 13, "what it must show" on the simulated cluster: upgrade runs (``kovc run --upgrade-from X``)
get the verdicts the modelled releases imply, with the evidence the report must carry."""

from __future__ import annotations

from collections.abc import Callable

from conformance import catalog

from .conftest import Run

UPGRADE_MUSTS = [i for i in catalog.run_musts(upgrade=True) if i.startswith("upgrade.")]


def _upgrade_block(run: Run, source: str, target: str) -> None:
    up = run.report.get("upgrade")
    assert up and up["from"] == source and up["to"] == target and up["method"], run.explain()
    # An upgrade run is its own kind of run: nothing of the normal catalog is selected or counted.
    assert set(run.report["selected"]) <= set(catalog.upgrade_ids()), run.report["selected"]
    assert "## Upgrade evidence" in (run.report_dir / "report.md").read_text()


def test_v1_14_2_to_default_passes_every_upgrade_must(kovc: Callable[..., Run]) -> None:
    run = kovc("--upgrade-from", "v1.14.2")
    assert run.exit_code == 0, run.explain()
    seen = run.outcomes()
    assert all(seen[i] == "passed" for i in UPGRADE_MUSTS), {i: seen[i] for i in UPGRADE_MUSTS}
    assert run.report["verdict"] == "conformant"
    _upgrade_block(run, "v1.14.2", "v1.16.2")
    kept = run.requirement("upgrade.ips-kept")
    roles = " ".join(c["name"] for c in kept["cases"])
    for role in ("run-a", "stopped", "midrst"):
        assert role in roles, roles
    # v1.14.2 releases a stopped VM's IP on delete: nothing is left behind.
    assert not run.report["leaked_ips"], run.report["leaked_ips"]


def test_into_a_release_that_denies_restarts_fails_with_the_webhooks_words(kovc: Callable[..., Run]) -> None:
    run = kovc("--upgrade-from", "v1.13.15", "--kube-ovn-version", "v1.14.2")
    assert run.exit_code == 1, run.explain()
    seen = run.outcomes()
    assert seen["upgrade.restart-after"] == "failed", run.explain()
    assert seen["upgrade.ips-kept"] == "passed" and seen["upgrade.collisions-denied-after"] == "passed", seen
    reason = run.requirement("upgrade.restart-after")["reason"]
    assert 'admission webhook "pod-ip-validating.kube-ovn.io" denied the request' in reason, reason
    _upgrade_block(run, "v1.13.15", "v1.14.2")


def test_from_v1_13_0_reports_the_ip_cr_left_behind(kovc: Callable[..., Run]) -> None:
    run = kovc("--upgrade-from", "v1.13.0", "--kube-ovn-version", "v1.16.2")
    assert run.exit_code == 0, run.explain()
    seen = run.outcomes()
    assert all(seen[i] == "passed" for i in UPGRADE_MUSTS), {i: seen[i] for i in UPGRADE_MUSTS}
    kept = run.requirement("upgrade.ips-kept")
    left = [c for c in kept["cases"] if "leftover IP CR" in c["name"]]
    assert left and "left behind by v1.13.0" in left[0]["message"], kept["cases"]
    assert any("left behind by v1.13.0" in w for w in kept["warnings"]), kept["warnings"]
    gone = left[0]["name"].split("VM ", 1)[1].split(":", 1)[0]
    assert any(ip["podName"] == gone for ip in run.report["leaked_ips"]), run.report["leaked_ips"]
    assert run.report["upgrade"]["skipped_minors"] == ["v1.14", "v1.15"]


def test_window_admissions_are_reported_with_timestamps(kovc: Callable[..., Run]) -> None:
    """extended selects the SHOULD: with failurePolicy Ignore the sim's window admits the collisions."""
    run = kovc("--upgrade-from", "v1.14.5", "--profile", "extended")
    window = run.requirement("upgrade.window-admissions")
    assert window["outcome"] == "failed", run.explain()
    assert run.exit_code == 1, run.explain()
    admitted = [c for c in window["cases"] if c["name"].startswith("pod kovc-win-")]
    assert admitted and all(" at " in c["name"] and c["name"].endswith("Z") for c in admitted), window["cases"]
    assert "window at least" in window["reason"] and "at most" in window["reason"], window["reason"]
    assert all(run.outcomes()[i] == "passed" for i in UPGRADE_MUSTS), run.outcomes()


def test_unsupported_pairs_are_refused(kovc: Callable[..., Run]) -> None:
    run = kovc("--upgrade-from", "v1.16.2", "--kube-ovn-version", "v1.14.2")
    assert run.exit_code == 2 and not run.report, run.explain()
    lines = [line for line in run.output.splitlines() if line.strip()]
    assert lines == ["kovc: upgrade v1.16.2 -> v1.14.2 is a downgrade, which Kube-OVN does not support "
                     "(use --force to run it anyway)"], lines
    run = kovc("--upgrade-from", "v1.99.0")
    assert run.exit_code == 2 and "unknown Kube-OVN version v1.99.0" in run.output, run.explain()
