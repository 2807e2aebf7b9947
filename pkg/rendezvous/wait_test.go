package rendezvous

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestWaitSecret(t *testing.T) {
	for _, tc := range []struct {
		name string
		// during runs while the waiter polls.
		during  func(t *testing.T, f *fixture)
		want    string
		wantErr error
	}{
		{
			name: "published while waiting",
			during: func(t *testing.T, f *fixture) {
				if err := f.store().Publish(testContext(t), "init", []byte("doc")); err != nil {
					t.Error(err)
				}
			},
			want: "doc",
		},
		{
			name: "published through 503s",
			during: func(t *testing.T, f *fixture) {
				f.srv.FailNext(4)
				if err := f.store().Publish(testContext(t), "init", []byte("doc")); err != nil {
					t.Error(err)
				}
				f.srv.FailNext(3)
			},
			want: "doc",
		},
		{
			name:    "lease lapses unpublished",
			during:  func(t *testing.T, f *fixture) { f.clock.Advance(lease) },
			wantErr: ErrClaimExpired,
		},
		{
			name:    "claim deleted",
			during:  func(t *testing.T, f *fixture) { f.srv.Delete(prefix + "/claim") },
			wantErr: ErrClaimExpired,
		},
		{
			// A secret without a published claim (left from an earlier
			// try, or written by hand) is never taken.
			name: "secret without a published claim",
			during: func(t *testing.T, f *fixture) {
				f.srv.Put(prefix+"/join-secret", []byte("stale"))
				time.Sleep(300 * time.Millisecond)
				f.clock.Advance(lease)
			},
			wantErr: ErrClaimExpired,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			ctx := testContext(t)
			if _, won, err := f.store().Claim(ctx, "init", lease); err != nil || !won {
				t.Fatalf("claim: won=%v %v", won, err)
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				time.Sleep(300 * time.Millisecond)
				tc.during(t, f)
			}()
			got, err := f.store().WaitSecret(ctx)
			<-done
			switch {
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Fatalf("WaitSecret: %q, %v; want %v", got, err, tc.wantErr)
			case tc.wantErr == nil && (err != nil || string(got) != tc.want):
				t.Fatalf("WaitSecret: %q, %v; want %q", got, err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "SECRET-SIGNATURE") {
				t.Errorf("error shows the query string: %v", err)
			}
		})
	}
}

func TestWaitSecretGivesUpWithContext(t *testing.T) {
	f := newFixture(t)
	if _, won, err := f.store().Claim(testContext(t), "init", lease); err != nil || !won {
		t.Fatalf("claim: won=%v %v", won, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	_, err := f.store().WaitSecret(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitSecret: %v, want the deadline", err)
	}
	msg := err.Error()
	for _, want := range []string{"gave up", "init is running init", prefix + "/join-secret?<redacted>"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "SECRET-SIGNATURE") {
		t.Errorf("error shows the query string: %v", msg)
	}
}

func TestWaitSecretSurvives503s(t *testing.T) {
	f := newFixture(t)
	ctx := testContext(t)
	s := f.store()
	if _, won, err := s.Claim(ctx, "init", lease); err != nil || !won {
		t.Fatalf("claim: won=%v %v", won, err)
	}
	if err := s.Publish(ctx, "init", []byte("doc")); err != nil {
		t.Fatal(err)
	}
	before := f.srv.Requests()
	f.srv.FailNext(5)
	got, err := f.store().WaitSecret(ctx)
	if err != nil || string(got) != "doc" {
		t.Fatalf("WaitSecret: %q, %v", got, err)
	}
	// Five refused, then the claim and the secret.
	if n := f.srv.Requests() - before; n != 7 {
		t.Errorf("%d requests, want 7", n)
	}
}
