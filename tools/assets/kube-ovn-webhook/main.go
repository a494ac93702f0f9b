// Command kube-ovn-webhook is Kube-OVN's webhook entry point. Upstream's cmd/cmdmain.go dispatches on
// argv[0] to every Kube-OVN program; this wrapper calls only the webhook's, as cmd/cmdmain.go does for
// the name "kube-ovn-webhook". kovc assets build writes go.mod per tag with that tag's replace block.
package main

import "github.com/kubeovn/kube-ovn/cmd/webhook"

func main() {
	webhook.CmdMain()
}
