package rendezvous

import (
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

const lease = 10 * time.Minute

// race runs n nodes' claims at once and returns the winners.
func race(t *testing.T, f *fixture, n int, name func(int) string) []string {
	t.Helper()
	ctx := testContext(t)
	var mu sync.Mutex
	var winners []string
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			c, won, err := f.store().Claim(ctx, name(i), lease)
			if err != nil {
				t.Errorf("node %s: %v", name(i), err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if won {
				winners = append(winners, name(i))
			} else if c.Node == name(i) || c.Node == "" {
				t.Errorf("node %s lost to %q", name(i), c.Node)
			}
		})
	}
	wg.Wait()
	return winners
}

func node(i int) string { return fmt.Sprintf("node-%02d", i) }

func TestExactlyOneClaimWins(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault func(*http.Request) int
	}{
		{name: "clean"},
		// S3 answers 409 to conditional writes that collide in flight.
		{name: "409 on some writes", fault: every(3, http.MethodPut, http.StatusConflict)},
		{name: "503 on some requests", fault: every(4, "", http.StatusServiceUnavailable)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.srv.Fault(tc.fault)
			winners := race(t, f, 25, node)
			if len(winners) != 1 {
				t.Fatalf("winners %v, want exactly one", winners)
			}
		})
	}
}

// both asks a, then b if a let the request through.
func both(a, b func(*http.Request) int) func(*http.Request) int {
	return func(r *http.Request) int {
		if code := a(r); code != 0 {
			return code
		}
		return b(r)
	}
}

// every fails one in n requests (of a method, or all) with code.
func every(n int, method string, code int) func(*http.Request) int {
	var mu sync.Mutex
	count := 0
	return func(r *http.Request) int {
		if method != "" && r.Method != method {
			return 0
		}
		mu.Lock()
		defer mu.Unlock()
		if count++; count%n == 0 {
			return code
		}
		return 0
	}
}

func TestReclaimAfterReboot(t *testing.T) {
	f := newFixture(t)
	winners := race(t, f, 10, node)
	if len(winners) != 1 {
		t.Fatalf("winners %v", winners)
	}
	f.clock.Advance(lease / 2)
	ctx := testContext(t)
	c, won, err := f.store().Claim(ctx, winners[0], lease)
	if err != nil || !won || c.Node != winners[0] {
		t.Fatalf("the winner reclaiming after a reboot: %+v won=%v err=%v", c, won, err)
	}
	if want := f.clock.Now().Add(lease); !c.Expires.Equal(want) {
		t.Errorf("lease not renewed: expires %s, want %s", c.Expires, want)
	}
	// Past the first lease, within the renewed one: the others still lose.
	f.clock.Advance(lease * 3 / 4)
	if again := race(t, f, 10, func(i int) string { return node(i + 100) }); len(again) != 0 {
		t.Errorf("other nodes won a renewed claim: %v", again)
	}
}

func TestLeaseExpiry(t *testing.T) {
	for _, tc := range []struct {
		name      string
		publish   bool
		advance   time.Duration
		takenOver bool
	}{
		{name: "within the lease", advance: lease - time.Second},
		{name: "expired unpublished", advance: lease, takenOver: true},
		{name: "published never expires", publish: true, advance: 1000 * lease},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			ctx := testContext(t)
			first := f.store()
			if _, won, err := first.Claim(ctx, "first", lease); err != nil || !won {
				t.Fatalf("first claim: won=%v %v", won, err)
			}
			if tc.publish {
				if err := first.Publish(ctx, "first", []byte("doc")); err != nil {
					t.Fatal(err)
				}
			}
			f.clock.Advance(tc.advance)
			winners := race(t, f, 20, node)
			switch {
			case tc.takenOver && len(winners) != 1:
				t.Fatalf("takers that won: %v, want exactly one", winners)
			case !tc.takenOver && len(winners) != 0:
				t.Fatalf("takers won a live claim: %v", winners)
			}
			// The first node, back, learns whether it still holds init.
			c, won, err := first.Claim(ctx, "first", lease)
			if err != nil || won == tc.takenOver {
				t.Fatalf("first node again: %+v won=%v %v", c, won, err)
			}
			if tc.takenOver {
				if c.Node != winners[0] {
					t.Errorf("first node told the holder is %q, want %q", c.Node, winners[0])
				}
				if _, err := first.Renew(ctx, "first", lease); !errors.Is(err, ErrClaimLost) {
					t.Errorf("Renew by the node that lost the claim: %v, want ErrClaimLost", err)
				}
				if err := first.Publish(ctx, "first", []byte("stale")); !errors.Is(err, ErrClaimLost) {
					t.Errorf("Publish by the node that lost the claim: %v, want ErrClaimLost", err)
				}
				if _, ok := f.srv.Object(prefix + "/join-secret"); ok {
					t.Error("a node that lost its claim wrote a join secret")
				}
			}
		})
	}
}

func TestRenewKeepsTheClaim(t *testing.T) {
	f := newFixture(t)
	ctx := testContext(t)
	s := f.store()
	if _, won, err := s.Claim(ctx, "slow", lease); err != nil || !won {
		t.Fatalf("claim: won=%v %v", won, err)
	}
	for range 5 {
		f.clock.Advance(lease - time.Minute)
		if _, err := s.Renew(ctx, "slow", lease); err != nil {
			t.Fatalf("renew: %v", err)
		}
		if c, won, err := f.store().Claim(ctx, "other", lease); err != nil || won || c.Node != "slow" {
			t.Fatalf("other node while renewed: %+v won=%v %v", c, won, err)
		}
	}
}

func TestPublishWritesInOrder(t *testing.T) {
	f := newFixture(t)
	ctx := testContext(t)
	s := f.store()
	if err := s.Publish(ctx, "init", []byte("doc")); !errors.Is(err, ErrClaimLost) {
		t.Fatalf("Publish without a claim: %v, want ErrClaimLost", err)
	}
	if _, won, err := s.Claim(ctx, "init", lease); err != nil || !won {
		t.Fatalf("claim: won=%v %v", won, err)
	}
	for range 2 { // again, as after a reboot: nothing changes
		if err := s.Publish(ctx, "init", []byte("doc")); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := f.srv.Object(prefix + "/join-secret"); string(got) != "doc" {
		t.Errorf("join-secret = %q", got)
	}
	m, err := s.Members(ctx)
	if err != nil || len(m.ControlPlane) != 1 || m.ControlPlane[0] != "init" || len(m.Workers) != 0 {
		t.Errorf("members %+v %v, want the init node alone", m, err)
	}
	if c, won, err := s.Claim(ctx, "init", lease); err != nil || !won || !c.Published {
		t.Errorf("claim after publishing: %+v won=%v %v", c, won, err)
	}
}

func TestClaimArguments(t *testing.T) {
	s := &Store{URL: "http://127.0.0.1:1/p"}
	ctx := testContext(t)
	for _, tc := range []struct {
		node  string
		lease time.Duration
	}{{"", lease}, {"n", 0}, {"n", -time.Second}} {
		if _, _, err := s.Claim(ctx, tc.node, tc.lease); err == nil {
			t.Errorf("Claim(%q, %s) accepted", tc.node, tc.lease)
		}
	}
}
