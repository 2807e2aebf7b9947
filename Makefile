# kubeboot: one static binary that turns a booted machine into a Kubernetes node.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X github.com/kubeboot/kubeboot/pkg/version.Version=$(VERSION) -X github.com/kubeboot/kubeboot/pkg/version.Commit=$(COMMIT)
# Two cores: keep compile and test fan-out small.
GOFLAGS_TEST ?= -p 2
export CGO_ENABLED := 0

.PHONY: build test test-unit test-race bench demo lint clean deps e2e-controlplane e2e-node fuzz-short

include test/k8sbin.mk
include image/images.mk
include test/qemu.mk
include test/cluster.mk
include image/image.mk

# Debian packages the tests use (installed once, idempotent).
deps:
	test/deps.sh

build: bin/kubeboot

bin/kubeboot: $(shell find cmd firstboot pkg -name '*.go' -not -name '*_test.go') go.mod go.sum
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/kubeboot

# The quick loop: unit tests only.
test-unit:
	$(GO) test $(GOFLAGS_TEST) ./...

# Everything CI runs: unit tests with the race detector (it needs cgo),
# then the integration tests against real components the project builds.
test: build deps k8sbin
	dirs=$(K8SBIN_PATH); CGO_ENABLED=1 KUBEBOOT_ETCD_BIN=$${dirs##*:} $(GO) test $(GOFLAGS_TEST) -race ./...
	$(MAKE) fuzz-short
	$(MAKE) e2e-controlplane
	$(MAKE) e2e-node
	$(MAKE) e2e-cluster
	$(MAKE) qemu-test
	@# The full tier (the golden image booting a real control plane under
	@# TCG, about 9 minutes) is the nightly switch: KUBEBOOT_QEMU_FULL=1.
	if [ -n "$$KUBEBOOT_QEMU_FULL" ]; then $(MAKE) qemu-full; fi

# The real etcd, kube-apiserver, kube-controller-manager and kube-scheduler
# (built once per version into a cache) run from kubeboot's manifests.
e2e-controlplane: k8sbin
	dirs=$$(test/k8sbin/build.sh path | tail -1); \
	KUBEBOOT_K8S_BIN=$${dirs%%:*} KUBEBOOT_ETCD_BIN=$${dirs##*:} KUBEBOOT_BENCH_OUT=$(CURDIR)/_out/bench-controlplane.txt \
	  $(GO) test -count=1 -v -timeout 20m ./test/controlplane/ 2>&1 | tee _out/e2e-controlplane.log | grep -E '^(=== RUN|---|PASS|FAIL|ok)|BENCH'; \
	exit $${PIPESTATUS[0]}

# Every fuzz target for a short while (the long runs are in docs/reliability.md).
FUZZ_TARGETS := pkg/config:FuzzLoad pkg/config:FuzzLoadJoin pkg/userdata:FuzzIgnition pkg/userdata:FuzzCloudConfig pkg/userdata:FuzzMultipart pkg/userdata:FuzzDataURL
FUZZTIME ?= 10s
fuzz-short:
	set -eo pipefail; for t in $(FUZZ_TARGETS); do \
	  $(GO) test -run '^$$' -fuzz "^$${t#*:}\$$" -fuzztime $(FUZZTIME) ./$${t%%:*} | tail -1; \
	done

# A real single node on this machine: `kubeboot init` for real, with
# Debian's containerd, the project-built kubelet and the locally built
# images, inside private mount, network and UTS namespaces.
e2e-node: build k8sbin images deps
	mkdir -p _out
	$(GO) test -c -o _out/node.test ./test/node/
	CGO_ENABLED=0 $(GO) build -o _out/probe ./test/node/probe/
	dirs=$$(test/k8sbin/build.sh path | tail -1); images=$(IMAGES_DIR); \
	KUBEBOOT_NODE_SANDBOX=1 KUBEBOOT_K8S_BIN=$${dirs%%:*} KUBEBOOT_BIN=$(CURDIR)/bin/kubeboot \
	KUBEBOOT_IMAGES=$$images KUBEBOOT_PROBE=$(CURDIR)/_out/probe \
	  unshare --mount --net --uts --propagation private _out/node.test -test.v -test.timeout 25m 2>&1 | tee _out/e2e-node.log | grep -E '^(=== RUN|---|PASS|FAIL|ok)|BENCH|node_test'; \
	exit $${PIPESTATUS[0]}

# Render speed, allocations and the peak RSS of `kubeboot init --dry-run`;
# figures go to docs/benchmarks.md with the machine and date.
bench: build
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 30x ./firstboot/ ./cmd/kubeboot/ ./pkg/pki/ ./pkg/kubeconfig/

# The main job on the embedded default configuration: a complete
# control-plane node rendered into ./_out, with the phase timeline.
demo: build
	rm -rf _out
	./bin/kubeboot init --dry-run --root ./_out

lint:
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

clean:
	rm -rf bin _out
