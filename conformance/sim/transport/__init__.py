"""The two transports of :class:`conformance.sim.api.Client`: ``local`` (the in-process store) and
``http`` (any kube-apiserver, reads from ``cache.WatchCache``)."""
