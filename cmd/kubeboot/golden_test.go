package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// Key material, tokens and times differ on every run; everything else
// must be byte-for-byte what the golden file holds.
var masks = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`(?s)-----BEGIN ([A-Z ]+)-----.*?-----END [A-Z ]+-----\n?`), "<$1 masked>\n"},
	{regexp.MustCompile(`((?:certificate-authority|client-certificate|client-key)-data): \S+`), "$1: <masked>"},
	{regexp.MustCompile(`(secret): \S+`), "$1: <masked>"},
	{regexp.MustCompile(`"(token|secret|id|certificateKey|tokenExpires|expires|created)": "[^"]*"`), `"$1": "<masked>"`},
	{regexp.MustCompile(`"sha256:[0-9a-f]{64}"`), `"sha256:<masked>"`},
}

func mask(path string, data []byte) string {
	switch {
	case strings.HasSuffix(path, "certificate-key"), strings.HasSuffix(path, "join-secret.created"):
		return "<masked>\n"
	}
	s := string(data)
	for _, m := range masks {
		s = m.re.ReplaceAllString(s, m.repl)
	}
	return s
}

func renderMasked(t *testing.T, root string) string {
	t.Helper()
	var paths []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasSuffix(p, "journal.json") {
			paths = append(paths, p)
		}
		return err
	})
	sort.Strings(paths)
	var b strings.Builder
	for _, p := range paths {
		data, _ := os.ReadFile(p)
		st, _ := os.Stat(p)
		rel, _ := filepath.Rel(root, p)
		fmt.Fprintf(&b, "==== /%s %v\n%s", rel, st.Mode().Perm(), mask(rel, data))
		if len(data) > 0 && data[len(data)-1] != '\n' {
			b.WriteString("\n")
		}
	}
	return b.String()
}

// TestGoldenRender pins the complete render of a control-plane node.
// Run `go test ./cmd/kubeboot -run Golden -update` after a deliberate change.
func TestGoldenRender(t *testing.T) {
	root := t.TempDir()
	if r := kubeboot(t, nil, "", "init", "--dry-run", "--root", root, "--config", "testdata/node.yaml"); r.code != 0 {
		t.Fatalf("%s%s", r.stdout, r.stderr)
	}
	got := renderMasked(t, root)
	golden := "testdata/golden-node.txt"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(gl) && i < len(wl); i++ {
			if gl[i] != wl[i] {
				t.Fatalf("render differs from %s at line %d:\n got: %s\nwant: %s", golden, i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("render differs from %s in length (%d vs %d lines)", golden, len(gl), len(wl))
	}
}
