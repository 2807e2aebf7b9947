// Package addons holds cluster add-ons that kubeboot ships as manifests
// together with images that image/builder builds, for clusters that
// cannot pull: the manifest names the image exactly as the builder tags
// it, and every container says imagePullPolicy: IfNotPresent.
//
// Flannel is kube-flannel with the vxlan backend for the pod subnet
// 10.244.0.0/16. Its init containers copy, on each node, /flannel from the
// image to /opt/cni/bin/flannel and the ConfigMap's cni-conf.json to
// /etc/cni/net.d/10-flannel.conflist; flanneld writes
// /run/flannel/subnet.env. The node must provide the standard CNI plugins
// the config delegates to (bridge, host-local, portmap; loopback for the
// runtime) in /opt/cni/bin.
package addons

import _ "embed"

// FlannelVersion is the flannel release the image's flanneld is built from.
const FlannelVersion = "v0.28.10"

// FlannelImage is the flannel image, as the builder tags it and
// flannel.yaml names it. It names no registry: nodes import it from
// their image archive directory and never pull it.
const FlannelImage = "kubeboot/flannel:" + FlannelVersion

// Flannel is flannel.yaml: the kube-flannel namespace, RBAC, ConfigMap and
// DaemonSet, as YAML documents.
//
//go:embed flannel.yaml
var Flannel []byte
