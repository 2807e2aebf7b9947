package firstboot

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// controlPlaneOnly are the phases a worker's join leaves out.
var controlPlaneOnly = []string{
	"download-certs", "certs", "kubeconfig", "audit", "encryption", "control-plane",
	"etcd-join", "etcd-promote", "wait-control-plane", "mark-control-plane",
}

func TestJoinPhases(t *testing.T) {
	cp := JoinPhases(true)
	worker := JoinPhases(false)
	want := []string{
		"userdata", "config", "host", "preflight", "discovery", "images",
		"download-certs", "certs", "kubeconfig", "audit", "encryption", "control-plane", "etcd-join",
		"kubelet-start", "kubelet-wait-bootstrap",
		"etcd-promote", "wait-control-plane", "mark-control-plane",
		"wait-node-ready",
	}
	if got := Names(cp); !slices.Equal(got, want) {
		t.Errorf("control-plane join:\n%s\nwant:\n%s", strings.Join(got, " "), strings.Join(want, " "))
	}
	// A worker's list is the control plane's without its phases, in the
	// same order.
	var wantWorker []string
	for _, n := range want {
		if !slices.Contains(controlPlaneOnly, n) {
			wantWorker = append(wantWorker, n)
		}
	}
	if got := Names(worker); !slices.Equal(got, wantWorker) {
		t.Errorf("worker join:\n%s\nwant:\n%s", strings.Join(got, " "), strings.Join(wantWorker, " "))
	}
	for flow, phases := range map[string][]Phase{"control plane": cp, "worker": worker, "init": InitPhases()} {
		seen := map[string]bool{}
		for _, p := range phases {
			if seen[p.Name] {
				t.Errorf("%s: phase %q listed twice (skip-phases and the journal go by name)", flow, p.Name)
			}
			seen[p.Name] = true
			if p.Short == "" || (p.Render == nil && p.Apply == nil) {
				t.Errorf("%s: phase %q has no description or does nothing", flow, p.Name)
			}
		}
		if err := CheckSkip(phases, []string{"images"}); err != nil {
			t.Errorf("%s: %v", flow, err)
		}
	}
	// A worker's list holds the same values as the control plane's.
	for _, p := range worker {
		i := slices.IndexFunc(cp, func(q Phase) bool { return q.Name == p.Name })
		if i < 0 || !samePhase(p, cp[i]) {
			t.Errorf("worker phase %q is not the control plane's", p.Name)
		}
	}
}

// TestJoinSharesInitPhases: a phase both flows run is one value, not a
// copy (docs/style.md), so a fix to one is a fix to both.
func TestJoinSharesInitPhases(t *testing.T) {
	initPhases := map[string]Phase{}
	for _, p := range InitPhases() {
		initPhases[p.Name] = p
	}
	join := map[string]Phase{}
	for _, p := range JoinPhases(true) {
		join[p.Name] = p
	}
	for _, name := range []string{"userdata", "host", "images", "certs", "audit", "encryption", "control-plane", "wait-control-plane", "mark-control-plane"} {
		i, ok1 := initPhases[name]
		j, ok2 := join[name]
		if !ok1 || !ok2 {
			t.Errorf("%s: in init %v, in join %v", name, ok1, ok2)
			continue
		}
		if !samePhase(i, j) {
			t.Errorf("%s: join runs a different phase value than init", name)
		}
	}
}

// samePhase compares phases by name, description and functions (the
// functions of a package-level phase are its identity).
func samePhase(a, b Phase) bool {
	fn := func(f any) uintptr {
		v := reflect.ValueOf(f)
		if v.IsNil() {
			return 0
		}
		return v.Pointer()
	}
	return a.Name == b.Name && a.Short == b.Short &&
		fn(a.Inputs) == fn(b.Inputs) && fn(a.Render) == fn(b.Render) && fn(a.Apply) == fn(b.Apply)
}
