package joinsecret

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"
)

func TestFetchFile(t *testing.T) {
	dir := t.TempDir()
	doc, _ := sample().Marshal()
	good := filepath.Join(dir, "join-secret.json")
	os.WriteFile(good, doc, 0o600)
	for _, src := range []string{good, "file://" + good} {
		s, err := Fetch(context.Background(), src)
		if err != nil || s.Token != sample().Token || s.CACertHashes[0] != sample().CACertHashes[0] {
			t.Errorf("%s: %+v, %v", src, s.Redacted(), err)
		}
	}
	future := filepath.Join(dir, "v9.json")
	os.WriteFile(future, []byte(strings.Replace(string(doc), APIVersion, "kubeboot.dev/v9", 1)), 0o600)
	for src, want := range map[string]string{
		filepath.Join(dir, "missing.json"):  "missing.json: no such file",
		future:                              "unsupported document kubeboot.dev/v9 JoinSecret",
		"":                                  "empty",
		"ftp://host/x?sig=SECRET":           "unsupported scheme",
		"file://otherhost/x":                "invalid file URL",
		"https:///no-host?sig=SECRET":       "invalid URL",
		"virtio://kubeboot.join?sig=SECRET": "expected a file path, a file:// or http(s):// URL, or virtio-serial:NAME",
		"virtio-serial:":                    "invalid port name",
		"virtio-serial:../../etc/shadow":    "invalid port name",
	} {
		_, err := Fetch(context.Background(), src)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", src, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "SECRET") {
			t.Errorf("%q: error shows the query: %v", src, err)
		}
	}
}

// TestFetchHTTPPolls: the secret appears after a few 404s and a 503.
func TestFetchHTTPPolls(t *testing.T) {
	doc, _ := sample().Marshal()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("sig") != "SECRET" {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		switch calls.Add(1) {
		case 1, 2:
			http.NotFound(w, r)
		case 3:
			w.WriteHeader(http.StatusServiceUnavailable)
		case 4:
			w.WriteHeader(http.StatusOK) // empty: not written yet
		default:
			w.Write(doc)
		}
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := Fetch(ctx, srv.URL+"/join?sig=SECRET")
	if err != nil || s.Token != sample().Token {
		t.Fatalf("%+v, %v", s.Redacted(), err)
	}
	if calls.Load() != 5 {
		t.Errorf("%d requests, want 5", calls.Load())
	}
}

func TestFetchHTTPFailures(t *testing.T) {
	doc, _ := sample().Marshal()
	serve := func(status int, body []byte) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(status)
			w.Write(body)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := "http://" + l.Addr().String()
	l.Close()
	for _, tc := range []struct {
		name, url string
		says      []string
		permanent bool
	}{
		{"never published", serve(http.StatusNotFound, nil), []string{"gave up after", "not published yet", "404"}, false},
		{"server down", closed, []string{"gave up after", "connection refused"}, false},
		{"forbidden", serve(http.StatusForbidden, nil), []string{"403", "credentials"}, true},
		{"bad request", serve(http.StatusBadRequest, nil), []string{"400"}, true},
		{"unknown version", serve(http.StatusOK, []byte(strings.Replace(string(doc), APIVersion, "kubeboot.dev/v9", 1))), []string{"unsupported document"}, true},
		{"not JSON", serve(http.StatusOK, []byte("<html>")), []string{"invalid character"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 800*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := Fetch(ctx, tc.url+"/join?sig=SECRET")
			if err == nil {
				t.Fatal("no error")
			}
			for _, want := range append(tc.says, "join secret from http "+RedactURL(tc.url+"/join?sig=SECRET")) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not say %q: %v", want, err)
				}
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Errorf("error shows the query: %v", err)
			}
			if d := time.Since(start); tc.permanent != (d < 500*time.Millisecond) {
				t.Errorf("returned after %s; permanent %v", d, tc.permanent)
			}
			t.Log(err)
		})
	}
}

func TestHTTPSourceTimeout(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	start := time.Now()
	_, err := HTTPSource{URL: srv.URL, Timeout: 300 * time.Millisecond}.Read(context.Background())
	if err == nil || time.Since(start) > 3*time.Second {
		t.Fatalf("%v after %s", err, time.Since(start))
	}
	var perm permanent
	if errors.As(err, &perm) {
		t.Errorf("a timeout is not a permanent answer")
	}
}

func TestParseSource(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Source
	}{
		{"/var/lib/kubeboot/join-secret.json", FileSource{Path: "/var/lib/kubeboot/join-secret.json"}},
		{"relative.json", FileSource{Path: "relative.json"}},
		{"file:///etc/join.json", FileSource{Path: "/etc/join.json"}},
		{"file://localhost/etc/join.json", FileSource{Path: "/etc/join.json"}},
		{"https://metadata.example/join?sig=SECRET", HTTPSource{URL: "https://metadata.example/join?sig=SECRET"}},
		{"virtio-serial:kubeboot.join", VirtioSerialSource{Name: "kubeboot.join"}},
	} {
		got, err := ParseSource(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("%q: %#v, %v; want %#v", tc.in, got, err, tc.want)
		}
		if strings.Contains(got.String(), "SECRET") {
			t.Errorf("%q: name shows the query: %s", tc.in, got)
		}
	}
}

func TestInlineSource(t *testing.T) {
	id := newIdentity(t)
	doc, _ := sample().Marshal()
	sealed, _ := Seal(doc, []string{id.Recipient().String()})
	for _, tc := range []struct {
		name string
		data []byte
		ids  []age.Identity
		says string
	}{
		{name: "plain", data: doc},
		{name: "sealed", data: sealed, ids: []age.Identity{id}},
		{name: "empty", data: []byte(" \n"), says: "join secret from join.secret in the userdata: empty"},
		{name: "plain but identity set", data: doc, ids: []age.Identity{id}, says: "not sealed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Load(context.Background(), InlineSource{Data: tc.data}, tc.ids)
			if tc.says == "" {
				if err != nil || s.Token != sample().Token {
					t.Fatalf("%+v, %v", s.Redacted(), err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("got %v, want %q", err, tc.says)
			}
		})
	}
}
