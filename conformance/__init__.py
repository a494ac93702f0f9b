"""kovc: the Kube-OVN x KubeVirt static-IP conformance suite."""

from ._version import __version__

USER_AGENT = f"kovc/{__version__}"
RUN_LABEL = "kovc.io/run"
#: kovc's creation marker: set (to the run id) on every namespace and cluster-scoped object a run
#: creates. ``kovc cleanup`` deletes a namespace or cluster-scoped object only when it carries the
#: marker with the same run id as its label: a label alone (anyone can set it) is not enough.
CREATED_ANNOTATION = "kovc.io/created-by-run"

__all__ = ["CREATED_ANNOTATION", "RUN_LABEL", "USER_AGENT", "__version__"]
