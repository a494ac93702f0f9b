"""The Kube-OVN release table (``conformance.versions``), as verified against upstream tags."""

from __future__ import annotations

import pytest

from conformance import versions
from conformance.sim import policies


@pytest.mark.parametrize(
    ("version", "policy"),
    [
        ("v1.10.8", "pod-name-equality-multus-bypass"),
        ("v1.10.10", "pod-name-equality-multus-bypass"),
        ("v1.11.24", "pod-name-equality-multus-bypass"),
        ("v1.12.0", "pod-name-equality-multus-bypass"),
        ("v1.12.35", "pod-name-equality-multus-bypass"),
        ("v1.13.0", "pod-name-equality"),
        ("v1.13.1", "reverse-containment"),
        ("v1.13.14", "reverse-containment"),
        ("v1.13.15", "owner-equality"),
        ("v1.14.0", "reverse-containment"),
        ("v1.14.4", "reverse-containment"),
        ("v1.14.5", "owner-equality"),
        ("v1.14.41", "owner-equality"),
        ("v1.15.0", "owner-equality"),
        ("v1.15.24", "owner-equality"),
        ("v1.16.0", "owner-equality"),
        ("v1.16.2", "owner-equality"),
    ],
)
def test_webhook_policy_by_release(version: str, policy: str) -> None:
    release = versions.kube_ovn_release(version)
    assert release.webhook_policy == policy, f"{version}: expected {policy}, got {release.webhook_policy}"
    assert release.webhook_policy in policies.BUILTIN, f"{policy} is not a built-in policy"


@pytest.mark.parametrize(
    ("version", "releases"), [("v1.12.35", False), ("v1.13.15", False), ("v1.14.0", True), ("v1.16.2", True)]
)
def test_handle_delete_vm_from_v1_14(version: str, releases: bool) -> None:
    assert versions.kube_ovn_release(version).releases_stopped_vm_ip is releases


@pytest.mark.parametrize(
    ("version", "pin"),
    [
        ("v1.12.0", "v0.59.2"),
        ("v1.12.20", "v1.3.0"),
        ("v1.12.35", "v1.3.1"),
        ("v1.13.0", "v1.3.1"),
        ("v1.14.5", "v1.5.2"),
        ("v1.15.3", "v1.7.0"),
        ("v1.16.2", "v1.8.1"),
    ],
)
def test_kubevirt_ci_pin(version: str, pin: str) -> None:
    assert versions.kube_ovn_release(version).kubevirt_ci_version == pin


def test_chart_v2_from_v1_14() -> None:
    assert not versions.kube_ovn_release("v1.13.15").has_chart_v2
    assert versions.kube_ovn_release("v1.14.0").has_chart_v2


def test_latest_patches_are_the_upstream_tags() -> None:
    assert versions.LATEST_PATCH == {
        (1, 10): 10,
        (1, 11): 24,
        (1, 12): 35,
        (1, 13): 15,
        (1, 14): 41,
        (1, 15): 24,
        (1, 16): 2,
    }
    assert versions.KUBE_OVN_VERSION == "v1.16.2"
    versions.kube_ovn_release(versions.KUBE_OVN_VERSION)


@pytest.mark.parametrize("version", ["v1.10.7", "v1.9.17", "v1.9.40", "v1.8.0"])
def test_older_releases_are_not_supported(version: str) -> None:
    with pytest.raises(versions.VersionError, match="not supported") as err:
        versions.kube_ovn_release(version)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "version", ["v1.16.3", "v1.17.0", "v1.14.42", "v1.10.9", "v1.11.4", "v1.11.9", "v2.0.0"]
)
def test_unknown_releases_are_refused(version: str) -> None:
    with pytest.raises(versions.VersionError, match="unknown Kube-OVN version") as err:
        versions.kube_ovn_release(version)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("version", ["1.16.2", "v1.16", "latest", ""])
def test_malformed_versions(version: str) -> None:
    with pytest.raises(versions.VersionError, match="malformed version"):
        versions.kube_ovn_release(version)


def test_representative_releases_cover_every_policy() -> None:
    seen = {versions.kube_ovn_release(v).webhook_policy for v in versions.REPRESENTATIVE_RELEASES}
    assert seen == {
        "pod-name-equality-multus-bypass",
        "pod-name-equality",
        "reverse-containment",
        "owner-equality",
    }


def test_upgrade_pairs() -> None:
    """Issue 13: downgrades and no-op pairs are refused with one line; minor skips are allowed (upstream
    states no one-minor-at-a-time rule) and reported; the method follows the source's install."""
    src, dst = versions.check_upgrade("v1.13.0", "v1.16.2")
    assert (src.version, dst.version) == ("v1.13.0", "v1.16.2")
    assert versions.skipped_minors("v1.13.0", "v1.16.2") == ["v1.14", "v1.15"]
    assert versions.skipped_minors("v1.14.2", "v1.14.5") == []
    with pytest.raises(versions.VersionError, match=r"^upgrade v1\.16\.2 -> v1\.14\.2 is a downgrade"):
        versions.check_upgrade("v1.16.2", "v1.14.2")
    with pytest.raises(versions.VersionError, match="nothing to upgrade"):
        versions.check_upgrade("v1.14.2", "v1.14.2")
    with pytest.raises(versions.VersionError, match=r"unknown Kube-OVN version v1\.14\.99"):
        versions.check_upgrade("v1.14.99", "v1.16.2")
    assert versions.upgrade_method("v1.16.0", "v1.16.2").startswith("helm upgrade kubeovn charts/kube-ovn-v2")
    assert versions.upgrade_method("v1.14.2", "v1.16.2").startswith("dist/images/install.sh of v1.16.2")
    assert versions.upgrade_method("v1.13.15", "v1.16.2").startswith("dist/images/install.sh of v1.16.2")


def test_install_method_follows_each_release_ci() -> None:
    """Issue 10 item 7: chart v2 exists from v1.14.0, but only v1.16.0+ CI installs it."""
    assert versions.kube_ovn_release("v1.14.0").has_chart_v2
    for version in ("v1.12.35", "v1.13.15", "v1.14.2", "v1.14.41", "v1.15.24"):
        assert versions.kube_ovn_release(version).install_method == "install.sh", version
    for version in ("v1.16.0", "v1.16.2"):
        assert versions.kube_ovn_release(version).install_method == "chart-v2", version


@pytest.mark.parametrize(("k8s", "kind"), [("v1.32.5", "v0.29.0"), ("v1.33.1", "v0.29.0"), ("v1.34.0", "v0.30.0"),
                                           ("v1.35.1", "v0.31.0"), ("v1.36.1", "v0.32.0")])
def test_kind_release_paired_with_node_image(k8s: str, kind: str) -> None:
    assert versions.kind_release_for(k8s)[0] == kind


def test_kind_release_outside_the_table_says_so() -> None:
    kind, why = versions.kind_release_for("v1.30.0")
    assert kind == "v0.29.0" and "no kind release is known" in why
    assert versions.kind_release_for("v1.40.0")[0] == "v0.32.0"


@pytest.mark.parametrize(("version", "pin"), [("v1.11.24", None), ("v1.12.0", "v1.12.2"), ("v1.12.4", "v1.12.5"),
                                              ("v1.12.35", "v1.15.2"), ("v1.13.15", "v1.16.1"), ("v1.14.2", "v1.18.1"),
                                              ("v1.15.24", "v1.19.2"), ("v1.16.2", versions.CERT_MANAGER_VERSION)])
def test_cert_manager_as_each_release_ci(version: str, pin: str | None) -> None:
    assert versions.kube_ovn_release(version).cert_manager_ci_version == pin
    from conformance.cluster.images import RunVersions

    assert RunVersions.resolve(version).cert_manager == (pin or versions.CERT_MANAGER_VERSION)


@pytest.mark.parametrize("version", ["v1.35.1", "v1.36.1", "v1.27.0", "v1.37.2"])
def test_known_kubernetes_versions(version: str) -> None:
    assert versions.check_kubernetes_version(version) == version


@pytest.mark.parametrize("version", ["v9.9.9", "v1.26.3", "v1.35.99", "v2.0.0"])
def test_unknown_kubernetes_versions_are_refused(version: str) -> None:
    with pytest.raises(versions.VersionError, match=f"unknown Kubernetes version {version}"):
        versions.check_kubernetes_version(version)


def test_the_default_versions_are_known() -> None:
    assert versions.check_kubernetes_version(versions.K8S_VERSION) == versions.K8S_VERSION
    assert versions.check_kubevirt_version(versions.KUBEVIRT_VERSION) == versions.KUBEVIRT_VERSION
