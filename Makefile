# kubeboot: one static binary that turns a booted machine into a Kubernetes node.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X github.com/kubeboot/kubeboot/pkg/version.Version=$(VERSION) -X github.com/kubeboot/kubeboot/pkg/version.Commit=$(COMMIT)
# Two cores: keep compile and test fan-out small.
GOFLAGS_TEST ?= -p 2
export CGO_ENABLED := 0

.PHONY: build test test-unit test-race bench demo lint clean

build: bin/kubeboot

bin/kubeboot: $(shell find cmd firstboot pkg -name '*.go' -not -name '*_test.go') go.mod go.sum
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/kubeboot

# The quick loop: unit tests only.
test-unit:
	$(GO) test $(GOFLAGS_TEST) ./...

# Everything CI runs: unit tests with the race detector (it needs cgo),
# then the integration tests that need built binaries.
test: build
	CGO_ENABLED=1 $(GO) test $(GOFLAGS_TEST) -race ./...

bench: build
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 20x ./firstboot/ ./pkg/pki/
	test/bench/rss.sh

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
