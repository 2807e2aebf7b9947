// Command coredns is upstream CoreDNS (github.com/coredns/coredns/coredns.go)
// built from the Go module proxy for the <imageRepository>/coredns/coredns
// image: the same plugin set (core/plugin, generated from upstream's
// plugin.cfg) and the same entry point.
package main

import (
	_ "github.com/coredns/coredns/core/plugin" // CoreDNS's plugins, in upstream's order.
	"github.com/coredns/coredns/coremain"
)

func main() {
	coremain.Run()
}
