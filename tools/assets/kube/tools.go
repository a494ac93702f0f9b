//go:build tools

// Package tools pins the upstream programs this wrapper module builds. kovc assets build writes the
// module's go.mod (require k8s.io/kubernetes vX.Y.Z plus every staging module k8s.io/* v0.0.0 of that
// tag's own go.mod replaced by the published v0.X.Y) and then runs
//
//	go build k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
//
// so the binaries are upstream's own main packages, unchanged.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
