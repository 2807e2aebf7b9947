package userdata

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testConfig is a minimal kubeboot configuration with a token to redact.
const testConfig = `apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
- token: abcdef.0123456789abcdef
  ttl: 24h0m0s
certificateKey: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.37.2
---
apiVersion: kubeboot.dev/v1alpha1
kind: BootConfiguration
`

// quickFetch retries fast so that tests of failures stay short.
var quickFetch = Fetch{
	Timeout:        5 * time.Second,
	AttemptTimeout: 2 * time.Second,
	Backoff:        10 * time.Millisecond,
	MaxBackoff:     40 * time.Millisecond,
}

// offlineFetch fails every http(s) fetch at once: for fuzzing.
var offlineFetch = Fetch{Attempts: 1, Timeout: time.Second, Client: offlineClient}

func gz(t testing.TB, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func b64(data []byte) string { return base64.StdEncoding.EncodeToString(data) }

// testRoot makes a root prefix with /etc/passwd and /etc/group.
func testRoot(t testing.TB) string {
	t.Helper()
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\ncore:x:1000:1000:Core:/home/core:/bin/bash\netcd:x:2379:2379::/var/lib/etcd:/sbin/nologin\n",
		"etc/group":  "root:x:0:\ncore:x:1000:\netcd:x:2379:\nwheel:x:10:core\n",
	})
	return root
}

func writeTree(t testing.TB, root string, files map[string]string) {
	t.Helper()
	for p, data := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func decodeOK(t *testing.T, data string) *Result {
	t.Helper()
	r, err := Decode(context.Background(), "test", []byte(data), quickFetch, testRoot(t))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return r
}

func fileByPath(r *Result, p string) *File {
	for i := range r.Files {
		if r.Files[i].Path == p {
			return &r.Files[i]
		}
	}
	return nil
}

func hasWarning(r *Result, sub string) bool {
	for _, w := range r.Warnings {
		if strings.Contains(w, sub) {
			return true
		}
	}
	return false
}
