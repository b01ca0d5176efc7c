// Command etcd is the etcd server built from its Go module, so the e2e
// cluster never depends on a distribution package of the wrong version.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
