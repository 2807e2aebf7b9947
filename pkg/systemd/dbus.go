package systemd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	sd "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
)

// systemBusSocket is the system D-Bus; Connect says whether it exists.
const systemBusSocket = "/run/dbus/system_bus_socket"

// Conn is a connection to systemd (PID 1) over D-Bus.
type Conn struct {
	c *sd.Conn
}

var _ Manager = (*Conn)(nil)

// Connect reaches systemd through its private socket (root only, and
// there before dbus.service starts, which matters at first boot), else
// through the system bus. When PID 1 is not systemd, the error wraps
// ErrNoSystemd.
func Connect(ctx context.Context) (*Conn, error) {
	if !Booted() {
		bus := "there is no system D-Bus (" + systemBusSocket + ")"
		if _, err := os.Stat(systemBusSocket); err == nil {
			bus = "its system D-Bus has no systemd behind it"
		}
		return nil, fmt.Errorf("systemd: %w: %s, and %s", ErrNoSystemd, whyNoSystemd(), bus)
	}
	c, errPrivate := sd.NewSystemdConnectionContext(ctx)
	if errPrivate == nil {
		return &Conn{c: c}, nil
	}
	c, errBus := sd.NewSystemConnectionContext(ctx)
	if errBus == nil {
		return &Conn{c: c}, nil
	}
	return nil, fmt.Errorf("systemd: cannot reach systemd over D-Bus: /run/systemd/private: %v; system bus %s: %w", errPrivate, systemBusSocket, errBus)
}

// Close closes the connection.
func (c *Conn) Close() { c.c.Close() }

// Stop stops a unit and waits for systemd's job to finish.
func (c *Conn) Stop(ctx context.Context, unit string) error {
	ch := make(chan string, 1)
	if _, err := c.c.StopUnitContext(ctx, unit, "replace", ch); err != nil {
		if isDBusError(err, "org.freedesktop.systemd1.NoSuchUnit") {
			return nil
		}
		return fmt.Errorf("stop %s: %w", unit, err)
	}
	return waitJob(ctx, "stop", unit, ch)
}

// Reload is daemon-reload: systemd reads unit files and drop-ins again.
func (c *Conn) Reload(ctx context.Context) error {
	if err := c.c.ReloadContext(ctx); err != nil {
		return fmt.Errorf("daemon-reload: %w", err)
	}
	return nil
}

// Enable links the unit into the targets its [Install] section names.
func (c *Conn) Enable(ctx context.Context, unit string) error {
	if _, _, err := c.c.EnableUnitFilesContext(ctx, []string{unit}, false, false); err != nil {
		if isDBusError(err, "org.freedesktop.systemd1.NoSuchUnit") || strings.Contains(err.Error(), "does not exist") {
			return fmt.Errorf("enable %s: no unit file (is the kubelet package installed?): %w", unit, err)
		}
		return fmt.Errorf("enable %s: %w", unit, err)
	}
	return nil
}

// Start starts a unit and waits for systemd's job to finish.
func (c *Conn) Start(ctx context.Context, unit string) error {
	ch := make(chan string, 1)
	if _, err := c.c.StartUnitContext(ctx, unit, "replace", ch); err != nil {
		return fmt.Errorf("start %s: %w", unit, err)
	}
	return waitJob(ctx, "start", unit, ch)
}

// State reads the unit's states and, for a service, its main process.
func (c *Conn) State(ctx context.Context, unit string) (UnitState, error) {
	p, err := c.c.GetUnitPropertiesContext(ctx, unit)
	if err != nil {
		return UnitState{Unit: unit}, fmt.Errorf("state of %s: %w", unit, err)
	}
	str := func(k string) string { s, _ := p[k].(string); return s }
	st := UnitState{
		Unit:          unit,
		LoadState:     str("LoadState"),
		ActiveState:   str("ActiveState"),
		SubState:      str("SubState"),
		UnitFileState: str("UnitFileState"),
	}
	if strings.HasSuffix(unit, ".service") {
		if sp, err := c.c.GetUnitTypePropertiesContext(ctx, unit, "Service"); err == nil {
			st.MainPID, _ = sp["MainPID"].(uint32)
		}
	}
	return st, nil
}

// waitJob waits for the result systemd sends when a job ends.
func waitJob(ctx context.Context, what, unit string, ch <-chan string) error {
	select {
	case res := <-ch:
		if res != "done" {
			return fmt.Errorf("%s %s: job %s", what, unit, res)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s %s: %w", what, unit, ctx.Err())
	}
}

func isDBusError(err error, name string) bool {
	var e godbus.Error
	if errors.As(err, &e) {
		return e.Name == name
	}
	var pe *godbus.Error
	return errors.As(err, &pe) && pe.Name == name
}
