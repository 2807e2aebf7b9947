package main

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// build compiles pause as the image has it: static.
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pause")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=test", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func TestVersion(t *testing.T) {
	out, err := exec.Command(build(t), "-v").CombinedOutput()
	if err != nil || string(out) != "pause test\n" {
		t.Fatalf("pause -v: %q, %v", out, err)
	}
}

// TestSignals: SIGINT and SIGTERM end pause with status 0.
func TestSignals(t *testing.T) {
	bin := build(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(bin)
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(stderr)
			// The warning comes once the handlers are in place.
			if !sc.Scan() || !strings.Contains(sc.Text(), "should be the first process") {
				cmd.Process.Kill()
				t.Fatalf("first stderr line %q", sc.Text())
			}
			// SIGCHLD and a stray signal change nothing.
			cmd.Process.Signal(syscall.SIGCHLD)
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			sc.Scan()
			if want := "Shutting down, got signal: " + sig.String(); sc.Text() != want {
				t.Errorf("stderr %q, want %q", sc.Text(), want)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("exit: %v, want status 0", err)
				}
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				t.Fatal("still running 10 s after the signal")
			}
		})
	}
}

// TestReapsOrphans runs pause as PID 1 of a new PID namespace, as in a pod
// that shares its process namespace, and makes it inherit two orphans:
// once they exit, pause must reap them (a zombie would stay otherwise).
func TestReapsOrphans(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a PID namespace")
	}
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		t.Skip("needs nsenter (util-linux)")
	}
	cmd := exec.Command(build(t))
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	pid := cmd.Process.Pid

	// Two background sleeps whose shell exits at once: they are reparented
	// to the namespace's init. (Their output goes to /dev/null: a pipe
	// would make this wait for them.)
	if err := exec.Command(nsenter, "-t", strconv.Itoa(pid), "-p", "--", "sh", "-c", "sleep 2 & sleep 2 & exit 0").Run(); err != nil {
		t.Fatalf("nsenter: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	sawOrphans := false
	for {
		kids := children(t, pid)
		if len(kids) > 0 {
			sawOrphans = true
		}
		if sawOrphans && len(kids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("children of pause after 20 s: %v (orphans seen: %t)", kids, sawOrphans)
		}
		time.Sleep(50 * time.Millisecond)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v, want status 0", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still running 10 s after SIGTERM")
	}
}

// children lists the processes whose parent is pid, with their state.
func children(t *testing.T, pid int) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if errors.Is(err, os.ErrNotExist) || err != nil {
			continue
		}
		var ppid, state string
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "PPid:"); ok {
				ppid = strings.TrimSpace(v)
			}
			if v, ok := strings.CutPrefix(l, "State:"); ok {
				state = strings.TrimSpace(v)
			}
		}
		if ppid == strconv.Itoa(pid) {
			out = append(out, e.Name()+" "+state)
		}
	}
	return out
}
