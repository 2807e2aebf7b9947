package joinsecret

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

func sample() Secret {
	s := New()
	s.ClusterName, s.APIServerEndpoint = "kubernetes", "192.0.2.10:6443"
	s.Token, s.CertificateKey = "abcdef.0123456789abcdef", strings.Repeat("ab", 32)
	s.CACertHashes = []string{"sha256:" + strings.Repeat("0", 64)}
	return s
}

func TestRoundTripAndRedaction(t *testing.T) {
	doc, err := sample().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse("test", doc)
	if err != nil {
		t.Fatal(err)
	}
	if got.Token != sample().Token {
		t.Errorf("token lost")
	}
	red, _ := got.Redacted().Marshal()
	for _, secret := range []string{"0123456789abcdef", strings.Repeat("ab", 32)} {
		if strings.Contains(string(red), secret) {
			t.Errorf("redacted document leaks %q", secret)
		}
	}
	w, cp := got.JoinCommands(false)
	if strings.Contains(w+cp, "0123456789abcdef") || !strings.Contains(cp, "--control-plane --certificate-key <redacted>") {
		t.Errorf("join commands: %s / %s", w, cp)
	}
	for _, bad := range []string{
		`{"apiVersion":"kubeboot.dev/v9","kind":"JoinSecret"}`,
		`{"apiVersion":"kubeboot.dev/v1alpha1","kind":"JoinSecret","extra":1}`,
		`{"apiVersion":"kubeboot.dev/v1alpha1","kind":"JoinSecret"}`,
		`not json`,
	} {
		if _, err := Parse("bad", []byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

func TestFileSink(t *testing.T) {
	root := t.TempDir()
	s := FileSink{Writer: rootfs.Writer{Root: root}, Path: "/var/lib/kubeboot/join-secret.json"}
	if err := s.Put(context.Background(), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(root, s.Path))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("stat %v %v", st, err)
	}
}

func TestVirtioSerialSinkBySysfsName(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "sys/class/virtio-ports/vport1p1"), 0o755)
	os.WriteFile(filepath.Join(root, "sys/class/virtio-ports/vport1p1/name"), []byte("kubeboot.join\n"), 0o644)
	os.MkdirAll(filepath.Join(root, "dev"), 0o755)
	os.WriteFile(filepath.Join(root, "dev/vport1p1"), nil, 0o600)
	if err := (VirtioSerialSink{Root: root, Name: "kubeboot.join"}).Put(context.Background(), []byte("doc")); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(filepath.Join(root, "dev/vport1p1")); string(data) != "doc" {
		t.Errorf("port holds %q", data)
	}
	if err := (VirtioSerialSink{Root: root, Name: "other"}).Put(context.Background(), nil); err == nil {
		t.Error("missing port accepted")
	}
}

func TestHTTPSinkRetries(t *testing.T) {
	var calls atomic.Int32
	var body atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) {
		case 1:
			w.WriteHeader(http.StatusInternalServerError)
		case 2:
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			b, _ := io.ReadAll(r.Body)
			body.Store(string(b))
			w.WriteHeader(http.StatusCreated)
		}
	}))
	defer srv.Close()
	sink := HTTPSink{URL: srv.URL + "/join?sig=SECRET", Timeout: 10 * time.Second}
	if err := sink.Put(context.Background(), []byte("doc")); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 3 || body.Load() != "doc" {
		t.Errorf("calls %d body %v", calls.Load(), body.Load())
	}
	if strings.Contains(sink.String(), "SECRET") {
		t.Errorf("sink name leaks the query: %s", sink)
	}
}

func TestHTTPSinkPermanentAndTimeout(t *testing.T) {
	forbidden := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusForbidden) }))
	defer forbidden.Close()
	err := HTTPSink{URL: forbidden.URL + "/?token=SECRET", Timeout: 10 * time.Second}.Put(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "403") || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("403: %v", err)
	}
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadGateway) }))
	defer failing.Close()
	err = HTTPSink{URL: failing.URL, Timeout: 700 * time.Millisecond}.Put(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "gave up after") {
		t.Errorf("timeout: %v", err)
	}
}
