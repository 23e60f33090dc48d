// CoreDNS with only the plugins the test cluster needs: the cluster's DNS (Service and
// pod names from the API server), as a real cluster has it.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
)

func init() {
	// The order plugins run in: a subset of CoreDNS's own plugin.cfg order.
	dnsserver.Directives = []string{"bind", "errors", "log", "kubernetes", "forward"}
}

func main() {
	coremain.Run()
}
