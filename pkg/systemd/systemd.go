// Package systemd stops, enables and starts units through systemd's D-Bus
// API, for kubelet-start. The phases use the Manager interface, so their
// logic is tested with Fake; Conn is the real thing.
package systemd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
)

// KubeletUnit is the unit kubelet-start manages.
const KubeletUnit = "kubelet.service"

// ErrNoSystemd is wrapped by Connect's error when PID 1 is not systemd or
// no bus reaches it: the phase then says the kubelet was not started
// instead of pretending.
var ErrNoSystemd = errors.New("no systemd")

// Manager is the part of systemd kubelet-start uses.
type Manager interface {
	// Stop stops a unit and waits for the job; a unit that is not loaded
	// is already stopped.
	Stop(ctx context.Context, unit string) error
	// Reload is `systemctl daemon-reload`.
	Reload(ctx context.Context) error
	// Enable is `systemctl enable` of one unit file.
	Enable(ctx context.Context, unit string) error
	// Start starts a unit and waits for the job.
	Start(ctx context.Context, unit string) error
	// State reads the unit's load, active and sub states.
	State(ctx context.Context, unit string) (UnitState, error)
}

// UnitState is what systemd says about a unit.
type UnitState struct {
	Unit          string
	LoadState     string // loaded, not-found, masked, ...
	ActiveState   string // active, activating, failed, inactive, ...
	SubState      string // running, auto-restart, dead, ...
	UnitFileState string // enabled, disabled, static, ...
	MainPID       uint32
}

// String reads like systemctl's status line: "kubelet.service: active
// (running), enabled, pid 1234".
func (s UnitState) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s (%s)", s.Unit, s.ActiveState, s.SubState)
	if s.UnitFileState != "" {
		b.WriteString(", " + s.UnitFileState)
	}
	if s.MainPID != 0 {
		fmt.Fprintf(&b, ", pid %d", s.MainPID)
	}
	return b.String()
}

// Running tells whether the unit is up or on its way up (a kubelet
// waiting for its configuration restarts in a loop, which is fine here).
func (s UnitState) Running() bool {
	return s.ActiveState == "active" || s.ActiveState == "activating" || s.ActiveState == "reloading"
}

// StopKubelet stops the kubelet before its files change, as kubeadm does,
// so that a running kubelet never reads half of them.
func StopKubelet(ctx context.Context, m Manager) error {
	if err := m.Stop(ctx, KubeletUnit); err != nil {
		return fmt.Errorf("kubelet-start: stop %s: %w", KubeletUnit, err)
	}
	return nil
}

// StartKubelet makes systemd read the kubelet's drop-in, enables the unit
// for later boots and starts it, then reports its state. A kubelet that
// systemd reports failed is an error that says where to look.
func StartKubelet(ctx context.Context, m Manager) (UnitState, error) {
	if err := m.Reload(ctx); err != nil {
		return UnitState{}, fmt.Errorf("kubelet-start: daemon-reload: %w", err)
	}
	if err := m.Enable(ctx, KubeletUnit); err != nil {
		return UnitState{}, fmt.Errorf("kubelet-start: enable %s: %w", KubeletUnit, err)
	}
	startErr := m.Start(ctx, KubeletUnit)
	st, err := m.State(ctx, KubeletUnit)
	if err != nil {
		if startErr != nil {
			return st, fmt.Errorf("kubelet-start: start %s: %w", KubeletUnit, startErr)
		}
		return st, fmt.Errorf("kubelet-start: %s state: %w", KubeletUnit, err)
	}
	if startErr != nil {
		return st, fmt.Errorf("kubelet-start: start %s: %w (%s; see journalctl -u kubelet)", KubeletUnit, startErr, st)
	}
	if st.ActiveState == "failed" {
		return st, fmt.Errorf("kubelet-start: %s failed after start (%s): see journalctl -u kubelet", KubeletUnit, st)
	}
	return st, nil
}

// Booted tells whether PID 1 is systemd, as sd_booted(3) does.
func Booted() bool {
	fi, err := os.Lstat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

// whyNoSystemd says what this machine runs instead, for the error.
func whyNoSystemd() string {
	comm, err := os.ReadFile("/proc/1/comm")
	init := "unknown"
	if err == nil {
		init = strings.TrimSpace(string(comm))
	}
	return fmt.Sprintf("PID 1 is %s, not systemd (/run/systemd/system is absent)", init)
}
