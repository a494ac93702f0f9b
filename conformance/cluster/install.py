"""Installers for the kind backend: Kube-OVN, cert-manager and the Kube-OVN webhook, KubeVirt.

Each follows upstream's own kind recipe (kubeovn/kube-ovn ``Makefile`` / ``makefiles/kind.mk`` — ``kind.mk``
before v1.15 — at the release tags, e.g. ``kind-install-kubevirt`` L555-576 at v1.16.2):

* control plane untainted (``make untaint-control-plane``) and labelled ``kube-ovn/role=master``;
* Kube-OVN the way the tag's own CI installs it (``KubeOvnRelease.install_method``): the Helm chart v2
  from v1.16.0 (``make install-chart-v2``, values in ``clusters/kube-ovn-values-v2.yaml``), else the tag's
  ``dist/images/install.sh`` with its ``VERSION=`` lines rewritten as ``make kind-install`` does (also for
  v1.14.x/v1.15.x, which ship a chart v2 - it exists from v1.14.0 - that their CI never installs;
  environment in ``clusters/kube-ovn-install.env``) — keep-vm-ip on either way. The script's last two
  steps (copy ``kubectl-ko`` into the host's
  ``/usr/local/bin``, run ``kubectl ko diagnose``) are left out: a test run must not write into the
  host's system directories;
* cert-manager's release manifest, then the three cert-manager Deployments rolled out;
* the tag's ``yamls/webhook.yaml`` with every ``image:`` rewritten to the requested release (upstream's
  ``sed 's#image: .*#image: $(REGISTRY)/kube-ovn:$(VERSION)#'``: the file ships an older image), rolled
  out, and the running webhook container's image tag checked against the requested release;
* the worker nodes labelled ``kovc.io/vm-node=true`` (:data:`conformance.names.VM_NODE_LABEL`);
* KubeVirt's operator and CR at the requested release; ``virt-operator`` scaled to one replica; the CR
  patched with ``infra.replicas: 1``; with ``workloads.nodePlacement.nodeSelector`` = that label
  (virt-handler's DaemonSet has no node selector of its own and the control plane is untainted, so
  without it every node, the control plane included, gets ``kubevirt.io/schedulable=true`` and
  net.migration-downtime finds no node for its probe;
  ``kubevirt/kubevirt@v1.8.1:pkg/virt-operator/resource/apply/apps.go`` L376
  ``placement.InjectPlacementMetadata(kv.Spec.Workloads, …)``); with the feature gates the suite needs
  (``Snapshot``: virt-api refuses to create a ``VirtualMachineClone`` unless it is on —
  ``vmclone-admitter.go`` "snapshot feature gate is not enabled", v0.58.0 to v1.9.0 — which
  ``deny.clone`` needs); and with ``useEmulation: true`` when a node's ``/dev/kvm`` cannot be opened
  read-write (``false`` otherwise); then phase ``Deployed`` and condition ``Available``, and the observed
  version checked.

With ``--ip-family dual`` / ``--multus`` (issue 14, derivation in :mod:`.network`): the Kube-OVN step gets
``DUAL_STACK=true`` (install.sh) or ``clusters/kube-ovn-values-v2-dual.yaml`` (chart v2) and ``ovn-default``
is checked to be dual-stack; after the webhook, Multus (the release's pinned thick plugin) is applied and
awaited (no attachment network: the attachment scenarios create their own).

Every external program runs through :func:`run_program` (tests stand in ``kind``, ``helm``, ``docker``
and ``bash`` scripts); each step has a timeout and fails with a :class:`BackendError` naming the step,
the object and what was seen.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tenacity import retry, retry_if_exception, retry_if_exception_type, stop_after_delay, wait_exponential

from .. import USER_AGENT, _data, capabilities, versions
from ..names import VM_NODE_LABEL
from . import detect, network
from .base import BackendError
from .images import (
    CERT_MANAGER_DEPLOYMENTS,
    Manifest,
    RunVersions,
    kube_ovn_archive_name,
    kube_ovn_image,
    run_manifests,
)

Log = Callable[[str], None]

#: Seconds each step may take (upstream's budgets are 60 to 300 s per rollout with images preloaded;
#: these leave room for image pulls on a cold runner).
STEP_TIMEOUTS: dict[str, float] = {
    "kubectl": 60.0,
    "download": 300.0,
    "kube-ovn-chart": 900.0,
    "kube-ovn-script": 1500.0,
    "rollout": 600.0,
    "nodes-ready": 600.0,
    "kubevirt-api": 120.0,
    "kubevirt-deployed": 900.0,
    "webhook-ready": 180.0,
}
#: What ``kubectl apply`` prints while an admission webhook it needs is not serving yet.
WEBHOOK_STARTING = ("failed calling webhook", "no endpoints available for service",
                    "x509: certificate signed by unknown authority")
CONTROL_PLANE_TAINTS = ("node-role.kubernetes.io/master", "node-role.kubernetes.io/control-plane")
#: KubeVirt feature gates the suite needs: ``Snapshot`` for ``VirtualMachineClone`` (deny.clone).
#: Live migration needs none (the LiveMigration feature gate went GA in KubeVirt v0.56).
KUBEVIRT_FEATURE_GATES = ("Snapshot",)
#: install.sh is cut where it starts writing into the host (kubectl-ko into /usr/local/bin).
INSTALL_SH_CUT = 'echo "[Step 5/6]'


def default_log(line: str) -> None:
    """Progress on stderr, time-stamped so a real run's step durations can be read off."""
    print(f"kovc kind [{time.strftime('%H:%M:%S')}]: {line}", file=sys.stderr, flush=True)


def _one_line(text: str, limit: int = 300) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    line = lines[-1] if lines else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _shown(argv: Sequence[str]) -> str:
    words = [Path(argv[0]).name, *argv[1:]] if argv else []
    text = shlex.join(words)
    return text if len(text) <= 160 else text[:159] + "…"


def run_program(argv: Sequence[str], *, step: str, obj: str, timeout: float,
                env: Mapping[str, str] | None = None, input_text: str | None = None, check: bool = True,
                cwd: Path | None = None, stdin_file: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run one external program (the only place this package starts one, besides pytest-kind's own
    ``kind`` calls). :class:`BackendError` naming ``step`` and ``obj`` when it cannot be started, runs
    past ``timeout`` seconds or (with ``check``) exits non-zero. ``stdin_file``: a file fed to its
    standard input as bytes (e.g. an image archive)."""
    try:
        if stdin_file is not None:
            with stdin_file.open("rb") as fh:
                proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                                      env=dict(env) if env else None, stdin=fh, cwd=cwd, check=False)
        else:
            proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                                  env=dict(env) if env else None, input=input_text, cwd=cwd, check=False)
    except FileNotFoundError:
        raise BackendError(f"{step}: {obj}: program {argv[0]!r} not found") from None
    except PermissionError:
        raise BackendError(f"{step}: {obj}: program {argv[0]!r} is not executable") from None
    except subprocess.TimeoutExpired as err:
        out = err.stderr or err.stdout or ""
        seen = _one_line(out.decode() if isinstance(out, bytes) else out) or "no output"
        raise BackendError(f"{step}: {obj}: `{_shown(argv)}` did not finish within {timeout:.0f}s "
                           f"(last output: {seen})") from None
    if check and proc.returncode != 0:
        seen = _one_line(proc.stderr) or _one_line(proc.stdout) or "no output"
        raise BackendError(f"{step}: {obj}: `{_shown(argv)}` exited {proc.returncode}: {seen}")
    return proc


def download(url: str, dest: Path, *, step: str, timeout: float | None = None) -> Path:
    """Fetch ``url`` into ``dest`` (atomically); :class:`BackendError` naming the URL otherwise."""
    timeout = STEP_TIMEOUTS["download"] if timeout is None else timeout
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp, tmp.open("wb") as out:
            shutil.copyfileobj(resp, out)
    except (urllib.error.URLError, OSError, ValueError) as err:
        tmp.unlink(missing_ok=True)
        reason = getattr(err, "reason", None) or err
        raise BackendError(f"{step}: download {url} failed: {_one_line(str(reason))} (air-gapped? fetch "
                           "the files `kovc images --manifests` lists into a folder and pass "
                           "--manifests-dir)") from None
    tmp.replace(dest)
    return dest


def rewrite_webhook_image(text: str, image: str) -> str:
    """Upstream's ``sed 's#image: .*#image: <image>#'`` over ``yamls/webhook.yaml``."""
    return re.sub(r"image: .*", f"image: {image}", text)


def prepare_install_sh(text: str, version: str) -> str:
    """Upstream's ``sed 's/VERSION=.*/VERSION=<version>/'`` over ``install.sh``, cut before the
    step that copies ``kubectl-ko`` into the host's ``/usr/local/bin``."""
    text = re.sub(r"VERSION=.*", f"VERSION={version}", text)
    cut = text.find(INSTALL_SH_CUT)
    if cut >= 0:
        text = text[:cut] + 'echo "kovc: install.sh steps 5-6 (kubectl-ko plugin, diagnose) skipped"\n'
    return text


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines (``#`` comments, blank lines ignored)."""
    env: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        env[key.strip()] = value.strip()
    return env


class Sources:
    """Where each upstream file comes from: ``--manifests-dir`` when given, else the release URL
    (downloaded once into the work folder)."""

    def __init__(self, v: RunVersions, workdir: Path, manifests_dir: Path | None) -> None:
        self.v = v
        self.workdir = workdir
        self.manifests_dir = manifests_dir
        self.manifests = {m.filename: m for m in run_manifests(v)}
        self._tree: Path | None = None

    def describe(self, m: Manifest) -> str:
        if self.manifests_dir is not None:
            return f"{self.manifests_dir / m.filename} (local copy of {m.url})"
        return m.url

    def missing_local(self) -> list[str]:
        """Files ``--manifests-dir`` lacks (an extracted ``kube-ovn-<v>/`` tree counts for the archive)."""
        if self.manifests_dir is None:
            return []
        out = []
        for name in self.manifests:
            if (self.manifests_dir / name).is_file():
                continue
            if name.endswith(".tar.gz") and (self.manifests_dir / name.removesuffix(".tar.gz")).is_dir():
                continue
            out.append(name)
        return out

    def path(self, filename: str, step: str) -> Path:
        m = self.manifests[filename]
        if self.manifests_dir is not None:
            local = self.manifests_dir / filename
            if not local.is_file():
                raise BackendError(f"{step}: {local} not found (--manifests-dir must hold {filename}, "
                                   f"a copy of {m.url})")
            return local
        dest = self.workdir / "downloads" / filename
        return dest if dest.is_file() else download(m.url, dest, step=step)

    def text(self, filename: str, step: str) -> str:
        return self.path(filename, step).read_text(encoding="utf-8")

    def kube_ovn_tree(self, step: str) -> Path:
        """The Kube-OVN source tree at the tag (charts, install.sh, yamls/webhook.yaml), unpacked once."""
        if self._tree is None:
            self._tree = self._unpack(step)
        return self._tree

    def _unpack(self, step: str) -> Path:
        archive = kube_ovn_archive_name(self.v.kube_ovn)
        if self.manifests_dir is not None:
            tree = self.manifests_dir / archive.removesuffix(".tar.gz")
            if tree.is_dir():
                return tree
        tarball = self.path(archive, step)
        target = self.workdir / "kube-ovn-src" / self.v.kube_ovn
        wanted = ("charts/", "dist/images/install.sh", "yamls/webhook.yaml")
        try:
            with tarfile.open(tarball) as tar:
                members = []
                top = ""
                for member in tar.getmembers():
                    head, _, rest = member.name.partition("/")
                    top = top or head
                    if head == top and any(rest == w or (w.endswith("/") and rest.startswith(w))
                                           for w in wanted):
                        members.append(member)
                if not members:
                    raise BackendError(f"{step}: {tarball} holds no charts/, dist/images/install.sh or "
                                       f"yamls/webhook.yaml under {top or 'its top folder'}: not a Kube-OVN "
                                       "source archive")
                tar.extractall(target, members=members, filter="data")
        except (tarfile.TarError, OSError) as err:
            raise BackendError(f"{step}: {tarball} cannot be unpacked: {_one_line(str(err))}") from None
        return target / top


class Installer:
    """Runs the install steps against one cluster (kubeconfig) with kubectl and helm."""

    def __init__(self, v: RunVersions, *, kubeconfig: Path, workdir: Path, sources: Sources,
                 kubectl: str = "kubectl", helm: str = "helm", log: Log = default_log) -> None:
        self.v = v
        self.release = versions.kube_ovn_release(v.kube_ovn)
        self.kubeconfig = kubeconfig
        self.workdir = workdir
        self.sources = sources
        self.kubectl_bin = kubectl
        self.helm_bin = helm
        self.log = log
        self.warnings: list[str] = []
        self._api: Any = None
        path = os.environ.get("PATH", "")
        if os.sep in kubectl:  # an explicit kubectl also serves install.sh, which calls `kubectl`
            path = os.pathsep.join([str(Path(kubectl).parent), path])
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig), "PATH": path}

    # -- helpers ---------------------------------------------------------------------------------

    def kubectl(self, *args: str, step: str, obj: str, timeout: float | None = None,
                check: bool = True) -> subprocess.CompletedProcess[str]:
        timeout = STEP_TIMEOUTS["kubectl"] if timeout is None else timeout
        return run_program([self.kubectl_bin, *args], step=step, obj=obj, timeout=timeout + 30, env=self.env,
                           check=check)

    def kubectl_json(self, *args: str, step: str, obj: str) -> Any:
        out = self.kubectl(*args, "-o", "json", step=step, obj=obj).stdout
        try:
            return json.loads(out)
        except ValueError:
            raise BackendError(f"{step}: {obj}: kubectl printed no JSON: {_one_line(out)}") from None

    def api(self) -> Any:
        if self._api is None:
            self._api = detect.connect(str(self.kubeconfig))
        return self._api

    def close(self) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None

    def apply_file(self, path: Path, *, step: str, obj: str) -> None:
        """``kubectl apply -f``, retried while an admission webhook the manifest depends on is still
        starting (cert-manager's for the webhook's Certificate, virt-operator's for the KubeVirt CR:
        ``failed calling webhook`` right after their rollout) — up to ``STEP_TIMEOUTS["webhook-ready"]``."""

        def starting_webhook(exc: BaseException) -> bool:
            return isinstance(exc, BackendError) and any(s in str(exc) for s in WEBHOOK_STARTING)

        @retry(retry=retry_if_exception(starting_webhook), stop=stop_after_delay(STEP_TIMEOUTS["webhook-ready"]),
               wait=wait_exponential(multiplier=0.5, max=10), reraise=True)
        def apply() -> None:
            self.kubectl("apply", "-f", str(path), step=step, obj=obj, timeout=STEP_TIMEOUTS["kubectl"] * 2)

        apply()

    def rollout(self, kind: str, name: str, namespace: str, *, step: str,
                timeout: float | None = None) -> None:
        timeout = STEP_TIMEOUTS["rollout"] if timeout is None else timeout
        self.kubectl("-n", namespace, "rollout", "status", f"{kind}/{name}", f"--timeout={int(timeout)}s",
                     step=step, obj=f"{kind} {namespace}/{name}", timeout=timeout)

    def write(self, name: str, text: str) -> Path:
        path = self.workdir / "manifests" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    # -- steps -----------------------------------------------------------------------------------

    def untaint_control_plane(self) -> list[str]:
        """Remove the control-plane NoSchedule taints (upstream ``make untaint-control-plane``)."""
        step = "untaint-control-plane"
        nodes = self.kubectl_json("get", "nodes", step=step, obj="nodes").get("items") or []
        untainted = []
        for node in nodes:
            name = node["metadata"]["name"]
            for taint in (node.get("spec") or {}).get("taints") or []:
                if taint.get("key") in CONTROL_PLANE_TAINTS and taint.get("effect") == "NoSchedule":
                    self.kubectl("taint", "node", name, f"{taint['key']}:NoSchedule-", step=step,
                                 obj=f"node {name}")
                    untainted.append(name)
        return untainted

    def label_masters(self) -> list[str]:
        """``kubectl label node --overwrite -l node-role.kubernetes.io/control-plane
        kube-ovn/role=master`` (upstream ``make install-chart``; install.sh step 1 does the same)."""
        step = "label-masters"
        selector = "node-role.kubernetes.io/control-plane"
        nodes = self.kubectl_json("get", "nodes", "-l", selector, step=step,
                                  obj=f"nodes with label {selector}").get("items") or []
        if not nodes:
            raise BackendError(f"{step}: nodes: expected a control-plane node (label {selector}) to label "
                               "kube-ovn/role=master, saw none")
        self.kubectl("label", "node", "--overwrite", "-l", selector, "kube-ovn/role=master", step=step,
                     obj="control-plane nodes")
        return [n["metadata"]["name"] for n in nodes]

    def label_vm_nodes(self) -> list[str]:
        """Label every node without ``node-role.kubernetes.io/control-plane`` ``kovc.io/vm-node=true``
        (the nodes KubeVirt may run VMs on); at least two are needed for live migration."""
        step = "label-vm-nodes"
        nodes = self.kubectl_json("get", "nodes", "-l", "!node-role.kubernetes.io/control-plane", step=step,
                                  obj="nodes without the control-plane role").get("items") or []
        names = sorted(n["metadata"]["name"] for n in nodes)
        if len(names) < 2:
            raise BackendError(f"{step}: nodes: expected at least two worker nodes to run VMs (live migration "
                               f"needs a source and a target), saw {', '.join(names) or 'none'}")
        self.kubectl("label", "node", "--overwrite", *names, f"{VM_NODE_LABEL}=true", step=step,
                     obj=f"nodes {', '.join(names)}")
        return names

    def install_kube_ovn(self) -> str:
        """Kube-OVN at the requested release; returns how (chart v2 / install.sh)."""
        step = "kube-ovn"
        tree = self.sources.kube_ovn_tree(step)
        clusters = _data.data_dir("clusters")
        if self.release.install_method == "chart-v2":
            chart = tree / "charts" / "kube-ovn-v2"
            if not (chart / "Chart.yaml").is_file():
                raise BackendError(f"{step}: chart {chart}: no Chart.yaml (Kube-OVN {self.v.kube_ovn} should "
                                   "ship charts/kube-ovn-v2)")
            timeout = STEP_TIMEOUTS["kube-ovn-chart"]
            dual = (["--values", str(clusters / network.CHART_V2_DUAL_VALUES)] if self.v.ip_family == "dual"
                    else [])
            run_program([self.helm_bin, "upgrade", "--install", "kubeovn", str(chart),
                         "--kubeconfig", str(self.kubeconfig), "--wait", "--timeout", f"{int(timeout)}s",
                         "--values", str(clusters / "kube-ovn-values-v2.yaml"), *dual,
                         "--set", f"global.images.kubeovn.tag={self.v.kube_ovn}"],
                        step=step, obj=f"helm release kubeovn (chart {chart.name} {self.v.kube_ovn})",
                        timeout=timeout + 60, env=self.env)
            how = f"Helm chart v2 ({chart.name} of {self.v.kube_ovn})"
        else:
            script = tree / "dist" / "images" / "install.sh"
            if not script.is_file():
                raise BackendError(f"{step}: {script} not found (Kube-OVN {self.v.kube_ovn} source tree)")
            prepared = self.write(f"install-{self.v.kube_ovn}.sh",
                                  prepare_install_sh(script.read_text(encoding="utf-8"), self.v.kube_ovn))
            env = {**self.env, **read_env_file(clusters / "kube-ovn-install.env")}
            if self.v.ip_family == "dual":  # upstream `make kind-install-dual`: DUAL_STACK=true
                env["DUAL_STACK"] = "true"
            run_program(["bash", str(prepared)], step=step, obj=f"install.sh of {self.v.kube_ovn}",
                        timeout=STEP_TIMEOUTS["kube-ovn-script"], env=env, cwd=prepared.parent)
            how = f"dist/images/install.sh of {self.v.kube_ovn}"
        self.rollout("deployment", detect.KUBE_OVN_CONTROLLER, "kube-system", step=step)
        timeout = STEP_TIMEOUTS["nodes-ready"]
        self.kubectl("wait", "node", "--all", "--for=condition=Ready", f"--timeout={int(timeout)}s",
                     step=step, obj="nodes (Ready once the CNI runs)", timeout=timeout)
        return how

    def install_cert_manager(self) -> None:
        step = "cert-manager"
        path = self.sources.path("cert-manager.yaml", step)
        self.apply_file(path, step=step, obj=f"cert-manager {self.v.cert_manager} manifest")
        for name in CERT_MANAGER_DEPLOYMENTS:
            self.rollout("deployment", name, "cert-manager", step=step)

    def install_webhook(self) -> None:
        step = "webhook"
        tree = self.sources.kube_ovn_tree(step)
        source = tree / "yamls" / "webhook.yaml"
        if not source.is_file():
            raise BackendError(f"{step}: {source} not found (Kube-OVN {self.v.kube_ovn} source tree)")
        image = kube_ovn_image(self.v.kube_ovn)
        path = self.write(f"webhook-{self.v.kube_ovn}.yaml",
                          rewrite_webhook_image(source.read_text(encoding="utf-8"), image))
        self.apply_file(path, step=step, obj=f"yamls/webhook.yaml of {self.v.kube_ovn} (image {image})")
        self.rollout("deployment", detect.KUBE_OVN_WEBHOOK, "kube-system", step=step)
        self.check_webhook_image(step)

    def check_webhook_image(self, step: str) -> None:
        """The running webhook container's image tag equals the requested release."""
        api = self.api()
        ref = detect.find_webhook(api)
        if ref is None:
            raise BackendError(f"{step}: ValidatingWebhookConfiguration: expected an entry "
                               f"{detect.WEBHOOK_ENTRY} after applying yamls/webhook.yaml, saw none")
        workload = detect.webhook_deployment(api, ref)
        if workload is None:
            raise BackendError(f"{step}: Deployment {detect.KUBE_OVN_WEBHOOK}: not found after applying "
                               "yamls/webhook.yaml")
        images = detect.running_images(api, workload, detect.KUBE_OVN_WEBHOOK)
        where = f"running pods of Deployment {workload.namespace}/{workload.name}"
        if not images:
            images = [workload.image]
            where = f"Deployment {workload.namespace}/{workload.name} (no running pod reported)"
            self.warnings.append(f"webhook image check read the Deployment's pod template: no running "
                                 f"{detect.KUBE_OVN_WEBHOOK} pod was reported")
        wrong = sorted({i for i in images if detect.image_tag(i) != self.v.kube_ovn})
        if wrong:
            raise BackendError(f"{step}: {where}: expected the kube-ovn-webhook container's image tag "
                               f"{self.v.kube_ovn}, saw {', '.join(wrong)}")

    def install_kubevirt(self, *, use_emulation: bool) -> None:
        step = "kubevirt"
        operator = self.sources.path("kubevirt-operator.yaml", step)
        tags = set(re.findall(r"virt-operator:(v[0-9][^\s\"'@]*)", operator.read_text(encoding="utf-8")))
        if tags and self.v.kubevirt not in tags:
            raise BackendError(f"{step}: {operator}: expected virt-operator:{self.v.kubevirt}, the file "
                               f"deploys virt-operator:{', '.join(sorted(tags))}")
        self.apply_file(operator, step=step, obj=f"KubeVirt {self.v.kubevirt} operator manifest")
        self.kubectl("-n", "kubevirt", "patch", "deployment", "virt-operator", "--type=merge",
                     "-p", '{"spec":{"replicas":1}}', step=step, obj="deployment kubevirt/virt-operator")
        self.rollout("deployment", "virt-operator", "kubevirt", step=step)
        self.wait_kubevirt_api(step)
        self.apply_file(self.sources.path("kubevirt-cr.yaml", step), step=step,
                        obj=f"KubeVirt {self.v.kubevirt} CR manifest")
        current = self.kubectl_json("-n", "kubevirt", "get", "kubevirt", "kubevirt", step=step,
                                    obj="KubeVirt kubevirt/kubevirt")
        dev = ((current.get("spec") or {}).get("configuration") or {}).get("developerConfiguration") or {}
        gates = list(dev.get("featureGates") or [])
        gates += [g for g in KUBEVIRT_FEATURE_GATES if g not in gates]
        # Explicit either way: a reused cluster may carry an earlier run's setting.
        dev_patch: dict[str, Any] = {"featureGates": gates, "useEmulation": use_emulation}
        patch = {"spec": {"configuration": {"developerConfiguration": dev_patch}, "infra": {"replicas": 1},
                          "workloads": {"nodePlacement": {"nodeSelector": {VM_NODE_LABEL: "true"}}}}}
        self.kubectl("-n", "kubevirt", "patch", "kubevirt", "kubevirt", "--type=merge",
                     "-p", json.dumps(patch), step=step, obj="KubeVirt kubevirt/kubevirt")
        timeout = STEP_TIMEOUTS["kubevirt-deployed"]
        self.kubectl("-n", "kubevirt", "wait", "kubevirt/kubevirt", "--for=jsonpath={.status.phase}=Deployed",
                     f"--timeout={int(timeout)}s", step=step, obj="KubeVirt kubevirt/kubevirt phase Deployed",
                     timeout=timeout)
        self.kubectl("-n", "kubevirt", "wait", "kubevirt/kubevirt", "--for=condition=Available",
                     f"--timeout={int(timeout)}s", step=step,
                     obj="KubeVirt kubevirt/kubevirt condition Available", timeout=timeout)
        status = detect.kubevirt_status(self.api())
        seen = status.observed_version if status else "no KubeVirt CR"
        if seen != self.v.kubevirt:
            raise BackendError(f"{step}: KubeVirt kubevirt/kubevirt: expected observedKubeVirtVersion "
                               f"{self.v.kubevirt}, saw {seen or '(empty)'}")

    def wait_kubevirt_api(self, step: str) -> None:
        """Until the operator's CRD serves ``kubevirts.kubevirt.io`` (upstream waits for the CRD)."""
        timeout = STEP_TIMEOUTS["kubevirt-api"]

        @retry(retry=retry_if_exception_type(BackendError), stop=stop_after_delay(timeout),
               wait=wait_exponential(multiplier=0.2, max=5), reraise=True)
        def served() -> None:
            self.kubectl("-n", "kubevirt", "get", "kubevirts.kubevirt.io", "-o", "name", step=step,
                         obj="API kubevirts.kubevirt.io (CRD from the operator manifest)", timeout=30)

        served()

    # -- issue 14: dual-stack, Multus ---------------------------------------------------------------

    def check_dual_stack(self) -> str:
        """``ovn-default`` is ``protocol: Dual`` with an IPv4 and an IPv6 CIDR (what ``--ip-family dual``
        installed); returns its ``cidrBlock``."""
        step = "dual-stack"
        name = "ovn-default"
        subnet = self.kubectl_json("get", "subnets.kubeovn.io", name, step=step, obj=f"Subnet {name}")
        spec = subnet.get("spec") or {}
        # after the install the controller has defaulted protocol, so it must say Dual here
        if spec.get("protocol") != "Dual" or capabilities.subnet_families(subnet) != {4, 6}:
            raise BackendError(f"{step}: Subnet {name}: expected protocol Dual with an IPv4 and an IPv6 CIDR "
                               f"after the dual-stack install, saw protocol {spec.get('protocol') or '(none)'} "
                               f"cidrBlock {spec.get('cidrBlock') or '(none)'}")
        return str(spec.get("cidrBlock"))

    def install_multus(self) -> str:
        """``make kind-install-multus`` of the release (``network.MULTUS``); returns the Multus image."""
        step = "multus"
        multus = self.v.multus_release
        if multus is None:
            raise BackendError(f"{step}: Kube-OVN {self.v.kube_ovn}: no pinned Multus release to install")
        text = self.sources.text(network.MULTUS_MANIFEST, step)
        if ":snapshot-thick" not in text and multus.image not in text:
            raise BackendError(f"{step}: {self.sources.describe(self.sources.manifests[network.MULTUS_MANIFEST])}: "
                               f"expected the thick plugin's image ...:snapshot-thick (or {multus.image}), "
                               "saw neither: not multus-daemonset-thick.yml")
        path = self.write(f"multus-{multus.version}.yaml", text.replace(":snapshot-thick", f":{multus.version}-thick"))
        self.apply_file(path, step=step, obj=f"Multus {multus.version} ({network.MULTUS_MANIFEST})")
        # The manifest creates the NetworkAttachmentDefinition CRD; the attachment scenarios need it served.
        crd = network.NAD_CRD
        if self.kubectl("get", "crd", crd, "-o", "name", step=step, obj=f"CRD {crd}", check=False).returncode == 0:
            timeout = STEP_TIMEOUTS["kubevirt-api"]
            self.kubectl("wait", f"crd/{crd}", "--for=condition=Established", f"--timeout={int(timeout)}s",
                         step=step, obj=f"CRD {crd}", timeout=timeout)
        if multus.set_limits:
            self.kubectl("-n", "kube-system", "set", "resources", f"ds/{network.MULTUS_DAEMONSET}", "-c",
                         "kube-multus", "--limits=cpu=200m,memory=200Mi", step=step,
                         obj=f"daemonset kube-system/{network.MULTUS_DAEMONSET}")
        self.rollout("daemonset", network.MULTUS_DAEMONSET, "kube-system", step=step)
        return multus.image
