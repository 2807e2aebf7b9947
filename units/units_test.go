// Package units holds kubeboot's systemd units; the test checks them with
// systemd-analyze verify (Debian's systemd package).
package units

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("needs systemd-analyze (Debian package systemd)")
	}
	// verify checks that ExecStart binaries exist: give it a root with them.
	root := t.TempDir()
	for _, bin := range []string{"usr/bin/kubeboot", "usr/bin/kubelet"} {
		os.MkdirAll(filepath.Join(root, filepath.Dir(bin)), 0o755)
		os.WriteFile(filepath.Join(root, bin), []byte("#!/bin/sh\n"), 0o755)
	}
	// The host's own targets, so ordering against them is checked too.
	targets, _ := filepath.Glob("/lib/systemd/system/*.target")
	os.MkdirAll(filepath.Join(root, "lib/systemd/system"), 0o755)
	for _, tg := range targets {
		if data, err := os.ReadFile(tg); err == nil {
			os.WriteFile(filepath.Join(root, "lib/systemd/system", filepath.Base(tg)), data, 0o644)
		}
	}
	units, _ := filepath.Glob("*.service")
	if len(units) < 2 {
		t.Fatalf("units: %v", units)
	}
	for _, u := range units {
		data, _ := os.ReadFile(u)
		dst := filepath.Join(root, "etc/systemd/system", u)
		os.MkdirAll(filepath.Dir(dst), 0o755)
		os.WriteFile(dst, data, 0o644)
	}
	dropin, err := exec.Command("go", "run", "./dropin").Output()
	if err != nil {
		t.Fatalf("render the kubelet drop-in: %v", err)
	}
	os.MkdirAll(filepath.Join(root, "etc/systemd/system/kubelet.service.d"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/systemd/system/kubelet.service.d/10-kubeadm.conf"), dropin, 0o644)
	for _, u := range units {
		cmd := exec.Command(sa, "verify", "--root="+root, "/etc/systemd/system/"+u)
		out, _ := cmd.CombinedOutput()
		// Units referenced but absent on this host (containerd.service,
		// network-online.target's providers) are not the unit's fault.
		var problems []string
		for _, l := range strings.Split(string(out), "\n") {
			if l == "" || strings.Contains(l, "not found") || strings.Contains(l, "Failed to prepare filename") {
				continue
			}
			problems = append(problems, l)
		}
		if len(problems) > 0 {
			t.Errorf("systemd-analyze verify %s:\n%s", u, strings.Join(problems, "\n"))
		}
	}
}
