package firstboot

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/kubeboot/kubeboot/pkg/config"
	"github.com/kubeboot/kubeboot/pkg/rendezvous"
	"github.com/kubeboot/kubeboot/pkg/rendezvous/rendezvoustest"
)

// The join secret as the init node publishes it; opaque to the rendezvous.
const rvSecret = `{"apiServerEndpoint":"192.0.2.11:6443","token":"abcdef.0123456789abcdef","caCertHashes":["sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"]}`

// rvStore serves an in-memory object store for one test.
func rvStore(t *testing.T) (*rendezvoustest.Server, string) {
	t.Helper()
	srv := rendezvoustest.NewStore()
	url, stop, err := srv.Serve("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return srv, url + "/cluster-1"
}

// machine is one of the identical machines: the same userdata, its own
// name and address.
func machine(t *testing.T, url, node, ip, lease, timeout string) *config.Config {
	t.Helper()
	cfg, err := config.Load("userdata", []byte(`apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
nodeRegistration: {name: `+node+`}
localAPIEndpoint: {advertiseAddress: `+ip+`, bindPort: 6443}
---
apiVersion: kubeboot.dev/v1alpha1
kind: BootConfiguration
cluster:
  rendezvous:
    url: `+url+`
    controlPlaneReplicas: 2
    leaseDuration: `+lease+`
    timeout: `+timeout+`
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := config.Resolve(cfg, config.StaticFacts{Host: node, IPs: []net.IP{net.ParseIP(ip)}}); err != nil {
		t.Fatal(err)
	}
	return cfg
}

type outcome struct {
	role Role
	err  error
	out  string
}

// rendezvousAsync runs Rendezvous for one machine in the background.
func rendezvousAsync(ctx context.Context, cfg *config.Config) <-chan outcome {
	ch := make(chan outcome, 1)
	go func() {
		var out bytes.Buffer
		role, err := Rendezvous(ctx, Options{Out: &out}, cfg)
		ch <- outcome{role, err, out.String()}
	}()
	return ch
}

func awaitRole(t *testing.T, ch <-chan outcome, within time.Duration) outcome {
	t.Helper()
	select {
	case o := <-ch:
		return o
	case <-time.After(within):
		t.Fatalf("Rendezvous still running after %s", within)
		return outcome{}
	}
}

// checkJoin checks a lost rendezvous' join configuration: the secret
// inline, the machine's own registration, the role's shape.
func checkJoin(t *testing.T, o outcome, node string, controlPlane bool) {
	t.Helper()
	if o.err != nil {
		t.Fatalf("%s: %v\n%s", node, o.err, o.out)
	}
	r := o.role
	if r.Init || r.Join == nil || r.ControlPlane != controlPlane {
		t.Fatalf("%s: role %+v, want a join with controlPlane %v", node, r, controlPlane)
	}
	j := r.Join
	if j.Boot.Join.Secret != rvSecret || j.Boot.Join.Source != "" {
		t.Errorf("%s: join secret %q, source %q; want the published secret inline", node, j.Boot.Join.Secret, j.Boot.Join.Source)
	}
	if j.Join.NodeRegistration.Name != node {
		t.Errorf("%s: node name %q", node, j.Join.NodeRegistration.Name)
	}
	if (j.Join.ControlPlane != nil) != controlPlane {
		t.Errorf("%s: controlPlane %+v", node, j.Join.ControlPlane)
	}
	if controlPlane && j.Join.ControlPlane.LocalAPIEndpoint.BindPort != 6443 {
		t.Errorf("%s: bind port %d", node, j.Join.ControlPlane.LocalAPIEndpoint.BindPort)
	}
	hasCPTaint := len(j.Join.NodeRegistration.Taints) == 1 && j.Join.NodeRegistration.Taints[0] == config.ControlPlaneTaint
	if hasCPTaint != controlPlane || (!controlPlane && len(j.Join.NodeRegistration.Taints) != 0) {
		t.Errorf("%s: taints %v", node, j.Join.NodeRegistration.Taints)
	}
	if err := config.ValidateJoin(j); err != nil {
		t.Errorf("%s: join configuration does not validate: %v", node, err)
	}
	if strings.Contains(o.out, "0123456789abcdef") {
		t.Errorf("%s: output shows the secret:\n%s", node, o.out)
	}
}

// TestRendezvous: the first machine runs init; the next waits while the
// init runs (its claim kept alive past the lease), then joins as a control
// plane once the secret is published; with controlPlaneReplicas 2 the
// third joins as a worker; machines that reboot get their role again.
func TestRendezvous(t *testing.T) {
	srv, url := rvStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m1 := machine(t, url, "node-1", "192.0.2.11", "2s", "1m")
	m2 := machine(t, url, "node-2", "192.0.2.12", "2s", "1m")
	m3 := machine(t, url, "node-3", "192.0.2.13", "2s", "1m")

	first := awaitRole(t, rendezvousAsync(ctx, m1), 10*time.Second)
	if first.err != nil || !first.role.Init || first.role.Join != nil {
		t.Fatalf("first machine: %+v %v", first.role, first.err)
	}
	if !strings.Contains(first.out, "node-1 holds the claim") {
		t.Errorf("first machine says:\n%s", first.out)
	}
	// As kubeboot init does while the init flow runs.
	keep, stopKeeping := context.WithCancel(ctx)
	defer stopKeeping()
	kept := make(chan struct{})
	go func() { KeepClaim(keep, Options{}, m1, func() {}); close(kept) }()

	second := rendezvousAsync(ctx, m2)
	// Past the lease: the renewed claim holds and the second one waits.
	select {
	case o := <-second:
		t.Fatalf("second machine did not wait for the init node: %+v %v\n%s", o.role, o.err, o.out)
	case <-time.After(3 * time.Second):
	}

	// What the init node's join-secret phase does.
	store := &rendezvous.Store{URL: url}
	if err := store.Publish(ctx, "node-1", []byte(rvSecret)); err != nil {
		t.Fatal(err)
	}
	checkJoin(t, awaitRole(t, second, 15*time.Second), "node-2", true)
	select {
	case <-kept:
	case <-time.After(5 * time.Second):
		t.Errorf("KeepClaim still renewing a published claim")
	}

	checkJoin(t, awaitRole(t, rendezvousAsync(ctx, m3), 10*time.Second), "node-3", false)

	// Reboots: the same roles again.
	checkJoin(t, awaitRole(t, rendezvousAsync(ctx, m2), 10*time.Second), "node-2", true)
	again := awaitRole(t, rendezvousAsync(ctx, m1), 10*time.Second)
	if again.err != nil || !again.role.Init {
		t.Errorf("init node after a reboot: %+v %v", again.role, again.err)
	}

	data, _ := srv.Object("/cluster-1/members")
	var members struct{ ControlPlane, Workers []string }
	if err := json.Unmarshal(data, &members); err != nil {
		t.Fatalf("members %s: %v", data, err)
	}
	if strings.Join(members.ControlPlane, ",") != "node-1,node-2" || strings.Join(members.Workers, ",") != "node-3" {
		t.Errorf("members %s", data)
	}
}

// TestRendezvousTakeover: a winner that never publishes and does not
// renew loses the claim when its lease lapses; a waiting machine runs
// init instead.
func TestRendezvousTakeover(t *testing.T) {
	srv, url := rvStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dead := awaitRole(t, rendezvousAsync(ctx, machine(t, url, "node-1", "192.0.2.11", "2s", "1m")), 10*time.Second)
	if !dead.role.Init {
		t.Fatalf("first machine: %+v %v", dead.role, dead.err)
	}
	start := time.Now()
	o := awaitRole(t, rendezvousAsync(ctx, machine(t, url, "node-2", "192.0.2.12", "2s", "1m")), 20*time.Second)
	if o.err != nil || !o.role.Init || o.role.Join != nil {
		t.Fatalf("second machine: %+v %v\n%s", o.role, o.err, o.out)
	}
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Errorf("took over after %s, before the lease could lapse", d)
	}
	if !strings.Contains(o.out, "the claim of node-1 expired before it published: trying to take over") {
		t.Errorf("second machine says:\n%s", o.out)
	}
	var claim rendezvous.Claim
	data, _ := srv.Object("/cluster-1/claim")
	if err := json.Unmarshal(data, &claim); err != nil || claim.Node != "node-2" || claim.Published {
		t.Errorf("claim %s: %v", data, err)
	}
}

// TestRendezvousTimeout: the wait is bounded by rendezvous.timeout, and
// the error says what was being waited for.
func TestRendezvousTimeout(t *testing.T) {
	_, url := rvStore(t)
	ctx := context.Background()
	if o := awaitRole(t, rendezvousAsync(ctx, machine(t, url, "node-1", "192.0.2.11", "1h", "1m")), 10*time.Second); !o.role.Init {
		t.Fatalf("first machine: %+v %v", o.role, o.err)
	}
	start := time.Now()
	o := awaitRole(t, rendezvousAsync(ctx, machine(t, url, "node-2", "192.0.2.12", "1h", "700ms")), 10*time.Second)
	if o.err == nil || !strings.Contains(o.err.Error(), "rendezvous") || !strings.Contains(o.err.Error(), "join secret") {
		t.Errorf("error %v", o.err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("gave up after %s, timeout 700ms", d)
	}
}
