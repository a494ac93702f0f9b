"""What a scenario records besides pass/fail: sub-cases, warnings and the addresses it used.

One :class:`Recorder` per test (fixture ``record``). Everything recorded goes immediately into the
test item's ``user_properties`` (JSON-able values only), which is how it travels to the xdist
controller; the plugin aggregates it per requirement ID. A passed test whose recorder holds a failed
case is turned into a failed test by the plugin (``pytest_runtest_makereport``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

import pytest

#: user_properties keys (name, value) the plugin reads back.
PROP_REQUIREMENTS = "kovc.requirements"
PROP_CASE = "kovc.case"
PROP_WARNING = "kovc.warning"
PROP_ADDRESSES = "kovc.addresses"
PROP_DIAGNOSTICS = "kovc.diagnostics"
PROP_KEPT_NAMESPACE = "kovc.kept-namespace"
PROP_FAILED_BY_CASES = "kovc.failed-by-cases"
#: Set on a test whose call ended in an infrastructure error (value: the error in one line).
PROP_INFRA_ERROR = "kovc.infrastructure-error"

CASE_OUTCOMES = ("passed", "failed", "skipped", "error")
#: How much of a failure message one case keeps (the report shows it; diagnostics hold the rest).
MAX_MESSAGE = 4000


def _step(name: str) -> Any:
    try:
        import allure
    except ImportError:  # pragma: no cover - allure-pytest is a dependency
        return nullcontext()
    return allure.step(name)


class Recorder:
    """Sub-cases, warnings and addresses of one scenario.

    ``requirements`` are the IDs of the scenario's ``conformance`` marker; a case without an explicit
    ``requirement`` belongs to all of them. ``sink`` is the item's ``user_properties``.
    """

    def __init__(self, requirements: Sequence[str] = (),
                 sink: list[tuple[str, object]] | None = None) -> None:
        self.requirements = list(requirements)
        self.cases: list[dict[str, Any]] = []
        self.warnings: list[str] = []
        self.used_addresses: list[str] = []
        self.exempt: set[str] = set()
        self._sink: list[tuple[str, object]] = sink if sink is not None else []

    # ---- recording -------------------------------------------------------------------------------

    def case(self, name: str, outcome: str, *, message: str | None = None, admitted_then: str | None = None,
             duration_s: float | None = None, requirement: str | None = None) -> None:
        """Record one sub-case. ``requirement`` (one of the scenario's IDs, or another catalog ID such
        as ``state.no-duplicate-ips``) narrows it; by default it belongs to all the scenario's IDs."""
        if outcome not in CASE_OUTCOMES:
            raise ValueError(f"case {name!r}: outcome {outcome!r} is not one of {', '.join(CASE_OUTCOMES)}")
        if message is not None and len(message) > MAX_MESSAGE:
            message = message[:MAX_MESSAGE] + " …"
        entry: dict[str, Any] = {
            "requirement": requirement, "name": name, "outcome": outcome,
            "duration_s": round(float(duration_s or 0.0), 3), "message": message,
            "admitted_then": admitted_then,
        }
        self.cases.append(entry)
        self._sink.append((PROP_CASE, dict(entry)))

    @contextmanager
    def subcase(self, name: str, *, requirement: str | None = None) -> Iterator[None]:
        """Times the block; an AssertionError (or ``pytest.fail``) inside is recorded as a failed case
        and swallowed, so the next sub-case runs; a skip is recorded as skipped and propagates; any
        other exception is recorded as an error and propagates. A clean exit records 'passed'."""
        start = time.monotonic()

        def took() -> float:
            return time.monotonic() - start

        try:
            with _step(name):
                yield
        except (AssertionError, pytest.fail.Exception) as err:
            text = str(err) or type(err).__name__
            self.case(name, "failed", message=text, duration_s=took(), requirement=requirement)
        except pytest.skip.Exception as err:
            self.case(name, "skipped", message=str(err.msg), duration_s=took(), requirement=requirement)
            raise
        except BaseException as err:
            self.case(name, "error", message=f"{type(err).__name__}: {err}", duration_s=took(),
                      requirement=requirement)
            raise
        else:
            self.case(name, "passed", duration_s=took(), requirement=requirement)

    def warn(self, text: str) -> None:
        """A warning shown with the scenario's requirements in the report (e.g. a transient denial)."""
        self.warnings.append(text)
        self._sink.append((PROP_WARNING, text))

    def addresses(self, *ips: str) -> None:
        """Addresses this scenario used (diagnostics, the duplicate check, the leak check)."""
        new = [ip for ip in ips if ip and ip not in self.used_addresses]
        if new:
            self.used_addresses.extend(new)
            self._sink.append((PROP_ADDRESSES, list(new)))

    def admitted_challenger(self, ip: str) -> None:
        """Exempt ``ip`` from this scenario's state.no-duplicate-ips check: an admitted challenger is
        judged by the scenario's own deny.* requirement (with ``admitted_then``)."""
        self.exempt.add(ip)

    # ---- reading ---------------------------------------------------------------------------------

    def failed(self) -> bool:
        return any(c["outcome"] in ("failed", "error") for c in self.cases)

    def failed_cases(self) -> list[dict[str, Any]]:
        return [c for c in self.cases if c["outcome"] in ("failed", "error")]

    def failure_text(self) -> str:
        """The failure text of a test failed by its cases: one block per failed case."""
        blocks = []
        for c in self.failed_cases():
            head = f"[{c['requirement']}] " if c.get("requirement") else ""
            blocks.append(f"{head}{c['name']}: {c['message'] or c['outcome']}")
        return "\n".join(blocks)
