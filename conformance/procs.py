"""Child processes kovc starts itself (the simulated cluster's server, the envtest supervisor, the real
control plane's programs): their log tails for one-line errors, and the detached start of a kovc command."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def log_tail(path: Path, lines: int = 3) -> str:
    """The last non-empty ``lines`` of a log file, joined with `` | `` ("" when it cannot be read)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    rows = [r.strip() for r in text.strip().splitlines() if r.strip()]
    return " | ".join(rows[-lines:])


def spawn_kovc(argv: list[str], workdir: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``argv`` (a ``python -m conformance …`` command) in its own session, in ``workdir``, with this
    package importable and its output appended to ``log_path``. ``OSError`` when it cannot start."""
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    with open(log_path, "ab") as log:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env, cwd=str(workdir))
