#!/usr/bin/env python3
"""Real vs modelled verdict table (issue #11): for every Kube-OVN tag whose webhook is built, the suite's
extended profile on ``--backend envtest`` with the tag's **real** webhook and with kovc's **model** of the
release (``--sim-webhook-policy <the release's policy>``, same control plane, same controllers, same
registration), compared requirement by requirement; ``--with-sim`` adds the same model on
``--backend sim`` to separate what the home-made API server changes.

Usage:
    python tools/realtable.py [--tag v1.16.2 ...] [--assets DIR] [--with-sim] [--out DIR]
                              [--markdown FILE] [--json FILE] [-- extra kovc run options]

Writes the markdown table (stdout and ``--markdown``), the JSON document (``--json``; default both in
``--out``, default ``realtable-report/``) and keeps every run's report directory under ``--out``.
Runs are sequential; a real-webhook run waits while another envtest run holds the webhook's fixed
certificate directory. Exit 0 when real and model agree on every cell, 1 when any cell differs or a
run could not stand in its column, 2 on bad input (no built webhook, unknown tag).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conformance import versions
from conformance.envtest import assets as a
from conformance.envtest import realtable as rt


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tag", action="append", default=[], metavar="vX.Y.Z",
                        help="a Kube-OVN tag (repeatable; default: every tag whose webhook is built)")
    parser.add_argument("--assets", metavar="DIR",
                        help="asset directory (default $KOVC_ASSETS or ~/.cache/kovc/assets)")
    parser.add_argument("--with-sim", action="store_true", help="also run the model on --backend sim")
    parser.add_argument("--out", default="realtable-report", metavar="DIR", help="where the runs' reports go")
    parser.add_argument("--markdown", metavar="FILE", help="markdown output (default <out>/realtable.md)")
    parser.add_argument("--json", metavar="FILE", help="JSON output (default <out>/realtable.json)")
    args = parser.parse_args(argv)
    root = Path(args.assets).expanduser() if args.assets else a.default_dir()
    built = rt.built_tags(root)
    tags = args.tag or built
    if not tags:
        print(f"realtable: no Kube-OVN webhook built in {root}: run `kovc assets build --kube-ovn-version TAG`",
              file=sys.stderr)
        return 2
    for tag in tags:
        try:
            versions.kube_ovn_release(tag)
        except versions.VersionError as err:
            print(f"realtable: {err}", file=sys.stderr)
            return 2
        if tag not in built:
            print(f"realtable: kube-ovn-webhook {tag} is not built in {root}: run `kovc assets build "
                  f"--kube-ovn-version {tag}`", file=sys.stderr)
            return 2
    if args.assets:
        extra = ["--assets", str(root), *extra]
    out = Path(args.out)
    table = rt.build_table(tags, out, with_sim=args.with_sim, extra=extra,
                           log=lambda line: print(f"realtable: {line}", file=sys.stderr, flush=True))
    text = rt.render_markdown(table)
    md = Path(args.markdown) if args.markdown else out / "realtable.md"
    js = Path(args.json) if args.json else out / "realtable.json"
    md.parent.mkdir(parents=True, exist_ok=True)
    js.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(text, encoding="utf-8")
    js.write_text(json.dumps(table.to_json(), indent=2) + "\n", encoding="utf-8")
    print(text)
    print(f"realtable: {len(tags)} tag(s) in {table.wall_s:.0f} s; markdown {md}, json {js}", file=sys.stderr)
    return 0 if table.agrees() else 1


if __name__ == "__main__":
    raise SystemExit(main())
