// Command etcd is etcd's own server main: go.etcd.io/etcd/v3 (the module with etcd's main.go) has
// local replace directives and so cannot be built as a dependency; its main is this one call.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
