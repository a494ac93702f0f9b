"""Differential check of the simulated cluster's API server against the real kube-apiserver.

The same request list goes to both servers — the simulated one (:class:`~conformance.sim.cluster.SimCluster`
with the API only: no KubeVirt/Kube-OVN behaviour, its garbage collector and namespace controller) and
the real one (:class:`~conformance.envtest.controlplane.ControlPlane`: etcd + kube-apiserver +
kube-controller-manager with the GC and namespace controllers, the real Kube-OVN CRDs of the tag and
KubeVirt's generated CRDs, installed as ``--backend envtest`` installs them) — each with its own
credentials (the sim's bearer token, the real server's admin client certificate). For every request the
answers are compared: the HTTP status code, ``Status.reason``, the fields of ``details.causes``, and the
shape of the answered object (what a case names: the presence of ``metadata.uid`` and friends, values
such as ``status.phase`` or ``kind``, the types of watch events).

Two request lists:

* :data:`CASES` — hand-written: invalid names, bad media types, stale resourceVersions, conflicting
  patches, unauthenticated calls, unknown resources and namespaces, 405s, the patch flavours, server-side
  apply with conflicts, dryRun, preconditions, finalizers, generateName, watches with selectors;
* the suite's own requests, recorded from a ``kovc run --backend sim`` (``kovc sim serve
  --record-requests``, :func:`load_recording`) and replayed with each server's uids and
  resourceVersions substituted (:func:`recorded_cases`).

A difference is either fixed in the simulated cluster or listed in :data:`KNOWN_DIFFERENCES` (with the
reason it is harmless; ``docs/sim-api-differences.md`` says the same). ``tools/apidiff.py`` runs it and
prints the table; ``tests/envtest/test_apidiff.py`` asserts every difference is a known one.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import ssl
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

JSON = dict[str, Any]
Auth = Literal["user", "none", "bad-token"]

#: The namespace every hand-written case works in (created by the first case).
NAMESPACE = "apidiff"
#: Placeholders in paths, queries and bodies: ``${name}`` (a value a previous case saved, or ``ns``).
_VAR = re.compile(r"\$\{([A-Za-z0-9_.-]+)\}")


# --------------------------------------------------------------------------- servers
@dataclass
class Server:
    """One API server: where it is and how each kind of caller authenticates."""

    name: str
    host: str
    port: int
    #: Trusts the server's CA and (real server) presents the admin's client certificate.
    user_context: ssl.SSLContext
    #: Trusts the server's CA, no client certificate (unauthenticated and bad-token calls).
    anonymous_context: ssl.SSLContext
    user_headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 20.0

    def __post_init__(self) -> None:
        self._conns: dict[Auth, http.client.HTTPSConnection] = {}

    def _connection(self, auth: Auth, timeout: float | None) -> http.client.HTTPSConnection:
        ctx = self.user_context if auth == "user" else self.anonymous_context
        return http.client.HTTPSConnection(self.host, self.port, timeout=timeout or self.timeout, context=ctx)

    def request(self, method: str, path: str, *, body: bytes | None = None, headers: dict[str, str] | None = None,
                auth: Auth = "user", timeout: float | None = None, fresh: bool = False) -> tuple[int, bytes, str]:
        """(status, body, content type) of one request; kept-alive connections per kind of caller
        (``fresh``: a connection of its own, for watches)."""
        all_headers = {"User-Agent": "kovc-apidiff", "Accept": "application/json"}
        if auth == "user":
            all_headers.update(self.user_headers)
        elif auth == "bad-token":
            all_headers["Authorization"] = "Bearer kovc-apidiff-not-a-token"
        all_headers.update(headers or {})
        for attempt in (0, 1):
            conn = self._connection(auth, timeout) if fresh else self._conns.get(auth) or self._connection(auth, None)
            try:
                conn.request(method, path, body=body, headers=all_headers)
                resp = conn.getresponse()
                answer = resp.status, resp.read(), resp.getheader("Content-Type") or ""
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
                    http.client.CannotSendRequest):
                conn.close()
                self._conns.pop(auth, None)
                if attempt or fresh:
                    raise
                continue
            if fresh or resp.will_close:
                conn.close()
                self._conns.pop(auth, None)
            else:
                self._conns[auth] = conn
            return answer
        raise AssertionError("unreachable")

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()


# --------------------------------------------------------------------------- cases
@dataclass(frozen=True)
class Case:
    """One request and what of its answer is compared.

    ``fields``: dotted paths (list indexes as numbers) whose values are compared; a path may end in
    ``|len`` (compare the length), ``|present`` (compare only whether it is there), ``|keys`` (the
    sorted keys of a map), ``|prefix:N`` (the first N characters) or ``|same-as:VAR`` (whether it equals
    a saved variable). ``save``: variables for later
    cases (``name -> dotted path`` of the answer). ``watch``: the body is a watch stream (its event
    types and object names are compared). ``compare``: False for set-up steps."""

    id: str
    method: str
    path: str
    body: Any = None
    content_type: str | None = None
    auth: Auth = "user"
    fields: tuple[str, ...] = ()
    save: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    watch: bool = False
    compare: bool = True
    #: Send again (every 0.2 s, at most ``until_timeout`` seconds) until the answer has this code: the
    #: end of something a controller finishes (namespace deletion), compared once both got there.
    until_code: int | None = None
    until_timeout: float = 30.0
    #: Compare ``details.causes[*].field`` of an error (off when the real server reports schema errors the
    #: sim does not model field by field).
    causes: bool = True
    source: str = "case"
    #: What a known difference may be keyed by (``tag:<name>`` in :data:`KNOWN_DIFFERENCES`), for replayed
    #: requests whose ids change from run to run.
    tags: frozenset[str] = frozenset()


@dataclass
class Outcome:
    """What one server answered, reduced to what is compared."""

    code: int
    reason: str = ""
    message: str = ""
    causes: tuple[str, ...] = ()
    fields: dict[str, Any] = field(default_factory=dict)
    events: tuple[str, ...] = ()
    raw: Any = None

    def summary(self) -> str:
        text = f"{self.code}" + (f" {self.reason}" if self.reason else "")
        if self.causes:
            text += f" causes={list(self.causes)}"
        if self.events:
            text += f" events={list(self.events)}"
        return text


_MISSING = "<absent>"


def dig(obj: Any, path: str) -> Any:
    cur = obj
    for part in path.split("."):
        if isinstance(cur, list) and part.isdigit():
            idx = int(part)
            cur = cur[idx] if idx < len(cur) else _MISSING
        elif isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            return _MISSING
    return cur


def extract(obj: Any, spec: str) -> Any:
    path, _, op = spec.partition("|")
    value = dig(obj, path)
    if op == "present":
        return value is not _MISSING and value not in (None, "", [], {})
    if value is _MISSING:
        return _MISSING
    if op == "len":
        return len(value) if isinstance(value, str | list | dict) else _MISSING
    if op == "keys":
        return sorted(value) if isinstance(value, dict) else _MISSING
    if op.startswith("prefix:"):
        return str(value)[: int(op.split(":", 1)[1])]
    return value


def _substitute(value: Any, variables: dict[str, str]) -> Any:
    if isinstance(value, str):
        def repl(m: re.Match[str]) -> str:
            return variables.get(m.group(1), m.group(0))
        return _VAR.sub(repl, value)
    if isinstance(value, dict):
        return {k: _substitute(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, variables) for v in value]
    return value


def run_case(server: Server, case: Case, variables: dict[str, str]) -> Outcome:
    """Send ``case`` to ``server`` (placeholders filled from ``variables``, which its ``save`` extends)."""
    if case.until_code is not None:
        deadline = time.monotonic() + case.until_timeout
        while True:
            out = run_case(server, Case(case.id, case.method, case.path, case.body, case.content_type, case.auth,
                                        case.fields, case.save, case.headers, case.watch), variables)
            if out.code == case.until_code or time.monotonic() > deadline:
                return out
            time.sleep(0.2)
    path = _substitute(case.path, variables)
    body: bytes | None = None
    headers = dict(case.headers)
    if case.body is not None:
        filled = _substitute(case.body, variables)
        body = filled.encode() if isinstance(filled, str) else filled if isinstance(filled, bytes) \
            else json.dumps(filled).encode()
        headers["Content-Type"] = case.content_type or "application/json"
    elif case.content_type:
        headers["Content-Type"] = case.content_type
    try:
        code, raw, ctype = server.request(case.method, path, body=body, headers=headers, auth=case.auth,
                                          fresh=case.watch)
    except (OSError, http.client.HTTPException) as err:
        return Outcome(0, "ConnectionError", str(err))
    if case.watch:
        events = []
        for line in raw.splitlines():
            if not line.strip():
                continue
            try:
                ev = json.loads(line)
            except ValueError:
                events.append("<not JSON>")
                continue
            obj = ev.get("object") or {}
            if ev.get("type") == "ERROR":
                events.append(f"ERROR {obj.get('code')} {obj.get('reason')}")
            elif ev.get("type") != "BOOKMARK":
                events.append(f"{ev.get('type')} {dig(obj, 'metadata.name')}")
        return Outcome(code, events=tuple(events), raw=raw[:2000].decode(errors="replace"))
    doc: Any = None
    if "json" in ctype:
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = None
    out = Outcome(code, raw=doc if doc is not None else raw[:300].decode(errors="replace"))
    if isinstance(doc, dict) and doc.get("kind") == "Status" and doc.get("status") == "Failure":
        out.reason = str(doc.get("reason", ""))
        out.message = str(doc.get("message", ""))
        if case.causes:
            out.causes = tuple(sorted({str(c.get("field", "")) for c in (doc.get("details") or {}).get("causes") or []
                                       if isinstance(c, dict)}))
    elif code >= 400 and not isinstance(doc, dict):
        out.reason = "<no Status>"
    for spec in case.fields:
        path, _, op = spec.partition("|")
        if op.startswith("same-as:"):
            out.fields[spec] = str(dig(doc, path)) == variables.get(op.split(":", 1)[1])
        else:
            out.fields[spec] = extract(doc, spec)
    for var, spec in case.save.items():
        value = extract(doc, spec)
        if value is not _MISSING:
            variables[var] = str(value)
    return out


@dataclass
class Difference:
    case: Case
    sim: Outcome
    real: Outcome
    what: list[str]

    @property
    def known(self) -> str | None:
        return known_difference(self.case)


def compare(case: Case, sim: Outcome, real: Outcome) -> list[str]:
    """What differs between two answers to ``case`` (empty: they agree)."""
    what = []
    if sim.code != real.code:
        what.append(f"code: sim {sim.code}, real {real.code}")
    if sim.reason != real.reason:
        what.append(f"reason: sim {sim.reason or '-'}, real {real.reason or '-'}")
    if sim.causes != real.causes and sim.code == real.code:
        what.append(f"causes: sim {list(sim.causes)}, real {list(real.causes)}")
    if sim.events != real.events:
        what.append(f"watch events: sim {list(sim.events)}, real {list(real.events)}")
    if sim.code == real.code:
        for spec in case.fields:
            a, b = sim.fields.get(spec, _MISSING), real.fields.get(spec, _MISSING)
            if a != b:
                what.append(f"{spec}: sim {a!r}, real {b!r}")
    return what


@dataclass
class Report:
    differences: list[Difference] = field(default_factory=list)
    agreed: list[Case] = field(default_factory=list)
    outcomes: list[tuple[Case, Outcome, Outcome]] = field(default_factory=list)

    @property
    def compared(self) -> int:
        return len(self.agreed) + len(self.differences)

    def by_source(self) -> dict[str, tuple[int, int]]:
        """source -> (agree, compared)."""
        out: dict[str, tuple[int, int]] = {}
        for c in self.agreed:
            a, n = out.get(c.source, (0, 0))
            out[c.source] = (a + 1, n + 1)
        for d in self.differences:
            a, n = out.get(d.case.source, (0, 0))
            out[d.case.source] = (a, n + 1)
        return out

    def unknown(self) -> list[Difference]:
        return [d for d in self.differences if d.known is None]

    def table(self) -> str:
        lines = []
        for source, (agree, total) in sorted(self.by_source().items()):
            lines.append(f"{source}: {agree}/{total} agree")
        lines.append(f"total: {len(self.agreed)}/{self.compared} agree, {len(self.differences)} differ "
                     f"({len(self.unknown())} not listed as known)")
        for d in self.differences:
            mark = "known" if d.known else "NEW"
            lines.append(f"  [{mark}] {d.case.id}: {d.case.method} {d.case.path}: " + "; ".join(d.what))
        return "\n".join(lines)


def run(sim: Server, real: Server, cases: Sequence[Case], *, progress: Callable[[str], None] | None = None) -> Report:
    """Send every case to both servers, alternating (so timing-dependent state, e.g. a namespace the
    controller is finalizing, has had the same time on both; a watch goes to both at once), and compare."""
    report = Report()
    sim_vars: dict[str, str] = {"ns": NAMESPACE}
    real_vars: dict[str, str] = {"ns": NAMESPACE}
    import concurrent.futures

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="kovc-apidiff-watch")
    for case in cases:
        if case.watch:  # a watch lasts its timeoutSeconds: both at once
            pending = pool.submit(run_case, real, case, real_vars)
            a = run_case(sim, case, sim_vars)
            b = pending.result()
        else:
            a = run_case(sim, case, sim_vars)
            b = run_case(real, case, real_vars)
        if not case.compare:
            continue
        report.outcomes.append((case, a, b))
        what = compare(case, a, b)
        if what:
            report.differences.append(Difference(case, a, b, what))
            if progress:
                progress(f"differ {case.id}: " + "; ".join(what))
        else:
            report.agreed.append(case)
    pool.shutdown()
    return report


# --------------------------------------------------------------------------- the hand-written cases
def _cm(name: str, **meta: Any) -> JSON:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, **meta}, "data": {"k": "v"}}


def _pod(name: str = "", **meta: Any) -> JSON:
    md: JSON = {**({"name": name} if name else {}), **meta}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md,
            "spec": {"containers": [{"name": "c", "image": "kovc.invalid/pause:1"}]}}


def _vm(name: str) -> JSON:
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": name},
            "spec": {"runStrategy": "Halted", "template": {"metadata": {"labels": {"vm": name}}, "spec": {
                "domain": {"devices": {}, "resources": {"requests": {"memory": "64Mi"}}}}}}}


_NS = "/api/v1/namespaces/${ns}"
_CMS = _NS + "/configmaps"
_PODS = _NS + "/pods"
_VMS = "/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachines"
_IPS = "/apis/kubeovn.io/v1/ips"
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSONPATCH = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"
WATCH = "watch=1&timeoutSeconds=1"
#: Resumed watches get 2 s: kube-apiserver's watch cache may still be catching up with the writes just made.
WATCH_RESUME = "watch=1&timeoutSeconds=2"
_NEW = ("metadata.uid|present", "metadata.resourceVersion|present", "metadata.creationTimestamp|present", "kind",
        "apiVersion")


def _ip(name: str) -> JSON:
    return {"apiVersion": "kubeovn.io/v1", "kind": "IP", "metadata": {"name": name},
            "spec": {"podName": "p", "namespace": NAMESPACE, "subnet": "ovn-default", "ipAddress": "10.16.0.9",
                     "v4IpAddress": "10.16.0.9", "macAddress": "00:00:00:00:00:09", "podType": "", "nodeName": "",
                     "attachSubnets": [], "attachIps": [], "attachMacs": [], "containerID": ""}}


CASES: tuple[Case, ...] = (
    # -- authentication, discovery, unknown paths
    Case("auth.bad-token", "GET", "/api/v1/namespaces", auth="bad-token"),
    Case("auth.none.list", "GET", "/api/v1/namespaces", auth="none"),
    Case("auth.none.healthz", "GET", "/healthz", auth="none"),
    Case("auth.none.version", "GET", "/version", auth="none"),
    Case("discovery.version", "GET", "/version", fields=("major", "gitVersion|present")),
    Case("discovery.core", "GET", "/api/v1", fields=("kind", "groupVersion")),
    Case("discovery.kubevirt", "GET", "/apis/kubevirt.io/v1", fields=("kind", "groupVersion")),
    Case("unknown.resource", "GET", "/api/v1/foos"),
    Case("unknown.group", "GET", "/apis/nope.kovc.io/v1/things"),
    Case("unknown.path", "GET", "/nope"),
    # -- namespaces
    Case("namespace.create", "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                             "metadata": {"name": NAMESPACE}},
         fields=(*_NEW, "status.phase", "spec.finalizers", "metadata.labels")),
    Case("namespace.create.invalid-name", "POST", "/api/v1/namespaces",
         {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "Bad_NS"}}),
    Case("namespace.create.duplicate", "POST", "/api/v1/namespaces",
         {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
    Case("namespace.missing.get-pod", "GET", "/api/v1/namespaces/kovc-no-such-ns/pods/p"),
    Case("namespace.missing.list-pods", "GET", "/api/v1/namespaces/kovc-no-such-ns/pods", fields=("kind",)),
    Case("namespace.missing.create-pod", "POST", "/api/v1/namespaces/kovc-no-such-ns/pods", _pod("p")),
    # -- pods: create, defaulting, validation
    Case("pod.create", "POST", _PODS, _pod("web"),
         fields=(*_NEW, "metadata.generation", "status.phase", "status.qosClass", "spec.restartPolicy",
                 "spec.dnsPolicy", "spec.schedulerName", "spec.terminationGracePeriodSeconds",
                 "spec.enableServiceLinks", "spec.containers.0.imagePullPolicy",
                 "spec.containers.0.terminationMessagePath", "spec.containers.0.terminationMessagePolicy",
                 "spec.securityContext", "spec.tolerations|len"),
         save={"pod_uid": "metadata.uid", "pod_rv": "metadata.resourceVersion"}),
    Case("pod.create.duplicate", "POST", _PODS, _pod("web")),
    Case("pod.create.empty-spec", "POST", _PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "empty"},
                                                  "spec": {}}),
    Case("pod.create.no-image", "POST", _PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "noimg"},
                                                "spec": {"containers": [{"name": "c"}]}}),
    Case("pod.create.invalid-name", "POST", _PODS, _pod("Web_1")),
    Case("pod.create.placeholder-name", "POST", _PODS, _pod("VM_NAME")),
    Case("pod.create.name-too-long", "POST", _PODS, _pod("a" * 254)),
    Case("pod.create.bad-label", "POST", _PODS, _pod("lbl", labels={"bad key!": "v"})),
    Case("pod.create.no-name", "POST", _PODS, _pod()),
    Case("pod.create.generate-name", "POST", _PODS, _pod(generateName="gen-"),
         fields=("metadata.name|len", "metadata.name|prefix:4", "metadata.generateName")),
    Case("pod.create.namespace-mismatch", "POST", _PODS, _pod("other", namespace="default")),
    Case("pod.create.kind-mismatch", "POST", _PODS, _cm("notapod")),
    Case("pod.create.text-plain", "POST", _PODS, json.dumps(_pod("tp")), content_type="text/plain"),
    Case("pod.create.not-json", "POST", _PODS, "{not json", content_type="application/json"),
    Case("pod.create.yaml", "POST", _PODS, "apiVersion: v1\nkind: Pod\nmetadata: {name: fromyaml}\nspec:\n"
                                           "  containers: [{name: c, image: kovc.invalid/pause:1}]\n",
         content_type="application/yaml", fields=("metadata.name",)),
    Case("pod.create.dry-run", "POST", _PODS + "?dryRun=All", _pod("dry"), fields=_NEW),
    Case("pod.get.dry-run-left-nothing", "GET", _PODS + "/dry"),
    Case("pod.create.dry-run-bogus", "POST", _PODS + "?dryRun=Bogus", _pod("dry2")),
    Case("pod.post-on-name", "POST", _PODS + "/web", _pod("web")),
    Case("pod.put-on-collection", "PUT", _PODS, _pod("web")),
    Case("pod.get", "GET", _PODS + "/web", fields=("kind", "metadata.name", "status.phase")),
    Case("pod.get.missing", "GET", _PODS + "/nope"),
    Case("pod.list", "GET", _PODS, fields=("kind", "apiVersion", "metadata.resourceVersion|present",
                                           "items|len")),
    Case("pod.list.label-selector", "GET", _PODS + "?labelSelector=app%3Dnone", fields=("items|len",)),
    Case("pod.list.bad-label-selector", "GET", _PODS + "?labelSelector=%21%21bad"),
    Case("pod.list.bad-field-selector", "GET", _PODS + "?fieldSelector=spec.nope%3Dx"),
    Case("pod.list.table", "GET", _PODS, headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
         fields=("kind", "rows|len")),
    # -- updates
    Case("pod.put.stale-rv", "PUT", _PODS + "/web", {**_pod("web", resourceVersion="1")}),
    Case("pod.put.change-image-no-rv", "PUT", _PODS + "/web",
         {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"a": "b"}},
          "spec": {"containers": [{"name": "c", "image": "kovc.invalid/pause:2"}]}},
         fields=("metadata.labels", "spec.containers.0.image", "metadata.generation")),
    Case("pod.put.rename-container", "PUT", _PODS + "/web",
         {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
          "spec": {"containers": [{"name": "renamed", "image": "kovc.invalid/pause:2"}]}}),
    Case("pod.put.name-mismatch", "PUT", _PODS + "/web", _pod("other")),
    Case("pod.put.missing", "PUT", _PODS + "/nope", _pod("nope")),
    Case("pod.status.put", "PUT", _PODS + "/web/status",
         {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}, "spec": {"containers": [
             {"name": "c", "image": "kovc.invalid/pause:2"}]}, "status": {"phase": "Running"}},
         fields=("status.phase",)),
    Case("pod.binding", "POST", _PODS + "/web/binding",
         {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "web"},
          "target": {"apiVersion": "v1", "kind": "Node", "name": "node-1"}}, fields=("kind", "status")),
    Case("pod.binding.again", "POST", _PODS + "/web/binding",
         {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "web"},
          "target": {"apiVersion": "v1", "kind": "Node", "name": "node-2"}}),
    # -- patches
    Case("pod.patch.merge", "PATCH", _PODS + "/web", {"metadata": {"labels": {"m": "1"}}}, MERGE,
         fields=("metadata.labels",)),
    Case("pod.patch.strategic", "PATCH", _PODS + "/web",
         {"metadata": {"finalizers": ["kovc.io/x"]}, "spec": {"containers": [
             {"name": "c", "image": "kovc.invalid/pause:3"}]}}, STRATEGIC,
         fields=("metadata.finalizers", "spec.containers|len", "spec.containers.0.image")),
    Case("pod.patch.json", "PATCH", _PODS + "/web", [{"op": "add", "path": "/metadata/labels/j", "value": "2"}],
         JSONPATCH, fields=("metadata.labels",)),
    Case("pod.patch.json.test-fails", "PATCH", _PODS + "/web",
         [{"op": "test", "path": "/metadata/name", "value": "other"}], JSONPATCH),
    Case("pod.patch.json.missing-path", "PATCH", _PODS + "/web",
         [{"op": "replace", "path": "/metadata/nope/x", "value": "2"}], JSONPATCH),
    Case("pod.patch.json.not-a-list", "PATCH", _PODS + "/web", {"op": "add"}, JSONPATCH),
    Case("pod.patch.wrong-type", "PATCH", _PODS + "/web", {"metadata": {"labels": {"x": "1"}}}, "application/json"),
    Case("pod.patch.stale-rv", "PATCH", _PODS + "/web", {"metadata": {"resourceVersion": "1", "labels": {"s": "1"}}},
         MERGE),
    Case("pod.patch.missing", "PATCH", _PODS + "/nope", {"metadata": {"labels": {"x": "1"}}}, MERGE),
    Case("pod.patch.rename", "PATCH", _PODS + "/web", {"metadata": {"name": "web2"}}, MERGE),
    Case("pod.patch.node-name", "PATCH", _PODS + "/web", {"spec": {"nodeName": "node-9"}}, MERGE),
    Case("pod.patch.status", "PATCH", _PODS + "/web/status", {"status": {"podIP": "10.16.0.5"}}, MERGE,
         fields=("status.podIP", "status.phase")),
    # -- deletion: preconditions, finalizers
    Case("pod.delete.precondition-uid", "DELETE", _PODS + "/web",
         {"apiVersion": "v1", "kind": "DeleteOptions",
          "preconditions": {"uid": "00000000-0000-0000-0000-000000000000"}}),
    Case("pod.delete.precondition-rv", "DELETE", _PODS + "/web",
         {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"resourceVersion": "1"}}),
    Case("pod.delete.bad-propagation", "DELETE", _PODS + "/web",
         {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Sideways"}),
    Case("pod.delete.dry-run", "DELETE", _PODS + "/web?dryRun=All", None,
         fields=("kind", "metadata.deletionTimestamp|present")),
    Case("pod.delete.with-finalizer", "DELETE", _PODS + "/web",
         {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0},
         fields=("kind", "metadata.deletionTimestamp|present", "metadata.finalizers")),
    Case("pod.get.terminating", "GET", _PODS + "/web", fields=("metadata.deletionTimestamp|present",)),
    Case("pod.patch.terminating-add-finalizer", "PATCH", _PODS + "/web",
         {"metadata": {"finalizers": ["kovc.io/x", "kovc.io/y"]}}, MERGE),
    Case("pod.patch.remove-finalizer", "PATCH", _PODS + "/web", {"metadata": {"finalizers": None}}, MERGE,
         fields=("kind",)),
    Case("pod.get.after-finalizer", "GET", _PODS + "/web"),
    Case("pod.delete.missing", "DELETE", _PODS + "/nope"),
    # -- configmaps: update semantics, delete answers
    Case("cm.create", "POST", _CMS, _cm("one", labels={"w": "1"}), fields=(*_NEW, "data"),
         save={"cm_rv": "metadata.resourceVersion", "cm_uid": "metadata.uid"}),
    Case("cm.put.no-op", "PUT", _CMS + "/one", _cm("one", labels={"w": "1"}),
         fields=("metadata.resourceVersion|same-as:cm_rv",)),
    Case("cm.put.fresh-rv", "PUT", _CMS + "/one",
         {**_cm("one", resourceVersion="${cm_rv}", labels={"w": "1"}), "data": {"k": "v2"}},
         fields=("data", "metadata.resourceVersion|same-as:cm_rv")),
    Case("cm.put.now-stale-rv", "PUT", _CMS + "/one", _cm("one", resourceVersion="${cm_rv}")),
    Case("cm.put.bad-rv", "PUT", _CMS + "/one", _cm("one", resourceVersion="not-a-number")),
    Case("cm.delete.precondition-ok", "DELETE", _CMS + "/one",
         {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": "${cm_uid}"}},
         fields=("kind", "status", "details.name")),
    Case("cm.create.generate-name-bad", "POST", _CMS, {"apiVersion": "v1", "kind": "ConfigMap",
                                                       "metadata": {"generateName": "Bad_"}}),
    Case("svc.create", "POST", _NS + "/services", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"},
                                                    "spec": {"ports": [{"port": 80}], "selector": {"app": "x"}}},
         fields=(*_NEW, "spec.type", "spec.clusterIP|present", "spec.ports.0.targetPort", "spec.ports.0.protocol",
                 "spec.sessionAffinity")),
    Case("svc.create.invalid-name", "POST", _NS + "/services", {"apiVersion": "v1", "kind": "Service",
                                                                "metadata": {"name": "1svc"},
                                                                "spec": {"ports": [{"port": 80}]}}),
    Case("svc.delete", "DELETE", _NS + "/services/svc", None, fields=("kind",)),
    Case("cm.deletecollection", "DELETE", _CMS + "?labelSelector=nothing%3Dhere", None, fields=("kind", "items|len")),
    # -- server-side apply
    Case("apply.no-field-manager", "PATCH", _CMS + "/applied", json.dumps(_cm("applied")), APPLY),
    Case("apply.create", "PATCH", _CMS + "/applied?fieldManager=alice", json.dumps(_cm("applied")), APPLY,
         fields=(*_NEW, "data", "metadata.managedFields.0.manager", "metadata.managedFields.0.operation")),
    Case("apply.conflict", "PATCH", _CMS + "/applied?fieldManager=bob",
         json.dumps({**_cm("applied"), "data": {"k": "other"}}), APPLY),
    Case("apply.force", "PATCH", _CMS + "/applied?fieldManager=bob&force=true",
         json.dumps({**_cm("applied"), "data": {"k": "other"}}), APPLY,
         fields=("data", "metadata.managedFields|len")),
    Case("apply.same-value-no-conflict", "PATCH", _CMS + "/applied?fieldManager=carol",
         json.dumps({**_cm("applied"), "data": {"k": "other"}}), APPLY, fields=("data",)),
    Case("apply.kind-missing", "PATCH", _CMS + "/applied?fieldManager=alice", json.dumps({"metadata": {}}), APPLY),
    # -- custom resources
    Case("vm.create", "POST", _VMS, _vm("vm1"), fields=(*_NEW, "metadata.generation", "spec.runStrategy"),
         save={"vm_rv": "metadata.resourceVersion"}),
    Case("vm.create.unknown-field-pruned", "POST", _VMS, {**_vm("vm2"), "bogus": {"x": 1}},
         fields=("bogus",)),
    Case("vm.create.invalid-name", "POST", _VMS, _vm("VM_NAME")),
    Case("vm.create.no-spec-template", "POST", _VMS, {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                                                      "metadata": {"name": "notemplate"}, "spec": {}}, causes=False),
    Case("vm.create.wrong-type", "POST", _VMS, {**_vm("vm3"), "spec": {"runStrategy": 5, "template": {}}},
         causes=False),
    Case("vm.put.no-rv", "PUT", _VMS + "/vm1", _vm("vm1")),
    Case("vm.put.stale-rv", "PUT", _VMS + "/vm1", {**_vm("vm1"), "metadata": {"name": "vm1", "resourceVersion": "1"}}),
    Case("vm.patch.strategic", "PATCH", _VMS + "/vm1", {"metadata": {"labels": {"x": "1"}}}, STRATEGIC),
    Case("vm.patch.merge", "PATCH", _VMS + "/vm1", {"metadata": {"labels": {"x": "1"}}}, MERGE,
         fields=("metadata.labels", "metadata.generation")),
    Case("vm.patch.merge-spec", "PATCH", _VMS + "/vm1", {"spec": {"runStrategy": "Always"}}, MERGE,
         fields=("metadata.generation",)),
    Case("vm.patch.status-ignored", "PATCH", _VMS + "/vm1", {"status": {"printableStatus": "Running"}}, MERGE,
         fields=("status.printableStatus",)),
    Case("vm.status.patch", "PATCH", _VMS + "/vm1/status", {"status": {"printableStatus": "Stopped"}}, MERGE,
         fields=("status.printableStatus", "metadata.generation")),
    Case("vm.list", "GET", _VMS, fields=("kind", "apiVersion", "items|len")),
    Case("vm.get.missing-subresource", "GET", _VMS + "/vm1/nope"),
    Case("ip.create", "POST", _IPS, _ip("p.apidiff"), fields=(*_NEW, "spec.v4IpAddress")),
    Case("ip.create.namespaced-path", "POST", "/apis/kubeovn.io/v1/namespaces/${ns}/ips", _ip("q.apidiff")),
    Case("ip.put.no-rv", "PUT", _IPS + "/p.apidiff", _ip("p.apidiff")),
    Case("ip.delete", "DELETE", _IPS + "/p.apidiff", None, fields=("kind", "metadata.name")),
    # -- watches (resume from a resourceVersion; a label selector an object stops matching)
    Case("watch.list-rv", "GET", _CMS, fields=("kind",), save={"w_rv": "metadata.resourceVersion"}),
    Case("watch.setup.create", "POST", _CMS, _cm("watched", labels={"sel": "yes"}), compare=False),
    Case("watch.setup.modify", "PATCH", _CMS + "/watched", {"data": {"k": "2"}}, MERGE, compare=False),
    Case("watch.setup.unlabel", "PATCH", _CMS + "/watched", {"metadata": {"labels": {"sel": "no"}}}, MERGE,
         compare=False),
    Case("watch.setup.relabel", "PATCH", _CMS + "/watched", {"metadata": {"labels": {"sel": "yes"}}}, MERGE,
         compare=False),
    Case("watch.setup.delete", "DELETE", _CMS + "/watched", compare=False),
    Case("watch.resume", "GET", _CMS + "?" + WATCH_RESUME + "&resourceVersion=${w_rv}", watch=True),
    Case("watch.resume.selector", "GET", _CMS + "?" + WATCH_RESUME + "&resourceVersion=${w_rv}&labelSelector=sel%3Dyes",
         watch=True),
    Case("watch.initial-list", "GET", "/api/v1/namespaces/kube-system/configmaps?" + WATCH
         + "&fieldSelector=metadata.name%3Dkovc-none", watch=True),
    Case("watch.bad-rv", "GET", _CMS + "?" + WATCH + "&resourceVersion=abc"),
    # -- namespace deletion (an object with a finalizer keeps the namespace Terminating on both servers)
    Case("namespace.setup.held", "POST", _CMS, _cm("held", finalizers=["kovc.io/hold"]), compare=False),
    Case("namespace.delete", "DELETE", "/api/v1/namespaces/${ns}", None,
         fields=("kind", "status.phase", "metadata.deletionTimestamp|present")),
    Case("namespace.terminating.create", "POST", _CMS, _cm("late")),
    Case("namespace.terminating.get", "GET", "/api/v1/namespaces/${ns}", fields=("status.phase",)),
    Case("namespace.release", "PATCH", _CMS + "/held", {"metadata": {"finalizers": None}}, MERGE,
         until_code=200),
    Case("namespace.gone", "GET", "/api/v1/namespaces/${ns}", until_code=404),
)


# --------------------------------------------------------------------------- the suite's own requests
def load_recording(path: Path, user_agent_prefix: str = "kovc/") -> list[JSON]:
    """The requests of a ``kovc sim serve --record-requests`` file sent by the suite (``kovc/…``)."""
    out = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        entry = json.loads(line)
        if str(entry.get("userAgent", "")).startswith(user_agent_prefix):
            out.append(entry)
    return out


#: Recorded requests not replayed, and why (the same for every run).
def _skip_reason(entry: JSON) -> str | None:
    query = urllib.parse.parse_qs(entry.get("query", ""))
    if entry.get("method") == "GET" and (query.get("watch") in (["1"], ["true"]) or "/watch/" in entry["path"]):
        return "watch (compared by the watch.* cases; a replayed watch would wait for events that never come)"
    if entry["path"].startswith("/apis/subresources.kubevirt.io/"):
        return "virt-api's aggregated API (served by the simulated controllers on both tiers, not an API server)"
    if entry.get("stream"):
        return "streamed answer"
    return None


@dataclass
class Replay:
    """A recorded request turned into a :class:`Case`; the recorded answer's uid and resourceVersion
    become variables each server fills with its own (:func:`bind_recorded`)."""

    case: Case
    entry: JSON


def recorded_cases(entries: Iterable[JSON]) -> tuple[list[Case], dict[str, int]]:
    """Cases replaying the suite's requests; (cases, skipped count by reason)."""
    cases: list[Case] = []
    skipped: dict[str, int] = {}
    uids: dict[str, str] = {}
    rvs: dict[str, str] = {}
    #: Objects created with an ownerReference to an owner the replay never created (a dangling owner):
    #: both garbage collectors delete them, each at its own pace.
    dangling: set[str] = set()
    created: set[str] = set()  # uids of objects the suite's own replayed requests create
    for i, entry in enumerate(entries):
        if entry.get("method") == "POST" and entry.get("code") == 201 and entry.get("uid"):
            created.add(str(entry["uid"]))
        why = _skip_reason(entry)
        if why is not None:
            skipped[why] = skipped.get(why, 0) + 1
            continue
        body_text: str | None = entry.get("body")
        if body_text is None and entry.get("bodyBase64"):
            body_text = base64.b64decode(entry["bodyBase64"]).decode(errors="replace")
        query = entry.get("query", "")
        body: Any = None
        if body_text is not None:
            body = body_text
            for recorded, var in uids.items():
                body = body.replace(recorded, "${" + var + "}")
            for recorded, var in rvs.items():
                body = body.replace(f'"resourceVersion": "{recorded}"', f'"resourceVersion": "${{{var}}}"')
        for recorded, var in rvs.items():
            query = re.sub(rf"(resourceVersion=){recorded}(&|$)", rf"\g<1>${{{var}}}\g<2>", query)
        tags: set[str] = set()
        if entry["path"] in dangling:
            tags.add("dangling-owner")
        if entry.get("method") == "POST" and body_text is not None:
            try:
                sent = json.loads(body_text)
            except ValueError:
                sent = None
            refs = ((sent.get("metadata") or {}).get("ownerReferences") or []) if isinstance(sent, dict) else []
            if any(isinstance(r, dict) and str(r.get("uid", "")) not in created for r in refs):
                dangling.add(f"{entry['path']}/{(sent.get('metadata') or {}).get('name', '')}")
        save: dict[str, str] = {}
        if entry.get("uid"):
            uids[entry["uid"]] = f"uid{i}"
            save[f"uid{i}"] = "metadata.uid"
        if entry.get("resourceVersion") and entry.get("kind") != "Status":
            rvs[entry["resourceVersion"]] = f"rv{i}"
            save[f"rv{i}"] = "metadata.resourceVersion"
        path = entry["path"] + (f"?{query}" if query else "")
        fields: tuple[str, ...] = ("kind",) if entry.get("code", 0) < 300 else ()
        headers = {"Accept": entry["accept"]} if entry.get("accept") else {}
        cases.append(Case(f"suite.{i:04d} {entry['method']} {entry['path']}", entry["method"], path, body,
                          content_type=entry.get("contentType") or None, fields=fields, save=save,
                          headers=headers, source="suite", tags=frozenset(tags)))
    return cases, skipped


def record_suite_async(report_dir: Path, profile: str = "baseline") -> Callable[[], Path]:
    """:func:`record_suite` in a thread (the real control plane starts meanwhile); call the result to
    wait for the recording."""
    import concurrent.futures

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="kovc-apidiff-record")
    future = pool.submit(record_suite, report_dir, profile)
    pool.shutdown(wait=False)
    return future.result


def record_suite(report_dir: Path, profile: str = "baseline", timeout: float = 600.0) -> Path:
    """Run ``kovc run --backend sim --profile <profile> --sim-without multus`` with request recording on;
    the recording. The real side serves what the envtest backend installs, which has no Multus, so the
    recorded suite must not create NetworkAttachmentDefinitions either (it would be comparing a served
    API with an absent one). ``RuntimeError`` (with the run's last lines) when the run does not end with
    0 or 1."""
    import os
    import subprocess
    import sys

    from ..sim.serve import RECORD_ENV

    report_dir.mkdir(parents=True, exist_ok=True)
    recording = report_dir / "sim-requests.jsonl"
    recording.unlink(missing_ok=True)
    env = dict(os.environ, **{RECORD_ENV: str(recording)})
    proc = subprocess.run([sys.executable, "-m", "conformance", "run", "--backend", "sim", "--profile", profile,
                           "--sim-without", "multus", "--report-dir", str(report_dir / "report")],
                          env=env, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode not in (0, 1) or not recording.is_file():
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-5:]
        raise RuntimeError(f"kovc run --backend sim --profile {profile} exited {proc.returncode} without a "
                           f"recording: {' | '.join(tail)}")
    return recording


# --------------------------------------------------------------------------- known differences
#: Case id (or prefix ending in ``*``) -> why the difference is harmless. Kept in step with
#: ``docs/sim-api-differences.md`` (a test checks every id is there).
KNOWN_DIFFERENCES: dict[str, str] = {
    "pod.delete.dry-run": "graceful pod deletion: kube-apiserver gives a pod bound to a node a deletionTimestamp and "
                          "keeps it for its grace period until the node's kubelet confirms; the simulated kubelet "
                          "confirms at once, so the sim deletes it at once. Waits follow watches, so only timing "
                          "changes; the envtest tier runs the real behaviour.",
    "cm.put.bad-rv": "an unparseable resourceVersion in an update: kube-apiserver answers 500 (its own parse error "
                     "surfacing), the sim 409 Conflict; both refuse the write and no client sends one.",
    "watch.bad-rv": "an unparseable resourceVersion on a watch: kube-apiserver 500, the sim 400 BadRequest; both "
                    "refuse it and no client sends one.",
    "vm.create.unknown-field-pruned": "CRD structural-schema pruning: kube-apiserver drops fields the CRD's OpenAPI "
                                      "schema does not declare, the sim keeps them (it has no CRD schemas offline: "
                                      "they come from the Go module cache and KubeVirt's generator). The suite "
                                      "reads no undeclared field, and its requests agree (suite.*).",
    "vm.create.no-spec-template": "CRD OpenAPI validation (required fields): kube-apiserver refuses a VirtualMachine "
                                  "without spec.template, the sim accepts it (no CRD schemas offline). Every "
                                  "VirtualMachine the suite sends is valid (its requests agree, suite.*; the "
                                  "envtest baseline passes against the real schemas).",
    "vm.create.wrong-type": "CRD OpenAPI validation (types): as vm.create.no-spec-template.",
    "vm.list": "follows from vm.create.no-spec-template and vm.create.wrong-type: the sim holds the two "
               "VirtualMachines kube-apiserver refused.",
    "tag:dangling-owner": "a replayed request on an object the suite created with an ownerReference to an owner "
                          "that does not exist in the replay (a VMI only the simulated controllers would make): "
                          "both garbage collectors delete such a dependent, the sim's at once, "
                          "kube-controller-manager's a moment later, so a DELETE right after may find it (200) or "
                          "not (404). Timing only; the suite's delete accepts both.",
}
#: Known differences that depend on timing or on the profile recorded (not required to show up every run).
TIMING_DEPENDENT = frozenset({"tag:dangling-owner"})


def known_difference(case: Case) -> str | None:
    if case.id in KNOWN_DIFFERENCES:
        return KNOWN_DIFFERENCES[case.id]
    for tag in sorted(case.tags):
        if f"tag:{tag}" in KNOWN_DIFFERENCES:
            return KNOWN_DIFFERENCES[f"tag:{tag}"]
    for key, why in KNOWN_DIFFERENCES.items():
        if key.endswith("*") and case.id.startswith(key[:-1]):
            return why
    return None


# --------------------------------------------------------------------------- starting both servers
@contextmanager
def sim_server() -> Iterator[Server]:
    """The simulated API server alone (no KubeVirt/Kube-OVN behaviour; GC and namespace controllers),
    with the namespaces a fresh kube-apiserver has."""
    from ..sim.cluster import SimCluster
    from ..sim.config import SimConfig

    cluster = SimCluster(SimConfig(), world=False)
    cluster.start()
    try:
        ca = cluster.ca_pem
        assert ca is not None, "the simulated cluster serves TLS"
        ctx = ssl.create_default_context(cadata=ca.decode())
        server = Server("sim", cluster.config.host, cluster.port, ctx, ctx, dict(cluster.auth_headers))
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease", "kubevirt"):
            server.request("POST", "/api/v1/namespaces", body=json.dumps(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}).encode(),
                headers={"Content-Type": "application/json"})
        yield server
        server.close()
    finally:
        cluster.stop()


@contextmanager
def real_server(log_dir: Path, *, kube_ovn_version: str | None = None,
                timings: dict[str, float] | None = None) -> Iterator[Server]:
    """etcd + kube-apiserver + kube-controller-manager (GC and namespace controllers) with the real
    Kube-OVN CRDs of the tag and KubeVirt's generated CRDs (or the stand-ins ``--backend envtest``
    falls back to), the install namespaces; the admin's client certificate.
    :class:`~conformance.envtest.assets.AssetError` when the programs are not built."""
    from .. import versions
    from ..sim import resources as sim_resources
    from . import assets as a
    from . import install as inst
    from .controlplane import Binaries, ControlPlane
    from .serve import _kube_ovn_module

    root = a.default_dir()
    binaries = Binaries.find(root)
    plane = ControlPlane(binaries, log_dir)
    t0 = time.monotonic()
    plane.start()
    try:
        client = plane.admin_client()
        tag = kube_ovn_version or versions.KUBE_OVN_VERSION
        crds, _src = inst.kube_ovn_crds(_kube_ovn_module(root, tag))
        kv_file = a.kubevirt_crds_path(root, versions.KUBEVIRT_VERSION)
        kv_crds = inst.kubevirt_crds_from_file(kv_file) if kv_file.is_file() else inst.fallback_kubevirt_crds()
        served = {(rt.group, rt.plural) for rt in sim_resources.ALL}
        t1 = time.monotonic()
        inst.install_crds(client, [c for c in (*crds, *kv_crds)
                                   if (c["spec"]["group"], c["spec"]["names"]["plural"]) in served])
        if timings is not None:
            timings["real CRDs installed"] = time.monotonic() - t1
        inst.apply_all(client, inst.namespaces(inst.INSTALL_NAMESPACES))
        if timings is not None:
            timings["real control plane + CRDs ready"] = time.monotonic() - t0
            timings.update({f"real {k}": v for k, v in plane.timings.items()})
        url = urllib.parse.urlsplit(plane.endpoints.apiserver)
        pki = plane.pki
        user_ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        user_ctx.load_cert_chain(str(pki / "users" / "admin.crt"), str(pki / "users" / "admin.key"))
        anon_ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        server = Server("real", url.hostname or "127.0.0.1", url.port or 443, user_ctx, anon_ctx)
        yield server
        server.close()
    finally:
        plane.stop()
