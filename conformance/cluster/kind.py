"""``--backend kind``: a kind cluster with Kube-OVN, its webhook and KubeVirt, built for the run.

Built on ``pytest_kind.KindCluster`` from pytest-kind-ng (create with our config file, delete, load
images); never its ``kind_cluster`` fixture, which creates a single-node cluster with the default CNI.
The library's default kind (v0.17.0, downloaded on first use) cannot create current node images, and
kind supports a node image only with the release it shipped with, so the kind release paired with the
run's ``kindest/node`` (``versions.kind_release_for``) is required: an older kind is refused, another
newer one is used with a warning in the run log. Which kind: ``--kind-bin``, else ``KIND_VERSION`` -
the ``kind`` on ``PATH`` when it is that release (as CI installs it), else downloaded by pytest-kind for
this platform - else ``kind`` on ``PATH``.

``provision`` (see :meth:`KindBackend.plan` for the steps): preflight (kind, kubectl, helm, docker,
``--manifests-dir``) before anything is created; ``kind create cluster --config`` (our
``clusters/kind-config.yaml``: no default CNI, pod subnet 10.16.0.0/16, 1 control plane + 2 workers);
images preloaded (:meth:`KindBackend.preload_images`: ``kind load docker-image``, falling back as upstream's
``makefiles/kind.mk`` L47-66 at v1.16.2 does - Docker 29's containerd image store makes ``kind load
docker-image`` fail with "content digest … not found", kind#3795/#4066 - to ``docker save`` + ``kind load
image-archive``, then to ``ctr -n k8s.io images import`` on every node; the run log says which path
each image took); then the installers of :mod:`.install`; then the
cluster is read back (:mod:`.detect`). Any failure, Ctrl-C included, deletes a cluster this run
created (after ``kind export logs`` into ``<report dir>/cluster-logs/``, so the logs travel with the
report bundle - the CI artifact - and its MANIFEST.sha256) unless ``--keep-cluster``; a cluster that
existed before the run (same name, e.g. kept by an earlier ``--keep-cluster`` run) is reused and
never deleted.

Issue 14 (:mod:`.network`): ``--ip-family dual`` renders the config dual-stack and installs a dual-stack
``ovn-default`` as the release's ``make kind-init-dual kind-install-dual`` does (checked after the
install); ``--multus`` installs Multus as its ``make kind-install-multus`` does, and nothing more: the attachment
scenarios create their own NetworkAttachmentDefinition and Subnet in their run-owned namespaces.

``/dev/kvm``: checked on every VM node container before KubeVirt is installed (kind nodes are privileged
containers, so they see the host's device): present (``test -c /dev/kvm``) is not enough, it must open
read-write for the user QEMU runs as in virt-launcher - uid 107 (``NonRootUID``,
``kubevirt/kubevirt@v1.8.1:pkg/util/util.go`` L30) - checked with ``<docker|podman> exec --user 107:107
<node> sh -c 'exec 3<>/dev/kvm'`` (a GitHub runner's ``/dev/kvm`` is root:kvm 0660 unless a udev rule opens
it). When any VM node fails, the KubeVirt CR gets ``useEmulation: true`` (QEMU TCG; guests boot several
times slower, so the suite multiplies its VM waits, see ``settings.EMULATION_VM_WAIT_FACTOR``). The
alternative, a node's allocatable ``devices.kubevirt.io/kvm``, only appears once virt-handler runs, after
the CR is configured.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from .. import _data, versions
from . import detect, network
from .base import BackendError, ClusterInfo
from .images import RunVersions, run_images, run_manifests
from .install import STEP_TIMEOUTS, Installer, Log, Sources, default_log, run_program

KIND_CONFIG = "kind-config.yaml"
#: The uid QEMU runs as in virt-launcher (``NonRootUID``, kubevirt/kubevirt@v1.8.1:pkg/util/util.go L30).
QEMU_UID = 107
#: Folder of the report bundle that receives ``kind export logs`` after a failed install.
CLUSTER_LOGS = "cluster-logs"
_KIND_VERSION_RE = re.compile(r"\bv?(\d+)\.(\d+)\.(\d+)")


class KindOptions(Protocol):
    """What the kind backend reads from ``select.BackendOptions`` (read-only)."""

    @property
    def kube_ovn_version(self) -> str | None: ...

    @property
    def kubevirt_version(self) -> str | None: ...

    @property
    def k8s_version(self) -> str | None: ...

    @property
    def keep_cluster(self) -> bool: ...

    @property
    def kind_bin(self) -> str | None: ...

    @property
    def cluster_name(self) -> str: ...

    @property
    def kind_image(self) -> str | None: ...

    @property
    def manifests_dir(self) -> str | None: ...

    @property
    def report_dir(self) -> Path: ...


def parse_kind_version(text: str) -> tuple[int, int, int] | None:
    m = _KIND_VERSION_RE.search(text)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (the kubeadm patches) as ``|`` blocks, as in ``clusters/kind-config.yaml``."""


def _str_block(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None)


_BlockDumper.add_representer(str, _str_block)


def render_kind_config(node_image: str, ip_family: str = "ipv4", kube_ovn: str | None = None) -> str:
    """``clusters/kind-config.yaml`` with every node's image set to ``node_image``; with ``ip_family``
    ``dual``, made dual-stack as ``kube_ovn``'s ``kind-init-dual`` does (:func:`network.dual_stack_kind_config`)."""
    source = _data.data_dir("clusters") / KIND_CONFIG
    text = re.sub(r"(?m)^(\s+image:\s*).*$", lambda m: f"{m.group(1)}{node_image}",
                  source.read_text(encoding="utf-8"))
    doc = yaml.safe_load(text)
    nodes = doc.get("nodes") or []
    if not nodes or any(n.get("image") != node_image for n in nodes):
        raise BackendError(f"kind config {source}: expected every node's image to become {node_image}, saw "
                           f"{[n.get('image') for n in nodes]}")
    if ip_family == "dual":
        release = kube_ovn or versions.KUBE_OVN_VERSION
        dual = network.dual_stack_kind(release)
        body = yaml.dump(network.dual_stack_kind_config(doc, release), Dumper=_BlockDumper, sort_keys=False)
        return (f"# rendered by kovc from clusters/{KIND_CONFIG} (node image {node_image}), dual-stack as "
                f"Kube-OVN {release}'s `make kind-init-dual`\n# ({dual.source})\n{body}")
    return f"# rendered by kovc from clusters/{KIND_CONFIG} (node image {node_image})\n{text}"


def container_runtime() -> str:
    """The program kind drives (``KIND_EXPERIMENTAL_PROVIDER`` podman/nerdctl, else docker)."""
    provider = os.environ.get("KIND_EXPERIMENTAL_PROVIDER", "").strip()
    return provider if provider in ("podman", "nerdctl") else "docker"


@dataclass
class KindBinary:
    path: str | None
    how: str
    #: ``KIND_VERSION`` to download when ``path`` is not there yet.
    download_version: str | None = None


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


class KindBackend:
    name = "kind"

    def __init__(self, options: KindOptions, *, log: Log | None = None) -> None:
        self.options = options
        self.log = log or default_log
        self.cluster_name = options.cluster_name or "kovc"
        self.keep_cluster = bool(options.keep_cluster)
        mdir = options.manifests_dir
        self.manifests_dir = Path(mdir).expanduser().resolve() if mdir else None
        self.kubectl_bin: str | None = getattr(options, "kind_kubectl_bin", None)
        report_dir = getattr(options, "report_dir", None)
        #: Where ``kind export logs`` writes after a failed install: inside the report bundle.
        self.logs_dir = Path(report_dir).expanduser().resolve() / CLUSTER_LOGS if report_dir else None
        self.exported_logs: Path | None = None

    # -- inputs ----------------------------------------------------------------------------------

    @property
    def ip_family(self) -> str:
        return str(getattr(self.options, "ip_family", None) or network.DEFAULT_IP_FAMILY)

    @property
    def multus(self) -> bool:
        return bool(getattr(self.options, "multus", False))

    def versions(self) -> RunVersions:
        source = getattr(self.options, "upgrade_from", None) or self.options.kube_ovn_version
        network.check_options("kind", ip_family=self.ip_family, multus=self.multus, kube_ovn_version=source)
        try:
            # An upgrade run installs the source release first (``upgrade`` moves it on).
            return RunVersions.resolve(source, self.options.kubevirt_version, self.options.k8s_version,
                                       self.options.kind_image, ip_family=self.ip_family, multus=self.multus)
        except versions.VersionError as err:
            raise BackendError(str(err)) from None

    def kind_binary(self, cache_dir: Path | None = None) -> KindBinary:
        """Which kind this run uses (nothing is run or downloaded here)."""
        if self.options.kind_bin:
            given = self.options.kind_bin
            return KindBinary(str(Path(given).expanduser()), f"--kind-bin {given}")
        wanted = os.environ.get("KIND_VERSION", "").strip()
        if wanted:
            path = str(cache_dir / f"kind-{wanted}") if cache_dir else None
            return KindBinary(path, f"KIND_VERSION={wanted} (downloaded by pytest-kind)", wanted)
        found = shutil.which("kind")
        return KindBinary(found, f"kind on PATH ({found})" if found else "kind on PATH (not found)")

    def kind_pair(self, v: RunVersions) -> tuple[str, str]:
        """The kind release paired with this run's node image, and why (``versions.kind_release_for``)."""
        return versions.kind_release_for(v.kubernetes)

    def _min_version_error(self, seen: str, binary: str, wanted: str) -> BackendError:
        return BackendError(f"kind-version: {binary}: kind >= {wanted} is required (older kind cannot create "
                            f"the node image; {wanted} is the release paired with it), saw {seen}; pass "
                            f"--kind-bin PATH or set KIND_VERSION={wanted}")

    # -- plan ------------------------------------------------------------------------------------

    def steps(self, v: RunVersions) -> list[tuple[str, str]]:
        release = versions.kube_ovn_release(v.kube_ovn)
        dual = v.ip_family == "dual"
        if release.install_method == "chart-v2":
            kube_ovn = (f"helm upgrade --install kubeovn charts/kube-ovn-v2 (of {v.kube_ovn}) --wait "
                        "--values clusters/kube-ovn-values-v2.yaml "
                        f"{'--values clusters/' + network.CHART_V2_DUAL_VALUES + ' (stack Dual) ' if dual else ''}"
                        f"--set global.images.kubeovn.tag={v.kube_ovn} (keep-vm-ip on); rollout "
                        "kube-ovn-controller; nodes Ready")
        else:
            kube_ovn = (f"dist/images/install.sh of {v.kube_ovn} with VERSION={v.kube_ovn} (upstream's sed), "
                        "environment clusters/kube-ovn-install.env (ENABLE_KEEP_VM_IP=true"
                        f"{'; DUAL_STACK=true as `make kind-install-dual`' if dual else ''}), stopped before "
                        "its kubectl-ko step; rollout kube-ovn-controller; nodes Ready")
        multus = v.multus_release
        extra_steps: list[tuple[str, str]] = []
        if dual:
            extra_steps.append(("dual-stack", "kubectl get subnet ovn-default: expect protocol Dual with an IPv4 "
                                              "and an IPv6 CIDR"))
        if multus is not None:
            extra_steps += [
                ("multus", f"Multus {multus.version} thick plugin as `make kind-install-multus` ({multus.source}): "
                           f"{network.MULTUS_MANIFEST} with :snapshot-thick rewritten to :{multus.version}-thick; "
                           f"kubectl apply; wait CRD {network.NAD_CRD} Established (where the cluster serves CRDs; "
                           "the attachment scenarios create their own NetworkAttachmentDefinition and Subnet)"
                           + ("; kubectl -n kube-system set resources ds/kube-multus-ds -c kube-multus "
                              "--limits=cpu=200m,memory=200Mi" if multus.set_limits else "")
                           + "; rollout status ds/kube-multus-ds"),
            ]
        keep = "kept (--keep-cluster)" if self.keep_cluster else "deleted (also after a failure)"
        return [
            ("preflight", f"kind {self.kind_pair(v)[0]} (`kind version`; older refused, newer warned), kubectl, "
                          f"{'helm, ' if release.install_method == 'chart-v2' else 'bash, '}{container_runtime()}"
                          f"{', --manifests-dir files' if self.manifests_dir else ''}; nothing is created "
                          "if one is missing"),
            ("create-cluster", f"kind create cluster --name={self.cluster_name} --config "
                               f"<workdir>/{KIND_CONFIG} --image={v.kind_image} (1 control plane + 2 "
                               f"workers{', dual-stack: config below' if dual else ''}); a cluster of that "
                               "name that already exists is reused and left in place"),
            ("preload-images", f"kind load docker-image for each image below ({container_runtime()} pull "
                               "first when missing locally; an image that cannot be pulled is left to the "
                               f"nodes); when that fails (Docker 29 containerd store), {container_runtime()} "
                               "save + kind load image-archive, then ctr -n k8s.io images import on every "
                               "node (upstream kind.mk); the log names each image's path"),
            ("untaint-control-plane", "kubectl taint node <control-plane> node-role.kubernetes.io/"
                                      "control-plane:NoSchedule- (upstream untaint-control-plane)"),
            ("label-masters", "kubectl label node --overwrite -l node-role.kubernetes.io/control-plane "
                              "kube-ovn/role=master"),
            ("label-vm-nodes", "kubectl label node --overwrite <every node without the control-plane role> "
                               "kovc.io/vm-node=true (at least two: the VM nodes)"),
            ("kube-ovn", kube_ovn),
            *[s for s in extra_steps if s[0] == "dual-stack"],
            ("cert-manager", f"kubectl apply -f cert-manager.yaml ({v.cert_manager}); rollout status "
                             "cert-manager, cert-manager-cainjector, cert-manager-webhook"),
            ("webhook", f"kubectl apply -f yamls/webhook.yaml of {v.kube_ovn} with image: rewritten to "
                        f"docker.io/kubeovn/kube-ovn:{v.kube_ovn}; rollout status "
                        "deployment/kube-ovn-webhook; check the running container's image tag is "
                        f"{v.kube_ovn}"),
            *[s for s in extra_steps if s[0] != "dual-stack"],
            ("kvm-check", f"{container_runtime()} exec <node> test -c /dev/kvm, then open it read-write "
                          "as uid 107 (virt-launcher's QEMU) on every node; useEmulation when any fails "
                          "(VM waits then x3)"),
            ("kubevirt", f"kubectl apply -f kubevirt-operator.yaml ({v.kubevirt}); virt-operator replicas 1; "
                         "rollout; wait for kubevirts.kubevirt.io; apply kubevirt-cr.yaml; patch "
                         "featureGates [Snapshot] (VirtualMachineClone, deny.clone), infra.replicas 1, "
                         "workloads.nodePlacement.nodeSelector kovc.io/vm-node=true (virt-handler, and so "
                         "kubevirt.io/schedulable, only on the workers: the control plane hosts the "
                         "migration probe), "
                         "useEmulation true if a node has no usable /dev/kvm (else false); wait phase "
                         f"Deployed and Available; check observedKubeVirtVersion {v.kubevirt}"),
            ("detect", "read back server version, kube-ovn-controller and webhook image tags, KubeVirt "
                       "version, keep-vm-ip, the webhook configuration"),
            ("teardown", f"kind delete cluster --name={self.cluster_name}: {keep}"),
        ]

    def plan(self) -> list[str]:
        """The steps, versions, images, upstream files and rendered kind config; touches nothing."""
        v = self.versions()
        release = versions.kube_ovn_release(v.kube_ovn)
        kind = self.kind_binary()
        lines = [f"kind backend: cluster {self.cluster_name!r} (nothing below has been done)", "versions:",
                 f"  Kube-OVN {v.kube_ovn} (webhook image docker.io/kubeovn/kube-ovn:{v.kube_ovn}; "
                 f"{'Helm chart v2' if release.install_method == 'chart-v2' else 'install.sh'}, as its CI)",
                 f"  KubeVirt {v.kubevirt}", f"  Kubernetes {v.kubernetes} (node image {v.kind_image})",
                 f"  cert-manager {v.cert_manager}",
                 *([f"  Multus {v.multus_release.version} (thick plugin, {v.multus_release.image})"]
                   if v.multus_release is not None else []),
                 f"  IP family {v.ip_family}" + (" (dual-stack cluster and ovn-default)" if v.ip_family == "dual"
                                                  else ""),
                 f"  kind {self.kind_pair(v)[0]} ({self.kind_pair(v)[1]}): {kind.how}", "steps:"]
        lines += [f"  {i}. {name}: {text}" for i, (name, text) in enumerate(self.steps(v), 1)]
        lines.append("images:")
        lines += [f"  {img.image}  ({', '.join(img.components)})" for img in run_images(v)]
        lines.append("upstream files:" + (f" (from --manifests-dir {self.manifests_dir})"
                                          if self.manifests_dir else " (downloaded from the release URLs)"))
        lines += [f"  {m.filename}  {m.url}" for m in run_manifests(v)]
        lines.append(f"kind config (clusters/{KIND_CONFIG}, rendered):")
        lines += [f"  {line}" for line in render_kind_config(v.kind_image, v.ip_family, v.kube_ovn).splitlines()]
        if getattr(self.options, "upgrade_from", None):
            target = self.options.kube_ovn_version or versions.KUBE_OVN_VERSION
            lines.append(f"upgrade (after the VMs are created on {v.kube_ovn}):")
            lines += [f"  {i}. {text}" for i, text in enumerate(self.upgrade_steps(v.kube_ovn, target), 1)]
        return lines

    # -- upgrade ---------------------------------------------------------------------------------

    def upgrade_steps(self, source: str, target: str) -> list[str]:
        """How ``upgrade`` moves the cluster from ``source`` to ``target`` (``versions.upgrade_method``)."""
        by_chart = versions.kube_ovn_release(source).install_method == "chart-v2"
        kube_ovn = (f"helm upgrade --install kubeovn charts/kube-ovn-v2 (of {target}) --wait --values "
                    f"clusters/kube-ovn-values-v2.yaml"
                    f"{' --values clusters/' + network.CHART_V2_DUAL_VALUES if self.ip_family == 'dual' else ''}"
                    f" --set global.images.kubeovn.tag={target}"
                    if by_chart else
                    f"dist/images/install.sh of {target} run again over the {source} install (upstream's "
                    "upgrade path for script installs; a chart would not adopt the script's objects)")
        return [f"kube-ovn: {kube_ovn}; rollout kube-ovn-controller",
                f"webhook: kubectl apply -f yamls/webhook.yaml of {target} (image docker.io/kubeovn/kube-ovn:"
                f"{target}); rollout status deployment/kube-ovn-webhook",
                f"wait: kube-ovn-controller and kube-ovn-webhook run {target} and are Available"]

    def upgrade(self, info: ClusterInfo, target: str, kube: Any, timeout: float) -> Any:
        """Upgrade the installed release to ``target`` with the method the source was installed by:
        chart v2 -> ``helm upgrade`` of the target's chart; ``install.sh`` -> the target's install.sh,
        then the target's ``yamls/webhook.yaml``; then wait for both rollouts."""
        import dataclasses
        import time

        from .upgrade import UpgradeOutcome, wait_rollout

        source_v = self.versions()
        target_v = dataclasses.replace(source_v, kube_ovn=target)
        workdir = Path(str(info.extra.get("workdir") or ".")).resolve()
        out = UpgradeOutcome(source=source_v.kube_ovn, target=target,
                             method=versions.upgrade_method(source_v.kube_ovn, target), started=time.time(),
                             steps=self.upgrade_steps(source_v.kube_ovn, target))
        installer = Installer(target_v, kubeconfig=Path(info.kubeconfig), workdir=workdir,
                              sources=Sources(target_v, workdir, self.manifests_dir),
                              kubectl=str(info.extra.get("kubectl_bin") or self.kubectl_bin or "kubectl"),
                              helm=shutil.which("helm") or "helm", log=self.log)
        # The install method of the source decides (a script install is upgraded by the target's script).
        installer.release = dataclasses.replace(
            installer.release, install_method=versions.kube_ovn_release(source_v.kube_ovn).install_method)
        try:
            self.log(f"upgrading Kube-OVN {source_v.kube_ovn} -> {target} ({out.method})")
            installer.install_kube_ovn()
            installer.install_webhook()
        finally:
            installer.close()
        wait_rollout(kube, target, timeout)
        out.finished = time.time()
        return out

    # -- provision -------------------------------------------------------------------------------

    def _tool(self, explicit: str | None, name: str, why: str) -> str:
        path = explicit or shutil.which(name)
        if not path or (explicit and not Path(explicit).is_file()):
            raise BackendError(f"preflight: {name} not found ({explicit or 'not on PATH'}): needed {why}")
        return path

    def preflight(self, v: RunVersions, workdir: Path) -> dict[str, str]:
        """Check every program and local file before anything is created; returns resolved paths."""
        state_dir = workdir / ".pytest-kind" / self.cluster_name
        kind = self.kind_binary(state_dir)
        paired = self.kind_pair(v)[0]
        wanted = parse_kind_version(kind.download_version or "")
        if kind.download_version is not None and (wanted is None or wanted < versions.parse(paired)):
            raise self._min_version_error(f"KIND_VERSION={kind.download_version}", "KIND_VERSION", paired)
        if kind.download_version is not None:
            kind = self._installed_kind(kind)
        if kind.download_version is None and (not kind.path or not Path(kind.path).is_file()):
            raise BackendError(f"preflight: kind not found ({kind.how}): install kind {paired} and pass "
                               f"--kind-bin PATH, or set KIND_VERSION={paired} to have it downloaded")
        tools = {"kubectl": self._tool(self.kubectl_bin, "kubectl", "to install Kube-OVN, cert-manager and "
                                       "KubeVirt (pass --kind-kubectl-bin)"),
                 "runtime": self._tool(None, container_runtime(), "by kind for the node containers")}
        if versions.kube_ovn_release(v.kube_ovn).install_method == "chart-v2":
            tools["helm"] = self._tool(None, "helm", f"to install Kube-OVN {v.kube_ovn} from its chart v2")
        else:
            tools["bash"] = self._tool(None, "bash", f"to run Kube-OVN {v.kube_ovn}'s install.sh")
        if self.manifests_dir is not None:
            missing = Sources(v, workdir, self.manifests_dir).missing_local()
            if missing:
                raise BackendError(f"preflight: --manifests-dir {self.manifests_dir} lacks "
                                   f"{', '.join(missing)} (`kovc images --manifests` lists each file and "
                                   "its URL)")
        kind_path = self.ensure_kind(kind, state_dir)
        tools["kind"] = kind_path
        tools["kind_version"] = self.check_kind_version(kind_path, v)
        tools["kind_how"] = kind.how
        return tools

    def _installed_kind(self, kind: KindBinary) -> KindBinary:
        """With ``KIND_VERSION``: the ``kind`` on ``PATH`` when it already is that release (CI installed
        it), so no second kind is downloaded over it."""
        found = shutil.which("kind")
        if not found or kind.download_version is None:
            return kind
        out = run_program([found, "version"], step="kind-version", obj=found, timeout=30, check=False).stdout
        if parse_kind_version(out) == parse_kind_version(kind.download_version):
            return KindBinary(found, f"kind on PATH ({found}), already KIND_VERSION={kind.download_version}")
        return kind

    def ensure_kind(self, kind: KindBinary, state_dir: Path) -> str:
        """The kind executable; with ``KIND_VERSION``, pytest-kind downloads it (for this machine's
        architecture, which pytest-kind itself would not pick) unless it is already there."""
        assert kind.path is not None
        if kind.download_version is None or Path(kind.path).is_file():
            return kind.path
        from pytest_kind import KindCluster

        machine = platform.machine().lower()
        arches = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
        arch = arches.get(machine, machine)
        url = os.environ.get("KIND_DOWNLOAD_URL") or (
            f"https://github.com/kubernetes-sigs/kind/releases/download/{kind.download_version}/"
            f"kind-{platform.system().lower()}-{arch}")
        state_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.chdir(state_dir.parent.parent), _env(KIND_DOWNLOAD_URL=url):
            cluster = KindCluster(self.cluster_name, kind_path=Path(kind.path))
            self.log(f"downloading kind {kind.download_version} from {url}")
            try:
                cluster.ensure_kind()
            except Exception as err:
                raise BackendError(f"preflight: download of kind {kind.download_version} from {url} failed: "
                                   f"{' '.join(str(err).split())[:200]}") from None
        return kind.path

    def check_kind_version(self, kind_path: str, v: RunVersions | None = None) -> str:
        paired, why = self.kind_pair(v or self.versions())
        out = run_program([kind_path, "version"], step="kind-version", obj=kind_path, timeout=30).stdout
        seen = parse_kind_version(out)
        if seen is None or seen < versions.parse(paired):
            raise self._min_version_error(" ".join(out.split()) or "no version", kind_path, paired)
        text = f"v{seen[0]}.{seen[1]}.{seen[2]}"
        if text != paired:
            self.log(f"warning: kind {text} is not {paired}, the release paired with the node image ({why}); "
                     "kind supports node images of its own release")
        return text

    def _cluster(self, tools: dict[str, str], kubeconfig: Path, workdir: Path, image: str | None,
                 name: str | None = None) -> Any:
        from pytest_kind import KindCluster

        with contextlib.chdir(workdir):  # its state folder .pytest-kind/<name> goes there, not into cwd
            return KindCluster(name or self.cluster_name, kubeconfig=kubeconfig, image=image,
                               kind_path=Path(tools["kind"]), kubectl_path=Path(tools["kubectl"]))

    def provision(self, workdir: Path) -> ClusterInfo:
        v = self.versions()
        workdir = workdir.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        tools = self.preflight(v, workdir)
        kubeconfig = workdir / "kubeconfig"
        config_path = workdir / KIND_CONFIG
        config_path.write_text(render_kind_config(v.kind_image, v.ip_family, v.kube_ovn), encoding="utf-8")
        kind = tools["kind"]
        listed = run_program([kind, "get", "clusters"], step="create-cluster", obj="kind clusters",
                             timeout=60)
        existed = self.cluster_name in listed.stdout.split()
        created = False
        extra: dict[str, Any] = {"cluster_name": self.cluster_name, "kind_bin": kind,
                                 "kind_version": tools["kind_version"], "kubectl_bin": tools["kubectl"],
                                 "workdir": str(workdir), "keep_cluster": self.keep_cluster,
                                 "reused": existed, "created": False}
        try:
            if existed:
                self.log(f"reusing kind cluster {self.cluster_name} (it existed before this run; it is left "
                         "in place afterwards)")
                run_program([kind, "export", "kubeconfig", f"--name={self.cluster_name}",
                             f"--kubeconfig={kubeconfig}"], step="create-cluster",
                            obj=f"kind cluster {self.cluster_name}", timeout=60)
            cluster = self._cluster(tools, kubeconfig, workdir, v.kind_image)
            self.log(f"creating kind cluster {self.cluster_name} ({v.kind_image}, 1 control plane + 2 "
                     "workers)" if not existed else f"checking kind cluster {self.cluster_name}")
            created = not existed
            extra["created"] = created
            try:
                cluster.create(config_file=config_path)
            except subprocess.CalledProcessError as err:
                raise BackendError(f"create-cluster: kind cluster {self.cluster_name}: `kind "
                                   f"{' '.join(err.cmd[1:3])}` exited {err.returncode} (kind's output is "
                                   "above)") from None
            info = self._install(v, tools, cluster, kubeconfig, workdir, extra)
        except BaseException as err:
            self._cleanup_after_failure(tools, kubeconfig, workdir, created, err)
            if isinstance(err, BackendError):
                raise BackendError(f"{err}{self._left_note(created)}") from None
            if isinstance(err, Exception):
                raise BackendError(f"kind backend: {type(err).__name__}: {' '.join(str(err).split())[:300]}"
                                   f"{self._left_note(created)}") from err
            raise
        return info

    def _left_note(self, created: bool) -> str:
        if not created:
            return ""
        where = f"; cluster logs in {self.exported_logs}" if self.exported_logs else ""
        if self.keep_cluster:
            return f" (kind cluster {self.cluster_name} kept: --keep-cluster{where})"
        return f" (kind cluster {self.cluster_name} deleted{where})"

    def _cleanup_after_failure(self, tools: dict[str, str], kubeconfig: Path, workdir: Path, created: bool,
                               err: BaseException) -> None:
        if not created:
            return
        logs = self.logs_dir or workdir / "kind-logs"
        with contextlib.suppress(BackendError, OSError):
            logs.parent.mkdir(parents=True, exist_ok=True)
            run_program([tools["kind"], "export", "logs", str(logs), f"--name={self.cluster_name}"],
                        step="export-logs", obj=f"kind cluster {self.cluster_name}", timeout=180)
            self.log(f"cluster logs exported to {logs}")
            self.exported_logs = logs
        if self.keep_cluster:
            self.log(f"install failed; kind cluster {self.cluster_name} kept (--keep-cluster), kubeconfig "
                     f"{kubeconfig}")
            return
        self.log(f"install failed; deleting kind cluster {self.cluster_name}")
        try:
            self._delete(tools["kind"], tools["kubectl"], kubeconfig, workdir)
        except BackendError as delete_err:
            self.log(f"could not delete kind cluster {self.cluster_name}: {delete_err}")

    def _install(self, v: RunVersions, tools: dict[str, str], cluster: Any, kubeconfig: Path, workdir: Path,
                 extra: dict[str, Any]) -> ClusterInfo:
        self.preload_images(v, cluster, tools["runtime"], extra, workdir)
        installer = Installer(v, kubeconfig=kubeconfig, workdir=workdir,
                              sources=Sources(v, workdir, self.manifests_dir), kubectl=tools["kubectl"],
                              helm=tools.get("helm", "helm"), log=self.log)
        try:
            self.log("untainting the control plane")
            extra["untainted"] = installer.untaint_control_plane()
            self.log("labelling control-plane nodes kube-ovn/role=master")
            extra["kube_ovn_masters"] = installer.label_masters()
            self.log("labelling the worker nodes kovc.io/vm-node=true (KubeVirt's workload placement)")
            extra["vm_nodes"] = installer.label_vm_nodes()
            self.log(f"installing Kube-OVN {v.kube_ovn}{' (dual-stack)' if v.ip_family == 'dual' else ''}")
            extra["kube_ovn_install"] = installer.install_kube_ovn()
            extra["ip_family"] = v.ip_family
            if v.ip_family == "dual":
                extra["default_subnet_cidr"] = installer.check_dual_stack()
                self.log(f"ovn-default is dual-stack: {extra['default_subnet_cidr']}")
            self.log(f"installing cert-manager {v.cert_manager}")
            installer.install_cert_manager()
            self.log(f"installing the Kube-OVN webhook ({v.kube_ovn})")
            installer.install_webhook()
            if v.multus_release is not None:
                self.log(f"installing Multus {v.multus_release.version} (thick plugin)")
                extra["multus_image"] = installer.install_multus()
            unusable = self.kvm_unusable(tools["kind"], tools["runtime"])
            no_kvm = sorted(unusable)
            extra["use_emulation"] = bool(no_kvm)
            extra["nodes_without_kvm"] = no_kvm
            extra["kvm_check"] = unusable
            self.log(f"installing KubeVirt {v.kubevirt}"
                     + (" with software emulation (" + "; ".join(f"{n}: {why}" for n, why in unusable.items())
                        + ")" if no_kvm else ""))
            installer.install_kubevirt(use_emulation=bool(no_kvm))
            self.log("reading the cluster back")
            det = detect.detect(installer.api())
        finally:
            installer.close()
        missing = det.missing
        if missing:
            raise BackendError(f"detect: {'; '.join(missing)}")
        info = detect.cluster_info(det, backend="kind", kubeconfig=str(kubeconfig), context=None,
                                   kind_node_image=v.kind_image, extra=extra)
        info.warnings.extend(installer.warnings)
        return info

    def preload_images(self, v: RunVersions, cluster: Any, runtime: str, extra: dict[str, Any],
                       workdir: Path | None = None) -> None:
        """Load every image into the nodes (pulled first when missing locally; an image that cannot be
        pulled is left to the nodes, and recorded): ``kind load docker-image``, else the fallbacks of
        upstream's ``kind_load_image`` (``makefiles/kind.mk`` L47-66 at v1.16.2). ``extra["preload"]``
        maps each image to the path it took."""
        loaded: list[str] = []
        skipped: list[str] = []
        paths: dict[str, str] = {}
        archives = (workdir or Path.cwd()) / "image-archives"
        for img in run_images(v):
            if not img.loadable:
                continue
            present = run_program([runtime, "image", "inspect", img.image], step="preload-images",
                                  obj=img.image, timeout=60, check=False).returncode == 0
            if not present:
                self.log(f"pulling {img.image}")
                pulled = run_program([runtime, "pull", img.image], step="preload-images", obj=img.image,
                                     timeout=STEP_TIMEOUTS["download"] * 2, check=False)
                if pulled.returncode != 0:
                    skipped.append(img.image)
                    paths[img.image] = "not preloaded (pull failed)"
                    self.log(f"{img.image}: not preloaded (pull failed); the nodes pull it themselves")
                    continue
            paths[img.image] = self._load_image(img.image, cluster, runtime, archives)
            self.log(f"{img.image}: loaded via {paths[img.image]}")
            loaded.append(img.image)
        extra["preloaded_images"] = loaded
        extra["not_preloaded_images"] = skipped
        extra["preload"] = paths

    def _load_image(self, image: str, cluster: Any, runtime: str, archives: Path) -> str:
        """One image into every node; returns the path that worked."""
        try:
            cluster.load_docker_image(image)
            return "kind load docker-image"
        except subprocess.CalledProcessError as err:
            first = f"`kind load docker-image` exited {err.returncode}"
        self.log(f"{image}: {first}; trying {runtime} save + kind load image-archive")
        archives.mkdir(parents=True, exist_ok=True)
        archive = archives / (re.sub(r"[^A-Za-z0-9_.-]+", "_", image) + ".tar")
        run_program([runtime, "save", "-o", str(archive), image], step="preload-images", obj=image,
                    timeout=STEP_TIMEOUTS["download"])
        kind = str(cluster.kind_path)
        second = run_program([kind, "load", "image-archive", str(archive), f"--name={self.cluster_name}"],
                             step="preload-images", obj=image, timeout=STEP_TIMEOUTS["download"], check=False)
        if second.returncode == 0:
            archive.unlink(missing_ok=True)
            return f"{runtime} save + kind load image-archive ({first})"
        self.log(f"{image}: `kind load image-archive` exited {second.returncode}; importing with ctr on "
                 "every node")
        nodes = run_program([kind, "get", "nodes", f"--name={self.cluster_name}"], step="preload-images",
                            obj=f"kind cluster {self.cluster_name}", timeout=60).stdout.split()
        for node in nodes:
            run_program([runtime, "exec", "-i", node, "ctr", "-n", "k8s.io", "images", "import", "-"],
                        step="preload-images", obj=f"{image} on node {node}", timeout=STEP_TIMEOUTS["download"],
                        stdin_file=archive)
        archive.unlink(missing_ok=True)
        return (f"ctr -n k8s.io images import on {len(nodes)} node(s) ({first}; `kind load image-archive` "
                f"exited {second.returncode})")

    def kvm_unusable(self, kind: str, runtime: str) -> dict[str, str]:
        """Nodes whose ``/dev/kvm`` QEMU cannot use: node -> why."""
        nodes = run_program([kind, "get", "nodes", f"--name={self.cluster_name}"], step="kvm-check",
                            obj=f"kind cluster {self.cluster_name}", timeout=60).stdout.split()
        if not nodes:
            raise BackendError(f"kvm-check: kind cluster {self.cluster_name}: `kind get nodes` listed no "
                               "node")
        out: dict[str, str] = {}
        for n in nodes:
            if run_program([runtime, "exec", n, "test", "-c", "/dev/kvm"], step="kvm-check", obj=f"node {n}",
                           timeout=60, check=False).returncode != 0:
                out[n] = "no /dev/kvm"
                continue
            rw = run_program([runtime, "exec", "--user", f"{QEMU_UID}:{QEMU_UID}", n, "sh", "-c",
                              "exec 3<>/dev/kvm"], step="kvm-check", obj=f"node {n}", timeout=60, check=False)
            if rw.returncode != 0:
                seen = " ".join((rw.stderr or rw.stdout).split())[:160] or f"exit {rw.returncode}"
                out[n] = f"/dev/kvm present but not usable read-write by uid {QEMU_UID} ({seen})"
        return out

    # -- teardown --------------------------------------------------------------------------------

    def _delete(self, kind: str, kubectl: str, kubeconfig: Path, workdir: Path,
                name: str | None = None) -> None:
        name = name or self.cluster_name
        cluster = self._cluster({"kind": kind, "kubectl": kubectl}, kubeconfig, workdir, None, name)
        try:
            cluster.delete()
        except (subprocess.CalledProcessError, OSError) as err:
            raise BackendError(f"teardown: kind cluster {name}: `kind delete cluster` failed: "
                               f"{' '.join(str(err).split())[:200]}") from None

    def teardown(self, info: ClusterInfo) -> None:
        extra = info.extra
        name = extra.get("cluster_name", self.cluster_name)
        if extra.get("keep_cluster"):
            self.log(f"kind cluster {name} kept (--keep-cluster); kubeconfig {info.kubeconfig}")
            return
        if not extra.get("created"):
            self.log(f"kind cluster {name} left in place (it existed before this run)")
            return
        self.log(f"deleting kind cluster {name}")
        self._delete(str(extra["kind_bin"]), str(extra.get("kubectl_bin") or "kubectl"),
                     Path(info.kubeconfig), Path(str(extra.get("workdir") or Path(info.kubeconfig).parent)),
                     str(name))
