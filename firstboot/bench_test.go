package firstboot

import (
	"context"
	"net"
	"testing"

	"github.com/kubeboot/kubeboot/pkg/config"
)

func benchRun(b *testing.B) *Run {
	cfg := config.Defaults()
	if err := config.Resolve(cfg, config.StaticFacts{Host: "cp-1", IPs: []net.IP{net.ParseIP("192.0.2.10")}}); err != nil {
		b.Fatal(err)
	}
	return &Run{Options: Options{Root: b.TempDir(), DryRun: true, Version: "bench"}, Cfg: cfg}
}

// BenchmarkInitDryRun is `kubeboot init --dry-run` of the default node into
// an empty root: every render phase, written with fsync, plus the journal.
func BenchmarkInitDryRun(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		r := benchRun(b)
		b.StartTimer()
		if _, err := Execute(context.Background(), r, InitPhases()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRenderOnly is the pure part: every phase's Render in memory,
// without the writer (the journal and disk syncs excluded).
func BenchmarkRenderOnly(b *testing.B) {
	r := benchRun(b)
	r.Writer.Root = r.Root
	phases := InitPhases()
	for b.Loop() {
		for _, p := range phases[:8] { // config … kubelet-start: no phase before needs another's files on disk
			if p.Render == nil {
				continue
			}
			if p.Name == "kubeconfig" || p.Name == "control-plane" {
				continue // they read the CA and the encryption key from disk
			}
			if _, err := p.Render(context.Background(), r); err != nil {
				b.Fatal(p.Name, err)
			}
		}
	}
}

// BenchmarkRerun is the second run: every phase found already done.
func BenchmarkRerun(b *testing.B) {
	r := benchRun(b)
	if _, err := Execute(context.Background(), r, InitPhases()); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		again := &Run{Options: r.Options, Cfg: r.Cfg}
		if _, err := Execute(context.Background(), again, InitPhases()); err != nil {
			b.Fatal(err)
		}
	}
}
