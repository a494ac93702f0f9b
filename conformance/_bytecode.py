"""Where a run's byte code goes: never into the source tree, and not recompiled by every process.

A run starts several Python processes (the controller, each xdist worker, a simulated cluster), and each
imports pytest, the Kubernetes client and the package. Without a byte-code cache every one of them
compiles all of that from source: ~0.7 s of a one-scenario run's 2.2 s on the 2-core CI machine
(cProfile: 489 ``compile`` calls from the import system), and again in every worker.

So a run writes byte code, but into a cache directory of its own (``sys.pycache_prefix``;
``PYTHONPYCACHEPREFIX`` for the processes it starts) and never next to the sources:
``$XDG_CACHE_HOME/kovc/pycache``, else ``~/.cache/kovc/pycache``. What the user chose wins: a
``PYTHONPYCACHEPREFIX`` already set is used as it is, and ``-B`` or ``PYTHONDONTWRITEBYTECODE`` mean no
byte code is written at all (by this process or the ones it starts).

Python writes a module's byte code while importing it, before any of its code runs; so the handful of the
package's modules imported before :func:`configure` runs (the package, ``cli``, the command) had theirs
written next to the sources. :func:`configure` removes those files again when this process wrote them.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

#: Slack for "this process wrote it": the package's own byte code is written just before it runs.
_SLACK_S = 2.0


def cache_dir() -> Path:
    """The directory for byte code when the user named none."""
    base = os.environ.get("XDG_CACHE_HOME") or ""
    root = Path(base) if base and Path(base).is_absolute() else Path("~/.cache").expanduser()
    return root / "kovc" / "pycache"


def configure() -> str | None:
    """Set this process and its children up as described above; returns the prefix used, or None when
    no byte code is written."""
    if sys.flags.dont_write_bytecode or os.environ.get("PYTHONDONTWRITEBYTECODE"):
        _no_bytecode()
        return None
    prefix = sys.pycache_prefix
    if not prefix:
        path = cache_dir()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError:  # an unwritable home: compile in memory, as Python does, but write nothing
            _no_bytecode()
            return None
        prefix = str(path)
        _drop_written_beside_sources()
    sys.pycache_prefix = prefix
    sys.dont_write_bytecode = False
    os.environ["PYTHONPYCACHEPREFIX"] = prefix
    return prefix


def _no_bytecode() -> None:
    sys.dont_write_bytecode = True
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"


def _drop_written_beside_sources() -> None:
    """Remove the byte code this process wrote next to the package's sources before the cache was chosen
    (files older than the process are another's: left alone), and the ``__pycache__`` it created."""
    from . import _IMPORTED_AT

    since = _IMPORTED_AT - _SLACK_S
    for module in list(sys.modules.values()):
        spec = getattr(module, "__spec__", None)  # ``python -m conformance``: __main__ is conformance.__main__
        name = str(getattr(spec, "name", "") or "")
        if name != "conformance" and not name.startswith("conformance."):
            continue
        cached = getattr(module, "__cached__", None)
        if not cached:
            continue
        path = Path(cached)
        with contextlib.suppress(OSError):
            if path.parent.name == "__pycache__" and path.stat().st_mtime >= since:
                path.unlink()
                with contextlib.suppress(OSError):
                    path.parent.rmdir()  # only when empty
