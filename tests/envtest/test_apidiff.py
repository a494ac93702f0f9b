"""The simulated API server answers as the real kube-apiserver does (issue 11's differential check).

The hand-written cases of ``conformance/envtest/apidiff.py`` and the suite's own requests — recorded from
a ``kovc run --backend sim --profile baseline`` on the spot — go to the simulated API server and to a real
kube-apiserver + etcd (+ kube-controller-manager) with the real CRDs. Every difference must be one of
``KNOWN_DIFFERENCES``, each listed with why it is harmless in docs/sim-api-differences.md, and every known
difference must still be one (a fixed one leaves the list). Skips when the real programs are not built
(``kovc assets build``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.envtest import apidiff
from conformance.envtest import assets as a
from conformance.envtest.controlplane import Binaries

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "sim-api-differences.md"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[apidiff.Report]:
    try:
        Binaries.find(None)
    except a.AssetError as err:
        pytest.skip(f"real control plane not built: {err}")
    work = tmp_path_factory.mktemp("apidiff")
    t0 = time.monotonic()
    recording = apidiff.record_suite_async(work)  # the baseline on the sim runs while the real plane starts
    timings: dict[str, float] = {}
    with apidiff.real_server(work / "logs", timings=timings) as real, apidiff.sim_server() as sim:
        suite, skipped = apidiff.recorded_cases(apidiff.load_recording(recording()))
        timings["recorded (in parallel)"] = time.monotonic() - t0
        t = time.monotonic()
        result = apidiff.run(sim, real, [*apidiff.CASES, *suite])
        timings["requests"] = time.monotonic() - t
    timings["total"] = time.monotonic() - t0
    print(f"\n{len(suite)} of the suite's requests replayed, skipped {skipped}")
    print(result.table())
    print("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    yield result


def test_every_difference_from_kube_apiserver_is_a_known_harmless_one(report: apidiff.Report) -> None:
    new = [f"{d.case.id} ({d.case.method} {d.case.path}): " + "; ".join(d.what)
           + f" [sim said {d.sim.message[:150]!r}, real said {d.real.message[:150]!r}]"
           for d in report.unknown()]
    assert not new, "the simulated API server answers differently from kube-apiserver (fix the sim, or list the " \
                    "difference in KNOWN_DIFFERENCES and docs/sim-api-differences.md with why it is harmless):\n" \
                    + "\n".join(new)


def test_every_known_difference_still_differs_and_is_documented(report: apidiff.Report) -> None:
    differing = {d.case.id for d in report.differences}
    text = DOC.read_text()
    for key in apidiff.KNOWN_DIFFERENCES:
        assert f"`{key}`" in text, f"known difference {key} is not in {DOC.name}"
        if key in apidiff.TIMING_DEPENDENT:
            continue
        if key.endswith("*"):
            assert any(i.startswith(key[:-1]) for i in differing), \
                f"known difference {key}: no case matching it differs any more; drop it from the list and the doc"
        else:
            assert key in differing, \
                f"known difference {key}: sim and kube-apiserver now agree; drop it from the list and the doc"


def test_the_suites_own_requests_were_replayed_and_agree(report: apidiff.Report) -> None:
    agree, total = report.by_source().get("suite", (0, 0))
    assert total >= 100, f"expected the baseline's requests (hundreds) replayed, got {total}"
    assert agree == total, f"{total - agree} of the suite's own {total} requests answered differently"


def test_the_hand_written_cases_cover_what_issue_11_names(report: apidiff.Report) -> None:
    ids = {c.id for c, _a, _b in report.outcomes}
    for prefix in ("auth.bad-token", "auth.none", "pod.create.invalid-name", "pod.create.text-plain",
                   "pod.put.stale-rv", "pod.patch.json.test-fails", "apply.conflict", "pod.create.dry-run",
                   "pod.delete.precondition-uid", "pod.delete.with-finalizer", "pod.create.generate-name",
                   "unknown.resource", "namespace.missing.create-pod", "pod.post-on-name", "watch.resume.selector",
                   "pod.create.empty-spec", "pod.list.table"):
        assert any(i.startswith(prefix) for i in ids), f"no case {prefix}"
