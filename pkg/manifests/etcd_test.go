package manifests

import (
	"bytes"
	"strings"
	"testing"

	"github.com/kubeboot/kubeboot/pkg/config"
)

// TestEtcdMember: a joining member's manifest is init's with the whole
// member list and --initial-cluster-state=existing, as kubeadm join
// writes it (GetEtcdPodSpec with initialCluster); nothing else differs.
func TestEtcdMember(t *testing.T) {
	const members = "node0=https://10.0.0.4:2380,node1=https://10.0.0.5:2380"
	for _, tc := range []struct {
		name, ip, members string
		peerURL           string
	}{
		{"IPv4", "10.0.0.5", members, "https://10.0.0.5:2380"},
		{"IPv6", "fd00::5", "node0=https://[fd00::4]:2380,node1=https://[fd00::5]:2380", "https://[fd00::5]:2380"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := defaults(t, tc.ip)
			if got := EtcdPeerURL(cfg); got != tc.peerURL {
				t.Errorf("EtcdPeerURL %q, want %q", got, tc.peerURL)
			}
			initFiles, err := Etcd(cfg)
			if err != nil {
				t.Fatal(err)
			}
			joinFiles, err := EtcdMember(cfg, tc.members)
			if err != nil {
				t.Fatal(err)
			}
			if len(joinFiles) != 1 || joinFiles[0].Path != initFiles[0].Path || joinFiles[0].Mode != initFiles[0].Mode {
				t.Fatalf("files %v, want one at %s", joinFiles, initFiles[0].Path)
			}
			init, join := decodePod(t, initFiles[0]), decodePod(t, joinFiles[0])
			if d := diff([]string{tc.members}, flagsNamed(join, "initial-cluster")); d != "" {
				t.Errorf("--initial-cluster:\n%s", d)
			}
			if d := diff([]string{"existing"}, flagsNamed(join, "initial-cluster-state")); d != "" {
				t.Errorf("--initial-cluster-state:\n%s", d)
			}
			if d := diff([]string{tc.peerURL}, flagsNamed(join, "initial-advertise-peer-urls")); d != "" {
				t.Errorf("--initial-advertise-peer-urls:\n%s", d)
			}
			// The same command but for those two flags, in kubeadm's
			// sorted order.
			var want []string
			for _, a := range init.Spec.Containers[0].Command {
				switch {
				case strings.HasPrefix(a, "--initial-cluster="):
					want = append(want, "--initial-cluster="+tc.members, "--initial-cluster-state=existing")
				default:
					want = append(want, a)
				}
			}
			if d := diff(want, join.Spec.Containers[0].Command); d != "" {
				t.Errorf("command:\n%s", d)
			}
			// Init's manifest is untouched by the join variant.
			if flagsNamed(init, "initial-cluster-state") != nil {
				t.Errorf("init's manifest has --initial-cluster-state")
			}
			again, _ := Etcd(cfg)
			if !bytes.Equal(again[0].Data, initFiles[0].Data) {
				t.Errorf("Etcd renders differently after EtcdMember")
			}
			init.Spec.Containers[0].Command, join.Spec.Containers[0].Command = nil, nil
			if d := diff(init, join); d != "" {
				t.Errorf("pods differ beyond the command:\n%s", d)
			}
		})
	}
}

func TestEtcdMemberErrors(t *testing.T) {
	if _, err := EtcdMember(defaults(t, "10.0.0.5"), ""); err == nil || !strings.Contains(err.Error(), "initial cluster") {
		t.Errorf("empty member list: %v", err)
	}
	// With external etcd there is no member to render, as with init.
	cfg := defaults(t, "10.0.0.5")
	cfg.Cluster.Etcd.Local = nil
	cfg.Cluster.Etcd.External = &config.ExternalEtcd{Endpoints: []string{"https://10.0.0.10:2379"}}
	if files, err := EtcdMember(cfg, "node0=https://10.0.0.4:2380"); err != nil || files != nil {
		t.Errorf("external etcd: %v %v", files, err)
	}
}
