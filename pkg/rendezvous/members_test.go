package rendezvous

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
)

func TestEnrolCountsExactly(t *testing.T) {
	for _, tc := range []struct {
		name     string
		replicas int
		joiners  int
		fault    func(*http.Request) int
	}{
		{name: "3 of 21", replicas: 3, joiners: 20},
		{name: "3 of 21 with 409s and 503s", replicas: 3, joiners: 20, fault: both(every(5, http.MethodPut, http.StatusConflict), every(7, "", http.StatusServiceUnavailable))},
		{name: "1 of 6: all workers", replicas: 1, joiners: 5},
		{name: "5 of 3: all control planes", replicas: 5, joiners: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			ctx := testContext(t)
			init := f.store()
			if _, won, err := init.Claim(ctx, "init", lease); err != nil || !won {
				t.Fatalf("claim: won=%v %v", won, err)
			}
			if err := init.Publish(ctx, "init", []byte("doc")); err != nil {
				t.Fatal(err)
			}
			f.srv.Fault(tc.fault)
			roles := map[string]Role{}
			var mu sync.Mutex
			var wg sync.WaitGroup
			for i := range tc.joiners {
				wg.Go(func() {
					name := fmt.Sprintf("joiner-%02d", i)
					r, err := f.store().Enrol(ctx, name, tc.replicas)
					if err != nil {
						t.Errorf("%s: %v", name, err)
						return
					}
					mu.Lock()
					defer mu.Unlock()
					roles[name] = r
				})
			}
			wg.Wait()
			f.srv.Fault(nil)
			wantCP := min(tc.replicas, tc.joiners+1) - 1
			var cp int
			for _, r := range roles {
				if r == ControlPlane {
					cp++
				}
			}
			if cp != wantCP || len(roles) != tc.joiners {
				t.Fatalf("%d control planes of %d joiners, want %d: %v", cp, len(roles), wantCP, roles)
			}
			m, err := init.Members(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(m.ControlPlane) != wantCP+1 || m.ControlPlane[0] != "init" || len(m.Workers) != tc.joiners-wantCP {
				t.Fatalf("members %+v", m)
			}
			for name, r := range roles {
				if got, ok := m.Role(name); !ok || got != r {
					t.Errorf("%s was told %s, recorded as %q", name, r, got)
				}
			}

			// Every node enrolling again (after a reboot) gets its role, and
			// nothing is written.
			before, _ := f.srv.Object(prefix + "/members")
			for name, r := range roles {
				if got, err := f.store().Enrol(ctx, name, tc.replicas); err != nil || got != r {
					t.Errorf("%s enrolling again: %s, %v; want %s", name, got, err, r)
				}
			}
			if got, err := init.Enrol(ctx, "init", tc.replicas); err != nil || got != ControlPlane {
				t.Errorf("init node enrolling: %s, %v", got, err)
			}
			if after, _ := f.srv.Object(prefix + "/members"); !slices.Equal(before, after) {
				t.Errorf("enrolling again changed members:\n%s\n%s", before, after)
			}
		})
	}
}

func TestEnrolArguments(t *testing.T) {
	s := &Store{URL: "http://127.0.0.1:1/p"}
	for _, tc := range []struct {
		node     string
		replicas int
	}{{"", 3}, {"n", 0}, {"n", -1}} {
		if _, err := s.Enrol(testContext(t), tc.node, tc.replicas); err == nil {
			t.Errorf("Enrol(%q, %d) accepted", tc.node, tc.replicas)
		}
	}
}

func TestEnrolRejectsACorruptDocument(t *testing.T) {
	f := newFixture(t)
	f.srv.Put(prefix+"/members", []byte("not json"))
	if _, err := f.store().Enrol(testContext(t), "n", 3); err == nil {
		t.Fatal("Enrol accepted a corrupt members object")
	}
}
