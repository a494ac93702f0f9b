"""Where the project's data folders (``manifests/``, ``clusters/``) are found.

They live at the repository root (data, not code). In a checkout or an editable install that is the
parent of this package; a wheel installs them under ``<prefix>/share/kovc/``.
"""

from __future__ import annotations

import sys
from pathlib import Path


def data_dir(name: str) -> Path:
    """The folder ``name`` (``manifests`` or ``clusters``); FileNotFoundError when absent."""
    candidates = [
        Path(__file__).resolve().parent.parent / name,
        Path(sys.prefix) / "share" / "kovc" / name,
    ]
    for path in candidates:
        if path.is_dir():
            return path
    raise FileNotFoundError(f"kovc data folder {name!r} not found (looked in "
                            f"{', '.join(str(p) for p in candidates)})")


def scenarios_dir() -> Path:
    """The conformance scenarios (``tests/scenarios``) that ``kovc run`` hands to pytest."""
    candidates = [
        Path(__file__).resolve().parent.parent / "tests" / "scenarios",
        Path(sys.prefix) / "share" / "kovc" / "scenarios",
        Path.cwd() / "tests" / "scenarios",
    ]
    for path in candidates:
        if (path / "conftest.py").exists() or path.is_dir():
            return path
    raise FileNotFoundError("kovc scenarios folder not found (run from a kovc checkout)")
