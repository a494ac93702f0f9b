"""A real control plane on loopback (after controller-runtime's envtest): etcd, kube-apiserver,
kube-controller-manager and Kube-OVN's webhook built from their Go modules (:mod:`.assets`), started
as child processes with generated certificates. No kovc behaviour lives here."""
