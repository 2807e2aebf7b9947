package config

import (
	"net"
	"strings"
	"testing"
	"time"
)

const (
	joinToken = "abcdef.0123456789abcdef"
	joinHash  = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

// worker is a complete join configuration for a worker by token.
const worker = `apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: 192.0.2.10:6443
    token: abcdef.0123456789abcdef
    caCertHashes: [sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef]
`

func TestLoadJoin(t *testing.T) {
	for _, tc := range []struct {
		name  string
		yaml  string
		check func(t *testing.T, c *JoinConfig)
	}{
		{"worker by token", worker, func(t *testing.T, c *JoinConfig) {
			j := c.Join
			for _, x := range []struct {
				name      string
				got, want any
			}{
				{"kind", j.Kind, KindJoin},
				{"endpoint", j.Discovery.BootstrapToken.APIServerEndpoint, "192.0.2.10:6443"},
				{"hash", j.Discovery.BootstrapToken.CACertHashes[0], joinHash},
				{"tlsBootstrapToken (kubeadm: the discovery token)", j.Discovery.TLSBootstrapToken, joinToken},
				{"caCertPath", j.CACertPath, "/etc/kubernetes/pki/ca.crt"},
				{"criSocket", j.NodeRegistration.CRISocket, DefaultCRISocket},
				{"no taints on a worker", len(j.NodeRegistration.Taints), 0},
				{"imagePullPolicy", string(j.NodeRegistration.ImagePullPolicy), "IfNotPresent"},
				{"discovery timeout", j.Timeouts.Discovery.Duration, 5 * time.Minute},
				{"tlsBootstrap timeout", j.Timeouts.TLSBootstrap.Duration, 5 * time.Minute},
				{"not a control plane", j.ControlPlane == nil, true},
				{"no kubelet document", c.Kubelet == nil, true},
				{"boot defaults", c.Boot.StateDir, DefaultStateDir},
			} {
				if x.got != x.want {
					t.Errorf("%s: got %v, want %v", x.name, x.got, x.want)
				}
			}
		}},
		{"control plane", worker + `controlPlane:
  certificateKey: ` + strings.Repeat("ab", 32) + `
  localAPIEndpoint: {advertiseAddress: 192.0.2.11}
nodeRegistration:
  name: cp-2
`, func(t *testing.T, c *JoinConfig) {
			cp := c.Join.ControlPlane
			if cp.LocalAPIEndpoint.BindPort != 6443 || cp.LocalAPIEndpoint.AdvertiseAddress != "192.0.2.11" {
				t.Errorf("localAPIEndpoint %+v", cp.LocalAPIEndpoint)
			}
			if ts := c.Join.NodeRegistration.Taints; len(ts) != 1 || ts[0] != ControlPlaneTaint {
				t.Errorf("taints %v", ts)
			}
		}},
		{"control plane without taints", worker + "controlPlane: {}\nnodeRegistration:\n  taints: []\n", func(t *testing.T, c *JoinConfig) {
			if ts := c.Join.NodeRegistration.Taints; ts == nil || len(ts) != 0 {
				t.Errorf("an explicit empty list must be kept: %v", ts)
			}
		}},
		{"file discovery", `apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  file: {kubeConfigPath: "file:///etc/kubernetes/discovery.conf"}
  tlsBootstrapToken: abcdef.0123456789abcdef
`, func(t *testing.T, c *JoinConfig) {
			if p := c.Join.Discovery.File.KubeConfigPath; p != "/etc/kubernetes/discovery.conf" {
				t.Errorf("kubeConfigPath %q", p)
			}
		}},
		{"unsafe skip", `apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken: {apiServerEndpoint: "[2001:db8::1]:6443", token: abcdef.0123456789abcdef, unsafeSkipCAVerification: true}
`, nil},
		{"kubelet and boot documents", worker + `---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
maxPods: 50
---
apiVersion: kubeboot.dev/v1alpha1
kind: BootConfiguration
stateDir: /var/lib/kb
`, func(t *testing.T, c *JoinConfig) {
			if c.Kubelet == nil || c.Kubelet.MaxPods != 50 {
				t.Fatalf("kubelet %+v", c.Kubelet)
			}
			if c.Kubelet.StaticPodPath != "" || c.Kubelet.CgroupDriver != "" {
				t.Errorf("the kubelet document must stay as given (the cluster's kubelet-config supplies the rest): %+v", c.Kubelet)
			}
			if c.Boot.StateDir != "/var/lib/kb" {
				t.Errorf("boot %+v", c.Boot)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := LoadJoin("join.yaml", []byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, c)
			}
			// Defaults are idempotent.
			before := *c.Join.Timeouts.Discovery
			SetJoinDefaults(c)
			if *c.Join.Timeouts.Discovery != before || ValidateJoin(c) != nil {
				t.Errorf("defaults applied twice differ or no longer validate")
			}
		})
	}
}

func TestLoadJoinInvalid(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"init document", "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n",
			"document 1 (InitConfiguration): kind: InitConfiguration is not used by kubeboot join; remove this document"},
		{"cluster document", worker + "---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n",
			"document 2 (ClusterConfiguration): kind: ClusterConfiguration is not used by kubeboot join: a joining node takes it from the cluster (kube-system/kubeadm-config)"},
		{"kube-proxy document", worker + "---\napiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n", "kube-system/kube-proxy"},
		{"unknown kind", "apiVersion: v1\nkind: Pod\n", `unknown kind "Pod" (expected one of JoinConfiguration, KubeletConfiguration, BootConfiguration)`},
		{"missing kind", "apiVersion: v1\n", "kind: missing: every document needs apiVersion and kind (one of JoinConfiguration, KubeletConfiguration, BootConfiguration)"},
		{"old apiVersion", "apiVersion: kubeadm.k8s.io/v1beta3\nkind: JoinConfiguration\n", "convert the file with `kubeadm config migrate`"},
		{"duplicate", worker + "---\n" + worker, "duplicate JoinConfiguration: already given in document 1"},
		{"unknown field", strings.Replace(worker, "    token:", "    tokn:", 1), "document 1 (JoinConfiguration): discovery.bootstrapToken.tokn: unknown field (line 6)"},
		{"wrong type", worker + "dryRun: \"yes\"\n", "dryRun: wrong type: expected true or false"},
		{"empty", "  \n", "empty configuration"},
		{"only comments", "# nothing\n", "no configuration documents found"},
		{"not a mapping", "- a\n", "expected a mapping with apiVersion and kind"},
		{"invalid YAML", "kind: [\n", "invalid YAML"},
		{"no discovery", "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\n", "discovery: required: set bootstrapToken"},
		{"no join document", "apiVersion: kubeboot.dev/v1alpha1\nkind: BootConfiguration\n", "join.yaml: discovery: required"},
		{"both discoveries", worker + "  file: {kubeConfigPath: /etc/kubernetes/d.conf}\n", "discovery: set bootstrapToken or file, not both"},
		{"token format", strings.Replace(worker, joinToken, "abcdef.0123456789ABCDEF", 1), `discovery.bootstrapToken.token: invalid bootstrap token`},
		{"no token", strings.Replace(worker, "    token: "+joinToken+"\n", "", 1), "discovery.bootstrapToken.token: required"},
		{"no hash", strings.Replace(worker, "    caCertHashes: ["+joinHash+"]\n", "", 1), "discovery.bootstrapToken.caCertHashes: required: give the hash"},
		{"bad hash", strings.Replace(worker, joinHash, "sha256:abc", 1), `discovery.bootstrapToken.caCertHashes[0]: invalid hash "sha256:abc"`},
		{"endpoint without port", strings.Replace(worker, "192.0.2.10:6443", "192.0.2.10", 1), `apiServerEndpoint: invalid endpoint "192.0.2.10": expected host:port`},
		{"no endpoint", strings.Replace(worker, "    apiServerEndpoint: 192.0.2.10:6443\n", "", 1), "apiServerEndpoint: required"},
		{"https discovery file", "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  file: {kubeConfigPath: \"https://example.com/d.conf\"}\n", "an https URL is not supported"},
		{"relative discovery file", "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  file: {kubeConfigPath: d.conf}\n", `discovery.file.kubeConfigPath: must be an absolute path, got "d.conf"`},
		{"tls bootstrap token", worker + "  tlsBootstrapToken: nope\n", "discovery.tlsBootstrapToken: invalid bootstrap token"},
		{"caCertPath", worker + "caCertPath: /etc/ca.pem\n", `caCertPath: must name a .crt file`},
		{"advertise loopback", worker + "controlPlane: {localAPIEndpoint: {advertiseAddress: 127.0.0.1}}\n", `controlPlane.localAPIEndpoint.advertiseAddress: "127.0.0.1" cannot be advertised`},
		{"bind port", worker + "controlPlane: {localAPIEndpoint: {bindPort: 70000}}\n", "controlPlane.localAPIEndpoint.bindPort: invalid port 70000"},
		{"certificate key", worker + "controlPlane: {certificateKey: xyz}\n", "controlPlane.certificateKey: invalid certificate key"},
		{"node name", worker + "nodeRegistration: {name: Node_1}\n", `nodeRegistration.name: invalid node name "Node_1"`},
		{"taint effect", worker + "nodeRegistration: {taints: [{key: a, effect: Sometimes}]}\n", `nodeRegistration.taints[0].effect: invalid effect "Sometimes"`},
		{"cri socket", worker + "nodeRegistration: {criSocket: /run/containerd.sock}\n", "nodeRegistration.criSocket: invalid socket"},
		{"patches", worker + "patches: {directory: /etc/p}\n", "patches are not supported"},
		{"timeout", worker + "timeouts: {discovery: 0s}\n", "timeouts.discovery: must be a positive duration"},
		{"kubelet document", worker + "---\napiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: openrc\n",
			`document 2 (KubeletConfiguration): cgroupDriver: invalid driver "openrc"`},
		{"kubelet unknown field", worker + "---\napiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nmaxPod: 3\n", "maxPod: unknown field"},
		{"boot document", worker + "---\napiVersion: kubeboot.dev/v1alpha1\nkind: BootConfiguration\nstateDir: var/lib\n", `document 2 (BootConfiguration): stateDir: must be an absolute path`},
		{"built-in pod network", worker + "---\napiVersion: kubeboot.dev/v1alpha1\nkind: BootConfiguration\npodNetwork: {builtin: true}\n", "podNetwork.builtin: the built-in pod network serves a single node"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadJoin("join.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			if !IsInvalid(err) {
				t.Errorf("not a configuration error: %T", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error does not say %q:\n%v", tc.want, err)
			}
			if !strings.HasPrefix(err.Error(), "join.yaml: ") {
				t.Errorf("error does not start with the source name: %v", err)
			}
			if strings.Contains(err.Error(), "0123456789") {
				t.Errorf("error shows the token: %v", err)
			}
		})
	}
}

func TestLoadJoinErrorLine(t *testing.T) {
	data := []byte(worker + "controlPlane:\n  localAPIEndpoint:\n    advertiseAddress: 10.0.0.300\n")
	_, err := LoadJoin("join.yaml", data)
	want := `join.yaml: document 1 (JoinConfiguration): controlPlane.localAPIEndpoint.advertiseAddress: invalid IP address "10.0.0.300" (line 10)`
	if err == nil || err.Error() != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
}

// TestJoinFromFlags: discovery given outside the file (flags, join secret).
func TestJoinFromFlags(t *testing.T) {
	c, err := DecodeJoin("join.yaml", []byte("apiVersion: kubeboot.dev/v1alpha1\nkind: BootConfiguration\n"))
	if err != nil {
		t.Fatal(err)
	}
	c.Join.Discovery.BootstrapToken = &BootstrapTokenDiscovery{APIServerEndpoint: "192.0.2.10:6443", Token: joinToken, CACertHashes: []string{joinHash}}
	SetJoinDefaults(c)
	if err := ValidateJoin(c); err != nil {
		t.Fatal(err)
	}
	c = NewJoinConfig("flags")
	SetJoinDefaults(c)
	if err := ValidateJoin(c); err == nil || !strings.HasPrefix(err.Error(), "flags: discovery: required") {
		t.Errorf("empty: %v", err)
	}
}

func TestResolveJoin(t *testing.T) {
	c, err := LoadJoin("join.yaml", []byte(worker+"controlPlane: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := ResolveJoin(c, StaticFacts{Host: "CP-2", IPs: []net.IP{net.ParseIP("192.0.2.12")}}); err != nil {
		t.Fatal(err)
	}
	if c.Join.NodeRegistration.Name != "cp-2" || c.Join.ControlPlane.LocalAPIEndpoint.AdvertiseAddress != "192.0.2.12" {
		t.Errorf("resolved %q %q", c.Join.NodeRegistration.Name, c.Join.ControlPlane.LocalAPIEndpoint.AdvertiseAddress)
	}
	w, _ := LoadJoin("join.yaml", []byte(worker))
	err = ResolveJoin(w, StaticFacts{Host: "bad_name"})
	if err == nil || !strings.Contains(err.Error(), `join.yaml: document 1 (JoinConfiguration): nodeRegistration.name: not set, and the hostname "bad_name"`) {
		t.Errorf("bad hostname: %v", err)
	}
	if w.Join.ControlPlane != nil {
		t.Errorf("a worker got a control plane")
	}
}

// TestInitUnchanged: init's loader still refuses a JoinConfiguration.
func TestInitRefusesJoin(t *testing.T) {
	_, err := Load("init.yaml", []byte(worker))
	if err == nil || !strings.Contains(err.Error(), "JoinConfiguration is not used by kubeboot init; remove this document") {
		t.Errorf("init: %v", err)
	}
}

// FuzzLoadJoin: arbitrary bytes may be rejected, never panic or return a
// configuration that fails validation.
func FuzzLoadJoin(f *testing.F) {
	f.Add([]byte(worker))
	f.Add([]byte(worker + "controlPlane: {}\n---\napiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nmaxPods: 3\n"))
	f.Add([]byte("apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery: {file: {kubeConfigPath: /d.conf}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := LoadJoin("fuzz.yaml", data)
		if err != nil {
			if !IsInvalid(err) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		SetJoinDefaults(c)
		if err := ValidateJoin(c); err != nil {
			t.Fatalf("LoadJoin returned a configuration that does not validate: %v", err)
		}
	})
}
