package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestMain is also the entry of the two other roles of this binary: a
// node's agent (AgentEnv) and the sweep make runs after the tests
// (SweepEnv).
func TestMain(m *testing.M) {
	if os.Getenv(AgentEnv) != "" {
		os.Exit(AgentMain())
	}
	if run := os.Getenv(SweepEnv); run != "" {
		// Anything left means the tests' own teardown did not run.
		left := false
		if ph, err := pidsHierarchy(); err == nil {
			_, err := os.Stat(filepath.Join(ph, run))
			left = err == nil
		}
		killed, err := Sweep(run)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if left {
			fmt.Fprintf(os.Stderr, "sweep: %s was left behind: killed %d processes, removed its cgroups\n", run, killed)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
