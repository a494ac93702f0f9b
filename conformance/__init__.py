"""kovc: the Kube-OVN x KubeVirt static-IP conformance suite."""

from ._version import __version__

USER_AGENT = f"kovc/{__version__}"
RUN_LABEL = "kovc.io/run"

__all__ = ["RUN_LABEL", "USER_AGENT", "__version__"]
