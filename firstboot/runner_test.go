package firstboot

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubeboot/kubeboot/pkg/config"
	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

// countingPhase renders one file whose contents follow an input value.
func countingPhase(name string, input *string, renders, applies *int) Phase {
	return Phase{
		Name:   name,
		Inputs: func(*Run) (any, error) { return *input, nil },
		Render: func(context.Context, *Run) (Output, error) {
			*renders++
			return Output{Files: []rootfs.File{{Path: "/etc/" + name, Mode: 0o600, Data: []byte(*input)}}}, nil
		},
		Apply: func(context.Context, *Run) (string, error) { *applies++; return "", nil },
	}
}

func newRun(t *testing.T, root string) *Run {
	t.Helper()
	return &Run{Options: Options{Root: root, Version: "test"}, Cfg: config.Defaults()}
}

func TestJournalSkipsAndRedoes(t *testing.T) {
	root := t.TempDir()
	input := "a"
	var renders, applies int
	phases := []Phase{countingPhase("one", &input, &renders, &applies)}
	run := func() *Timeline {
		t.Helper()
		tl, err := Execute(context.Background(), newRun(t, root), phases)
		if err != nil {
			t.Fatal(err)
		}
		return tl
	}
	for _, tc := range []struct {
		name    string
		change  func()
		status  Status
		renders int
	}{
		{"first run", func() {}, StatusDone, 1},
		{"unchanged", func() {}, StatusAlreadyDone, 1},
		{"input changed", func() { input = "b" }, StatusDone, 2},
		{"file altered", func() { os.WriteFile(filepath.Join(root, "etc/one"), []byte("x"), 0o600) }, StatusDone, 3},
		{"file removed", func() { os.Remove(filepath.Join(root, "etc/one")) }, StatusDone, 4},
		{"journal torn", func() { os.WriteFile(filepath.Join(root, "var/lib/kubeboot/journal.json"), []byte("{"), 0o600) }, StatusDone, 5},
		{"settled", func() {}, StatusAlreadyDone, 5},
	} {
		tc.change()
		tl := run()
		if got := tl.Steps[0].Status; got != tc.status {
			t.Errorf("%s: status %q, want %q", tc.name, got, tc.status)
		}
		if renders != tc.renders {
			t.Errorf("%s: %d renders, want %d", tc.name, renders, tc.renders)
		}
	}
	data, _ := os.ReadFile(filepath.Join(root, "etc/one"))
	if string(data) != "b" {
		t.Errorf("file holds %q", data)
	}
}

func TestDryRunSkipsApplyAndDoesNotRecord(t *testing.T) {
	root := t.TempDir()
	input := "a"
	var renders, applies int
	phases := []Phase{countingPhase("one", &input, &renders, &applies)}
	r := newRun(t, root)
	r.DryRun = true
	tl, err := Execute(context.Background(), r, phases)
	if err != nil {
		t.Fatal(err)
	}
	if applies != 0 || tl.Steps[0].Status != StatusDryRun {
		t.Fatalf("dry run applied (%d) or status %q", applies, tl.Steps[0].Status)
	}
	// A real run afterwards must not trust the dry run's record.
	if _, err := Execute(context.Background(), newRun(t, root), phases); err != nil {
		t.Fatal(err)
	}
	if applies != 1 {
		t.Fatalf("real run after a dry run did not apply")
	}
}

func TestSkipAndFailure(t *testing.T) {
	root := t.TempDir()
	input := "a"
	var renders, applies int
	boom := Phase{Name: "boom", Render: func(context.Context, *Run) (Output, error) { return Output{}, errors.New("kaput") }}
	phases := []Phase{countingPhase("one", &input, &renders, &applies), boom, countingPhase("two", &input, &renders, &applies)}
	var out bytes.Buffer
	r := newRun(t, root)
	r.Out = &out
	r.SkipPhases = []string{"one"}
	_, err := Execute(context.Background(), r, phases)
	if err == nil || err.Error() != "boom: kaput" {
		t.Fatalf("error %v", err)
	}
	if renders != 0 {
		t.Errorf("skipped phase or phase after failure ran (%d renders)", renders)
	}
	if !strings.Contains(out.String(), "[one] skipped (--skip-phases)") || !strings.Contains(out.String(), "[boom] failed") {
		t.Errorf("progress:\n%s", out.String())
	}
	if err := CheckSkip(phases, []string{"one", "nope"}); err == nil || !strings.Contains(err.Error(), "unknown phase(s) nope") {
		t.Errorf("CheckSkip: %v", err)
	}
}

func TestKubeletResolverFollowsSystemdResolved(t *testing.T) {
	for _, tc := range []struct {
		name, resolv string
		upstream     bool
		want         string
	}{
		{"stub and upstream", "nameserver 127.0.0.53\noptions edns0\n", true, "resolvConf: /run/systemd/resolve/resolv.conf"},
		{"stub without upstream", "nameserver 127.0.0.53\n", false, ""},
		{"plain resolv.conf", "nameserver 192.0.2.53\n", true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			os.MkdirAll(filepath.Join(root, "etc"), 0o755)
			os.WriteFile(filepath.Join(root, "etc/resolv.conf"), []byte(tc.resolv), 0o644)
			if tc.upstream {
				os.MkdirAll(filepath.Join(root, "run/systemd/resolve"), 0o755)
				os.WriteFile(filepath.Join(root, "run/systemd/resolve/resolv.conf"), []byte("nameserver 192.0.2.53\n"), 0o644)
			}
			r := newRun(t, root)
			r.Writer = rootfs.Writer{Root: root}
			out, err := kubeletStartPhase.Render(context.Background(), r)
			if err != nil {
				t.Fatal(err)
			}
			cfg := string(out.Files[0].Data)
			if tc.want != "" && !strings.Contains(cfg, tc.want) {
				t.Errorf("kubelet config lacks %q", tc.want)
			}
			if tc.want == "" && strings.Contains(cfg, "resolvConf") {
				t.Errorf("kubelet config sets resolvConf:\n%s", cfg)
			}
			if r.Cfg.Kubelet.ResolverConfig != nil {
				t.Errorf("the shared configuration was changed")
			}
		})
	}
}
