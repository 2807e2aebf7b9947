# Real Kubernetes v1.37.2 and etcd v3.7.3 binaries for integration tests,
# built from the Go module proxy and cached outside the repository by
# test/k8sbin/build.sh (see test/k8sbin/README.md). Include from the top-level
# Makefile; nothing here runs at parse time.
#
#   make k8sbin                 build (cold ~15 min once, then a no-op)
#   $(K8SBIN_PATH) in a recipe  "K8SBIN:ETCDBIN", building first if needed, e.g.
#       test-integration: k8sbin
#               PATH="$(K8SBIN_PATH):$$PATH" go test -tags integration ./...

K8SBIN_SH := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))/k8sbin/build.sh
K8SBIN_PATH = $$($(K8SBIN_SH) path | tail -1)

.PHONY: k8sbin
k8sbin:
	$(K8SBIN_SH)
