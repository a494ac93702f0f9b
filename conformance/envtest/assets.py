"""Real control-plane programs built from their published Go modules, and where they are kept.

``kovc assets build`` writes a tiny wrapper module per program (sources in ``tools/assets/``; the
go.mod is generated here from the upstream module's own go.mod, never copied) and runs ``go build``.
The cache keeps envtest's layout so a ``KUBEBUILDER_ASSETS`` made by ``setup-envtest`` works as well::

    <dir>/k8s/<X.Y.Z>-<os>-<arch>/{kube-apiserver,kube-controller-manager,etcd}
    <dir>/kube-ovn/<vX.Y.Z>/kube-ovn-webhook
    <dir>/kubevirt/<vX.Y.Z>/crds.yaml           (printed by KubeVirt's own CRD generator)

Next to each artefact ``<name>.kovc.json`` records program, version, module, sha256 and the build's
wall time; ``kovc assets list`` prints those.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import versions as _versions

K8S_PROGRAMS = ("kube-apiserver", "kube-controller-manager", "etcd")
WEBHOOK = "kube-ovn-webhook"
KUBEVIRT_CRDS = "crds.yaml"
#: virt-api's ValidatingWebhookConfiguration as virt-operator generates it (install namespace kubevirt).
VIRT_API_WEBHOOKS = "virt-api-webhooks.yaml"
META_SUFFIX = ".kovc.json"
#: Where the wrapper sources live (a repository checkout; they are not package data).
WRAPPERS = Path(__file__).resolve().parents[2] / "tools" / "assets"


class AssetError(Exception):
    """An asset is missing, cannot be fetched or does not build; ``str()`` is one line (exit 2)."""


def default_dir() -> Path:
    env = os.environ.get("KOVC_ASSETS")
    if env:
        return Path(env).expanduser()
    return Path("~/.cache/kovc/assets").expanduser()


def platform_suffix() -> str:
    arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), platform.machine())
    return f"{sys.platform}-{arch}"


def k8s_dir(root: Path, k8s_version: str) -> Path:
    return root / "k8s" / f"{k8s_version.lstrip('v')}-{platform_suffix()}"


def webhook_path(root: Path, kube_ovn_version: str) -> Path:
    return root / "kube-ovn" / kube_ovn_version / WEBHOOK


def kubevirt_crds_path(root: Path, kubevirt_version: str) -> Path:
    return root / "kubevirt" / kubevirt_version / KUBEVIRT_CRDS


# --- go.mod generation (pure, unit-tested) ------------------------------------------------------

_REQUIRE_LINE = re.compile(r"^\s*(?:require\s+)?(k8s\.io/[A-Za-z0-9._/-]+)\s+v0\.0\.0(?:\s*//.*)?$")
_LOCAL_TARGET = re.compile(r"^(\./|\.\./|/)")


def staging_replaces(gomod: str, kubernetes_version: str) -> list[tuple[str, str]]:
    """Every ``k8s.io/* v0.0.0`` requirement of k8s.io/kubernetes's go.mod as a replace directive
    (``old``, ``"old v0.X.Y"``) onto the published staging version of ``v1.X.Y``. Order as in the
    file, no duplicates."""
    major, minor, patch = _versions.parse(kubernetes_version)
    if major != 1:
        raise AssetError(f"kubernetes version {kubernetes_version}: only v1.x has published staging modules")
    staged = f"v0.{minor}.{patch}"
    seen: dict[str, str] = {}
    for line in gomod.splitlines():
        m = _REQUIRE_LINE.match(line)
        if m and m.group(1) not in seen:
            seen[m.group(1)] = f"{m.group(1)} {staged}"
    if not seen:
        raise AssetError("k8s.io/kubernetes go.mod lists no k8s.io/* v0.0.0 staging requirement")
    return list(seen.items())


def replace_directives(gomod: str, local_version: str | None = None) -> list[tuple[str, str]]:
    """The ``replace`` directives of a go.mod (single-line and block form) as (old, "new version")
    pairs. One that points at a local directory only works inside that repository: it is dropped, or
    with ``local_version`` (a repository that publishes its staging modules at its own tag, as
    KubeVirt does for kubevirt.io/api) replaced by that published version."""
    out: list[tuple[str, str]] = []
    in_block = False
    for raw in gomod.splitlines():
        line = raw.split("//", 1)[0].strip()
        if not line:
            continue
        if in_block:
            if line == ")":
                in_block = False
                continue
            body = line
        elif line.startswith("replace"):
            rest = line[len("replace"):].strip()
            if rest == "(":
                in_block = True
                continue
            body = rest
        else:
            continue
        if "=>" not in body:
            continue
        old, new = (part.strip() for part in body.split("=>", 1))
        if _LOCAL_TARGET.match(new):
            if local_version is None:
                continue
            new = f"{old.split()[0]} {local_version}"
        out.append((old, new))
    return out


def render_gomod(module: str, go_version: str, requires: Sequence[tuple[str, str]],
                 replaces: Sequence[tuple[str, str]]) -> str:
    lines = ["// Generated by kovc assets build; do not edit.", f"module {module}", "", f"go {go_version}", ""]
    lines.append("require (")
    lines += [f"\t{path} {version}" for path, version in requires]
    lines.append(")")
    if replaces:
        lines += ["", "replace ("]
        lines += [f"\t{old} => {new}" for old, new in replaces]
        lines.append(")")
    return "\n".join(lines) + "\n"


def newest_patch(available: Sequence[str], major: int, minor: int) -> str | None:
    best: tuple[int, int, int] | None = None
    for v in available:
        m = re.fullmatch(r"v(\d+)\.(\d+)\.(\d+)", v)
        if m and int(m.group(1)) == major and int(m.group(2)) == minor:
            key = (major, minor, int(m.group(3)))
            best = key if best is None or key > best else best
    return None if best is None else f"v{best[0]}.{best[1]}.{best[2]}"


def ldflags_kubernetes(version: str, commit: str = "") -> str:
    major, minor, _ = _versions.parse(version)
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {pkg}.gitVersion={version}", f"-X {pkg}.gitMajor={major}", f"-X {pkg}.gitMinor={minor}",
                  f"-X {pkg}.gitTreeState=clean", f"-X {pkg}.buildDate={_build_date()}"]
        if commit:
            flags.append(f"-X {pkg}.gitCommit={commit}")
    return " ".join(flags)


def _build_date() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# --- metadata -----------------------------------------------------------------------------------

@dataclass
class AssetInfo:
    """One built artefact as ``<name>.kovc.json`` records it."""

    program: str
    version: str
    path: str
    sha256: str
    module: str = ""
    built_by: str = "kovc assets build"
    build_seconds: float | None = None
    go: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def meta_path(artefact: Path) -> Path:
    return artefact.with_name(artefact.name + META_SUFFIX)


def read_info(artefact: Path, program: str, version: str) -> AssetInfo:
    """What is known of an artefact: its metadata file when kovc built it, else (e.g. a
    ``setup-envtest`` download) program, version from the directory and the sha256 computed now."""
    meta = meta_path(artefact)
    if meta.is_file():
        try:
            data = json.loads(meta.read_text())
            info = AssetInfo(**data)
            if info.sha256 == sha256_of(artefact):
                return info
        except (ValueError, TypeError):
            pass
    return AssetInfo(program=program, version=version, path=str(artefact), sha256=sha256_of(artefact),
                     built_by="unknown (no kovc metadata)")


def installed(root: Path) -> Iterator[AssetInfo]:
    """Every artefact under ``root``, sorted by program then version."""
    k8s = root / "k8s"
    if k8s.is_dir():
        for d in sorted(k8s.iterdir()):
            version = "v" + d.name.split("-", 1)[0]
            for prog in K8S_PROGRAMS:
                p = d / prog
                if p.is_file():
                    yield read_info(p, prog, version)
    for sub, name in (("kube-ovn", WEBHOOK), ("kubevirt", KUBEVIRT_CRDS)):
        base = root / sub
        if base.is_dir():
            for d in sorted(base.iterdir(), key=lambda p: _version_key(p.name)):
                p = d / name
                if p.is_file():
                    yield read_info(p, name if sub != "kubevirt" else "kubevirt-crds", d.name)


def _version_key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v))


# --- building -----------------------------------------------------------------------------------

Progress = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class Builder:
    """Runs the go command for :func:`build`. ``go`` is the go binary; every build runs niced."""

    root: Path
    progress: Progress = _stderr
    go: str = "go"
    nice: bool = True
    log_dir: Path | None = None
    env: dict[str, str] = field(default_factory=dict)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"CGO_ENABLED": "0", "GOWORK": "off", "GOFLAGS": "-mod=mod -buildvcs=false"})
        env.update(self.env)
        return env

    def run_go(self, args: Sequence[str], cwd: Path, what: str) -> str:
        argv = [self.go, *args]
        if self.nice and shutil.which("nice"):
            argv = ["nice", "-n", "10", *argv]
        try:
            proc = subprocess.run(argv, cwd=cwd, env=self._env(), capture_output=True, text=True, check=False)
        except FileNotFoundError as err:
            raise AssetError(f"{what}: the go command is not installed ({err.filename})") from None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            with (self.log_dir / "build.log").open("a") as fh:
                fh.write(f"$ {' '.join(argv)}  (in {cwd})\n{proc.stdout}{proc.stderr}\n")
        if proc.returncode != 0:
            lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
            tail = " | ".join(lines[-6:]) if lines else f"exit {proc.returncode}"
            raise AssetError(f"{what}: {' '.join(args[:2])} failed: {tail}")
        return proc.stdout

    def step(self, label: str, fn: Callable[[], Any]) -> Any:
        self.progress(f"kovc assets: {label} ...")
        t0 = time.monotonic()
        result = fn()
        self.progress(f"kovc assets: {label}: done in {time.monotonic() - t0:.1f} s")
        return result

    def module_info(self, module: str, version: str) -> dict[str, Any]:
        """``go mod download -json module@version`` (its GoMod path, Dir and Origin)."""
        tmp = self.root / ".work"
        tmp.mkdir(parents=True, exist_ok=True)
        argv = [self.go, "mod", "download", "-json", f"{module}@{version}"]
        try:
            proc = subprocess.run(argv, cwd=tmp, env=self._env(), capture_output=True, text=True, check=False)
        except FileNotFoundError as err:
            raise AssetError(f"{module}@{version}: the go command is not installed ({err.filename})") from None
        try:
            data: dict[str, Any] = json.loads(proc.stdout or "{}")
        except ValueError:
            data = {}
        if data.get("Error"):
            # e.g. "reading https://proxy…/@v/v1.14.2.info: 403 Forbidden" + the proxy's reason
            text = " ".join(data["Error"].split())
            raise AssetError(text if text.startswith(f"{module}@{version}") else f"{module}@{version}: {text}")
        if proc.returncode != 0 or not data.get("GoMod"):
            raise AssetError(f"{module}@{version}: go mod download failed: "
                             f"{(proc.stderr or proc.stdout).strip()[-300:] or f'exit {proc.returncode}'}")
        return data

    def versions_of(self, module: str) -> list[str]:
        tmp = self.root / ".work"
        tmp.mkdir(parents=True, exist_ok=True)
        out = self.run_go(["list", "-m", "-versions", module], tmp, f"list versions of {module}")
        return out.split()[1:]

    def go_version(self) -> str:
        out = self.run_go(["env", "GOVERSION"], self.root, "go env")
        return out.strip()

    def wrapper(self, name: str, source: str, gomod: str) -> Path:
        """Write the wrapper module ``<root>/.work/<name>`` from ``tools/assets/<source>`` + go.mod."""
        src = WRAPPERS / source
        if not src.is_dir():
            raise AssetError(f"wrapper sources {src} not found: kovc assets build needs a kovc repository checkout")
        work = self.root / ".work" / name
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
        for f in src.glob("*.go"):
            shutil.copy2(f, work / f.name)
        (work / "go.mod").write_text(gomod)
        return work

    def finish(self, artefact: Path, program: str, version: str, module: str, seconds: float,
               extra: dict[str, Any] | None = None) -> AssetInfo:
        info = AssetInfo(program=program, version=version, path=str(artefact), sha256=sha256_of(artefact),
                         module=module, build_seconds=round(seconds, 1), go=self.go_version(), extra=extra or {})
        meta_path(artefact).write_text(json.dumps(info.to_json(), indent=2) + "\n")
        return info


def _go_directive(go_version: str) -> str:
    m = re.match(r"go(\d+\.\d+(?:\.\d+)?)", go_version)
    return m.group(1) if m else "1.26"


def resolve_kubernetes(b: Builder, requested: str | None) -> str:
    """An exact ``vX.Y.Z`` as given, or the newest patch the proxy serves of the suite's minor."""
    if requested and re.fullmatch(r"v\d+\.\d+\.\d+", requested):
        return requested
    if requested and not re.fullmatch(r"v\d+\.\d+", requested):
        raise AssetError(f"malformed kubernetes version {requested!r}: expected vX.Y or vX.Y.Z, e.g. v1.35")
    major, minor, _ = _versions.parse((requested + ".0") if requested else _versions.K8S_VERSION)
    served = b.versions_of("k8s.io/kubernetes")
    newest = newest_patch(served, major, minor)
    if newest is None:
        raise AssetError(f"the Go module proxy serves no k8s.io/kubernetes v{major}.{minor}.x (it serves "
                         f"{' '.join(served) or 'nothing'})")
    return newest


def resolve_etcd(b: Builder, requested: str | None) -> str:
    """etcd for the apiserver: as given, or the newest v3.6.x served (envtest pairs k8s 1.34-1.36
    with etcd 3.6)."""
    if requested:
        _versions.parse(requested)
        return requested
    newest = newest_patch(b.versions_of("go.etcd.io/etcd/server/v3"), 3, 6)
    if newest is None:
        raise AssetError("the Go module proxy serves no go.etcd.io/etcd/server/v3 v3.6.x")
    return newest


def build_kubernetes(b: Builder, version: str, force: bool = False) -> list[AssetInfo]:
    out_dir = k8s_dir(b.root, version)
    targets = {p: out_dir / p for p in ("kube-apiserver", "kube-controller-manager")}
    if not force and all(_current(t, version) for t in targets.values()):
        b.progress(f"kovc assets: kube-apiserver, kube-controller-manager {version}: up to date in {out_dir}")
        return [read_info(t, p, version) for p, t in targets.items()]
    info = b.step(f"k8s.io/kubernetes@{version}: fetch its go.mod",
                  lambda: b.module_info("k8s.io/kubernetes", version))
    gomod_text = Path(info["GoMod"]).read_text()
    replaces = staging_replaces(gomod_text, version)
    gomod = render_gomod("kovc.invalid/assets/kube", _go_directive(b.go_version()),
                         [("k8s.io/kubernetes", version)], replaces)
    work = b.wrapper("kube", "kube", gomod)
    b.step(f"k8s.io/kubernetes@{version}: go mod tidy ({len(replaces)} staging modules -> "
           f"{replaces[0][1].split()[-1]})", lambda: b.run_go(["mod", "tidy"], work, "kube wrapper"))
    out_dir.mkdir(parents=True, exist_ok=True)
    commit = str((info.get("Origin") or {}).get("Hash", ""))
    t0 = time.monotonic()
    b.step(f"go build kube-apiserver + kube-controller-manager {version}", lambda: b.run_go(
        ["build", "-trimpath", "-ldflags", ldflags_kubernetes(version, commit), "-o", str(out_dir) + "/",
         "k8s.io/kubernetes/cmd/kube-apiserver", "k8s.io/kubernetes/cmd/kube-controller-manager"],
        work, f"kube-apiserver {version}"))
    seconds = time.monotonic() - t0
    return [b.finish(t, p, version, f"k8s.io/kubernetes@{version}", seconds, {"built_together": True})
            for p, t in targets.items()]


def build_etcd(b: Builder, k8s_version: str, etcd_version: str, force: bool = False) -> AssetInfo:
    target = k8s_dir(b.root, k8s_version) / "etcd"
    if not force and _current(target, etcd_version):
        b.progress(f"kovc assets: etcd {etcd_version}: up to date in {target.parent}")
        return read_info(target, "etcd", etcd_version)
    info = b.step(f"go.etcd.io/etcd/server/v3@{etcd_version}: resolve",
                  lambda: b.module_info("go.etcd.io/etcd/server/v3", etcd_version))
    gomod = render_gomod("kovc.invalid/assets/etcd", _go_directive(b.go_version()),
                         [("go.etcd.io/etcd/server/v3", etcd_version)], [])
    work = b.wrapper("etcd", "etcd", gomod)
    b.step(f"etcd {etcd_version}: go mod tidy", lambda: b.run_go(["mod", "tidy"], work, "etcd wrapper"))
    target.parent.mkdir(parents=True, exist_ok=True)
    commit = str((info.get("Origin") or {}).get("Hash", ""))
    ld = "-s -w" + (f" -X go.etcd.io/etcd/api/v3/version.GitSHA={commit[:12]}" if commit else "")
    t0 = time.monotonic()
    b.step(f"go build etcd {etcd_version}", lambda: b.run_go(
        ["build", "-trimpath", "-ldflags", ld, "-o", str(target), "."], work, f"etcd {etcd_version}"))
    return b.finish(target, "etcd", etcd_version, f"go.etcd.io/etcd/server/v3@{etcd_version}",
                    time.monotonic() - t0)


def build_webhook(b: Builder, tag: str, force: bool = False) -> AssetInfo:
    target = webhook_path(b.root, tag)
    if not force and _current(target, tag):
        b.progress(f"kovc assets: {WEBHOOK} {tag}: up to date in {target.parent}")
        return read_info(target, WEBHOOK, tag)
    info = b.step(f"github.com/kubeovn/kube-ovn@{tag}: fetch the module",
                  lambda: b.module_info("github.com/kubeovn/kube-ovn", tag))
    replaces = replace_directives(Path(info["GoMod"]).read_text())
    gomod = render_gomod("kovc.invalid/assets/kube-ovn-webhook", _go_directive(b.go_version()),
                         [("github.com/kubeovn/kube-ovn", tag)], replaces)
    work = b.wrapper(f"kube-ovn-webhook-{tag}", "kube-ovn-webhook", gomod)
    b.step(f"{WEBHOOK} {tag}: go mod tidy ({len(replaces)} replaces from the tag's go.mod)",
           lambda: b.run_go(["mod", "tidy"], work, f"{WEBHOOK} {tag} wrapper"))
    target.parent.mkdir(parents=True, exist_ok=True)
    commit = str((info.get("Origin") or {}).get("Hash", ""))
    ld = (f"-s -w -X github.com/kubeovn/kube-ovn/versions.VERSION={tag} "
          f"-X github.com/kubeovn/kube-ovn/versions.BUILDDATE={_build_date()}"
          + (f" -X github.com/kubeovn/kube-ovn/versions.COMMIT={commit}" if commit else ""))
    t0 = time.monotonic()
    b.step(f"go build {WEBHOOK} {tag}", lambda: b.run_go(
        ["build", "-trimpath", "-ldflags", ld, "-o", str(target), "."], work, f"{WEBHOOK} {tag}"))
    return b.finish(target, WEBHOOK, tag, f"github.com/kubeovn/kube-ovn@{tag}", time.monotonic() - t0,
                    {"module_dir": info.get("Dir", "")})


def _current(target: Path, version: str) -> bool:
    if not target.is_file():
        return False
    meta = meta_path(target)
    if not meta.is_file():
        return True  # put there by someone else (setup-envtest): use as is
    try:
        data = json.loads(meta.read_text())
    except ValueError:
        return False
    return bool(data.get("version") == version and data.get("sha256") == sha256_of(target))


def kube_ovn_module_dir(tag: str, go: str = "go") -> Path | None:
    """The directory of ``github.com/kubeovn/kube-ovn@tag`` in the Go module cache, if downloaded
    (no network: ``GOFLAGS=-mod=mod GOPROXY=off``)."""
    env = dict(os.environ, GOPROXY="off", GOWORK="off")
    try:
        proc = subprocess.run([go, "mod", "download", "-json", f"github.com/kubeovn/kube-ovn@{tag}"],
                              capture_output=True, text=True, env=env, check=False, cwd=Path.home())
    except FileNotFoundError:
        return None
    try:
        data = json.loads(proc.stdout or "{}")
    except ValueError:
        return None
    d = data.get("Dir")
    return Path(d) if d and Path(d).is_dir() else None


def build_kubevirt_crds(b: Builder, version: str, force: bool = False) -> AssetInfo:
    """Build KubeVirt's CRD generator wrapper at ``version`` and keep what it prints (``crds.yaml``)."""
    target = kubevirt_crds_path(b.root, version)
    if not force and _current(target, version):
        b.progress(f"kovc assets: KubeVirt CRDs {version}: up to date in {target.parent}")
        return read_info(target, "kubevirt-crds", version)
    info = b.step(f"kubevirt.io/kubevirt@{version}: fetch the module",
                  lambda: b.module_info("kubevirt.io/kubevirt", version))
    replaces = replace_directives(Path(info["GoMod"]).read_text(), local_version=version)
    gomod = render_gomod("kovc.invalid/assets/kubevirt-crds", _go_directive(b.go_version()),
                         [("kubevirt.io/kubevirt", version)], replaces)
    work = b.wrapper(f"kubevirt-crds-{version}", "kubevirt-crds", gomod)
    b.step(f"KubeVirt CRD generator {version}: go mod tidy ({len(replaces)} replaces from the tag's go.mod)",
           lambda: b.run_go(["mod", "tidy"], work, f"kubevirt-crds {version} wrapper"))
    target.parent.mkdir(parents=True, exist_ok=True)
    generator = target.parent / "kubevirt-crds"
    t0 = time.monotonic()
    b.step(f"go build KubeVirt CRD generator {version}", lambda: b.run_go(
        ["build", "-trimpath", "-ldflags", "-s -w", "-o", str(generator), "."], work, f"kubevirt-crds {version}"))
    seconds = time.monotonic() - t0
    try:
        out = subprocess.run([str(generator)], capture_output=True, text=True, check=True).stdout
        hooks = subprocess.run([str(generator), "virt-api-webhooks", "kubevirt"], capture_output=True, text=True,
                               check=True).stdout
    except subprocess.CalledProcessError as err:
        raise AssetError(f"KubeVirt CRD generator {version} failed: {err.stderr.strip()[-300:]}") from None
    target.write_text(out)
    (target.parent / VIRT_API_WEBHOOKS).write_text(hooks)
    return b.finish(target, "kubevirt-crds", version, f"kubevirt.io/kubevirt@{version}", seconds,
                    {"generator": str(generator)})
