"""``kovc sim serve`` as a subprocess: ready file, serving, SIGINT exit 0, bad input exit 2."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conformance.cli import COMMANDS
from conformance.sim import serve
from conformance.sim.config import SimConfig

#: Drives ``conformance.sim.serve`` through its own parser (independent of the other commands).
DIRECT = """
import sys
from conformance.cli import UsageError, _Parser
from conformance.sim import serve
parser = _Parser(prog="kovc sim serve")
serve.add_arguments(parser)
try:
    args = parser.parse_args(sys.argv[1:])
except UsageError as err:
    print(f"kovc: {err}", file=sys.stderr)
    raise SystemExit(2)
raise SystemExit(serve.run(args))
"""
#: The real entry point: ``kovc sim serve …``.
VIA_CLI = (
    "import sys\nfrom conformance.cli import main\nraise SystemExit(main(['sim', 'serve', *sys.argv[1:]]))\n"
)


def _cli_complete() -> bool:
    return all(importlib.util.find_spec(module) is not None for _, module, _ in COMMANDS)


DRIVERS = [
    pytest.param(DIRECT, id="serve-module"),
    pytest.param(
        VIA_CLI,
        id="kovc-cli",
        marks=pytest.mark.skipif(
            not _cli_complete(),
            reason="conformance.cli cannot build its parser until every command module exists",
        ),
    ),
]


def spawn(driver: str, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-c", driver, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def read_line(proc: subprocess.Popen[str], timeout: float = 30) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        proc.kill()
        raise AssertionError(
            f"kovc sim serve printed nothing within {timeout:.0f}s; stderr: {proc.stderr.read()}"
        )
    return proc.stdout.readline()


@pytest.mark.parametrize("driver", DRIVERS)
def test_serve_until_sigint(driver: str, tmp_path: Path) -> None:
    kubeconfig, ready, audit = tmp_path / "kc", tmp_path / "ready.json", tmp_path / "audit.jsonl"
    proc = spawn(
        driver,
        "--kubeconfig",
        str(kubeconfig),
        "--ready-file",
        str(ready),
        "--audit-log",
        str(audit),
        "--kube-ovn-version",
        "v1.13.14",
        "--k8s-version",
        "v1.34.2",
        "--sim-seed",
        "4",
    )
    try:
        line = read_line(proc)
        assert line.startswith("kovc sim: serving https://127.0.0.1:"), line
        info = json.loads(ready.read_text())
        assert info["pid"] == proc.pid and info["kubeconfig"] == str(kubeconfig.resolve())
        assert info["url"].startswith("https://127.0.0.1:")
        import base64
        import ssl
        import urllib.request

        doc = yaml.safe_load(kubeconfig.read_text())
        token = doc["users"][0]["user"]["token"]
        ca = base64.b64decode(doc["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
        version = urllib.request.Request(info["url"] + "/version", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(version, timeout=10, context=ssl.create_default_context(cadata=ca)) as resp:
            assert json.loads(resp.read())["gitVersion"] == "v1.34.2+kovc-sim"
        kubectl = subprocess.run(
            [
                "kubectl",
                "--kubeconfig",
                str(kubeconfig),
                "--cache-dir",
                str(tmp_path / "c"),
                "apply",
                "-f",
                "-",
            ],
            input="apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n",
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert kubectl.returncode == 0, kubectl.stderr
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, f"expected exit 0 after SIGINT, got {proc.returncode}: {err}"
    assert "Traceback" not in err, err
    assert not ready.exists(), "the ready file is removed on exit"
    entries = [json.loads(x) for x in audit.read_text().splitlines()]
    assert any(e["verb"] == "create" and e["resource"] == "namespaces" and e["name"] == "x" for e in entries)


def test_serve_sigterm_exits_zero(tmp_path: Path) -> None:
    proc = spawn(DIRECT, "--kubeconfig", str(tmp_path / "kc"))
    try:
        assert read_line(proc).startswith("kovc sim: serving")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--kube-ovn-version", "v9.9.9"), "unknown Kube-OVN version v9.9.9"),
        (("--kube-ovn-version", "v1.9.0"), "not supported"),
        (("--kube-ovn-version", "1.13"), "malformed version"),
        (("--sim-webhook-policy", "no-such-policy"), "unknown webhook policy 'no-such-policy'"),
        (("--sim-webhook-policy", "os:no_such_callable"), "no_such_callable"),
        (("--sim-faults", "2"), "invalid fault rate"),
        (("--sim-webhook", "maybe"), "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: tuple[str, ...], needle: str, tmp_path: Path) -> None:
    proc = spawn(VIA_CLI if _cli_complete() else DIRECT, "--kubeconfig", str(tmp_path / "kc"), *args)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, f"{args}: expected exit 2, got {proc.returncode}: {err}"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and lines[0].startswith("kovc: "), err
    assert not (tmp_path / "kc").exists()


def test_sim_options_are_reusable() -> None:
    parser = argparse.ArgumentParser()
    group = parser.add_argument_group("sim")
    serve.add_sim_options(group, prefix="--x-")
    args = parser.parse_args(
        ["--x-webhook", "off", "--x-faults", "0.25", "--x-seed", "9", "--x-webhook-policy", "owner-equality"]
    )
    config = serve.sim_config_from_args(args)
    assert (config.webhook, config.faults, config.seed, config.webhook_policy) == (
        "off",
        0.25,
        9,
        "owner-equality",
    )
    registered: list[str] = []

    class PytestGroup:  # pytest's OptionGroup has addoption, not add_argument
        def addoption(self, flag: str, **kwargs: object) -> None:
            registered.append(flag)
            assert "dest" in kwargs

    serve.add_sim_options(PytestGroup())
    assert registered == [flag for flag, _ in serve.SIM_OPTIONS]
    assert serve.sim_config_from_args(argparse.Namespace()) == SimConfig()
