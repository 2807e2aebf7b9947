package cni

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/kubeboot/kubeboot/pkg/config"
)

func TestRender(t *testing.T) {
	for _, tc := range []struct {
		name, pods string
		builtin    bool
		want       []string
	}{
		{"off", "10.244.0.0/16", false, nil},
		{"ipv4", "10.244.0.0/16", true, []string{`"subnet": "10.244.0.0/16"`, `"dst": "0.0.0.0/0"`, `"bridge": "cni0"`, `"type": "portmap"`, `"type": "loopback"`}},
		{"dual-stack", "10.244.0.0/16,fd00:10:244::/56", true, []string{`"subnet": "fd00:10:244::/56"`, `"dst": "::/0"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := config.Defaults()
			c.Cluster.Networking.PodSubnet = tc.pods
			c.Boot.PodNetwork.Builtin = tc.builtin
			files, err := Render(c)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == nil {
				if len(files) != 0 {
					t.Fatalf("rendered %d files with the network off", len(files))
				}
				return
			}
			var v map[string]any
			if err := json.Unmarshal(files[0].Data, &v); err != nil || v["cniVersion"] != "1.0.0" {
				t.Fatalf("not a CNI config list: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(files[0].Data), w) {
					t.Errorf("missing %s in\n%s", w, files[0].Data)
				}
			}
		})
	}
}
