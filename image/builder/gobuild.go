package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kubeboot/kubeboot/image/addons"
	"github.com/kubeboot/kubeboot/pkg/config"
)

// command is exec.CommandContext in its own process group, so that a
// cancelled build stops go and every compiler it started.
func command(ctx context.Context, dir, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// goEnv is the environment of every go command: static, for the host,
// outside any workspace, without the caller's GOFLAGS.
func goEnv(gotmp string) []string {
	var env []string
	for _, e := range os.Environ() {
		k, _, _ := strings.Cut(e, "=")
		switch k {
		case "GOOS", "GOARCH", "GOFLAGS", "GOWORK", "CGO_ENABLED", "GOTMPDIR":
			continue
		}
		env = append(env, e)
	}
	env = append(env, "CGO_ENABLED=0", "GOWORK=off")
	if gotmp != "" {
		env = append(env, "GOTMPDIR="+gotmp)
	}
	return env
}

// goBuild builds pkg in dir into out: static, for the host, with the
// modules go.sum names.
func goBuild(ctx context.Context, dir, pkg, out, ldflags string, procs int, gotmp string) error {
	cmd := command(ctx, dir, "go", "build", "-p", strconv.Itoa(procs), "-trimpath", "-buildvcs=false",
		"-mod=readonly", "-ldflags", ldflags, "-o", out, pkg)
	cmd.Env = goEnv(gotmp)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, stderr.String())
	}
	return nil
}

// versionOf runs bin with args and returns its output's first line that
// contains want, or an error naming what it said instead.
func versionOf(ctx context.Context, bin string, args []string, want string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", bin, strings.Join(args, " "), err, firstLine(out))
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, want) {
			return strings.TrimSpace(l), nil
		}
	}
	return "", fmt.Errorf("%s %s says %q, want %q in it", bin, strings.Join(args, " "), firstLine(out), want)
}

// buildPause builds image/pause into the cache. go build relinks only
// when a source or the toolchain changed.
func buildPause(ctx context.Context, src, cache string) (string, error) {
	out := filepath.Join(cache, "pause", "bin", "pause")
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", fmt.Errorf("pause: %w", err)
	}
	ldflags := "-s -w -X main.version=" + config.PauseVersion
	if err := goBuild(ctx, src, "./image/pause", out, ldflags, 1, ""); err != nil {
		return "", fmt.Errorf("pause: %w", err)
	}
	if _, err := versionOf(ctx, out, []string{"-v"}, "pause "+config.PauseVersion); err != nil {
		return "", fmt.Errorf("pause: %w", err)
	}
	return out, nil
}

// A wrapper is one of the builder's wrapper modules: a go.mod (and
// go.sum, committed) under image/builder that requires an upstream module
// from the Go module proxy at the version its image is tagged with, and
// the main packages built from it.
type wrapper struct {
	// name is the cache directory under $KUBEBOOT_CACHE and the log prefix.
	name string
	// dir is the wrapper module, relative to the repository.
	dir string
	// module and version: what go.mod must require.
	module, version string
	// files are the wrapper's files that the binaries depend on, hashed
	// into the stamp with the flags and the Go version.
	files []string
	// recipe is part of the stamp: bump it when the way the binaries are
	// built changes.
	recipe string
	bins   []wrappedBinary
}

// A wrappedBinary is one main package built from a wrapper module.
type wrappedBinary struct {
	name string // file name in <cache>/<wrapper>/<version>/bin
	// pkg is the package to build: "." for the wrapper's own main
	// package, or a main package of the upstream module.
	pkg string
	// from, instead of pkg, is a file of the upstream module that becomes
	// the binary's only source, less the lines in drop (each must be
	// there, once). It is built beside a copy of the wrapper's go.mod and
	// go.sum.
	from    string
	drop    []string
	ldflags string
	// check, unless nil, are the arguments that make the binary print its
	// version, and want what that output must contain.
	check []string
	want  string
}

// corednsWrapper builds CoreDNS from image/builder/coredns, which requires
// github.com/coredns/coredns at kubeadm's CoreDNS version.
var corednsWrapper = wrapper{
	name: "coredns", dir: "image/builder/coredns",
	module: "github.com/coredns/coredns", version: config.CoreDNSVersion,
	files:  []string{"go.mod", "go.sum", "main.go"},
	recipe: "1",
	bins: []wrappedBinary{{name: "coredns", pkg: ".", ldflags: "-s -w",
		check: []string{"-version"}, want: "CoreDNS-" + strings.TrimPrefix(config.CoreDNSVersion, "v")}},
}

// flannelCNIVersion is the containernetworking/plugins release the flannel
// CNI plugin is built from: the last one that has plugins/meta/flannel.
const flannelCNIVersion = "v0.9.1"

// flannelWrapper builds flanneld and install-conf from
// image/builder/flannel, which requires github.com/flannel-io/flannel at
// addons.FlannelVersion. flanneld is flannel's main.go without its udp
// backend, whose packet forwarding on amd64 is C: the rest builds with
// CGO_ENABLED=0, and the image runs the vxlan backend. (Go refuses -overlay
// on files in the module cache, and the udp backend is not a module that
// a replace directive could swap.)
var flannelWrapper = wrapper{
	name: "flannel", dir: "image/builder/flannel",
	module: "github.com/flannel-io/flannel", version: addons.FlannelVersion,
	files:  []string{"go.mod", "go.sum", "tools.go"},
	recipe: "1",
	bins: []wrappedBinary{
		{name: "flanneld", from: "main.go", drop: []string{`_ "github.com/flannel-io/flannel/pkg/backend/udp"`},
			ldflags: "-s -w -X github.com/flannel-io/flannel/pkg/version.Version=" + addons.FlannelVersion,
			check:   []string{"--version"}, want: addons.FlannelVersion},
		{name: "install-conf", pkg: "github.com/flannel-io/flannel/cmd/install_conf", ldflags: "-s -w"},
	},
}

// flannelCNIWrapper builds the flannel CNI plugin from
// image/builder/flannel/cni, which requires
// github.com/containernetworking/plugins at flannelCNIVersion.
var flannelCNIWrapper = wrapper{
	name: "flannel-cni", dir: "image/builder/flannel/cni",
	module: "github.com/containernetworking/plugins", version: flannelCNIVersion,
	files:  []string{"go.mod", "go.sum", "tools.go"},
	recipe: "1",
	bins: []wrappedBinary{{name: "flannel", pkg: "github.com/containernetworking/plugins/plugins/meta/flannel",
		ldflags: "-s -w -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=" + flannelCNIVersion,
		check:   []string{}, want: "CNI flannel plugin " + flannelCNIVersion}},
}

// build builds the wrapper's binaries into <cache>/<name>/<version>/bin
// and returns that directory, unless a build from the same module files,
// flags and Go toolchain is already there. The binaries are built one
// after the other, each with go build -p procs.
func (w wrapper) build(ctx context.Context, src, cache string, procs int) (string, error) {
	mod := filepath.Join(src, filepath.FromSlash(w.dir))
	gomod, err := os.ReadFile(filepath.Join(mod, "go.mod"))
	if err != nil {
		return "", fmt.Errorf("%s: %w", w.name, err)
	}
	if got := requiredVersion(gomod, w.module); got != w.version {
		return "", fmt.Errorf("%s: %s requires %s %q, but the image is tagged for %s: update the wrapper module (go get %s@%s && go mod tidy there)",
			w.name, filepath.Join(mod, "go.mod"), w.module, got, w.version, w.module, w.version)
	}
	goVersion, err := exec.CommandContext(ctx, "go", "env", "GOVERSION").Output()
	if err != nil {
		return "", fmt.Errorf("%s: go env GOVERSION: %w", w.name, err)
	}
	key, err := w.key(mod, strings.TrimSpace(string(goVersion)))
	if err != nil {
		return "", err
	}

	vdir := filepath.Join(cache, w.name, w.version)
	bin := filepath.Join(vdir, "bin")
	stamp := filepath.Join(vdir, "stamp")
	if w.fresh(bin, stamp, key) {
		return bin, nil
	}
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return "", fmt.Errorf("%s: %w", w.name, err)
	}
	stale, _ := filepath.Glob(filepath.Join(vdir, ".tmp*"))
	for _, s := range stale {
		os.RemoveAll(s) // left by a killed build; we hold the lock
	}
	tmp, err := os.MkdirTemp(vdir, ".tmp")
	if err != nil {
		return "", fmt.Errorf("%s: %w", w.name, err)
	}
	defer os.RemoveAll(tmp)
	gotmp := filepath.Join(tmp, "gotmp")
	if err := os.Mkdir(gotmp, 0o755); err != nil {
		return "", fmt.Errorf("%s: %w", w.name, err)
	}
	for _, b := range w.bins {
		logf("%s: building %s %s from the Go module proxy (go build -p %d; a few minutes when cold)", w.name, b.name, w.version, procs)
		start := time.Now()
		dir, pkg := mod, b.pkg
		if b.from != "" {
			if dir, err = w.derive(ctx, mod, filepath.Join(tmp, b.name+".src"), b); err != nil {
				return "", fmt.Errorf("%s: %s: %w", w.name, b.name, err)
			}
			pkg = "."
		}
		out := filepath.Join(tmp, b.name)
		if err := goBuild(ctx, dir, pkg, out, b.ldflags, procs, gotmp); err != nil {
			return "", fmt.Errorf("%s: %w", w.name, err)
		}
		line := "built"
		if b.check != nil {
			if line, err = versionOf(ctx, out, b.check, b.want); err != nil {
				return "", fmt.Errorf("%s: %w", w.name, err)
			}
		}
		logf("%s: %s: %s in %.0f s", w.name, b.name, line, time.Since(start).Seconds())
	}
	for _, b := range w.bins {
		if err := os.Rename(filepath.Join(tmp, b.name), filepath.Join(bin, b.name)); err != nil {
			return "", fmt.Errorf("%s: %w", w.name, err)
		}
	}
	if err := os.WriteFile(stamp, []byte(key+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("%s: %w", w.name, err)
	}
	return bin, nil
}

// key is the stamp of a build: recipe, version, Go version, architecture,
// each binary's source and flags, and the digests of the wrapper's files
// (go.sum fixes the upstream modules' files). A binary built from the
// wrapper's own package (".") is not named: that keeps CoreDNS's key what
// it was when a wrapper had one binary.
func (w wrapper) key(mod, goVersion string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "recipe=%s\nversion=%s\ngo=%s\narch=%s\n", w.recipe, w.version, goVersion, runtime.GOARCH)
	for _, b := range w.bins {
		if b.pkg != "." {
			fmt.Fprintf(h, "bin=%s pkg=%s from=%s drop=%q\n", b.name, b.pkg, b.from, b.drop)
		}
		fmt.Fprintf(h, "ldflags=%s\ncgo=0 trimpath\n", b.ldflags)
	}
	for _, f := range w.files {
		b, err := os.ReadFile(filepath.Join(mod, f))
		if err != nil {
			return "", fmt.Errorf("%s: %w", w.name, err)
		}
		fmt.Fprintf(h, "%s %x\n", f, sha256.Sum256(b))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// fresh reports whether bin holds every binary of a build stamped key.
func (w wrapper) fresh(bin, stamp, key string) bool {
	b, err := os.ReadFile(stamp)
	if err != nil || strings.TrimSpace(string(b)) != key {
		return false
	}
	for _, wb := range w.bins {
		if fi, err := os.Stat(filepath.Join(bin, wb.name)); err != nil || !fi.Mode().IsRegular() {
			return false
		}
	}
	return true
}

// derive makes dir the source of a binary built from an upstream file:
// the wrapper's go.mod and go.sum, and b.from from the upstream module in
// the module cache without the lines in b.drop.
func (w wrapper) derive(ctx context.Context, mod, dir string, b wrappedBinary) (string, error) {
	cmd := command(ctx, mod, "go", "list", "-mod=readonly", "-m", "-f", "{{.Dir}}", w.module)
	cmd.Env = goEnv("")
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go list -m %s: %w", w.module, err)
	}
	src, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), filepath.FromSlash(b.from)))
	if err != nil {
		return "", err
	}
	lines := strings.SplitAfter(string(src), "\n")
	for _, d := range b.drop {
		i := slices.IndexFunc(lines, func(l string) bool { return strings.TrimSpace(l) == d })
		if i < 0 || slices.IndexFunc(lines[i+1:], func(l string) bool { return strings.TrimSpace(l) == d }) >= 0 {
			return "", fmt.Errorf("%s %s: %s: want the line %q once (update the wrapper for this version)", w.module, w.version, b.from, d)
		}
		lines = slices.Delete(lines, i, i+1)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	for _, f := range []string{"go.mod", "go.sum"} {
		data, err := os.ReadFile(filepath.Join(mod, f))
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			return "", err
		}
	}
	return dir, os.WriteFile(filepath.Join(dir, path.Base(b.from)), []byte(strings.Join(lines, "")), 0o644)
}

// requiredVersion finds module's version in a go.mod's require lines.
func requiredVersion(gomod []byte, module string) string {
	for _, l := range strings.Split(string(gomod), "\n") {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(l), "require "))
		if len(f) >= 2 && f[0] == module {
			return f[1]
		}
	}
	return ""
}
