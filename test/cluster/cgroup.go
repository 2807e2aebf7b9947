package cluster

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A run's cgroups are /<run>/<node> in every hierarchy, e.g. /kbc-4242/kb-1.
// Each node's kubelet gets its own as --cgroup-root (two kubelets sharing
// /kubepods remove each other's pods), and every process of the node
// (agent, containerd, shims, kubelet, whatever runs through Node.Command)
// sits in the pids hierarchy's copy, so that teardown finds them all there,
// as systemd's KillMode=control-group would.

// runName is what a run's top cgroup may be called; Sweep refuses others.
var runName = regexp.MustCompile(`^kbc-[0-9]+$`)

// hierarchies lists the mount points of the cgroup hierarchies: each v1
// controller or named hierarchy, and the unified (v2) one.
func hierarchies() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID parent maj:min root mountpoint options [optional...] - fstype source superoptions
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+1 >= len(fields) || len(fields) < 5 {
			continue
		}
		if t := fields[sep+1]; t == "cgroup" || t == "cgroup2" {
			out = append(out, fields[4])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("cgroups: no cgroup hierarchy mounted")
	}
	return out, nil
}

// pidsHierarchy is where the harness tracks a node's processes: the v1 pids
// controller (this machine has cgroup v1, see environment.md).
func pidsHierarchy() (string, error) {
	hs, err := hierarchies()
	if err != nil {
		return "", err
	}
	for _, h := range hs {
		if filepath.Base(h) == "pids" {
			return h, nil
		}
	}
	return "", fmt.Errorf("cgroups: no v1 pids hierarchy among %v (the harness is written for this machine's cgroup v1)", hs)
}

// makeCgroup creates rel (e.g. /kbc-4242/kb-1) in every hierarchy. cpuset
// directories get their parent's cpus and mems, or no task could join them.
func makeCgroup(rel string) error {
	hs, err := hierarchies()
	if err != nil {
		return err
	}
	for _, h := range hs {
		parts := strings.Split(strings.Trim(rel, "/"), "/")
		dir := h
		for _, p := range parts {
			parent := dir
			dir = filepath.Join(dir, p)
			if err := os.Mkdir(dir, 0o755); err != nil && !os.IsExist(err) {
				return fmt.Errorf("cgroups: create %s: %w", dir, err)
			}
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				v, err := os.ReadFile(filepath.Join(parent, f))
				if err != nil {
					continue // not the cpuset hierarchy
				}
				if cur, _ := os.ReadFile(filepath.Join(dir, f)); strings.TrimSpace(string(cur)) != "" {
					continue
				}
				if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
					return fmt.Errorf("cgroups: %s: copy %s from the parent: %w", dir, f, err)
				}
			}
		}
	}
	return nil
}

// subtree lists dir and every cgroup below it, parents first.
func subtree(dir string) []string {
	var dirs []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	return dirs
}

// procs lists the processes in dir's subtree.
func procs(dir string) []int {
	var pids []int
	for _, d := range subtree(dir) {
		data, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// killTree SIGKILLs every process in dir's subtree but except, again and
// again (a dying shim's children show up, a container forks) until none is
// left or the timeout passes. It returns how many it signalled and those
// still there.
func killTree(dir string, except int, timeout time.Duration) (killed int, left []int) {
	seen := map[int]bool{}
	deadline := time.Now().Add(timeout)
	for {
		left = left[:0]
		for _, pid := range procs(dir) {
			if pid == except {
				continue
			}
			left = append(left, pid)
			if !seen[pid] {
				seen[pid] = true
				killed++
			}
			syscall.Kill(pid, syscall.SIGKILL)
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return killed, left
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// removeCgroup removes rel and everything below it in every hierarchy,
// deepest first. The cgroups must hold no process any more; rmdir can
// still say EBUSY for a moment after the last one died, so it retries.
func removeCgroup(rel string) error {
	hs, err := hierarchies()
	if err != nil {
		return err
	}
	var errs []error
	for _, h := range hs {
		dirs := subtree(filepath.Join(h, rel))
		for i := len(dirs) - 1; i >= 0; i-- {
			var err error
			for try := 0; try < 50; try++ {
				if err = syscall.Rmdir(dirs[i]); err == nil || errors.Is(err, syscall.ENOENT) {
					err = nil
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("cgroups: remove %s: %w", dirs[i], err))
			}
		}
	}
	return errors.Join(errs...)
}

// Sweep kills every process left in a run's cgroups and removes them: the
// last step of every teardown, and what `make e2e-cluster` runs after the
// test binary, in case that died without its cleanup (a -test.timeout
// panic). It reports what it had to kill: nothing, after a clean teardown.
func Sweep(run string) (killed int, err error) {
	if !runName.MatchString(run) {
		return 0, fmt.Errorf("sweep: %q is not a run name (kbc-NUMBER)", run)
	}
	ph, err := pidsHierarchy()
	if err != nil {
		return 0, err
	}
	top := filepath.Join(ph, run)
	if _, err := os.Stat(top); os.IsNotExist(err) {
		return 0, nil
	}
	killed, left := killTree(top, os.Getpid(), 30*time.Second)
	if len(left) > 0 {
		return killed, fmt.Errorf("sweep: processes %v in %s survive SIGKILL", left, top)
	}
	return killed, removeCgroup("/" + run)
}
