"""Upstream line citations in the models and docs: the cited numbers are pinned here, and - when a git
directory of the upstream repository is at hand - each cited range is read at its tag and must say
what the citation claims.

Two guards, because CI has no upstream checkout:

* ``test_citation_is_in_the_citing_file`` (always runs): the citing file still carries the checked
  citation, so a silent edit of a number (or of the text around it) fails here;
* ``test_cited_range_says_what_is_claimed`` (runs when an upstream git directory is found, else skips
  with the reason): ``git show <tag>:<path>`` lines ``start..end`` exist and contain the expected code.

Upstream git directories are looked up in ``$KOVC_UPSTREAM_<OWNER>_<NAME>`` (e.g.
``KOVC_UPSTREAM_KUBEOVN_KUBE_OVN``) and then in ``/work/.mirror/<owner>+<name>/repo``.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Citation:
    #: File of this repository that cites, and the exact text of the citation in it.
    cited_in: str
    text: str
    repo: str
    tag: str
    path: str
    start: int
    end: int
    #: Strings that must all occur within lines start..end at the tag.
    expect: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{Path(self.cited_in).name}:{self.path.rsplit('/', 1)[-1]}@{self.tag}:L{self.start}-{self.end}"


KO = "kubeovn/kube-ovn"
KV = "kubevirt/kubevirt"
KIND = "kubernetes-sigs/kind"
CITATIONS = [
    # docs/verdict-derivation.md
    Citation("docs/verdict-derivation.md", "`--keep-vm-ip` default true (`config.go` L200 at v1.16.2)", KO,
             "v1.16.2", "pkg/controller/config.go", 200, 200, ('pflag.Bool("keep-vm-ip", true',)),
    Citation("docs/verdict-derivation.md", "gc.go` L315-436", KO, "v1.13.14", "pkg/controller/gc.go", 315, 436,
             ("func (c *Controller) markAndCleanLSP() error", "lastNoPodLSP.Has(lsp.Name)", "IPs().Delete(")),
    Citation("docs/verdict-derivation.md", "`controller.go` L1192-1198", KO, "v1.13.14",
             "pkg/controller/controller.go", 1192, 1198, ("c.markAndCleanLSP()", "c.config.GCInterval")),
    Citation("docs/verdict-derivation.md", "default 360 in `config.go` L186", KO, "v1.13.14",
             "pkg/controller/config.go", 186, 186, ('"gc-interval", 360',)),
    Citation("docs/verdict-derivation.md", "`dist/images/install.sh` L128", KO, "v1.13.14",
             "dist/images/install.sh", 128, 128, ("GC_INTERVAL=360",)),
    Citation("docs/verdict-derivation.md", "`getVMLsps`, L945-1005", KO, "v1.13.14", "pkg/controller/gc.go",
             945, 1005, ("func (c *Controller) getVMLsps() []string", "EnableKeepVMIP")),
    Citation("docs/verdict-derivation.md", "`test/e2e/kubevirt/e2e_test.go` L79 at v1.16.2", KO, "v1.16.2",
             "test/e2e/kubevirt/e2e_test.go", 79, 79, ("WaitToDisappear(portName, time.Second, 2*time.Minute)",)),
    Citation("docs/verdict-derivation.md", "`pod.go` L1150-1172 at v1.14.41", KO, "v1.14.41",
             "pkg/controller/pod.go", 1150, 1172, ("try release all ip address", "IPs().Delete(")),
    Citation("docs/verdict-derivation.md", "`pod.go` L1177-1182 at v1.15.0", KO, "v1.15.0",
             "pkg/controller/pod.go", 1177, 1182, ("(isStsPod || isVMPod) && !isOwnerRefToDel", "skip clean ip CR")),
    Citation("docs/verdict-derivation.md", "L1324-1328 at v1.16.2", KO, "v1.16.2", "pkg/controller/pod.go",
             1324, 1328, ("(isStsPod || isVMPod) && !isOwnerRefToDel", "skip clean ip CR")),
    Citation("docs/verdict-derivation.md", "`kubevirt.go` L68-91 at v1.16.2", KO, "v1.16.2",
             "pkg/controller/kubevirt.go", 68, 91, ('map[string]string{"pod": vmKey}', "IPs().Delete(",
                                                    "DeleteLogicalSwitchPort(port.Name)")),
    Citation("docs/verdict-derivation.md", "`static_ip.go` L140-144 at v1.16.2", KO, "v1.16.2",
             "pkg/webhook/static_ip.go", 140, 144, ("util.ValidatePodNetwork(annotations)",
                                                    "ctrlwebhook.Errored(http.StatusBadRequest, err)")),
    Citation("docs/verdict-derivation.md", "PR #5569 `e35b0fa89`; L120-129 at v1.16.2", KO, "v1.16.2",
             "pkg/webhook/static_ip.go", 120, 129, ("name := o.GetName()", "util.KindVirtualMachineInstance",
                                                    "name = owner.Name")),
    Citation("docs/verdict-derivation.md", "`name == podName` (L210 at v1.16.2)", KO, "v1.16.2",
             "pkg/webhook/static_ip.go", 210, 210, ("if name == ipCR.Spec.PodName",)),
    Citation("docs/verdict-derivation.md", "(`static_ip.go` L124-154 at v1.12.35)", KO, "v1.12.35",
             "pkg/webhook/static_ip.go", 124, 154, ("func (v *ValidatingHook) allowLiveMigration",
                                                    "LiveMigrationAnnotationTemplate")),
    Citation("docs/verdict-derivation.md", "`PodCreateHook` L121 at v1.12.35", KO, "v1.12.35",
             "pkg/webhook/static_ip.go", 121, 121, ("v.validateIP(ctx, o.GetAnnotations(), o.Kind, o.GetName()",)),
    Citation("docs/verdict-derivation.md", "`name == podName` (L218 at v1.12.35)", KO, "v1.12.35",
             "pkg/webhook/static_ip.go", 218, 218, ("if name == ipCr.Spec.PodName",)),
    Citation("docs/verdict-derivation.md", "`ac81ac29f`; L200 at v1.13.14", KO, "v1.13.14",
             "pkg/webhook/static_ip.go", 200, 200, ("strings.Contains(ipCR.Spec.PodName, name)",)),
    Citation("docs/verdict-derivation.md", "migration.go` L965", KV, "v1.8.1",
             "pkg/virt-controller/watch/migration/migration.go", 965, 965, ("MigrationJobNameAnnotation",)),
    Citation("docs/verdict-derivation.md", "(`getNameByPod`, `pod.go` L2813-2820 at v1.16.2)", KO, "v1.16.2",
             "pkg/controller/pod.go", 2813, 2820, ("func (c *Controller) getNameByPod", "EnableKeepVMIP")),
    # conformance/sim/controllers/kubeovn.py (v1.16.2 unless stated)
    Citation("conformance/sim/controllers/kubeovn.py", "# needAllocateSubnets (L1692-1717).", KO, "v1.16.2",
             "pkg/controller/pod.go", 1692, 1717, ("func needAllocateSubnets", "MigrationJobNameAnnotation")),
    Citation("conformance/sim/controllers/kubeovn.py", "``handleDeleteVM`` (``kubevirt.go`` L60-94)", KO, "v1.16.2",
             "pkg/controller/kubevirt.go", 60, 94, ("func (c *Controller) handleDeleteVM(key string) error",)),
    Citation("conformance/sim/controllers/kubeovn.py", "``handleDeletePod`` (L1100-1377)", KO, "v1.16.2",
             "pkg/controller/pod.go", 1100, 1377, ("func (c *Controller) handleDeletePod", "delete ip CR")),
    Citation("conformance/sim/controllers/kubeovn.py", "``reconcileAllocateSubnets`` (L622-828)", KO, "v1.16.2",
             "pkg/controller/pod.go", 622, 828, ("func (c *Controller) reconcileAllocateSubnets",)),
    Citation("conformance/sim/controllers/kubeovn.py", "``handleAddOrUpdatePod`` (L493-568)", KO, "v1.16.2",
             "pkg/controller/pod.go", 493, 568, ("func (c *Controller) handleAddOrUpdatePod",)),
    Citation("conformance/sim/controllers/kubeovn.py", "``createOrUpdateIPCR`` (``ip.go`` L391-537)", KO, "v1.16.2",
             "pkg/controller/ip.go", 391, 537, ("func (c *Controller) createOrUpdateIPCR",)),
    Citation("conformance/sim/controllers/kubeovn.py", "``isVMPod`` (``pod.go`` L2722-2731)", KO, "v1.16.2",
             "pkg/controller/pod.go", 2722, 2731, ("func isVMPod",)),
    Citation("conformance/sim/controllers/kubeovn.py", "``isVMToDel`` (L2764-2811)", KO, "v1.16.2",
             "pkg/controller/pod.go", 2764, 2811, ("func (c *Controller) isVMToDel",)),
    Citation("conformance/sim/controllers/kubeovn.py", "(L644)", KO, "v1.16.2", "pkg/controller/pod.go", 644, 644,
             ('"AcquireAddressFailed"',)),
    Citation("conformance/sim/controllers/kubeovn.py", "``markAndCleanLSP`` (``gc.go`` L315-436 at v1.13.14)", KO,
             "v1.13.14", "pkg/controller/gc.go", 315, 436, ("func (c *Controller) markAndCleanLSP",)),
    Citation("conformance/sim/controllers/kubeovn.py", "``UpdateIPCR`` (handler.go L430-471)", KO, "v1.16.2",
             "pkg/daemon/handler.go", 430, 471, ("func (csh cniServerHandler) UpdateIPCR",)),
    # conformance/sim/webhook.py and policies.py
    Citation("conformance/sim/webhook.py", "→ admit (L114-116);", KO, "v1.16.2", "pkg/webhook/static_ip.go", 114, 116,
             ('if staticIP == "" && poolAnno == ""', 'ctrlwebhook.Allowed("bypass")')),
    Citation("conformance/sim/webhook.py", "   (L117-119), which runs *before* any validation;", KO, "v1.16.2",
             "pkg/webhook/static_ip.go", 117, 119, ("v.allowLiveMigration(o.GetAnnotations())",)),
    Citation("conformance/sim/webhook.py", "(``kubeovn/kube-ovn@v1.16.2:pkg/webhook/static_ip.go`` L104-155)", KO,
             "v1.16.2", "pkg/webhook/static_ip.go", 104, 155, ("func (v *ValidatingHook) PodCreateHook",
                                                               "func (v *ValidatingHook) validateIP")),
    Citation("conformance/sim/policies.py", "``validateIP(..., o.GetName(), ...)`` (L121);", KO, "v1.12.35",
             "pkg/webhook/static_ip.go", 121, 121, ("o.GetName(), o.GetNamespace())",)),
    Citation("conformance/sim/policies.py", "apiVersion with prefix ``kubevirt.io/`` (L120-129)", KO, "v1.16.2",
             "pkg/webhook/static_ip.go", 120, 129, ("kubevirtv1.SchemeGroupVersion.Group+\"/\"",)),
    Citation("conformance/sim/policies.py", "(L200, L207)", KO, "v1.16.2", "pkg/webhook/static_ip.go", 200, 207,
             ("util.SplitStringIP(ipCR.Spec.IPAddress)", "ipAddr.String() == v4IP || ipAddr.String() == v6IP")),
    Citation("conformance/sim/policies.py", "``checkIPConflict`` L185-193 (v1.16.2)", KO, "v1.16.2",
             "pkg/webhook/static_ip.go", 185, 193, ("net.ParseCIDR(ip)", "net.ParseIP(strings.TrimSpace(ip))")),
    Citation("conformance/sim/policies.py", "``allowLiveMigration`` (L124-154)", KO, "v1.12.35",
             "pkg/webhook/static_ip.go", 124, 154, ("func (v *ValidatingHook) allowLiveMigration",)),
    # conformance/versions.py
    Citation("conformance/versions.py", "(\"skip clean ip CR\", ``pod.go`` L1177-1182 at v1.15.0)", KO, "v1.15.0",
             "pkg/controller/pod.go", 1177, 1182, ("skip clean ip CR",)),
    # kind pairing, install path, waits (conformance/versions.py, settings.py)
    Citation("conformance/versions.py", "KIND_VERSION v0.29.0 (build-x86-image.yaml L25)", KO, "v1.14.2",
             ".github/workflows/build-x86-image.yaml", 25, 25, ("KIND_VERSION: v0.29.0",)),
    Citation("conformance/versions.py", "kindest/node:v1.32.5 (yamls/kind.yaml.j2 L2)", KO, "v1.14.2",
             "yamls/kind.yaml.j2", 2, 2, ('k8s_version = "v1.32.5"',)),
    Citation("conformance/versions.py", "KIND_VERSION v0.31.0 (build-x86-image.yaml L29 at", KO, "v1.16.2",
             ".github/workflows/build-x86-image.yaml", 29, 29, ("KIND_VERSION: v0.31.0",)),
    Citation("conformance/versions.py", "K8S_VERSION v1.35.1 (makefiles/kind.mk L12)", KO, "v1.16.2",
             "makefiles/kind.mk", 12, 12, ("K8S_VERSION ?= v1.35.1",)),
    Citation("conformance/versions.py", "(``.github/workflows/helm-testing.yaml`` L62 at", KO, "v1.16.2",
             ".github/workflows/helm-testing.yaml", 62, 62, ("ct install", "charts/kube-ovn-v2/ct.yaml")),
    Citation("conformance/versions.py", "dist/images/install.sh | bash``, ``kind.mk`` L221-224 at v1.14.2", KO,
             "v1.14.2", "kind.mk", 221, 224, ("kind-install:", "dist/images/install.sh | bash")),
    Citation("conformance/settings.py", "(``makefiles/kind.mk`` L570-571 at v1.16.2)", KO, "v1.16.2",
             "makefiles/kind.mk", 570, 571, ('"useEmulation":true',)),
    Citation("conformance/settings.py", "(``test/e2e/framework/framework.go`` L43", KO, "v1.16.2",
             "test/e2e/framework/framework.go", 43, 43, ("timeout = 2 * time.Minute",)),
    Citation("conformance/settings.py", "(``virtual-machine.go`` L79-85)", KO, "v1.16.2",
             "test/e2e/framework/virtual-machine.go", 79, 85, ("func (c *VMClient) StartSync",
                                                               "c.WaitToBeReady(name, 3*time.Minute)")),
    Citation("conformance/settings.py", "``virtual-machine.go`` L56-63)", KO, "v1.16.2",
             "test/e2e/framework/virtual-machine.go", 56, 63, ("func (c *VMClient) CreateSync",
                                                               "c.WaitToBeReady(v.Name, timeout)")),
    Citation("conformance/versions.py", "pkg/apis/config/defaults/image.go`` L21", KIND, "v0.29.0",
             "pkg/apis/config/defaults/image.go", 21, 21, ("kindest/node:v1.33.1",)),
    Citation("conformance/versions.py", "pkg/apis/config/defaults/image.go`` L21", KIND, "v0.30.0",
             "pkg/apis/config/defaults/image.go", 21, 21, ("kindest/node:v1.34.0",)),
    Citation("conformance/versions.py", "pkg/apis/config/defaults/image.go`` L21", KIND, "v0.31.0",
             "pkg/apis/config/defaults/image.go", 21, 21, ("kindest/node:v1.35.0",)),
    Citation("conformance/versions.py", "pkg/apis/config/defaults/image.go`` L21", KIND, "v0.32.0",
             "pkg/apis/config/defaults/image.go", 21, 21, ("kindest/node:v1.36.1",)),
    # the kind backend
    Citation("conformance/cluster/kind.py", "``makefiles/kind.mk`` L47-66 at v1.16.2", KO, "v1.16.2",
             "makefiles/kind.mk", 47, 66, ("kind load docker-image", "kind load image-archive",
                                           "ctr -n k8s.io images import")),
    Citation("conformance/cluster/kind.py", "kubevirt/kubevirt@v1.8.1:pkg/util/util.go L30", KV, "v1.8.1",
             "pkg/util/util.go", 30, 30, ("NonRootUID        = 107",)),
    Citation("conformance/cluster/install.py",
             "``kubevirt/kubevirt@v1.8.1:pkg/virt-operator/resource/apply/apps.go`` L376", KV, "v1.8.1",
             "pkg/virt-operator/resource/apply/apps.go", 376, 376,
             ("placement.InjectPlacementMetadata(kv.Spec.Workloads",)),
    # issue 14: dual-stack, static MAC, attachment networks (docs/verdict-derivation.md)
    Citation("docs/verdict-derivation.md", "`strings.Split(ipAddress, \",\")`, L201 at v1.12.35", KO, "v1.12.35",
             "pkg/webhook/static_ip.go", 201, 201, ('strings.Split(ipAddress, ",")',)),
    Citation("docs/verdict-derivation.md", "`strings.SplitSeq`, L185 at v1.16.2", KO, "v1.16.2",
             "pkg/webhook/static_ip.go", 185, 185, ('strings.SplitSeq(ipAddress, ",")',)),
    Citation("docs/verdict-derivation.md", "`util.SplitStringIP(ipCR.Spec.IPAddress)`,\nL216 / L200", KO,
             "v1.16.2", "pkg/webhook/static_ip.go", 200, 200, ("util.SplitStringIP(ipCR.Spec.IPAddress)",)),
    Citation("docs/verdict-derivation.md", "`pkg/util/validator.go` L221-224 at v1.12.35", KO, "v1.12.35",
             "pkg/util/validator.go", 221, 224, ("MacAddressAnnotation", "net.ParseMAC(mac)")),
    Citation("docs/verdict-derivation.md", "L305-309\nat v1.16.2", KO, "v1.16.2",
             "pkg/util/validator.go", 305, 309, ("MacAddressAnnotation", "net.ParseMAC(mac)")),
    Citation("docs/verdict-derivation.md", "`static_ip.go` L110-113 at v1.12.35", KO, "v1.12.35",
             "pkg/webhook/static_ip.go", 110, 113, ("util.IPPoolAnnotation", "util.IPAddressAnnotation")),
    Citation("docs/verdict-derivation.md", "L109-112 at\nv1.16.2", KO, "v1.16.2",
             "pkg/webhook/static_ip.go", 109, 112, ("util.IPPoolAnnotation", "util.IPAddressAnnotation")),
    Citation("docs/verdict-derivation.md", "`pkg/ipam/subnet.go` L153-171 at v1.12.35", KO, "v1.12.35",
             "pkg/ipam/subnet.go", 153, 171, ("func (s *Subnet) GetStaticMac", "return ErrConflict")),
    Citation("docs/verdict-derivation.md", "L157-175 at v1.16.2", KO, "v1.16.2",
             "pkg/ipam/subnet.go", 157, 175, ("func (s *Subnet) GetStaticMac", "return ErrConflict")),
    Citation("docs/verdict-derivation.md", "`IPAM.GetStaticAddress` L67-118 at v1.12.35", KO, "v1.12.35",
             "pkg/ipam/ipam.go", 67, 118, ("func (ipam *IPAM) GetStaticAddress", "checkAndAppendIpsForDual")),
    Citation("docs/verdict-derivation.md", "L68-124 at v1.16.2", KO, "v1.16.2",
             "pkg/ipam/ipam.go", 68, 124, ("func (ipam *IPAM) GetStaticAddress", "checkAndAppendIpsForDual",
                                           "ReleaseAddressWithNicName")),
    Citation("docs/verdict-derivation.md", "(`pod.go` L1707 at v1.12.35", KO, "v1.12.35",
             "pkg/controller/pod.go", 1707, 1707, ("util.MacAddressAnnotationTemplate",)),
    Citation("docs/verdict-derivation.md", "L2209 at v1.16.2)", KO, "v1.16.2",
             "pkg/controller/pod.go", 2209, 2209, ("util.MacAddressAnnotationTemplate",)),
    Citation("docs/verdict-derivation.md", "`pod.go` L599 at v1.12.35", KO, "v1.12.35",
             "pkg/controller/pod.go", 599, 599, ('"AcquireAddressFailed"',)),
    Citation("docs/verdict-derivation.md", "`pod.go` L1872 at v1.12.35", KO, "v1.12.35",
             "pkg/controller/pod.go", 1872, 1872, ("c.ipam.GetStaticAddress(", "!liveMigration")),
    Citation("docs/verdict-derivation.md", "L2463 at v1.16.2", KO, "v1.16.2",
             "pkg/controller/pod.go", 2463, 2463, ("c.ipam.GetStaticAddress(", "!liveMigration")),
    Citation("docs/verdict-derivation.md", "`pkg/ovs/util.go` L18-23 at v1.12.35", KO, "v1.12.35",
             "pkg/ovs/util.go", 18, 23, ("func PodNameToPortName(pod, namespace, provider string)",
                                         '"%s.%s.%s", pod, namespace, provider')),
    Citation("docs/verdict-derivation.md", "L22-27 at v1.16.2: the", KO, "v1.16.2",
             "pkg/ovs/util.go", 22, 27, ("func PodNameToPortName(pod, namespace, provider string)",
                                         '"%s.%s.%s", pod, namespace, provider')),
    Citation("docs/verdict-derivation.md", "(`kubevirt.go` L68-91 at v1.16.2)", KO, "v1.16.2",
             "pkg/controller/kubevirt.go", 68, 91, ('map[string]string{"pod": vmKey}', "IPs().Delete(")),
]


def _git_dir(repo: str) -> Path | None:
    owner, name = repo.split("/")
    env = os.environ.get(f"KOVC_UPSTREAM_{re.sub(r'[^A-Z0-9]', '_', owner.upper())}_"
                         f"{re.sub(r'[^A-Z0-9]', '_', name.upper())}")
    for candidate in ([Path(env)] if env else []) + [Path(f"/work/.mirror/{owner}+{name}/repo")]:
        if candidate.is_dir():
            return candidate
    return None


@cache
def _show(git_dir: Path, tag: str, path: str) -> list[str] | None:
    proc = subprocess.run(["git", "--git-dir", str(git_dir), "show", f"{tag}:{path}"], capture_output=True,
                          text=True, timeout=60)
    return proc.stdout.splitlines() if proc.returncode == 0 else None


@pytest.mark.parametrize("cit", CITATIONS, ids=lambda c: c.id)
def test_citation_is_in_the_citing_file(cit: Citation) -> None:
    text = (ROOT / cit.cited_in).read_text()
    assert cit.text in text, (f"{cit.cited_in} no longer carries the checked citation {cit.text!r} "
                              f"({cit.repo}@{cit.tag}:{cit.path} L{cit.start}-{cit.end}); re-check it upstream "
                              "and update this table")


@pytest.mark.parametrize("cit", CITATIONS, ids=lambda c: c.id)
def test_cited_range_says_what_is_claimed(cit: Citation) -> None:
    git_dir = _git_dir(cit.repo)
    if git_dir is None:
        pytest.skip(f"no git directory of {cit.repo} (set KOVC_UPSTREAM_… or fetch it to /work/.mirror)")
    lines = _show(git_dir, cit.tag, cit.path)
    if lines is None:
        pytest.skip(f"{git_dir} has no {cit.tag}:{cit.path} (tag not fetched?)")
    assert cit.end <= len(lines), f"{cit.repo}@{cit.tag}:{cit.path} has {len(lines)} lines; cited L{cit.end}"
    window = "\n".join(lines[cit.start - 1:cit.end])
    missing = [e for e in cit.expect if e not in window]
    assert not missing, (f"{cit.repo}@{cit.tag}:{cit.path} L{cit.start}-{cit.end} does not contain {missing}; "
                         f"it reads:\n{window[:1500]}")
