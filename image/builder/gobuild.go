package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

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

// corednsRecipe is part of the CoreDNS binary's cache key: bump it when
// the way it is built changes.
const corednsRecipe = "1"

// buildCoreDNS builds CoreDNS from the wrapper module
// image/builder/coredns (github.com/coredns/coredns at kubeadm's CoreDNS
// version, from the Go module proxy) into
// <cache>/coredns/<version>/bin/coredns, unless a build from the same
// module files, flags and Go toolchain is already there.
func buildCoreDNS(ctx context.Context, src, cache string, procs int) (string, error) {
	mod := filepath.Join(src, "image", "builder", "coredns")
	gomod, err := os.ReadFile(filepath.Join(mod, "go.mod"))
	if err != nil {
		return "", fmt.Errorf("coredns: %w", err)
	}
	version := requiredVersion(gomod, "github.com/coredns/coredns")
	if version != config.CoreDNSVersion {
		return "", fmt.Errorf("coredns: %s requires github.com/coredns/coredns %q, but kubeadm's image tag is %s: update the wrapper module (go get github.com/coredns/coredns@%s && go mod tidy there)",
			filepath.Join(mod, "go.mod"), version, config.CoreDNSVersion, config.CoreDNSVersion)
	}
	goVersion, err := exec.CommandContext(ctx, "go", "env", "GOVERSION").Output()
	if err != nil {
		return "", fmt.Errorf("coredns: go env GOVERSION: %w", err)
	}
	const ldflags = "-s -w"
	h := sha256.New()
	fmt.Fprintf(h, "recipe=%s\nversion=%s\ngo=%s\narch=%s\nldflags=%s\ncgo=0 trimpath\n",
		corednsRecipe, version, strings.TrimSpace(string(goVersion)), runtime.GOARCH, ldflags)
	for _, f := range []string{"go.mod", "go.sum", "main.go"} {
		b, err := os.ReadFile(filepath.Join(mod, f))
		if err != nil {
			return "", fmt.Errorf("coredns: %w", err)
		}
		fmt.Fprintf(h, "%s %x\n", f, sha256.Sum256(b))
	}
	key := hex.EncodeToString(h.Sum(nil))

	vdir := filepath.Join(cache, "coredns", version)
	bin := filepath.Join(vdir, "bin", "coredns")
	stamp := filepath.Join(vdir, "stamp")
	if b, err := os.ReadFile(stamp); err == nil && strings.TrimSpace(string(b)) == key {
		if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() {
			return bin, nil
		}
	}
	if err := os.MkdirAll(filepath.Join(vdir, "bin"), 0o755); err != nil {
		return "", fmt.Errorf("coredns: %w", err)
	}
	stale, _ := filepath.Glob(filepath.Join(vdir, ".tmp*"))
	for _, s := range stale {
		os.RemoveAll(s) // left by a killed build; we hold the lock
	}
	tmp, err := os.MkdirTemp(vdir, ".tmp")
	if err != nil {
		return "", fmt.Errorf("coredns: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := os.Mkdir(filepath.Join(tmp, "gotmp"), 0o755); err != nil {
		return "", fmt.Errorf("coredns: %w", err)
	}
	logf("coredns: building %s from the Go module proxy (go build -p %d; a few minutes when cold)", version, procs)
	start := time.Now()
	out := filepath.Join(tmp, "coredns")
	if err := goBuild(ctx, mod, ".", out, ldflags, procs, filepath.Join(tmp, "gotmp")); err != nil {
		return "", fmt.Errorf("coredns: %w", err)
	}
	line, err := versionOf(ctx, out, []string{"-version"}, "CoreDNS-"+strings.TrimPrefix(version, "v"))
	if err != nil {
		return "", fmt.Errorf("coredns: %w", err)
	}
	if err := os.Rename(out, bin); err != nil {
		return "", fmt.Errorf("coredns: %w", err)
	}
	if err := os.WriteFile(stamp, []byte(key+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("coredns: %w", err)
	}
	logf("coredns: built %s in %.0f s", line, time.Since(start).Seconds())
	return bin, nil
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
