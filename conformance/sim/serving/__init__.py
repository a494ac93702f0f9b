"""HTTPS servers ``kovc sim attach`` runs for a real kube-apiserver: the modelled admission webhooks
(``webhook.py``) and KubeVirt's aggregated ``subresources.kubevirt.io`` API (``aggregated.py``). They only
serve; registering them (webhook configurations, APIService, certificates) is the envtest backend's job."""
