from __future__ import annotations

import pytest

from conformance import names


def test_holder_and_challenger_never_contain_each_other() -> None:
    for _ in range(300):
        h, c = names.holder(), names.challenger()
        assert h.startswith("h-") and c.startswith("c-")
        assert not names.contains(h, c)
        assert len(h) <= names.MAX_LEN and len(c) <= names.MAX_LEN


def test_prefix_pairs_are_the_requirement_names() -> None:
    pairs = names.prefix_pairs()
    assert pairs == {"web/web-1": ("web", "web-1"), "vm1/vm10": ("vm1", "vm10")}
    for short, long in pairs.values():
        assert long.startswith(short) and short != long


def test_child_truncates_to_forty_characters() -> None:
    base = "h-" + "x" * 60
    child = names.child(base, "mig-abcd")
    assert len(child) <= 40 and child.endswith("-mig-abcd")


def test_launcher_like_shape() -> None:
    name = names.launcher_like("h-abc")
    assert name.startswith("virt-launcher-h-abc-") and len(name) == len("virt-launcher-h-abc-") + 5


@pytest.mark.parametrize("bad", ["UPPER", "a_b", "-lead", "trail-", "x" * 41, ""])
def test_check_rejects_bad_names(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid object name"):
        names.check(bad)
