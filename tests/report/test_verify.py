"""``kovc report verify`` and ``kovc report show``, in-process through ``conformance.cli.main`` and
as a subprocess (``python -m conformance``)."""

from __future__ import annotations

import dataclasses
import importlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conformance import cli
from conformance.report import allure_env, bundle

MakeBundle = Callable[..., Path]
Kovc = Callable[..., tuple[int, str, str]]
REPO = Path(__file__).resolve().parents[2]


def _cli_complete() -> str | None:
    """None when every command module of the dispatcher imports, else the missing one."""
    for _words, module, _help in cli.COMMANDS:
        try:
            importlib.import_module(module)
        except ImportError as err:
            return f"{module} ({err})"
    return None


@pytest.fixture
def kovc(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Kovc]:
    """``kovc ARGS`` through ``conformance.cli.main``: (exit code, stdout, stderr). While other
    sub-commands are still being written, the dispatcher is limited to the importable ones."""
    if _cli_complete() is not None:
        usable = []
        for entry in cli.COMMANDS:
            try:
                importlib.import_module(entry[1])
            except ImportError:
                continue
            usable.append(entry)
        monkeypatch.setattr(cli, "COMMANDS", tuple(usable))

    def run(*argv: str | Path) -> tuple[int, str, str]:
        capsys.readouterr()
        code = cli.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    yield run


def _reasons(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("not certifiable: ")]


def test_failing_sim_bundle_names_the_failing_ids(make_bundle: MakeBundle, kovc: Kovc) -> None:
    out = make_bundle("failing-sim")
    code, stdout, stderr = kovc("report", "verify", "--allow-simulated", out)
    assert code == 1, stdout + stderr
    reasons = _reasons(stdout)
    verdict = [r for r in reasons if "verdict non-conformant" in r]
    assert len(verdict) == 1, reasons
    for rid in ("allow.restart", "deny.other-vm", "deny.name-prefix"):
        assert rid in verdict[0]
    assert "MUST skipped: deny.clone" in verdict[0]
    assert not any("simulated cluster" in r for r in reasons)
    assert len(reasons) == len(set(reasons))


def test_passing_sim_bundle_needs_allow_simulated(make_bundle: MakeBundle, kovc: Kovc) -> None:
    out = make_bundle("passing-sim")
    code, stdout, _ = kovc("report", "verify", "--allow-simulated", out)
    assert code == 0, stdout
    assert "certifiable:" in stdout
    assert "warning: SIMULATED CLUSTER — not a certification (accepted with --allow-simulated)" in stdout
    code, stdout, _ = kovc("report", "verify", out)
    assert code == 1
    assert _reasons(stdout) == ["not certifiable: simulated cluster: not a certification"]


def test_real_passing_bundle_is_certifiable(make_bundle: MakeBundle, kovc: Kovc) -> None:
    out = make_bundle("real-passing")
    code, stdout, stderr = kovc("report", "verify", out)
    assert (code, stderr) == (0, ""), stdout
    assert _reasons(stdout) == []
    assert stdout.splitlines()[-1].startswith(f"certifiable: {out} (verdict conformant; Kube-OVN v1.16.2")
    # the vendor fills PRODUCT.yaml in afterwards: still certifiable
    product = out / "PRODUCT.yaml"
    product.write_text(product.read_text().replace('vendor: ""', 'vendor: "Example Corp"'))
    assert kovc("report", "verify", out)[0] == 0


def test_invalid_run_names_the_precondition(make_bundle: MakeBundle, kovc: Kovc) -> None:
    code, stdout, _ = kovc("report", "verify", "--allow-simulated", make_bundle("invalid"))
    assert code == 1
    (verdict,) = [r for r in _reasons(stdout) if "verdict invalid" in r]
    assert "precondition not met: env.webhook-live" in verdict


def _files(out: Path) -> list[str]:
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                  if p.is_file() and p.name not in ("MANIFEST.sha256", "PRODUCT.yaml"))


def test_editing_any_file_is_rejected(make_bundle: MakeBundle) -> None:
    from conformance.report.verify import verify_bundle

    template = make_bundle("real-passing")
    names = _files(template)
    assert len(names) >= 7
    for name in names:
        out = make_bundle("real-passing")
        path = out / name
        path.write_bytes(path.read_bytes().replace(b"v1.16.2", b"v1.16.3", 1) + b"\n")
        result = verify_bundle(out)
        assert not result.certifiable, name
        assert any("modified bundle: changed since the run (hash mismatch): " + name in r
                   for r in result.reasons), (name, result.reasons)


@pytest.mark.parametrize("name", ["report.md", "junit.xml", "report.json",
                                  "allure-results/environment.properties", "MANIFEST.sha256",
                                  "allure-results/0f1e2d3c-result.json"])
def test_deleting_a_file_is_rejected(name: str, make_bundle: MakeBundle, kovc: Kovc) -> None:
    out = make_bundle("real-passing")
    (out / name).unlink()
    code, stdout, stderr = kovc("report", "verify", out)
    assert code == 1, stdout + stderr
    reasons = _reasons(stdout)
    assert any(name in r for r in reasons), reasons
    if name in bundle.REQUIRED:
        assert f"not certifiable: incomplete bundle: missing {name}" in reasons


def test_an_added_file_is_rejected(make_bundle: MakeBundle, kovc: Kovc) -> None:
    out = make_bundle("real-passing")
    (out / "allure-results" / "forged-result.json").write_text('{"status": "passed"}')
    code, stdout, _ = kovc("report", "verify", out)
    assert code == 1
    assert _reasons(stdout) == ["not certifiable: modified bundle: not listed in MANIFEST.sha256: "
                                "allure-results/forged-result.json"]


def test_version_inconsistency_is_rejected(make_bundle: MakeBundle, kovc: Kovc) -> None:
    out = make_bundle("real-passing")
    env_path = out / "allure-results" / "environment.properties"
    env = allure_env.read_environment(env_path)
    env["kubevirt"] = "v1.7.0"
    env_path.write_text(allure_env.format_properties(env), encoding="latin-1")
    bundle.write_manifest(out)  # re-sealed: only the versions rule is broken
    code, stdout, _ = kovc("report", "verify", out)
    assert code == 1
    assert _reasons(stdout) == ["not certifiable: inconsistent versions: kubevirt: report.json v1.8.1, "
                                "junit.xml v1.8.1, environment.properties v1.7.0"]


def test_run_fact_inconsistency_is_rejected(make_bundle: MakeBundle, kovc: Kovc) -> None:
    out = make_bundle("failing-sim")
    junit_path = out / "junit.xml"
    junit_path.write_text(junit_path.read_text().replace('<property name="verdict" value="non-conformant" />',
                                                         '<property name="verdict" value="conformant" />'))
    bundle.write_manifest(out)
    code, stdout, _ = kovc("report", "verify", "--allow-simulated", out)
    assert code == 1
    assert ("not certifiable: inconsistent run facts: verdict: report.json non-conformant, "
            "junit.xml conformant, environment.properties non-conformant") in _reasons(stdout)


def test_controller_webhook_skew_is_only_a_warning(make_bundle: MakeBundle, kovc: Kovc,
                                                   runs: dict[str, Callable[..., object]]) -> None:
    run = runs["real-passing"]()
    run.versions["kube_ovn_webhook"] = "v1.16.1"  # type: ignore[attr-defined]
    out = make_bundle("real-passing", run)
    code, stdout, _ = kovc("report", "verify", out)
    assert code == 0, stdout
    assert "warning: version skew: kube-ovn-controller v1.16.2, kube-ovn-webhook v1.16.1" in stdout


def test_unrecorded_versions_are_rejected(make_bundle: MakeBundle, kovc: Kovc,
                                          runs: dict[str, Callable[..., object]]) -> None:
    run = runs["real-passing"]()
    run.versions["kubevirt"] = None  # type: ignore[attr-defined]
    code, stdout, _ = kovc("report", "verify", make_bundle("real-passing", run))
    assert code == 1
    assert "not certifiable: versions not recorded: kubevirt" in _reasons(stdout)


def test_missing_must_requirements_are_rejected(make_bundle: MakeBundle, kovc: Kovc,
                                                runs: dict[str, Callable[..., object]]) -> None:
    run = runs["real-passing"]()
    run.requirements = [r for r in run.requirements if r.id != "deny.clone"]  # type: ignore[attr-defined]
    code, stdout, _ = kovc("report", "verify", make_bundle("real-passing", run))
    assert code == 1
    assert _reasons(stdout) == ["not certifiable: MUST requirements of the catalog not covered: "
                                "absent from the report: deny.clone"]


def test_tampered_verdict_is_rejected_even_when_resealed(make_bundle: MakeBundle, kovc: Kovc) -> None:
    out = make_bundle("failing-sim")
    report = out / "report.json"
    report.write_text(report.read_text().replace('"verdict": "non-conformant"', '"verdict": "conformant"'))
    bundle.write_manifest(out)
    code, stdout, _ = kovc("report", "verify", "--allow-simulated", out)
    assert code == 1
    assert any("report.json states verdict 'conformant' but its requirements give 'non-conformant'" in r
               for r in _reasons(stdout))


@pytest.mark.parametrize("case", ["missing-dir", "not-a-dir", "bad-json", "not-a-report"])
def test_bad_input_is_one_line_and_exit_2(case: str, tmp_path: Path, make_bundle: MakeBundle,
                                          kovc: Kovc) -> None:
    target = tmp_path / "absent"
    if case == "not-a-dir":
        target = tmp_path / "file"
        target.write_text("x")
    elif case == "bad-json":
        target = make_bundle("real-passing")
        (target / "report.json").write_text("{truncated")
    elif case == "not-a-report":
        target = make_bundle("real-passing")
        (target / "report.json").write_text('{"schema": "kovc.report/v1", "verdict": "conformant"}')
    code, stdout, stderr = kovc("report", "verify", target)
    assert code == 2
    assert stdout == ""
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert "Traceback" not in stderr
    code, stdout, stderr = kovc("report", "show", target)
    assert code == 2 and len(stderr.strip().splitlines()) == 1, stderr


def test_show_rerenders_the_markdown(make_bundle: MakeBundle, kovc: Kovc) -> None:
    out = make_bundle("failing-sim")
    code, stdout, _ = kovc("report", "show", out)
    assert code == 0
    assert stdout == (out / "report.md").read_text()
    code, stdout, _ = kovc("report", "show", "--short", out / "report.json")
    assert code == 0 and stdout.startswith("kovc Verdict: NON-CONFORMANT (exit 1)")


def test_subprocess_python_m_conformance(make_bundle: MakeBundle) -> None:
    missing = _cli_complete()
    if missing is not None:
        pytest.skip(f"the kovc dispatcher cannot start yet: command module {missing} is not written")
    failing, passing = make_bundle("failing-sim"), make_bundle("passing-sim")

    def kovc(*argv: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "conformance", *map(str, argv)], cwd=REPO,
                              capture_output=True, text=True, timeout=60, check=False)

    proc = kovc("report", "verify", "--allow-simulated", failing)
    assert proc.returncode == 1, proc.stderr
    assert "allow.restart" in proc.stdout and "deny.other-vm" in proc.stdout
    proc = kovc("report", "verify", passing)
    assert proc.returncode == 1
    assert "not certifiable: simulated cluster: not a certification" in proc.stdout
    assert kovc("report", "verify", "--allow-simulated", passing).returncode == 0
    proc = kovc("report", "verify", failing / "nope")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1



def test_catalog_musts_match_the_contract(runs: dict[str, Callable[..., object]]) -> None:
    from conformance.report import verify

    catalog = pytest.importorskip("conformance.catalog", reason="conformance.catalog is not written yet")
    assert verify.CATALOG_MUSTS == verify._CONTRACT_MUSTS
    assert tuple(catalog.run_musts(upgrade=False)) == verify._CONTRACT_MUSTS
    run = runs["real-passing"]()
    assert [(r.id, r.level) for r in run.requirements] == [  # type: ignore[attr-defined]
        (r.id, r.level) for r in catalog.all_requirements() if not catalog.is_upgrade(r.id)]


def test_upgrade_run_certifies_on_its_own_musts(runs: dict[str, Callable[..., object]]) -> None:
    """Issue 13: an upgrade run is its own kind of run. Its bundle needs the preconditions and every
    upgrade.* MUST passed - not the normal catalog's MUSTs - and a normal run never needs upgrade.*."""
    from conformance import catalog
    from conformance.report import verify
    from conformance.results import RequirementResult

    run = runs["real-passing"]()
    normal = verify.Verification(Path("."), run=run)  # type: ignore[arg-type]
    verify._check_verdict(run, normal)  # type: ignore[arg-type]
    assert normal.reasons == []
    reqs = [RequirementResult(id=r.id, level=r.level, title=r.title,
                              outcome="passed" if catalog.is_upgrade(r.id) or r.precondition else "not-run")
            for r in catalog.all_requirements()]
    up = dataclasses.replace(run, requirements=reqs, upgrade={"from": "v1.14.2", "to": "v1.16.2"})  # type: ignore[type-var]
    out = verify.Verification(Path("."), run=up)
    verify._check_verdict(up, out)
    assert out.reasons == []
    assert up.verdict == "conformant"
    reqs[-2].outcome = "not-run"  # upgrade.no-duplicate-ips
    out = verify.Verification(Path("."), run=up)
    verify._check_verdict(up, out)
    assert any("upgrade.no-duplicate-ips" in r for r in out.reasons), out.reasons
