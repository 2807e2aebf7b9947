//go:build tools

// Package tools pins the flannel CNI plugin the image builder builds from
// this wrapper module, so that `go mod tidy` keeps every module it needs
// in go.mod and go.sum.
package tools

import _ "github.com/containernetworking/plugins/plugins/meta/flannel"
