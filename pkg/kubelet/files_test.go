package kubelet

import (
	"net"
	"strings"
	"testing"

	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/kubeboot/kubeboot/pkg/config"
)

func resolved(t *testing.T, extra []config.Arg) *config.Config {
	t.Helper()
	c := config.Defaults()
	c.Init.NodeRegistration.KubeletExtraArgs = extra
	if err := config.Resolve(c, config.StaticFacts{Host: "n1", IPs: []net.IP{net.ParseIP("192.0.2.10")}}); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRender(t *testing.T) {
	files, err := Render(resolved(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]string{}
	for _, f := range files {
		byPath[f.Path] = string(f.Data)
	}
	var kc kubeletv1beta1.KubeletConfiguration
	if err := sigsyaml.UnmarshalStrict([]byte(byPath[ConfigPath]), &kc); err != nil {
		t.Fatalf("config.yaml does not decode strictly: %v", err)
	}
	if kc.StaticPodPath != "/etc/kubernetes/manifests" || kc.ClusterDNS[0] != "10.96.0.10" || !kc.RotateCertificates {
		t.Errorf("config.yaml: %+v", kc)
	}
	if got := byPath[FlagsEnvPath]; got != `KUBELET_KUBEADM_ARGS="--hostname-override=n1 --node-ip=192.0.2.10"`+"\n" {
		t.Errorf("flags env: %q", got)
	}
	for _, want := range []string{"--config=/var/lib/kubelet/config.yaml", "EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env", "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf", "ExecStart=\n"} {
		if !strings.Contains(byPath[DropInPath], want) {
			t.Errorf("drop-in lacks %q", want)
		}
	}
}

func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra []config.Arg
		want  string
	}{
		{"defaults", nil, "--hostname-override=n1 --node-ip=192.0.2.10"},
		{"user replaces node-ip", []config.Arg{{Name: "node-ip", Value: "192.0.2.99"}}, "--hostname-override=n1 --node-ip=192.0.2.99"},
		{"user adds a flag", []config.Arg{{Name: "v", Value: "4"}}, "--hostname-override=n1 --node-ip=192.0.2.10 --v=4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := FlagsEnv(resolved(t, tc.extra)); got != `KUBELET_KUBEADM_ARGS="`+tc.want+`"`+"\n" {
				t.Errorf("got %q", got)
			}
		})
	}
}
