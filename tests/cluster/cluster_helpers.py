"""Helpers for the real-cluster backend tests, run without Docker: stand-in ``kind``, ``helm`` and ``docker``
executables that record their arguments, a ``kind create cluster`` that starts a simulated cluster
(``kovc sim serve`` in the background), and a ``--manifests-dir`` of small upstream-shaped files.

The stand-ins append one JSON line per call to ``$KOVC_STANDIN_LOG``: ``{"prog": …, "argv": […]}``.
Behaviour switches (environment, set per test with monkeypatch):

* ``KOVC_STANDIN_KIND_VERSION``: what ``kind version`` prints (default ``kind v0.32.0 …``);
* ``KOVC_STANDIN_KIND_FAIL``: comma list of kind sub-commands that exit 1, matched on their leading
  words (``create``, ``delete``, ``load`` - every load -, ``load docker-image``, ``load image-archive``);
* ``KOVC_STANDIN_SIM_ARGS``: extra ``kovc sim serve`` arguments (e.g. ``--kube-ovn-version v1.14.2``);
* ``KOVC_STANDIN_HELM_FAIL``: helm exits 1 with an error line;
* ``KOVC_STANDIN_DOCKER_PRESENT`` / ``KOVC_STANDIN_DOCKER_UNPULLABLE``: comma lists of images that
  ``docker image inspect`` finds (``*``: all, the fixture's default) / ``docker pull`` cannot fetch;
* ``KOVC_STANDIN_KVM=1``: nodes have ``/dev/kvm`` usable by QEMU's uid 107; ``root-only``: present but
  only root can open it (a GitHub runner without the udev rule);
* ``KOVC_STANDIN_CTR_FAIL=1``: ``docker exec -i <node> ctr … import`` exits 1.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conformance import versions
from conformance.sim.cluster import world_available

REPO = Path(__file__).resolve().parents[2]

needs_world = pytest.mark.skipif(
    not world_available(),
    reason="the simulated cluster's KubeVirt/Kube-OVN behaviour (conformance.sim.world) is not present yet")

#: How the stand-in kind starts a simulated cluster: the code of ``kovc sim serve``.
SIM_LAUNCHER = ("import argparse, sys\n"
                "from conformance.sim import serve\n"
                "p = argparse.ArgumentParser()\n"
                "serve.add_arguments(p)\n"
                "sys.exit(serve.run(p.parse_args(sys.argv[1:])))\n")

_COMMON = r'''
import json, os, sys, time, signal, subprocess, shutil
from pathlib import Path

def record(prog):
    with open(os.environ["KOVC_STANDIN_LOG"], "a") as fh:
        fh.write(json.dumps({"prog": prog, "argv": sys.argv[1:]}) + "\n")

def opt(name, default=None):
    args = sys.argv[1:]
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return default
'''

#: Stand-ins for what the simulated cluster does not model around installs, started by the stand-in
#: ``kind create cluster``: kube-controller-manager's Deployment controller (with the kubelets behind
#: it) — whenever a Deployment's spec changes (generation ahead of observedGeneration, or no status at
#: all) its replicas are reported updated, ready and available, as a real cluster does once the pods
#: run —, its DaemonSet controller likewise (one pod per node: Multus's kube-multus-ds) — and
#: virt-operator observing a changed KubeVirt CR (``status.observedGeneration`` follows
#: ``metadata.generation``; ``kubectl wait --for=condition`` waits for that, as it should).
CONTROLLER_MANAGER = r'''
import sys, threading, time
from kubernetes import client, config, watch
api = config.new_client_from_config(sys.argv[1])
api.user_agent = "kube-controller-manager/v1.35.1 (stand-in)"
apps = client.AppsV1Api(api)
custom = client.CustomObjectsApi(api)

def observe_kubevirt(kv):
    meta, status = kv["metadata"], kv.get("status") or {}
    if status.get("observedGeneration", 0) < meta.get("generation", 1):
        custom.patch_namespaced_custom_object_status(
            "kubevirt.io", "v1", meta["namespace"], "kubevirts", meta["name"],
            {"status": {"observedGeneration": meta.get("generation", 1)}})

def kubevirt_loop():
    while True:
        try:
            listed = custom.list_cluster_custom_object("kubevirt.io", "v1", "kubevirts")
            for kv in listed["items"]:
                observe_kubevirt(kv)
            for event in watch.Watch().stream(custom.list_cluster_custom_object, "kubevirt.io", "v1",
                                              "kubevirts", resource_version=listed["metadata"]["resourceVersion"],
                                              timeout_seconds=30):
                if event["type"] in ("ADDED", "MODIFIED"):
                    observe_kubevirt(event["object"])
        except Exception:
            time.sleep(0.1)

threading.Thread(target=kubevirt_loop, daemon=True).start()

def reconcile(d):
    meta, status = d.metadata, d.status
    if meta.namespace == "kube-system" and meta.name in ("kube-ovn-controller", "kube-ovn-webhook"):
        return  # rolled out by the simulated cluster itself (conformance/sim/upgrade.py)
    if status is not None and status.observed_generation is not None \
            and status.observed_generation >= (meta.generation or 1):
        return
    n = d.spec.replicas if d.spec.replicas is not None else 1
    apps.patch_namespaced_deployment_status(meta.name, meta.namespace, {"status": {
        "observedGeneration": meta.generation or 1, "replicas": n, "updatedReplicas": n,
        "readyReplicas": n, "availableReplicas": n,
        "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                       {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}})

def reconcile_daemonset(d):
    # kube-controller-manager's DaemonSet controller: one pod per node, all updated and available.
    meta, status = d.metadata, d.status
    if status is not None and status.observed_generation is not None \
            and status.observed_generation >= (meta.generation or 1):
        return
    n = len(client.CoreV1Api(api).list_node().items)
    apps.patch_namespaced_daemon_set_status(meta.name, meta.namespace, {"status": {
        "observedGeneration": meta.generation or 1, "desiredNumberScheduled": n, "currentNumberScheduled": n,
        "updatedNumberScheduled": n, "numberReady": n, "numberAvailable": n, "numberMisscheduled": 0}})

def follow(list_all, handle):
    """List, then watch from that list's resourceVersion, handing every object to ``handle``; start over on
    any error (an expired watch included)."""
    while True:
        try:
            listed = list_all()
            for d in listed.items:
                handle(d)
            for event in watch.Watch().stream(list_all, resource_version=listed.metadata.resource_version,
                                              timeout_seconds=30):
                if event["type"] in ("ADDED", "MODIFIED"):
                    handle(event["object"])
        except Exception:
            time.sleep(0.1)

threading.Thread(target=follow, args=(apps.list_daemon_set_for_all_namespaces, reconcile_daemonset),
                 daemon=True).start()
follow(apps.list_deployment_for_all_namespaces, reconcile)
'''

KIND_SCRIPT = _COMMON + r'''
record("kind")
state = Path(os.environ["KOVC_STANDIN_STATE"])
state.mkdir(parents=True, exist_ok=True)
args = sys.argv[1:]
for fail in [f for f in os.environ.get("KOVC_STANDIN_KIND_FAIL", "").split(",") if f]:
    if args[:len(fail.split())] == fail.split():
        if fail.startswith("load"):
            print("ERROR: failed to load image: command \"docker exec --privileged -i kovc-control-plane ctr "
                  "--namespace=k8s.io images import --all-platforms --digests --snapshotter=overlayfs -\" "
                  "failed with error: exit status 1 ... content digest sha256:0123: not found (stand-in)",
                  file=sys.stderr)
        else:
            print(f"ERROR: stand-in kind told to fail {fail}", file=sys.stderr)
        sys.exit(1)
if args[:1] == ["version"]:
    print(os.environ.get("KOVC_STANDIN_KIND_VERSION", "kind v0.32.0 go1.25.1 linux/amd64"))
elif args[:2] == ["get", "clusters"]:
    names = sorted(p.stem for p in state.glob("*.json"))
    if names:
        print("\n".join(names))
    else:
        print("No kind clusters found.", file=sys.stderr)
elif args[:2] == ["create", "cluster"]:
    name = opt("--name", "kind")
    kubeconfig = Path(opt("--kubeconfig"))
    config = opt("--config")
    if config is None or not Path(config).is_file():
        print("ERROR: stand-in kind expects --config FILE", file=sys.stderr)
        sys.exit(1)
    ready = state / f"{name}.ready"
    ready.unlink(missing_ok=True)
    extra = os.environ.get("KOVC_STANDIN_SIM_ARGS", "").split()
    log = open(state / f"{name}.sim.log", "w")
    proc = subprocess.Popen([sys.executable, "-c", os.environ["KOVC_SIM_LAUNCHER"], "--kubeconfig",
                             str(kubeconfig), "--ready-file", str(ready), *extra],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 30
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            print("ERROR: simulated cluster did not start", file=sys.stderr)
            sys.exit(1)
        time.sleep(0.05)
    cm = subprocess.Popen([sys.executable, "-c", os.environ["KOVC_STANDIN_CM"], str(kubeconfig)],
                          stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    (state / f"{name}.json").write_text(json.dumps({"pid": proc.pid, "cm_pid": cm.pid,
                                                    "kubeconfig": str(kubeconfig), "config": config}))
    print(f"Creating cluster \"{name}\" ... (stand-in: simulated cluster pid {proc.pid})")
elif args[:2] == ["delete", "cluster"]:
    name = opt("--name", "kind")
    st = state / f"{name}.json"
    if st.exists():
        info = json.loads(st.read_text())
        pid = info["pid"]
        try:
            os.kill(info["cm_pid"], signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            os.kill(pid, signal.SIGTERM)
            for _ in range(200):
                os.kill(pid, 0)
                time.sleep(0.02)
        except ProcessLookupError:
            pass
        st.unlink()
    print(f"Deleting cluster \"{name}\" ...")
elif args[:2] == ["get", "nodes"]:
    name = opt("--name", "kind")
    kubeconfig = json.loads((state / f"{name}.json").read_text())["kubeconfig"]
    out = subprocess.run(["kubectl", "--kubeconfig", kubeconfig, "get", "nodes", "-o", "name"],
                         capture_output=True, text=True, check=True).stdout
    print("\n".join(n.split("/", 1)[1] for n in out.split()))
elif args[:2] == ["export", "kubeconfig"]:
    name = opt("--name", "kind")
    src = json.loads((state / f"{name}.json").read_text())["kubeconfig"]
    dest = opt("--kubeconfig")
    if os.path.abspath(src) != os.path.abspath(dest):
        shutil.copy(src, dest)
elif args[:2] == ["export", "logs"]:
    Path(args[2]).mkdir(parents=True, exist_ok=True)
    (Path(args[2]) / "kind-version.txt").write_text("stand-in")
elif args[:2] == ["load", "docker-image"]:
    pass
elif args[:2] == ["load", "image-archive"]:
    if not Path(args[2]).is_file():
        print(f"ERROR: stand-in kind: no archive {args[2]}", file=sys.stderr)
        sys.exit(1)
else:
    print(f"ERROR: stand-in kind does not know {args}", file=sys.stderr)
    sys.exit(2)
'''

HELM_SCRIPT = _COMMON + r'''
record("helm")
if os.environ.get("KOVC_STANDIN_HELM_FAIL"):
    print("Error: INSTALLATION FAILED: context deadline exceeded (stand-in)", file=sys.stderr)
    sys.exit(1)
# What the chart does to the running cluster that the suite can observe: kube-ovn-controller runs the
# chart's image tag (a real chart upgrade rolls the Deployment; the simulated cluster then swaps its model).
tag = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("global.images.kubeovn.tag=")), None)
kubeconfig = opt("--kubeconfig")
if tag and kubeconfig:
    subprocess.run(["kubectl", "--kubeconfig", kubeconfig, "-n", "kube-system", "set", "image",
                    "deployment/kube-ovn-controller", f"kube-ovn-controller=docker.io/kubeovn/kube-ovn:{tag}"],
                   capture_output=True, text=True)
print("Release \"kubeovn\" has been upgraded. Happy Helming! (stand-in)")
'''

DOCKER_SCRIPT = _COMMON + r'''
record("docker")
args = sys.argv[1:]
def listed(var):
    return [x for x in os.environ.get(var, "").split(",") if x]
if args[:2] == ["image", "inspect"]:
    present = listed("KOVC_STANDIN_DOCKER_PRESENT")
    sys.exit(0 if args[2] in present or "*" in present else 1)
if args[:1] == ["pull"]:
    if args[1] in listed("KOVC_STANDIN_DOCKER_UNPULLABLE"):
        print(f"Error response from daemon: pull access denied for {args[1]}", file=sys.stderr)
        sys.exit(1)
    sys.exit(0)
if args[:1] == ["save"]:
    Path(opt("-o")).write_bytes(b"stand-in image archive of " + args[-1].encode())
    sys.exit(0)
if args[:2] == ["exec", "-i"] and "ctr" in args:
    data = sys.stdin.buffer.read()
    if os.environ.get("KOVC_STANDIN_CTR_FAIL") == "1" or not data.startswith(b"stand-in image archive"):
        print("ctr: failed to import (stand-in)", file=sys.stderr)
        sys.exit(1)
    sys.exit(0)
if args[:1] == ["exec"]:
    kvm = os.environ.get("KOVC_STANDIN_KVM", "")
    as_qemu = args[1:3] == ["--user", "107:107"]
    if kvm == "1" or (kvm == "root-only" and not as_qemu):
        sys.exit(0)
    if as_qemu:
        print("sh: 1: cannot open /dev/kvm: Permission denied", file=sys.stderr)
    sys.exit(1)
print(f"stand-in docker does not know {args}", file=sys.stderr)
sys.exit(2)
'''


@dataclass
class StandIns:
    bin_dir: Path
    log: Path
    state: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> Path:
        return self.bin_dir / "kind"

    def calls(self, prog: str | None = None) -> list[list[str]]:
        if not self.log.exists():
            return []
        rows = [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]
        return [r["argv"] for r in rows if prog is None or r["prog"] == prog]

    def running_clusters(self) -> list[str]:
        return sorted(p.stem for p in self.state.glob("*.json"))


def _write_script(path: Path, body: str) -> None:
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)


def _kill_leftovers(state: Path) -> None:
    for st in state.glob("*.json"):
        try:
            info = json.loads(st.read_text())
        except (ValueError, OSError):
            continue
        for key in ("cm_pid", "pid"):
            try:
                os.kill(int(info[key]), signal.SIGTERM)
            except (ProcessLookupError, ValueError, KeyError, OSError):
                pass




# -- a --manifests-dir with small upstream-shaped files --------------------------------------------

WEBHOOK_YAML = """\
---
kind: Deployment
apiVersion: apps/v1
metadata:
  name: kube-ovn-webhook
  namespace: kube-system
spec:
  replicas: 1
  selector:
    matchLabels:
      app: kube-ovn-webhook
  template:
    metadata:
      labels:
        app: kube-ovn-webhook
    spec:
      containers:
        - name: kube-ovn-webhook
          image: "docker.io/kubeovn/kube-ovn:v1.16.0"
          imagePullPolicy: IfNotPresent
          args:
            - --port=8443
"""

CERT_MANAGER_YAML = "".join(f"""\
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: cert-manager
spec:
  replicas: 1
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
        - name: {name}
          image: "quay.io/jetstack/{image}:{versions.CERT_MANAGER_VERSION}"
""" for name, image in (("cert-manager", "cert-manager-controller"), ("cert-manager-cainjector",
                                                                      "cert-manager-cainjector"),
                        ("cert-manager-webhook", "cert-manager-webhook")))
CERT_MANAGER_YAML = ("---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: cert-manager\n"
                     + CERT_MANAGER_YAML)


def kubevirt_operator_yaml(version: str) -> str:
    return f"""\
---
apiVersion: v1
kind: Namespace
metadata:
  name: kubevirt
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: virt-operator
  namespace: kubevirt
spec:
  replicas: 2
  selector:
    matchLabels:
      kubevirt.io: virt-operator
  template:
    metadata:
      labels:
        kubevirt.io: virt-operator
    spec:
      containers:
        - name: virt-operator
          image: quay.io/kubevirt/virt-operator:{version}
"""


KUBEVIRT_CR_YAML = """\
---
apiVersion: kubevirt.io/v1
kind: KubeVirt
metadata:
  name: kubevirt
  namespace: kubevirt
spec:
  certificateRotateStrategy: {}
  configuration:
    developerConfiguration:
      featureGates: []
  customizeComponents: {}
  imagePullPolicy: IfNotPresent
  workloadUpdateStrategy: {}
"""

INSTALL_SH = """\
#!/usr/bin/env bash
set -euo pipefail
REGISTRY="docker.io/kubeovn"
VERSION="v0.0.0-wrong"
ENABLE_KEEP_VM_IP=${ENABLE_KEEP_VM_IP:-true}
printf '{"prog": "install.sh", "argv": ["kube-ovn %s", "keep-vm-ip %s"]}\\n' \\
  "$VERSION" "$ENABLE_KEEP_VM_IP" >> "$KOVC_STANDIN_LOG"
kubectl get nodes -o name >/dev/null
echo "[Step 5/6] Add kubectl plugin PATH"
touch "$KOVC_STANDIN_STATE/install-sh-wrote-into-the-host"
"""


#: A small ``multus-daemonset-thick.yml`` (the real one also holds the NAD CRD, RBAC and a ConfigMap): the
#: DaemonSet with the thick plugin's ``:snapshot-thick`` image that ``make kind-install-multus`` seds.
MULTUS_YML = """\
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: kube-multus-ds
  namespace: kube-system
spec:
  selector:
    matchLabels: {name: multus}
  updateStrategy:
    type: RollingUpdate
  template:
    metadata:
      labels: {name: multus}
    spec:
      hostNetwork: true
      initContainers:
        - name: install-multus-binary
          image: ghcr.io/k8snetworkplumbingwg/multus-cni:snapshot-thick
      containers:
        - name: kube-multus
          image: ghcr.io/k8snetworkplumbingwg/multus-cni:snapshot-thick
"""


def write_manifests_dir(root: Path, kube_ovn_version: str = versions.KUBE_OVN_VERSION,
                        kubevirt_version: str = versions.KUBEVIRT_VERSION, *,
                        webhook_yaml: str = WEBHOOK_YAML, chart: bool = True,
                        install_sh: bool = True, multus: bool = False) -> Path:
    """Small stand-ins for the files ``kovc images --manifests`` names, in the layout
    ``--manifests-dir`` expects (the Kube-OVN source as a GitHub-style tag archive)."""
    root.mkdir(parents=True, exist_ok=True)
    top = f"kube-ovn-{kube_ovn_version.lstrip('v')}"
    files = {f"{top}/yamls/webhook.yaml": webhook_yaml, f"{top}/README.md": "Kube-OVN\n"}
    if chart:
        files[f"{top}/charts/kube-ovn-v2/Chart.yaml"] = (f"apiVersion: v2\nname: kube-ovn-v2\n"
                                                         f"version: {kube_ovn_version}\n")
        files[f"{top}/charts/kube-ovn-v2/values.yaml"] = "features:\n  enableKeepVmIps: true\n"
    if install_sh:
        files[f"{top}/dist/images/install.sh"] = INSTALL_SH
    with tarfile.open(root / f"kube-ovn-{kube_ovn_version}.tar.gz", "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (root / "cert-manager.yaml").write_text(CERT_MANAGER_YAML)
    (root / "kubevirt-operator.yaml").write_text(kubevirt_operator_yaml(kubevirt_version))
    (root / "kubevirt-cr.yaml").write_text(KUBEVIRT_CR_YAML)
    if multus:
        (root / "multus-daemonset-thick.yml").write_text(MULTUS_YML)
    return root




# -- a simulated cluster served by `kovc sim serve` -------------------------------------------------


@dataclass
class ServedSim:
    kubeconfig: Path
    audit_log: Path
    proc: subprocess.Popen[bytes]
    url: str


def serve_sim(tmp_path: Path, *args: str) -> ServedSim:
    kubeconfig = tmp_path / "sim.kubeconfig"
    ready = tmp_path / "sim.ready"
    audit = tmp_path / "audit.jsonl"
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-c", SIM_LAUNCHER, "--kubeconfig", str(kubeconfig),
                             "--audit-log", str(audit), "--ready-file", str(ready), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 30
    while not ready.exists():
        if proc.poll() is not None:
            err = proc.stderr.read().decode()[-500:] if proc.stderr else ""
            raise RuntimeError(f"kovc sim serve exited {proc.returncode}: {err}")
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("kovc sim serve did not get ready within 30 s")
        time.sleep(0.05)
    url = json.loads(ready.read_text())["url"]
    return ServedSim(kubeconfig=kubeconfig, audit_log=audit, proc=proc, url=url)




def kubectl(kubeconfig: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True,
                          timeout=30, check=check)


def dedent(text: str) -> str:
    return textwrap.dedent(text)


# -- the presented state of a cluster with Kube-OVN + webhook + KubeVirt ---------------------------


def presented_state_yaml(kube_ovn_version: str = versions.KUBE_OVN_VERSION,
                         kubevirt_version: str = versions.KUBEVIRT_VERSION,
                         controller_args: tuple[str, ...] = ("--keep-vm-ip=true",)) -> str:
    """What a cluster with Kube-OVN, its webhook and KubeVirt presents to detection (the simulated
    cluster's world presents the same); used to seed a simulated cluster that has no world."""
    args = "".join(f"\n            - {a}" for a in controller_args)
    return f"""\
apiVersion: v1
kind: Namespace
metadata: {{name: kube-system}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: kubevirt}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: kube-ovn-controller, namespace: kube-system}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: kube-ovn-controller}}}}
  template:
    metadata: {{labels: {{app: kube-ovn-controller}}}}
    spec:
      containers:
        - name: kube-ovn-controller
          image: docker.io/kubeovn/kube-ovn:{kube_ovn_version}
          args:{args}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: kube-ovn-webhook, namespace: kube-system}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: kube-ovn-webhook}}}}
  template:
    metadata: {{labels: {{app: kube-ovn-webhook}}}}
    spec:
      containers:
        - name: kube-ovn-webhook
          image: docker.io/kubeovn/kube-ovn:{kube_ovn_version}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {{name: kube-ovn-webhook}}
webhooks:
  - name: pod-ip-validating.kube-ovn.io
    admissionReviewVersions: [v1]
    sideEffects: None
    failurePolicy: Ignore
    timeoutSeconds: 5
    clientConfig:
      service: {{namespace: kube-system, name: kube-ovn-webhook, path: /validating, port: 443}}
    rules:
      - operations: [CREATE]
        apiGroups: [""]
        apiVersions: [v1]
        resources: [pods]
---
apiVersion: kubevirt.io/v1
kind: KubeVirt
metadata: {{name: kubevirt, namespace: kubevirt}}
spec:
  configuration:
    developerConfiguration:
      featureGates: []
"""


def kubevirt_status_patch(kubevirt_version: str = versions.KUBEVIRT_VERSION, phase: str = "Deployed") -> str:
    return json.dumps({"status": {"phase": phase, "observedKubeVirtVersion": kubevirt_version,
                                  "conditions": [{"type": "Available", "status": "True"}]}})


def seed_presented_state(kubeconfig: Path, **kwargs: Any) -> None:
    """Apply :func:`presented_state_yaml` (and the KubeVirt CR's status) with kubectl."""
    subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "apply", "-f", "-"],
                   input=presented_state_yaml(**kwargs), capture_output=True, text=True, timeout=60,
                   check=True)
    version = kwargs.get("kubevirt_version", versions.KUBEVIRT_VERSION)
    subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "-n", "kubevirt", "patch", "kubevirt",
                    "kubevirt", "--subresource=status", "--type=merge", "-p", kubevirt_status_patch(version)],
                   capture_output=True, text=True, timeout=60, check=True)


def start_controller_manager(kubeconfig: Path, log: Path) -> subprocess.Popen[bytes]:
    """The stand-in controller manager (see :data:`CONTROLLER_MANAGER`) for a served simulated cluster."""
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-c", CONTROLLER_MANAGER, str(kubeconfig)], stdout=out,
                                stderr=subprocess.STDOUT)


def stop_process(proc: subprocess.Popen[bytes], grace: float = 3.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds (a simulated cluster's shutdown is not what these
    tests measure)."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
