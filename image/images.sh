#!/usr/bin/env bash
# Build kubeadm's control-plane images (kube-apiserver, kube-controller-manager,
# kube-scheduler, kube-proxy, etcd, CoreDNS, pause) and the add-ons' images
# (flannel, see image/addons) as OCI archives from the project's own binaries,
# for nodes that cannot pull. Only the archive directory goes to stdout, as
# the last line:
#
#   DIR=$(image/images.sh | tail -1)      # $KUBEBOOT_CACHE/images/v1.37.2
#   image/images.sh pause coredns flannel  # only these (no Kubernetes build)
#
# The Kubernetes and etcd binaries come from test/k8sbin/build.sh (cached;
# about 10-20 minutes once on a fresh machine). Flags and environment: see
# image/builder/README.md or `image/images.sh -h`.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Kubernetes and etcd binaries: only when an image needs them.
need_k8s=1
if (($# > 0)); then
	need_k8s=0
	for a in "$@"; do
		case $a in
		pause | coredns | flannel | -*) ;;
		*) need_k8s=1 ;;
		esac
	done
fi
if ((need_k8s)) && [[ -z ${KUBEBOOT_K8S_BIN:-} || -z ${KUBEBOOT_ETCD_BIN:-} ]]; then
	dirs=$("$repo/test/k8sbin/build.sh" path | tail -1)
	export KUBEBOOT_K8S_BIN=${KUBEBOOT_K8S_BIN:-${dirs%%:*}} KUBEBOOT_ETCD_BIN=${KUBEBOOT_ETCD_BIN:-${dirs##*:}}
fi

cd "$repo"
exec env -u GOFLAGS CGO_ENABLED=0 GOWORK=off go run ./image/builder "$@"
