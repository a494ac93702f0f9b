"""kovc: the Kube-OVN x KubeVirt static-IP conformance suite."""

import time as _time

from ._version import __version__

#: When this process imported the package (see ``conformance._bytecode``: byte code Python wrote next to
#: the sources for the modules imported before kovc chose its cache is removed again).
_IMPORTED_AT = _time.time()

USER_AGENT = f"kovc/{__version__}"
RUN_LABEL = "kovc.io/run"
#: kovc's creation marker: set (to the run id) on every namespace and cluster-scoped object a run
#: creates. ``kovc cleanup`` deletes a namespace or cluster-scoped object only when it carries the
#: marker with the same run id as its label: a label alone (anyone can set it) is not enough.
CREATED_ANNOTATION = "kovc.io/created-by-run"
#: Reason of the Warning Event the simulated cluster writes (about the kube-ovn-webhook Deployment in
#: kube-system) when its webhook policy raised: the model is broken and the run has no verdict.
SIM_POLICY_RAISED = "KovcSimWebhookPolicyRaised"

__all__ = ["CREATED_ANNOTATION", "RUN_LABEL", "SIM_POLICY_RAISED", "USER_AGENT", "__version__"]
