"""The run's ``--report-dir``: made ready before anything starts, never a mix of two runs.

* missing → created (with its parents);
* empty → used;
* holding a previous kovc bundle (its ``.kovc-run`` marker, or a ``report.json`` of schema
  ``kovc.report/v1``) → that bundle is **moved aside whole** to ``<dir>.previous`` (an older
  ``<dir>.previous`` that is itself a kovc bundle is deleted first: one generation is kept), and the
  run starts in an empty directory;
* holding anything else, not a directory, or not writable → :class:`ReportDirError` (one line; the
  caller exits 2), and nothing is created.

A marker ``.kovc-run`` (the run id and start time, JSON) is written at once: it proves the directory
is writable and tells the next run that what is there is kovc's. It stays in the bundle (sealed by
MANIFEST.sha256 like every other file). ``kovc run`` prepares the directory before pytest starts;
the plugin prepares an explicit ``--report-dir`` of a plain ``pytest`` run the same way (a directory
already holding this run's marker is left as it is).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

MARKER = ".kovc-run"
PREVIOUS_SUFFIX = ".previous"
SCHEMA = "kovc.report/v1"


class ReportDirError(Exception):
    """The report directory cannot be used; the message is the one line shown (exit 2)."""


def _marker_run_id(path: Path) -> str | None:
    try:
        data = json.loads((path / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return str(data.get("run_id")) if isinstance(data, dict) and data.get("run_id") else None


def is_kovc_bundle(path: Path) -> bool:
    """Whether ``path`` is a directory a kovc run wrote (complete or interrupted)."""
    if not path.is_dir() or path.is_symlink():
        return False
    if (path / MARKER).is_file():
        return True
    try:
        data = json.loads((path / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("schema") == SCHEMA


def _strerror(err: OSError) -> str:
    return err.strerror or type(err).__name__


def _first_entries(path: Path, n: int = 3) -> str:
    try:
        names = sorted(p.name for p in path.iterdir())
    except OSError:
        return ""
    shown = ", ".join(names[:n])
    return shown + (f" and {len(names) - n} more" if len(names) > n else "")


def _move_aside(report_dir: Path) -> Path:
    previous = report_dir.with_name(report_dir.name + PREVIOUS_SUFFIX)
    if previous.exists() or previous.is_symlink():
        if not is_kovc_bundle(previous):
            raise ReportDirError(f"--report-dir {report_dir} holds a previous kovc bundle, but {previous} "
                                 "(where it would be moved) exists and is not one: move or delete it")
        try:
            shutil.rmtree(previous)
        except OSError as err:
            raise ReportDirError(f"--report-dir {report_dir}: cannot delete the older bundle {previous}: "
                                 f"{_strerror(err)}") from None
    try:
        os.rename(report_dir, previous)
    except OSError as err:
        raise ReportDirError(f"--report-dir {report_dir}: cannot move the previous bundle to {previous}: "
                             f"{_strerror(err)}") from None
    return previous


def prepare(report_dir: Path, run_id: str, *, create: bool = True) -> str | None:
    """Make ``report_dir`` an empty, writable directory for run ``run_id`` holding only its marker;
    returns a note for the console (``None`` when there is nothing to say). Raises
    :class:`ReportDirError`.

    ``create=False`` (a plain ``pytest`` run, which may still end without a conformance session):
    the same checks and the same move of a previous bundle, but what the writability probe created
    is removed again — the bundle's writer creates the directory when there is something to write."""
    report_dir = Path(report_dir).absolute()
    note: str | None = None
    if report_dir.is_symlink() and not report_dir.exists():
        raise ReportDirError(f"--report-dir {report_dir} is a dangling symbolic link")
    if report_dir.exists():
        if not report_dir.is_dir():
            raise ReportDirError(f"--report-dir {report_dir} exists and is not a directory")
        if _marker_run_id(report_dir) == run_id:
            return None  # prepared already (``kovc run`` before pytest)
        try:
            empty = not any(report_dir.iterdir())
        except OSError as err:
            raise ReportDirError(f"--report-dir {report_dir} cannot be read: {_strerror(err)}") from None
        if not empty:
            if not is_kovc_bundle(report_dir):
                raise ReportDirError(
                    f"--report-dir {report_dir} is not empty and holds no kovc bundle ({_first_entries(report_dir)}):"
                    " give an empty or new directory")
            previous = _move_aside(report_dir)
            note = f"the previous bundle in {report_dir} was moved to {previous}"
    created: Path | None = None
    if not report_dir.exists():
        created = report_dir
        while not created.parent.exists() and created.parent != created:
            created = created.parent
        try:
            report_dir.mkdir(parents=True)
        except OSError as err:
            raise ReportDirError(f"--report-dir {report_dir} cannot be created: {_strerror(err)}") from None
    try:
        marker = {"run_id": run_id, "started": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        (report_dir / MARKER).write_text(json.dumps(marker) + "\n", encoding="utf-8")
    except OSError as err:
        if created is not None:
            with contextlib.suppress(OSError):
                shutil.rmtree(created)
        raise ReportDirError(f"--report-dir {report_dir} is not writable: {_strerror(err)}") from None
    if not create:
        with contextlib.suppress(OSError):
            if created is not None:
                shutil.rmtree(created)
            else:
                (report_dir / MARKER).unlink()
    return note
