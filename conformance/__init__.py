"""kovc: the Kube-OVN x KubeVirt static-IP conformance suite."""

from ._version import __version__

USER_AGENT = f"kovc/{__version__}"
RUN_LABEL = "kovc.io/run"
#: Reason of the Warning Event the simulated cluster writes (about the kube-ovn-webhook Deployment in
#: kube-system) when its webhook policy raised: the model is broken and the run has no verdict.
SIM_POLICY_RAISED = "KovcSimWebhookPolicyRaised"

__all__ = ["RUN_LABEL", "SIM_POLICY_RAISED", "USER_AGENT", "__version__"]
