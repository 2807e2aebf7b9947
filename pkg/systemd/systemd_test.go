package systemd

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestStartKubelet(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fake   *Fake
		calls  []string
		state  string
		errSub string
	}{
		{
			name:  "starts and reports",
			fake:  &Fake{},
			calls: []string{"reload", "enable kubelet.service", "start kubelet.service", "state kubelet.service"},
			state: "kubelet.service: active (running), enabled, pid 4242",
		},
		{
			name:   "reload fails: nothing else",
			fake:   &Fake{Fail: map[string]error{"reload": errors.New("access denied")}},
			calls:  []string{"reload"},
			errSub: "kubelet-start: daemon-reload: access denied",
		},
		{
			name:   "no unit file",
			fake:   &Fake{Fail: map[string]error{"enable kubelet.service": errors.New("no unit file")}},
			calls:  []string{"reload", "enable kubelet.service"},
			errSub: "kubelet-start: enable kubelet.service: no unit file",
		},
		{
			name:   "start job fails: state in the error",
			fake:   &Fake{Fail: map[string]error{"start kubelet.service": errors.New("job failed")}},
			calls:  []string{"reload", "enable kubelet.service", "start kubelet.service", "state kubelet.service"},
			state:  "kubelet.service: inactive (dead), enabled",
			errSub: "kubelet-start: start kubelet.service: job failed (kubelet.service: inactive (dead), enabled; see journalctl -u kubelet)",
		},
		{
			name:   "fails right after start",
			fake:   &Fake{FailAfterStart: map[string]bool{KubeletUnit: true}},
			calls:  []string{"reload", "enable kubelet.service", "start kubelet.service", "state kubelet.service"},
			state:  "kubelet.service: failed (failed), enabled",
			errSub: "kubelet.service failed after start (kubelet.service: failed (failed), enabled): see journalctl -u kubelet",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := StartKubelet(context.Background(), tc.fake)
			if !slices.Equal(tc.fake.Calls, tc.calls) {
				t.Errorf("calls %q, want %q", tc.fake.Calls, tc.calls)
			}
			if tc.state != "" && st.String() != tc.state {
				t.Errorf("state %q, want %q", st, tc.state)
			}
			switch {
			case tc.errSub == "" && err != nil:
				t.Errorf("error: %v", err)
			case tc.errSub != "" && (err == nil || !strings.Contains(err.Error(), tc.errSub)):
				t.Errorf("error %v, want %q", err, tc.errSub)
			}
		})
	}
}

func TestStopKubelet(t *testing.T) {
	f := &Fake{}
	if _, err := StartKubelet(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	if err := StopKubelet(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	st, _ := f.State(context.Background(), KubeletUnit)
	if st.Running() || st.UnitFileState != "enabled" {
		t.Errorf("after stop: %s", st)
	}
	f.Fail = map[string]error{"stop kubelet.service": errors.New("timeout")}
	if err := StopKubelet(context.Background(), f); err == nil || err.Error() != "kubelet-start: stop kubelet.service: timeout" {
		t.Errorf("stop error: %v", err)
	}
}

// TestConnect runs against the real systemd where PID 1 is one; elsewhere
// it checks that the error says why and wraps ErrNoSystemd.
func TestConnect(t *testing.T) {
	ctx := context.Background()
	c, err := Connect(ctx)
	if !Booted() {
		if !errors.Is(err, ErrNoSystemd) || !strings.Contains(err.Error(), "not systemd") {
			t.Fatalf("Connect without systemd: %v, want ErrNoSystemd saying why", err)
		}
		t.Logf("no systemd here, as expected: %v", err)
		t.Skip("PID 1 is not systemd: the real D-Bus calls are tested in the QEMU guest")
	}
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	defer c.Close()
	// Read-only on a unit every systemd has.
	st, err := c.State(ctx, "-.mount")
	if err != nil || st.LoadState != "loaded" || st.ActiveState != "active" {
		t.Errorf("State(-.mount) = %+v, %v", st, err)
	}
	if err := c.Stop(ctx, "kubeboot-no-such-unit.service"); err != nil {
		t.Errorf("Stop of an unknown unit: %v, want nil", err)
	}
	if err := c.Enable(ctx, "kubeboot-no-such-unit.service"); err == nil || !strings.Contains(err.Error(), "no unit file") {
		t.Errorf("Enable of an unknown unit: %v", err)
	}
	if err := c.Reload(ctx); err != nil {
		t.Errorf("Reload: %v", err)
	}
}
