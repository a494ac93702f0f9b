#!/usr/bin/env python3
"""Scale benchmark of the simulated cluster (a benchmark, not a test: it prints figures).

Starts ``kovc sim serve`` as its own process, then, through the suite's own client (``Kube``):

  1. create N static-IP VMs (one namespace, addresses from ``ovn-default``) and wait until every VMI
     is Running with its requested address on its interface;
  2. restart all N (virt-api ``restart`` subresource) and wait until every VMI is a new one, Running
     with the same address;
  3. delete all N and wait until every VM, VMI, launcher pod and IP CR is gone.

Prints, per phase, the wall time per VM (ms), and the server process's RSS and CPU seconds before the
first phase and after each one. The targets of issue #12: ms/VM of each phase at N=1000 <= 1.5 x the
same at N=100; RSS after delete within 20 % of RSS before create.

``--warmup W`` first takes W other VMs through the same three phases, so the "before" reading is of a
server that has already imported and warmed what it loads on first use (lazy imports, caches); the cold
reading is printed too. Server CPU per VM is printed per phase (less dependent on the machine's load
than wall time on a shared machine).

``--backend envtest`` runs the same phases against ``kovc envtest serve``: the real kube-apiserver, etcd
and Kube-OVN webhook, with the simulated controllers attached over HTTP (``kovc sim attach``); "server"
is then the attached controllers' process, and kube-apiserver's CPU per VM is printed beside it (issue
#12: the complexity targets hold for every transport).

Usage: python tools/scale.py --vms N [--backend sim|envtest] [--json] [--step-delay S] [--event-ttl S]
       [--settle S] [--cycles K] [--warmup W]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from conformance import templates
from conformance.kube import IPS, JSON, NAMESPACES, PODS, VMIS, VMS, Kind, Kube
from conformance.waits import watch_until

NAMESPACE = "kovc-scale"
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


def address(i: int) -> str:
    """The i-th requested address (10.16.100.1 onwards, 250 per /24)."""
    return f"10.16.{100 + i // 250}.{i % 250 + 1}"


def server_usage(pid: int) -> tuple[float, float]:
    """(RSS MiB, CPU seconds user+system) of the server process."""
    with open(f"/proc/{pid}/statm") as fh:
        rss_pages = int(fh.read().split()[1])
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICKS
    return rss_pages * PAGE / 2**20, cpu


def children(pid: int) -> dict[int, str]:
    """The processes whose parent is ``pid``: pid -> command line."""
    out: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError, IndexError):
            continue
    return out


def wait_ready(proc: subprocess.Popen[bytes], ready: Path, what: str, seconds: float) -> None:
    """Until ``proc`` wrote its ready file; it exiting first, or ``seconds`` passing, ends the benchmark."""
    deadline = time.monotonic() + seconds
    while not ready.exists():
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise SystemExit(f"scale: {what} exited {proc.returncode}: {err.strip()}")
        if time.monotonic() > deadline:
            proc.terminate()  # it stops what it started
            raise SystemExit(f"scale: {what} did not become ready within {seconds:g} s")
        time.sleep(0.05)


def start_envtest(tmp: Path) -> tuple[subprocess.Popen[bytes], Path, int, int]:
    """``kovc envtest serve`` (real kube-apiserver, etcd and Kube-OVN webhook; the simulated controllers
    attached over HTTP): the process, the suite's kubeconfig, and the pids of the attached controllers
    and of kube-apiserver."""
    ready = tmp / "ready.json"
    cmd = [sys.executable, "-m", "conformance", "envtest", "serve", "--ready-file", str(ready)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_ready(proc, ready, "kovc envtest serve", 180)
    doc = json.loads(ready.read_text())
    kids = children(proc.pid)
    attach = next((pid for pid, cmdline in kids.items() if " sim attach " in cmdline), 0)
    apiserver = next((pid for pid, cmdline in kids.items() if "kube-apiserver " in cmdline), 0)
    if not attach or not apiserver:
        proc.terminate()
        raise SystemExit(f"scale: cannot find the attached controllers and kube-apiserver among {kids}")
    return proc, Path(doc["kubeconfig"]), attach, apiserver


def start_server(tmp: Path, step_delay: float | None, event_ttl: float | None
                 ) -> tuple[subprocess.Popen[bytes], Path]:
    ready = tmp / "ready.json"
    kubeconfig = tmp / "kubeconfig"
    cmd = [sys.executable, "-m", "conformance", "sim", "serve", "--kubeconfig", str(kubeconfig),
           "--ready-file", str(ready)]
    if step_delay is not None:
        cmd += ["--sim-step-delay", str(step_delay)]
    if event_ttl is not None:
        cmd += ["--event-ttl", str(event_ttl)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_ready(proc, ready, "kovc sim serve", 30)
    return proc, kubeconfig


def follow(kube: Kube, kind: Kind, namespace: str | None, done: Callable[[JSON | None], bool], keys: set[str],
           timeout: float, what: str) -> None:
    """List, then follow a watch until ``done(obj)`` holds for every name in ``keys`` (``done(None)``
    for a name with no object). Each event re-evaluates only its own object, so the benchmark's client
    costs O(1) per event and never hides the server's scaling behind its own."""
    deadline = time.monotonic() + timeout
    pending: set[str] = set()
    rv = ""

    def relist() -> str:
        items, list_rv = kube.list_with_version(kind, namespace)
        by_name = {o["metadata"]["name"]: o for o in items}
        pending.clear()
        pending.update(k for k in keys if not done(by_name.get(k)))
        return list_rv

    rv = relist()
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            raise SystemExit(f"scale: timed out after {timeout:.0f}s waiting for {what}: "
                             f"{len(pending)} of {len(keys)} not there (e.g. {sorted(pending)[:3]})")
        try:
            for event in kube.watch(kind, namespace, resource_version=rv, timeout_seconds=max(1, int(left)),
                                    read_timeout=left + 5):
                obj = event.get("object") or {}
                meta = obj.get("metadata") or {}
                rv = str(meta.get("resourceVersion") or rv)
                name = str(meta.get("name", ""))
                if event.get("type") == "BOOKMARK" or name not in keys:
                    continue
                if done(None if event.get("type") == "DELETED" else obj):
                    pending.discard(name)
                else:
                    pending.add(name)
                if not pending:
                    return
        except ApiException as exc:
            if exc.status != 410:
                raise
            rv = relist()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, required=True, metavar="N")
    parser.add_argument("--backend", choices=("sim", "envtest"), default="sim",
                        help="sim: kovc sim serve (the in-process store transport; default); envtest: kovc "
                             "envtest serve, the real kube-apiserver + etcd + Kube-OVN webhook with the simulated "
                             "controllers attached over HTTP (their process is the one measured)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    parser.add_argument("--step-delay", type=float, default=None, metavar="S",
                        help="the server's --sim-step-delay (default: the server's own default)")
    parser.add_argument("--event-ttl", type=float, default=None, metavar="S",
                        help="the server's --event-ttl (default: the server's own, 3600 s)")
    parser.add_argument("--settle", type=float, default=0.0, metavar="S",
                        help="seconds to wait after delete before a last RSS reading (default 0); past the "
                             "event TTL and the watch history's 75 s, what is left is what the sim leaks")
    parser.add_argument("--cycles", type=int, default=1, metavar="K",
                        help="repeat create/restart/delete K times (default 1); from the second cycle on, "
                             "RSS is also compared with the end of the first (what the sim keeps per cycle)")
    parser.add_argument("--warmup", type=int, default=0, metavar="W",
                        help="take W other VMs through create/restart/delete before the first reading "
                             "(default 0: the reading is of a cold server)")
    parser.add_argument("--timeout", type=float, default=0.0, metavar="S",
                        help="per-phase timeout (default: 60 s + 0.5 s per VM)")
    args = parser.parse_args()
    n = args.vms
    if n < 1:
        parser.error("--vms must be at least 1")
    if args.backend == "envtest" and (args.step_delay is not None or args.event_ttl is not None):
        parser.error("--step-delay and --event-ttl are the sim server's options (envtest: kube-apiserver's own)")
    timeout = args.timeout or 60 + 0.5 * n
    result: dict[str, Any] = {"vms": n, "phases": {}, "server": {}}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        apiserver = 0
        if args.backend == "envtest":
            proc, kubeconfig, measured, apiserver = start_envtest(tmp)
        else:
            proc, kubeconfig = start_server(tmp, args.step_delay, args.event_ttl)
            measured = proc.pid
        result["backend"] = args.backend
        try:
            kube = Kube(str(kubeconfig), None, run_id="scale")
            kube.create(NAMESPACES, None, {"metadata": {"name": NAMESPACE}})
            time.sleep(0.5)  # let the namespace's own controllers settle before the first reading
            rss, cpu = server_usage(measured)
            result["server"]["cold"] = {"rss_mib": round(rss, 1), "cpu_s": round(cpu, 2)}
            ips: dict[str, str] = {}

            def phase(name: str, act: Any, wait: Any) -> None:
                _rss, cpu_before = server_usage(measured)
                api_before = server_usage(apiserver)[1] if apiserver else 0.0
                start = time.monotonic()
                act()
                wait()
                wall = time.monotonic() - start
                rss, cpu = server_usage(measured)
                result["phases"][name] = {"wall_s": round(wall, 2), "ms_per_vm": round(wall * 1000 / len(ips), 2),
                                          "cpu_ms_per_vm": round((cpu - cpu_before) * 1000 / len(ips), 2)}
                if apiserver:
                    result["phases"][name]["apiserver_cpu_ms_per_vm"] = round(
                        (server_usage(apiserver)[1] - api_before) * 1000 / len(ips), 2)
                result["server"][f"after_{name}"] = {"rss_mib": round(rss, 1), "cpu_s": round(cpu, 2)}

            def create() -> None:
                for name, ip in ips.items():
                    kube.create_vm(NAMESPACE, templates.render_vm(name=name, namespace=NAMESPACE, ip=ip,
                                                                  subnet="ovn-default", run_id="scale"))

            def wait_running(old: dict[str, str]) -> None:
                def running(vmi: JSON | None) -> bool:
                    if vmi is None or vmi["metadata"].get("uid") == old.get(vmi["metadata"]["name"]):
                        return False
                    status = vmi.get("status") or {}
                    ifaces = status.get("interfaces") or []
                    return status.get("phase") == "Running" and not vmi["metadata"].get("deletionTimestamp") \
                        and bool(ifaces) and ifaces[0].get("ipAddress") == ips[vmi["metadata"]["name"]]

                follow(kube, VMIS, NAMESPACE, running, set(ips), timeout, f"{n} VMIs Running with their addresses")

            def restart() -> None:
                for name in ips:
                    kube.vm_action(NAMESPACE, name, "restart")

            def delete() -> None:
                for name in ips:
                    kube.delete_vm(NAMESPACE, name)

            def gone() -> None:
                follow(kube, VMS, NAMESPACE, lambda o: o is None, set(ips), timeout, "every VM gone")
                follow(kube, VMIS, NAMESPACE, lambda o: o is None, set(ips), timeout, "every VMI gone")
                watch_until(kube, PODS, NAMESPACE, lambda objs: True if not objs else None,
                            timeout=timeout, what=f"every pod in {NAMESPACE} gone")
                follow(kube, IPS, None, lambda o: o is None, {f"{vm}.{NAMESPACE}" for vm in ips}, timeout,
                       "every IP CR gone")

            def cycle_through(tag: str) -> None:
                phase(f"create{tag}", create, lambda: wait_running({}))
                old = {o["metadata"]["name"]: o["metadata"]["uid"] for o in kube.list(VMIS, NAMESPACE)}
                phase(f"restart{tag}", restart, lambda old=old: wait_running(old))  # type: ignore[misc]
                phase(f"delete{tag}", delete, gone)

            if args.warmup > 0:
                ips.update({f"warm-{i:05d}": address(n + i) for i in range(args.warmup)})
                cycle_through("-warmup")
                time.sleep(1.5)  # the GC's idle resync (and its malloc_trim) after the warm-up
                ips.clear()
            rss, cpu = server_usage(measured)
            result["server"]["before"] = {"rss_mib": round(rss, 1), "cpu_s": round(cpu, 2)}
            ips.update({f"vm-{i:05d}": address(i) for i in range(n)})

            for cycle in range(1, max(args.cycles, 1) + 1):
                tag = "" if cycle == 1 else f"#{cycle}"
                cycle_through(tag)
                if args.settle > 0:
                    time.sleep(args.settle)
                    rss, cpu = server_usage(measured)
                    result["server"][f"settled{tag}"] = {"rss_mib": round(rss, 1), "cpu_s": round(cpu, 2)}
            kube.close()
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    before = result["server"]["before"]["rss_mib"]
    result["rss_growth_after_delete"] = round(result["server"]["after_delete"]["rss_mib"] / before - 1, 3)
    result["rss_growth_after_delete_vs_cold"] = round(
        result["server"]["after_delete"]["rss_mib"] / result["server"]["cold"]["rss_mib"] - 1, 3)
    if "settled" in result["server"]:
        result["rss_growth_settled"] = round(result["server"]["settled"]["rss_mib"] / before - 1, 3)
    last_cycle = max(args.cycles, 1)
    if last_cycle > 1:
        first_end = result["server"].get("settled", result["server"]["after_delete"])["rss_mib"]
        tag = f"#{last_cycle}"
        last_end = result["server"].get(f"settled{tag}", result["server"][f"after_delete{tag}"])["rss_mib"]
        result["rss_growth_cycle_after_first"] = round(last_end / first_end - 1, 3)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    measured_what = "the attached controllers" if args.backend == "envtest" else "the sim server"
    print(f"{n} VMs, backend {args.backend} ('server' below: {measured_what}, pid {measured})")
    for name, ph in result["phases"].items():
        api = ""
        if "apiserver_cpu_ms_per_vm" in ph:
            api = f"  kube-apiserver CPU {ph['apiserver_cpu_ms_per_vm']:6.2f} ms/VM"
        print(f"  {name:15s} {ph['wall_s']:8.2f} s  {ph['ms_per_vm']:8.2f} ms/VM  server CPU "
              f"{ph['cpu_ms_per_vm']:6.2f} ms/VM{api}")
    for when, usage in result["server"].items():
        print(f"  server {when:15s} RSS {usage['rss_mib']:7.1f} MiB  CPU {usage['cpu_s']:7.2f} s")
    print(f"  RSS after delete vs before create: {result['rss_growth_after_delete'] * 100:+.1f} %")
    if args.warmup > 0:
        print(f"  RSS after delete vs the cold server (before the warm-up): "
              f"{result['rss_growth_after_delete_vs_cold'] * 100:+.1f} %")
    if "rss_growth_settled" in result:
        print(f"  RSS {args.settle:g} s later vs before create: {result['rss_growth_settled'] * 100:+.1f} %")
    if "rss_growth_cycle_after_first" in result:
        print(f"  RSS after cycle {last_cycle} vs after cycle 1: {result['rss_growth_cycle_after_first'] * 100:+.1f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
