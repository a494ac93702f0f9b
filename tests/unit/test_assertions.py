from __future__ import annotations

import pytest
from kubernetes.client.exceptions import ApiException

from conformance.assertions import IPIdentity, assert_denied_pod_create, is_webhook_denial

WH = "pod-ip-validating.kube-ovn.io"
IP = "10.16.0.15"
DENIAL = (f'admission webhook "{WH}" denied the request: annotation static-ip {IP} is conflict with ip crd '
          f"vm1.ns1, ip {IP}")


def api_error(code: int, message: str) -> ApiException:
    import json
    return ApiException(status=code, reason="x", body=json.dumps({"kind": "Status", "message": message,
                                                                  "code": code}))


def test_denial_counts() -> None:
    assert is_webhook_denial(DENIAL, WH, IP)
    assert is_webhook_denial(DENIAL, WH, IP, code=403)
    assert is_webhook_denial(DENIAL, WH, IP, code=400)
    # the #4803 log lost the spaces around the quotes
    assert is_webhook_denial(DENIAL.replace('" denied', '"denied'), WH, IP)
    # a different wording still counts: never match the full text
    assert is_webhook_denial(f'admission webhook "{WH}" denied the request: {IP} is taken', WH, IP)


@pytest.mark.parametrize("text,code", [
    (DENIAL, 500),
    (f'Internal error occurred: failed calling webhook "{WH}": {IP} connection refused', None),
    (f'pods "x" is forbidden: exceeded quota: q, requested: pods=1 ({IP})', 403),
    (f'pods "x" is forbidden: violates PodSecurity "restricted:latest": {IP}', 403),
    (f'admission webhook "{WH}" denied the request: annotation static-ip is conflict', 403),  # no IP
    (DENIAL.replace(IP, "10.16.0.150"), 403),  # another address that starts with the IP
    (DENIAL.replace(WH, "other.example.io"), 403),  # another webhook
    ("", 403),
])
def test_not_a_denial(text: str, code: int | None) -> None:
    assert not is_webhook_denial(text, WH, IP, code=code)


def test_ip_token_boundaries() -> None:
    short = f'admission webhook "{WH}" denied the request: 10.16.0.1 x'
    assert not is_webhook_denial(short, WH, "10.16.0.15")
    assert not is_webhook_denial(f'admission webhook "{WH}" denied the request: 110.16.0.15 x', WH, IP)
    assert is_webhook_denial(f'admission webhook "{WH}" denied the request: ip {IP}.', WH, IP)


def test_assert_denied_pod_create() -> None:
    assert "denied the request" in assert_denied_pod_create(api_error(403, DENIAL), WH, IP, "pod c-1")
    with pytest.raises(AssertionError, match="was admitted"):
        assert_denied_pod_create(None, WH, IP, "pod c-1")
    with pytest.raises(AssertionError, match="HTTP 500"):
        assert_denied_pod_create(api_error(500, DENIAL), WH, IP, "pod c-1")
    with pytest.raises(AssertionError, match="got HTTP 403"):
        psa = api_error(403, 'pods "c" is forbidden: violates PodSecurity')
        assert_denied_pod_create(psa, WH, IP, "pod c")


def test_identity_differences() -> None:
    cr = {"metadata": {"name": "vm.ns", "uid": "u1"},
          "spec": {"ipAddress": IP, "v4IpAddress": IP, "macAddress": "00:00:00:aa:bb:cc", "podName": "vm",
                   "podType": "VirtualMachine", "namespace": "ns", "subnet": "ovn-default", "nodeName": "n1"}}
    a = IPIdentity.from_cr(cr)
    moved = {**cr, "spec": {**cr["spec"], "nodeName": "n2"}}
    assert a.differences(IPIdentity.from_cr(moved)) == []  # nodeName may change
    recreated = {**cr, "metadata": {"name": "vm.ns", "uid": "u2"}}
    assert a.differences(IPIdentity.from_cr(recreated)) == ["uid: 'u1' -> 'u2'"]
