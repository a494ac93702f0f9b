"""Preconditions. A failure makes the run invalid: every other verdict is void."""

from __future__ import annotations

import pytest
import tenacity
from kubernetes.client.exceptions import ApiException

from conformance import assertions, names, templates
from conformance.kube import Kube, api_code, describe_error
from conformance.verbs import Actions

#: A documentation prefix (RFC 5737) no cluster uses: an address outside it is "not in cidr".
FOREIGN_CIDR = "192.0.2.0/24"
KEEP_VM_IP_FLAG = "--keep-vm-ip"


@pytest.mark.conformance("env.webhook-live")
def test_webhook_live(kube: Kube, settings: object, ns: str, act: Actions) -> None:
    """A ``dryRun=All`` pod create with ``ovn.kubernetes.io/ip_address: <a free address>`` and
    ``ovn.kubernetes.io/cidr: 192.0.2.0/24`` is rejected by ``pod-ip-validating.kube-ovn.io`` with
    ``… not in cidr …`` (HTTP 400), retried up to 30 s. Proves the API-server→webhook path
    independently of the conflict policy (the webhook has failurePolicy Ignore)."""
    ip = act.addresses.take()
    webhook = act.webhook
    answers: list[str] = []

    def attempt() -> bool:
        body = templates.render_pod(name=f"live-{names.rand(6)}", namespace=ns, ip=ip,
                                    subnet=templates.DEFAULT_SUBNET, run_id=kube.run_id,
                                    annotations={templates.CIDR_ANNOTATION: FOREIGN_CIDR})
        try:
            kube.create_pod(ns, body, dry_run=True)
        except ApiException as exc:
            text = describe_error(exc)
            answers.append(text)
            return api_code(exc) == 400 and "not in cidr" in text \
                and assertions.is_webhook_denial(text, webhook, ip, code=400)
        answers.append("admitted")
        return False

    ok = tenacity.Retrying(retry=tenacity.retry_if_result(lambda r: not r),
                           stop=tenacity.stop_after_delay(act.t(30)),
                           wait=tenacity.wait_exponential(multiplier=0.1, max=2.0),
                           retry_error_callback=lambda rs: False)(attempt)
    assert ok, (f"expected a dryRun pod requesting {ip} with {templates.CIDR_ANNOTATION}={FOREIGN_CIDR} "
                f"to be rejected by webhook \"{webhook}\" with HTTP 400 '… not in cidr …' "
                f"within {act.t(30):.0f}s; "
                f"{len(answers)} attempt(s), last answer: {answers[-1] if answers else 'none'} "
                "(is the webhook deployed and reachable? failurePolicy Ignore admits everything when not)")


def _flag_value(args: list[str], flag: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == flag:
            nxt = args[i + 1] if i + 1 < len(args) else ""
            return "true" if not nxt or nxt.startswith("-") else nxt
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


@pytest.mark.conformance("env.keep-vm-ip")
def test_keep_vm_ip(kube: Kube) -> None:
    """keep-vm-ip is on (kube-ovn-controller ``--keep-vm-ip``, default true)."""
    deployments = [d for d in kube.list_deployments(None) if d["metadata"]["name"] == "kube-ovn-controller"]
    assert deployments, ("expected a Deployment named kube-ovn-controller in some namespace (to read "
                         f"{KEEP_VM_IP_FLAG}); none found")
    for dep in deployments:
        where = f"Deployment {dep['metadata']['namespace']}/kube-ovn-controller"
        for c in dep["spec"]["template"]["spec"].get("containers") or []:
            args = [str(a) for a in (c.get("command") or []) + (c.get("args") or [])]
            value = _flag_value(args, KEEP_VM_IP_FLAG)
            if value is None:
                continue  # default true
            assert value.strip().lower() in ("true", "1", "t"), (
                f"expected keep-vm-ip on in {where} container {c.get('name')}; it runs with "
                f"{KEEP_VM_IP_FLAG}={value}")
