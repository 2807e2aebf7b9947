package systemd

import (
	"context"
	"fmt"
	"sync"
)

// Fake is a Manager for tests of the phases: it records calls, keeps unit
// states as a running systemd would, and fails the calls it is told to.
type Fake struct {
	mu sync.Mutex
	// Calls lists "stop U", "reload", "enable U", "start U", "state U".
	Calls []string
	// Units holds each unit's state; Start makes a unit active (running)
	// unless FailAfterStart names it.
	Units map[string]UnitState
	// Fail makes a call fail, keyed like Calls.
	Fail map[string]error
	// FailAfterStart lists units whose start succeeds but that systemd
	// then reports failed.
	FailAfterStart map[string]bool
}

var _ Manager = (*Fake)(nil)

func (f *Fake) call(c string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls = append(f.Calls, c)
	return f.Fail[c]
}

func (f *Fake) set(unit string, edit func(*UnitState)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Units == nil {
		f.Units = map[string]UnitState{}
	}
	st, ok := f.Units[unit]
	if !ok {
		st = UnitState{Unit: unit, LoadState: "loaded", ActiveState: "inactive", SubState: "dead", UnitFileState: "disabled"}
	}
	edit(&st)
	f.Units[unit] = st
}

func (f *Fake) Stop(_ context.Context, unit string) error {
	if err := f.call("stop " + unit); err != nil {
		return err
	}
	f.set(unit, func(s *UnitState) { s.ActiveState, s.SubState, s.MainPID = "inactive", "dead", 0 })
	return nil
}

func (f *Fake) Reload(context.Context) error { return f.call("reload") }

func (f *Fake) Enable(_ context.Context, unit string) error {
	if err := f.call("enable " + unit); err != nil {
		return err
	}
	f.set(unit, func(s *UnitState) { s.UnitFileState = "enabled" })
	return nil
}

func (f *Fake) Start(_ context.Context, unit string) error {
	if err := f.call("start " + unit); err != nil {
		return err
	}
	failed := f.FailAfterStart[unit]
	f.set(unit, func(s *UnitState) {
		if failed {
			s.ActiveState, s.SubState, s.MainPID = "failed", "failed", 0
		} else {
			s.ActiveState, s.SubState, s.MainPID = "active", "running", 4242
		}
	})
	return nil
}

func (f *Fake) State(_ context.Context, unit string) (UnitState, error) {
	if err := f.call("state " + unit); err != nil {
		return UnitState{Unit: unit}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.Units[unit]
	if !ok {
		return UnitState{Unit: unit}, fmt.Errorf("state of %s: unit not found", unit)
	}
	return st, nil
}
