"""Real vs modelled verdicts, cell by cell: the extended profile on the real control plane with Kube-OVN's
**real** webhook of a tag, and with kovc's **model** of that release registered the same way
(``conformance.envtest.realtable``; ``tools/realtable.py`` builds the whole table). A cell where they
differ fails here with both runs' evidence: fix the model (``conformance/sim/policies.py``), never the
expectation.

Which tags: ``KOVC_REALTABLE_TAGS`` — unset: v1.16.2 (owner-equality) and v1.13.13 (reverse-containment),
what ``tox -e envtest`` builds (with test_envtest_real.py 447 s on the shared 2-core machine);
``all``: every tag whose webhook is built; or a comma-separated list. A tag whose webhook is not built
skips with the command that builds it.
The comparison itself is unit-tested offline with a deliberately wrong model (tests/unit/test_realtable.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conformance.envtest import assets as a
from conformance.envtest import realtable as rt

#: Kube-OVN's webhook reads its serving certificate from one fixed directory (held under a lock): the
#: real-webhook runs go to one xdist worker, with test_envtest_real.py's.
pytestmark = pytest.mark.xdist_group("kube-ovn-webhook-cert-dir")

CI_TAGS = ("v1.16.2", "v1.13.13")


def _tags() -> list[str]:
    chosen = os.environ.get("KOVC_REALTABLE_TAGS", "").strip()
    if chosen == "all":
        return rt.built_tags(a.default_dir()) or list(CI_TAGS)
    return [t.strip() for t in chosen.split(",") if t.strip()] if chosen else list(CI_TAGS)


@pytest.mark.parametrize("tag", _tags())
def test_real_webhook_and_model_agree_cell_by_cell(tag: str, tmp_path: Path) -> None:
    root = a.default_dir()
    if not (root / "k8s").is_dir():
        pytest.skip(f"real control plane not built in {root}: kovc assets build")
    if tag not in rt.built_tags(root):
        pytest.skip(f"kube-ovn-webhook {tag} not built (kovc assets build --kube-ovn-version {tag})")
    runs = {kind: rt.run_kovc(kind, tag, tmp_path / kind) for kind in ("real", "model")}
    row = rt.tag_row(tag, runs)
    table = rt.Table([row], sum(r.wall_s for r in runs.values()), "")
    print(rt.render_markdown(table))
    assert not row.problems, "\n".join(row.problems)
    assert len(row.cells) >= 20, f"{tag}: only {len(row.cells)} requirements compared"
    differ = row.differing()
    assert not differ, (
        f"{tag}: the real webhook and the model {row.policy} differ on "
        + "; ".join(f"{c.requirement}: real {c.outcomes['real']} ({c.evidence.get('real')}), model "
                    f"{c.outcomes['model']} ({c.evidence.get('model')})" for c in differ))
