"""Fixtures of the conformance scenarios (on top of those the kovc plugin provides:
``cluster_info``, ``settings``, ``kube``, ``addresses``, ``namespace_factory``, ``ns``, ``record``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # the client stack is imported by the fixtures: an xdist controller never needs it
    from conformance.kube import Kube
    from conformance.verbs import Actions

#: Scenario order inside one process: the preconditions first, the whole-run duplicate check last.
_FIRST = ("test_env.py",)
_LAST_TESTS = ("test_no_duplicate_ips_whole_run",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Then, right after the preconditions, the scenarios that observe for a fixed time (``window``): with
    ``-n N`` the others run beside them instead of after them (xdist hands a worker its next scenario when
    the ones it holds are nearly done; the ``exclusive`` group is one unit, run in this order), and a long
    window started last would leave every other worker idle (issue #12)."""
    def rank(item: pytest.Item) -> int:
        if item.path.name in _FIRST:
            return 0
        if item.name in _LAST_TESTS:
            return 3
        if item.get_closest_marker("window") is not None:
            return 1
        return 2

    items.sort(key=rank)  # stable: keeps the file order within a rank


@pytest.fixture(scope="session")
def run_exempt() -> set[str]:
    """Addresses of admitted challengers in this process (judged by their deny.* requirement)."""
    return set()


@pytest.fixture
def act(kube: Kube, settings: object, record: object, addresses: object,
        run_exempt: set[str]) -> Iterator[Actions]:
    from conformance.verbs import Actions

    actions = Actions(kube, settings, record, addresses)  # type: ignore[arg-type]
    yield actions
    run_exempt.update(getattr(record, "exempt", set()))


@pytest.fixture
def other_vpc_subnet(kube: Kube, settings: object, record: object) -> Iterator[Callable[..., str]]:
    """``make(address, namespaces=[], users=[], provider=None)``: a run-owned VPC with one subnet whose
    CIDR contains ``address`` (VPC and subnet bound to ``namespaces``; ``provider``: an attachment
    network's). Teardown deletes the VMs of ``namespaces`` and ``users`` (namespaces whose workloads use
    the subnet), waits for the subnet's IP CRs to be released, then deletes the subnet and the VPC."""
    from conformance import names, templates, waits
    from conformance.addresses import enclosing_cidr
    from conformance.kube import SUBNETS, VMS, VPCS
    from conformance.verbs import T_GONE

    made: list[tuple[str, str, list[str]]] = []

    def make(address: str, namespaces: list[str] | None = None, users: list[str] | None = None,
             provider: str | None = None) -> str:
        cidr, gateway = enclosing_cidr(address)
        vpc = names.unique("kovc-vpc")
        subnet = names.unique("kovc-sub")
        bound = list(namespaces or [])
        kube.create_vpc(templates.render_vpc(name=vpc, run_id=kube.run_id, namespaces=bound))
        made.append((vpc, "", bound + list(users or [])))
        kube.create_subnet(templates.render_subnet(name=subnet, run_id=kube.run_id, cidr=cidr,
                                                   gateway=gateway, vpc=vpc, namespaces=bound, provider=provider))
        made[-1] = (vpc, subnet, made[-1][2])
        return subnet

    yield make

    timeout = settings.timeout(T_GONE)  # type: ignore[attr-defined]
    for vpc, subnet, bound in reversed(made):
        try:
            for ns in bound:
                for vm in kube.list(VMS, ns):
                    kube.delete_vm(ns, vm["metadata"]["name"])
            if subnet:
                waits.watch_until(
                    kube, "IP", None,
                    lambda objs, s=subnet: True if not any(
                        (o.get("spec") or {}).get("subnet") == s for o in objs.values()) else None,
                    timeout=timeout, what=f"the IP CRs of subnet {subnet} to be released")
                kube.delete_subnet(subnet)
                waits.wait_gone(kube, SUBNETS, None, subnet, timeout)
            kube.delete_vpc(vpc)
            waits.wait_gone(kube, VPCS, None, vpc, timeout)
        except Exception as exc:  # cleanup must not hide the verdict; kovc cleanup removes leftovers
            record.warn(f"cleanup of VPC {vpc} / subnet {subnet} incomplete: {exc}")  # type: ignore[attr-defined]
