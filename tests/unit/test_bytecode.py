"""Where kovc's processes write byte code (conformance._bytecode): its own cache by default, what the user
chose otherwise, never beside the sources."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from conformance import _bytecode


@pytest.fixture
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """This process as a fresh ``kovc`` would start: no prefix, writing allowed, a private cache home."""
    monkeypatch.setattr(sys, "pycache_prefix", None)
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    monkeypatch.delenv("PYTHONPYCACHEPREFIX", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(_bytecode, "_drop_written_beside_sources", lambda: None)
    return tmp_path


def test_the_default_is_kovcs_cache_for_this_process_and_its_children(clean: Path) -> None:
    prefix = _bytecode.configure()
    assert prefix == str(clean / "xdg" / "kovc" / "pycache")
    assert Path(prefix).is_dir()
    assert sys.pycache_prefix == prefix and not sys.dont_write_bytecode
    assert os.environ["PYTHONPYCACHEPREFIX"] == prefix


def test_a_relative_xdg_cache_home_is_ignored_as_the_spec_says(clean: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")
    monkeypatch.setenv("HOME", str(clean / "home"))
    assert _bytecode.configure() == str(clean / "home" / ".cache" / "kovc" / "pycache")


def test_a_prefix_the_user_set_is_kept(clean: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mine = str(clean / "mine")
    monkeypatch.setattr(sys, "pycache_prefix", mine)
    assert _bytecode.configure() == mine
    assert os.environ["PYTHONPYCACHEPREFIX"] == mine
    assert not (clean / "xdg").exists()


@pytest.mark.parametrize("how", ["env", "-B"])
def test_no_bytecode_when_the_user_asked_for_none(clean: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    if how == "env":
        monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    else:
        monkeypatch.setattr(sys, "flags", type("F", (), {"dont_write_bytecode": 1})())
    assert _bytecode.configure() is None
    assert sys.dont_write_bytecode and os.environ["PYTHONDONTWRITEBYTECODE"] == "1"  # children too
    assert sys.pycache_prefix is None and not (clean / "xdg").exists()


def test_an_unwritable_cache_home_means_no_bytecode_not_an_error(clean: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (clean / "afile").write_text("x")
    monkeypatch.setenv("XDG_CACHE_HOME", str(clean / "afile"))  # a file: no directory can be made under it
    assert _bytecode.configure() is None
    assert sys.dont_write_bytecode


def test_only_the_byte_code_this_process_wrote_beside_the_sources_is_removed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import conformance

    cache = tmp_path / "pkg" / "__pycache__"
    cache.mkdir(parents=True)
    mine, older, foreign = cache / "cli.cpython-311.pyc", cache / "old.cpython-311.pyc", tmp_path / "x.pyc"
    for path in (mine, older, foreign):
        path.write_bytes(b"")
    past = conformance._IMPORTED_AT - 3600
    os.utime(older, (past, past))
    fake = {"conformance.cli": type(sys)("conformance.cli"), "conformance.old": type(sys)("conformance.old"),
            "other": type(sys)("other")}
    for (name, module), path in zip(fake.items(), (mine, older, foreign), strict=True):
        module.__cached__ = str(path)  # type: ignore[attr-defined]
        module.__spec__ = type("S", (), {"name": name})()  # type: ignore[assignment]
    monkeypatch.setattr(sys, "modules", fake)
    assert mine.stat().st_mtime >= time.time() - 60
    _bytecode._drop_written_beside_sources()
    assert not mine.exists(), "written by this process: removed"
    assert older.exists(), "older than this process: another's, left alone"
    assert foreign.exists(), "not the package's: left alone"
