"""Differential check of the simulated API server against the real kube-apiserver (issue 11).

    python tools/apidiff.py [--recording FILE | --profile P | --no-suite] [--json OUT] [--log-dir DIR]

Starts the simulated API server and the real control plane (``kovc assets build`` must have built it),
sends the hand-written cases of ``conformance/envtest/apidiff.py`` and the suite's own requests (recorded
from a ``kovc run --backend sim --profile <P>`` (default baseline) unless ``--recording`` names a recording) to both,
and prints how many answers agree and every difference (``[known]``: listed with why it is harmless in
``docs/sim-api-differences.md``; ``[NEW]``: not). Exit 0 when every difference is a known one, 1 otherwise,
2 when the real control plane is not built.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from conformance.envtest import apidiff
from conformance.envtest.assets import AssetError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/apidiff.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--recording", type=Path, help="a kovc sim serve --record-requests file to replay")
    parser.add_argument("--no-suite", action="store_true", help="only the hand-written cases")
    parser.add_argument("--profile", default="baseline", help="the profile whose requests are recorded (default "
                        "baseline)")
    parser.add_argument("--json", type=Path, help="write every compared answer here")
    parser.add_argument("--log-dir", type=Path, help="the real programs' logs (default: a temp dir)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="kovc-apidiff-"))
    cases = list(apidiff.CASES)
    recording = None if args.no_suite else (lambda: args.recording) if args.recording \
        else apidiff.record_suite_async(work, args.profile)
    timings: dict[str, float] = {}
    try:
        with apidiff.real_server(args.log_dir or work / "logs", timings=timings) as real, apidiff.sim_server() as sim:
            if recording is not None:
                suite, skipped = apidiff.recorded_cases(apidiff.load_recording(recording()))
                print(f"suite requests: {len(suite)} replayed, skipped {skipped}")
                cases += suite
            t = time.monotonic()
            report = apidiff.run(sim, real, cases)
            timings["requests"] = time.monotonic() - t
    except AssetError as err:
        print(f"kovc: {err}", file=sys.stderr)
        return 2
    print(report.table())
    print("timings: " + json.dumps({k: round(v, 2) for k, v in timings.items()}))
    if args.json:
        args.json.write_text(json.dumps([{"id": c.id, "method": c.method, "path": c.path, "sim": a.summary(),
                                          "real": b.summary(), "sim_fields": a.fields, "real_fields": b.fields,
                                          "sim_message": a.message, "real_message": b.message}
                                         for c, a, b in report.outcomes], indent=1, default=str))
    return 1 if report.unknown() else 0


if __name__ == "__main__":
    raise SystemExit(main())
