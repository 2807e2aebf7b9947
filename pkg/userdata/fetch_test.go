package userdata

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// flakyServer serves payload on 127.0.0.1 at any path except /missing
// (404), after failing its first `failures` requests in turn with a 500,
// a response slower than quickFetch's attempt timeout, and a truncated
// body.
type flaky struct {
	*httptest.Server
	mu       sync.Mutex
	requests []string
}

func flakyServer(t testing.TB, failures int, payload []byte) *flaky {
	f := &flaky{}
	n := 0
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		n++
		attempt := n
		f.requests = append(f.requests, r.URL.String())
		f.mu.Unlock()
		if r.URL.Path == "/missing" || strings.HasSuffix(r.URL.Path, "/missing") {
			http.NotFound(w, r)
			return
		}
		if attempt <= failures {
			switch attempt % 3 {
			case 1:
				http.Error(w, "try later", http.StatusInternalServerError)
				return
			case 2:
				select {
				case <-time.After(3 * time.Second):
				case <-r.Context().Done():
				}
				return
			case 0:
				w.Header().Set("Content-Length", fmt.Sprint(len(payload)+100))
				w.WriteHeader(http.StatusOK)
				w.Write(payload[:len(payload)/2])
				if hj, ok := w.(http.Hijacker); ok {
					conn, _, _ := hj.Hijack()
					conn.Close()
				}
				return
			}
		}
		w.Write(payload)
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.Server = httptest.NewUnstartedServer(handler)
	f.Server.Listener.Close()
	f.Server.Listener = l
	f.Server.Start()
	t.Cleanup(f.Server.Close)
	return f
}

func (f *flaky) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

func TestFetchRetries(t *testing.T) {
	payload := []byte(ignConfigFile("3.4.0", "data:;base64,"+b64([]byte(testConfig)), ""))
	srv := flakyServer(t, 3, payload)
	fetch := quickFetch
	fetch.AttemptTimeout = 500 * time.Millisecond
	data, err := fetch.get(context.Background(), srv.URL+"/config.ign?token=hunter2", nil)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if string(data) != string(payload) {
		t.Errorf("data = %q", data)
	}
	if srv.count() != 4 {
		t.Errorf("%d requests, want 4 (500, slow, truncated, ok)", srv.count())
	}
}

func TestFetchGivesUp(t *testing.T) {
	srv := flakyServer(t, 1000, []byte("x"))
	fetch := quickFetch
	fetch.Timeout = 1500 * time.Millisecond
	fetch.AttemptTimeout = 200 * time.Millisecond
	start := time.Now()
	_, err := fetch.get(context.Background(), srv.URL+"/config.ign?token=hunter2#frag", nil)
	if err == nil {
		t.Fatal("no error")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("gave up after %s, want about 1.5 s", d)
	}
	msg := err.Error()
	if !strings.Contains(msg, srv.URL+"/config.ign (query redacted)") || strings.Contains(msg, "hunter2") {
		t.Errorf("error = %q: want the URL without its query", msg)
	}
	if !strings.Contains(msg, "gave up after") {
		t.Errorf("error = %q", msg)
	}
}

func TestFetchAttemptsAndPermanent(t *testing.T) {
	srv := flakyServer(t, 1000, []byte("x"))
	fetch := quickFetch
	fetch.Attempts = 2
	if _, err := fetch.get(context.Background(), srv.URL+"/a", nil); err == nil || !strings.Contains(err.Error(), "after 2 attempts") {
		t.Errorf("err = %v", err)
	}
	before := srv.count()
	if _, err := fetch.get(context.Background(), srv.URL+"/missing", nil); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("err = %v", err)
	}
	if srv.count()-before != 1 {
		t.Errorf("404 retried: %d requests", srv.count()-before)
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:pw@host:8443/p/config.ign?X-Amz-Signature=abc#f": "https://host:8443/p/config.ign (query redacted)",
		"http://host/path":      "http://host/path",
		"data:,secret":          "data: URL (12 bytes)",
		"http://[bad/x?token=t": "http://[bad/x",
		"http://u:p@[bad/x?t=1": "http://[bad/x",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
