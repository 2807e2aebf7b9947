package rendezvous

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubeboot/kubeboot/pkg/rendezvous/rendezvoustest"
)

// prefix is where the tests' objects live; the query string stands for a
// presigned URL's credentials and must never show.
const (
	prefix = "/bucket/cluster-a"
	query  = "?sig=SECRET-SIGNATURE"
)

// clock is a settable Now shared by every node of a test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fixture is one in-memory store and a clock shared by the nodes.
type fixture struct {
	srv   *rendezvoustest.Server
	clock *clock
	url   string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	srv := rendezvoustest.NewStore()
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return &fixture{srv: srv, clock: newClock(), url: hs.URL + prefix + query}
}

// store is what one machine uses; each gets its own, as each machine would.
func (f *fixture) store() *Store {
	return &Store{URL: f.url, Now: f.clock.Now, Client: &http.Client{Timeout: 10 * time.Second}, fast: true}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestShowRedacts(t *testing.T) {
	for _, tc := range []struct {
		url, object, want string
	}{
		{"https://h.example/b/p", "claim", "https://h.example/b/p/claim"},
		{"https://h.example/b/p/", "claim", "https://h.example/b/p/claim"},
		{"https://h.example/b/p?X-Amz-Signature=abc&X-Amz-Credential=k", "members", "https://h.example/b/p/members?<redacted>"},
		{"https://user:pass@h.example/b", "join-secret", "https://h.example/b/join-secret"},
		{"https://h.example/b?sv=1&sig=abc#frag", "", "https://h.example/b?<redacted>"},
		{"://bad", "claim", "<invalid URL>"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			if got := (&Store{URL: tc.url}).show(tc.object); got != tc.want {
				t.Errorf("show(%q) = %q, want %q", tc.object, got, tc.want)
			}
		})
	}
}

func TestObjectURLKeepsQuery(t *testing.T) {
	got, err := (&Store{URL: "https://acct.example/container/p?sv=1&sig=abc"}).objectURL("claim")
	if err != nil || got != "https://acct.example/container/p/claim?sv=1&sig=abc" {
		t.Fatalf("objectURL = %q, %v", got, err)
	}
	for _, bad := range []string{"", "file:///tmp/x", "ftp://h/p", "https:///nohost", "://x"} {
		if _, err := (&Store{URL: bad}).objectURL("claim"); err == nil {
			t.Errorf("objectURL accepted %q", bad)
		}
	}
}

// Every operation ends on a refused credential at once, says so, and never
// shows the query string.
func TestForbiddenEndsEveryOperation(t *testing.T) {
	f := newFixture(t)
	f.srv.Fault(func(*http.Request) int { return http.StatusForbidden })
	s := f.store()
	ctx := testContext(t)
	_, wait := s.WaitSecret(ctx)
	_, _, claim := s.Claim(ctx, "n1", time.Minute)
	_, renew := s.Renew(ctx, "n1", time.Minute)
	publish := s.Publish(ctx, "n1", []byte("secret"))
	_, enrol := s.Enrol(ctx, "n1", 3)
	_, members := s.Members(ctx)
	for name, err := range map[string]error{"WaitSecret": wait, "Claim": claim, "Renew": renew, "Publish": publish, "Enrol": enrol, "Members": members} {
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		msg := err.Error()
		for _, want := range []string{"403 Forbidden", "credentials", prefix} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: error %q does not say %q", name, msg, want)
			}
		}
		if strings.Contains(msg, "SECRET-SIGNATURE") {
			t.Errorf("%s: error shows the query string: %q", name, msg)
		}
	}
	// Six operations, the first request of each refused: no retries.
	if n := f.srv.Requests(); n != 6 {
		t.Errorf("%d requests, want 6 (one per operation)", n)
	}
}

func TestConnectionErrorsDoNotShowTheURL(t *testing.T) {
	hs := httptest.NewServer(http.NotFoundHandler())
	url := hs.URL
	hs.Close()
	s := &Store{URL: "http://user:pw@" + strings.TrimPrefix(url, "http://") + prefix + query}
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	_, _, err := s.Claim(ctx, "n1", time.Minute)
	if err == nil {
		t.Fatal("no error from a closed server")
	}
	msg := err.Error()
	if strings.Contains(msg, "SECRET") || strings.Contains(msg, "pw@") {
		t.Errorf("error shows credentials: %q", msg)
	}
	if !strings.Contains(msg, "connection refused") || !strings.Contains(msg, "deadline exceeded") {
		t.Errorf("error does not say why: %q", msg)
	}
}

func TestPutsSayWhatTheySend(t *testing.T) {
	f := newFixture(t)
	var mu sync.Mutex
	types := map[string]string{}
	f.srv.Fault(func(r *http.Request) int {
		if r.Method == http.MethodPut {
			mu.Lock()
			defer mu.Unlock()
			types[strings.TrimPrefix(r.URL.Path, prefix+"/")] = r.Header.Get("Content-Type")
		}
		return 0
	})
	ctx := testContext(t)
	s := f.store()
	if _, won, err := s.Claim(ctx, "init", lease); err != nil || !won {
		t.Fatalf("claim: won=%v %v", won, err)
	}
	if err := s.Publish(ctx, "init", []byte("doc")); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"claim": "application/json", "members": "application/json", "join-secret": "application/octet-stream"}
	for obj, ct := range want {
		if types[obj] != ct {
			t.Errorf("PUT %s with Content-Type %q, want %q", obj, types[obj], ct)
		}
	}
}

// A store without ETags cannot do conditional writes: say so rather than
// loop.
func TestStoreWithoutETags(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			w.WriteHeader(http.StatusPreconditionFailed)
			return
		}
		w.Write([]byte(`{"node":"other","expires":"2030-01-01T00:00:00Z"}`))
	}))
	defer hs.Close()
	_, _, err := (&Store{URL: hs.URL + prefix}).Claim(testContext(t), "n1", time.Minute)
	if err == nil || !strings.Contains(err.Error(), "without an ETag") {
		t.Fatalf("Claim against a store without ETags: %v", err)
	}
}
