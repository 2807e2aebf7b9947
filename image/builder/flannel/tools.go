//go:build tools

// Package tools pins the flannel main packages the image builder builds
// from this wrapper module, so that `go mod tidy` keeps every module they
// need in go.mod and go.sum: flanneld (the module's root package) and
// install-conf (cmd/install_conf), which the DaemonSet's init containers
// run to copy files onto the node.
package tools

import (
	_ "github.com/flannel-io/flannel"
	_ "github.com/flannel-io/flannel/cmd/install_conf"
)
