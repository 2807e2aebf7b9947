package main

import (
	"os/exec"
	"syscall"
	"testing"
)

// BenchmarkInitDryRunProcess runs the real binary and reports its peak
// RSS, which is what a small first-boot VM pays.
func BenchmarkInitDryRunProcess(b *testing.B) {
	var maxRSS int64
	for b.Loop() {
		cmd := exec.Command(binary, "init", "--dry-run", "--root", b.TempDir(), "--config", "testdata/node.yaml")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%v\n%s", err, out)
		}
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && ru.Maxrss > maxRSS {
			maxRSS = ru.Maxrss
		}
	}
	b.ReportMetric(float64(maxRSS)/1024, "peak-RSS-MB")
}
