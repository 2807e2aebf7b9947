package cri

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTailLog(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const ts = "2026-11-27T10:00:00.000000001Z"
	short := write("short.log", ts+" stderr F first\n"+ts+" stdout P part one, \n"+ts+" stdout F part two\n"+ts+" stderr F \n"+ts+" stderr F last\n")
	var big strings.Builder
	for i := 1; i <= 50000; i++ {
		fmt.Fprintf(&big, "%s stderr F I1127 10:00:00.000000 1 server.go:%d] a klog line that is long enough to matter %d\n", ts, i, i)
	}
	long := write("long.log", big.String())
	for _, tc := range []struct {
		file string
		n    int
		want string
	}{
		{short, 10, "first\npart one, part two\n\nlast\n"},
		{short, 2, "\nlast\n"},
		{long, 3, "I1127 10:00:00.000000 1 server.go:49998] a klog line that is long enough to matter 49998\n" +
			"I1127 10:00:00.000000 1 server.go:49999] a klog line that is long enough to matter 49999\n" +
			"I1127 10:00:00.000000 1 server.go:50000] a klog line that is long enough to matter 50000\n"},
		{write("empty.log", ""), 5, ""},
		{write("plain.log", "not cri\n"), 5, "not cri\n"},
	} {
		got, err := TailLog(tc.file, tc.n)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("%s, %d lines:\n got %q\nwant %q", filepath.Base(tc.file), tc.n, got, tc.want)
		}
	}
	if _, err := TailLog(filepath.Join(dir, "absent.log"), 3); err == nil || !strings.Contains(err.Error(), "absent.log") {
		t.Errorf("absent file: %v", err)
	}
}
