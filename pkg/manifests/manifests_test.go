package manifests

import (
	"bytes"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeboot/kubeboot/pkg/config"
)

// kubeadm 1.37's command lines for the default configuration with node1 at
// 10.0.0.5, from getAPIServerCommand, getControllerManagerCommand,
// getSchedulerCommand and getEtcdCommand: defaults sorted by name.
var defaultCommands = map[string][]string{
	APIServerName: {
		"kube-apiserver",
		"--advertise-address=10.0.0.5",
		"--allow-privileged=true",
		"--authorization-mode=Node,RBAC",
		"--client-ca-file=/etc/kubernetes/pki/ca.crt",
		"--enable-admission-plugins=NodeRestriction",
		"--enable-bootstrap-token-auth=true",
		"--etcd-cafile=/etc/kubernetes/pki/etcd/ca.crt",
		"--etcd-certfile=/etc/kubernetes/pki/apiserver-etcd-client.crt",
		"--etcd-keyfile=/etc/kubernetes/pki/apiserver-etcd-client.key",
		"--etcd-servers=https://127.0.0.1:2379",
		"--kubelet-client-certificate=/etc/kubernetes/pki/apiserver-kubelet-client.crt",
		"--kubelet-client-key=/etc/kubernetes/pki/apiserver-kubelet-client.key",
		"--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
		"--proxy-client-cert-file=/etc/kubernetes/pki/front-proxy-client.crt",
		"--proxy-client-key-file=/etc/kubernetes/pki/front-proxy-client.key",
		"--requestheader-allowed-names=front-proxy-client",
		"--requestheader-client-ca-file=/etc/kubernetes/pki/front-proxy-ca.crt",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-username-headers=X-Remote-User",
		"--secure-port=6443",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=/etc/kubernetes/pki/sa.pub",
		"--service-account-signing-key-file=/etc/kubernetes/pki/sa.key",
		"--service-cluster-ip-range=10.96.0.0/12",
		"--tls-cert-file=/etc/kubernetes/pki/apiserver.crt",
		"--tls-private-key-file=/etc/kubernetes/pki/apiserver.key",
	},
	ControllerManagerName: {
		"kube-controller-manager",
		"--authentication-kubeconfig=/etc/kubernetes/controller-manager.conf",
		"--authorization-kubeconfig=/etc/kubernetes/controller-manager.conf",
		"--bind-address=127.0.0.1",
		"--client-ca-file=/etc/kubernetes/pki/ca.crt",
		"--cluster-name=kubernetes",
		"--cluster-signing-cert-file=/etc/kubernetes/pki/ca.crt",
		"--cluster-signing-key-file=/etc/kubernetes/pki/ca.key",
		"--controllers=*,bootstrapsigner,tokencleaner",
		"--kubeconfig=/etc/kubernetes/controller-manager.conf",
		"--leader-elect=true",
		"--requestheader-client-ca-file=/etc/kubernetes/pki/front-proxy-ca.crt",
		"--root-ca-file=/etc/kubernetes/pki/ca.crt",
		"--service-account-private-key-file=/etc/kubernetes/pki/sa.key",
		"--use-service-account-credentials=true",
	},
	SchedulerName: {
		"kube-scheduler",
		"--authentication-kubeconfig=/etc/kubernetes/scheduler.conf",
		"--authorization-kubeconfig=/etc/kubernetes/scheduler.conf",
		"--bind-address=127.0.0.1",
		"--kubeconfig=/etc/kubernetes/scheduler.conf",
		"--leader-elect=true",
	},
	EtcdName: {
		"etcd",
		"--advertise-client-urls=https://10.0.0.5:2379",
		"--cert-file=/etc/kubernetes/pki/etcd/server.crt",
		"--client-cert-auth=true",
		"--data-dir=/var/lib/etcd",
		"--feature-gates=InitialCorruptCheck=true",
		"--initial-advertise-peer-urls=https://10.0.0.5:2380",
		"--initial-cluster=node1=https://10.0.0.5:2380",
		"--key-file=/etc/kubernetes/pki/etcd/server.key",
		"--listen-client-urls=https://127.0.0.1:2379,https://10.0.0.5:2379",
		"--listen-metrics-urls=http://127.0.0.1:2381",
		"--listen-peer-urls=https://10.0.0.5:2380",
		"--name=node1",
		"--peer-cert-file=/etc/kubernetes/pki/etcd/peer.crt",
		"--peer-client-cert-auth=true",
		"--peer-key-file=/etc/kubernetes/pki/etcd/peer.key",
		"--peer-trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt",
		"--snapshot-count=10000",
		"--trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt",
		"--watch-progress-notify-interval=5s",
	},
}

func TestDefaultCommands(t *testing.T) {
	got := pods(t, defaults(t, "10.0.0.5"), Options{})
	for name, want := range defaultCommands {
		t.Run(name, func(t *testing.T) {
			p, ok := got[name]
			if !ok {
				t.Fatalf("no %s manifest", name)
			}
			if d := diff(want, p.Spec.Containers[0].Command); d != "" {
				t.Errorf("command (kubeadm, got):\n%s", d)
			}
		})
	}
}

func TestFiles(t *testing.T) {
	cfg := defaults(t, "10.0.0.5")
	etcd, err := Etcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := ControlPlane(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range append(etcd, cp...) {
		paths = append(paths, f.Path)
		if f.Mode != 0o600 || f.Secret {
			t.Errorf("%s: mode %o secret %v, want 0600 and not secret", f.Path, f.Mode, f.Secret)
		}
	}
	want := []string{
		"/etc/kubernetes/manifests/etcd.yaml",
		"/etc/kubernetes/manifests/kube-apiserver.yaml",
		"/etc/kubernetes/manifests/kube-controller-manager.yaml",
		"/etc/kubernetes/manifests/kube-scheduler.yaml",
	}
	if d := diff(want, paths); d != "" {
		t.Errorf("paths:\n%s", d)
	}

	// Rendering is deterministic.
	etcd2, _ := Etcd(cfg)
	cp2, _ := ControlPlane(cfg, Options{})
	for i, f := range append(etcd2, cp2...) {
		if !bytes.Equal(f.Data, append(etcd, cp...)[i].Data) {
			t.Errorf("%s differs between two renders", f.Path)
		}
	}

	// staticPodPath moves the manifests.
	cfg.Kubelet.StaticPodPath = "/run/static"
	cp, _ = ControlPlane(cfg, Options{})
	if cp[0].Path != "/run/static/kube-apiserver.yaml" {
		t.Errorf("with staticPodPath /run/static: %s", cp[0].Path)
	}
}

// TestPodShape checks what every kubeadm static Pod has, per component.
func TestPodShape(t *testing.T) {
	got := pods(t, defaults(t, "10.0.0.5"), Options{})
	type probes struct{ liveness, readiness, startup string }
	tests := []struct {
		name        string
		image       string
		requests    corev1.ResourceList
		port        int32
		host        string
		scheme      corev1.URIScheme
		probes      probes
		annotations map[string]string
		volumes     []string
		mounts      []string
	}{
		{
			name:        APIServerName,
			image:       "registry.k8s.io/kube-apiserver:v1.37.2",
			requests:    corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")},
			port:        6443,
			host:        "10.0.0.5",
			scheme:      corev1.URISchemeHTTPS,
			probes:      probes{"/livez", "/readyz", "/livez"},
			annotations: map[string]string{APIServerEndpointAnnotation: "10.0.0.5:6443"},
			volumes:     []string{"ca-certs", "etc-ca-certificates", "k8s-certs", "usr-local-share-ca-certificates", "usr-share-ca-certificates"},
			mounts:      []string{"ca-certs", "etc-ca-certificates", "k8s-certs", "usr-local-share-ca-certificates", "usr-share-ca-certificates"},
		},
		{
			name:     ControllerManagerName,
			image:    "registry.k8s.io/kube-controller-manager:v1.37.2",
			requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("200m")},
			port:     10257,
			host:     "127.0.0.1",
			scheme:   corev1.URISchemeHTTPS,
			probes:   probes{"/healthz", "", "/healthz"},
			volumes:  []string{"ca-certs", "etc-ca-certificates", "k8s-certs", "kubeconfig", "usr-local-share-ca-certificates", "usr-share-ca-certificates"},
			mounts:   []string{"ca-certs", "etc-ca-certificates", "k8s-certs", "kubeconfig", "usr-local-share-ca-certificates", "usr-share-ca-certificates"},
		},
		{
			name:     SchedulerName,
			image:    "registry.k8s.io/kube-scheduler:v1.37.2",
			requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")},
			port:     10259,
			host:     "127.0.0.1",
			scheme:   corev1.URISchemeHTTPS,
			probes:   probes{"/livez", "/readyz", "/livez"},
			volumes:  []string{"kubeconfig"},
			mounts:   []string{"kubeconfig"},
		},
		{
			name:        EtcdName,
			image:       "registry.k8s.io/etcd:3.7.0-0",
			requests:    corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("100Mi")},
			port:        2381,
			host:        "127.0.0.1",
			scheme:      corev1.URISchemeHTTP,
			probes:      probes{"/livez", "/readyz", "/readyz"},
			annotations: map[string]string{EtcdClientURLsAnnotation: "https://10.0.0.5:2379"},
			volumes:     []string{"etcd-certs", "etcd-data"},
			mounts:      []string{"etcd-data", "etcd-certs"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := got[tt.name]
			if p.APIVersion != "v1" || p.Kind != "Pod" || p.Namespace != "kube-system" {
				t.Errorf("type/namespace: %s %s %s", p.APIVersion, p.Kind, p.Namespace)
			}
			if d := diff(map[string]string{"component": tt.name, "tier": "control-plane"}, p.Labels); d != "" {
				t.Errorf("labels:\n%s", d)
			}
			if d := diff(tt.annotations, p.Annotations); d != "" {
				t.Errorf("annotations:\n%s", d)
			}
			s := p.Spec
			if !s.HostNetwork || s.PriorityClassName != "system-node-critical" || s.Priority == nil || *s.Priority != 2000001000 {
				t.Errorf("hostNetwork %v priorityClassName %q priority %v", s.HostNetwork, s.PriorityClassName, s.Priority)
			}
			if s.SecurityContext == nil || s.SecurityContext.SeccompProfile == nil || s.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("securityContext: %+v", s.SecurityContext)
			}
			if len(s.Containers) != 1 {
				t.Fatalf("%d containers", len(s.Containers))
			}
			c := s.Containers[0]
			if c.Name != tt.name || c.Image != tt.image || c.ImagePullPolicy != corev1.PullIfNotPresent {
				t.Errorf("container %q image %q pull %q", c.Name, c.Image, c.ImagePullPolicy)
			}
			if !sameRequests(tt.requests, c.Resources.Requests) || c.Resources.Limits != nil {
				t.Errorf("resources: %v", c.Resources)
			}
			wantPorts := []corev1.ContainerPort{{Name: "probe-port", ContainerPort: tt.port, Protocol: corev1.ProtocolTCP}}
			if d := diff(wantPorts, c.Ports); d != "" {
				t.Errorf("ports:\n%s", d)
			}
			check := func(kind string, pr *corev1.Probe, path string, delay, failures, period int32) {
				t.Helper()
				if path == "" {
					if pr != nil {
						t.Errorf("%s probe: want none, got %+v", kind, pr)
					}
					return
				}
				if pr == nil || pr.HTTPGet == nil {
					t.Fatalf("%s probe missing", kind)
				}
				g := pr.HTTPGet
				if g.Host != tt.host || g.Path != path || g.Port.String() != "probe-port" || g.Scheme != tt.scheme {
					t.Errorf("%s probe: %s %s://%s%s port %s", kind, tt.name, g.Scheme, g.Host, g.Path, g.Port.String())
				}
				if pr.InitialDelaySeconds != delay || pr.TimeoutSeconds != 15 || pr.FailureThreshold != failures || pr.PeriodSeconds != period {
					t.Errorf("%s probe timings: delay %d timeout %d failures %d period %d", kind, pr.InitialDelaySeconds, pr.TimeoutSeconds, pr.FailureThreshold, pr.PeriodSeconds)
				}
			}
			check("liveness", c.LivenessProbe, tt.probes.liveness, 10, 8, 10)
			check("readiness", c.ReadinessProbe, tt.probes.readiness, 0, 3, 1)
			check("startup", c.StartupProbe, tt.probes.startup, 10, 24, 10) // 4m / 10s
			var vols, mounts []string
			for _, v := range s.Volumes {
				vols = append(vols, v.Name)
				if v.HostPath == nil || v.HostPath.Type == nil {
					t.Errorf("volume %s: not a typed hostPath", v.Name)
				}
			}
			for _, m := range c.VolumeMounts {
				mounts = append(mounts, m.Name)
			}
			if d := diff(tt.volumes, vols); d != "" {
				t.Errorf("volumes:\n%s", d)
			}
			if d := diff(tt.mounts, mounts); d != "" {
				t.Errorf("mounts:\n%s", d)
			}
		})
	}
}

func TestVolumeDetails(t *testing.T) {
	got := pods(t, defaults(t, "10.0.0.5"), Options{})
	dir, file := corev1.HostPathDirectoryOrCreate, corev1.HostPathFileOrCreate
	tests := []struct {
		pod, name, hostPath, mountPath string
		readOnly                       bool
		pathType                       corev1.HostPathType
	}{
		{APIServerName, "k8s-certs", "/etc/kubernetes/pki", "/etc/kubernetes/pki", true, dir},
		{APIServerName, "ca-certs", "/etc/ssl/certs", "/etc/ssl/certs", true, dir},
		{APIServerName, "usr-share-ca-certificates", "/usr/share/ca-certificates", "/usr/share/ca-certificates", true, dir},
		{ControllerManagerName, "kubeconfig", "/etc/kubernetes/controller-manager.conf", "/etc/kubernetes/controller-manager.conf", true, file},
		{ControllerManagerName, "etc-ca-certificates", "/etc/ca-certificates", "/etc/ca-certificates", true, dir},
		{SchedulerName, "kubeconfig", "/etc/kubernetes/scheduler.conf", "/etc/kubernetes/scheduler.conf", true, file},
		{EtcdName, "etcd-data", "/var/lib/etcd", "/var/lib/etcd", false, dir},
		{EtcdName, "etcd-certs", "/etc/kubernetes/pki/etcd", "/etc/kubernetes/pki/etcd", false, dir},
	}
	for _, tt := range tests {
		p := got[tt.pod]
		v, ok := volumeByName(p, tt.name)
		m, ok2 := mountByName(p, tt.name)
		if !ok || !ok2 {
			t.Errorf("%s: no volume or mount %s", tt.pod, tt.name)
			continue
		}
		if v.HostPath.Path != tt.hostPath || *v.HostPath.Type != tt.pathType || m.MountPath != tt.mountPath || m.ReadOnly != tt.readOnly {
			t.Errorf("%s/%s: hostPath %s (%s) -> %s ro=%v", tt.pod, tt.name, v.HostPath.Path, *v.HostPath.Type, m.MountPath, m.ReadOnly)
		}
	}
}

func TestExtraArgs(t *testing.T) {
	cfg := defaults(t, "10.0.0.5")
	cc := &cfg.Cluster
	cc.APIServer.ExtraArgs = []config.Arg{
		{Name: "secure-port", Value: "7443"}, // overrides a default
		{Name: "profiling", Value: "false"},  // new
		{Name: "feature-gates", Value: "A=true"},
		{Name: "feature-gates", Value: "B=false"}, // repeated: both kept, in order
	}
	cc.ControllerManager.ExtraArgs = []config.Arg{{Name: "bind-address", Value: "0.0.0.0"}, {Name: "v", Value: "2"}}
	cc.Scheduler.ExtraArgs = []config.Arg{{Name: "bind-address", Value: "10.0.0.5"}}
	cc.Etcd.Local.ExtraArgs = []config.Arg{
		{Name: "snapshot-count", Value: "5000"},
		{Name: "advertise-client-urls", Value: "https://etcd.example:2379"},
		{Name: "listen-metrics-urls", Value: "https://0.0.0.0:12381,http://127.0.0.1:2381"},
	}
	got := pods(t, cfg, Options{})

	api := got[APIServerName].Spec.Containers[0].Command
	wantTail := []string{"--secure-port=7443", "--profiling=false", "--feature-gates=A=true", "--feature-gates=B=false"}
	if d := diff(wantTail, api[len(api)-4:]); d != "" {
		t.Errorf("apiserver extraArgs come last, in order:\n%s", d)
	}
	if n := len(flagsNamed(got[APIServerName], "secure-port")); n != 1 {
		t.Errorf("--secure-port appears %d times", n)
	}
	if v := flagsNamed(got[APIServerName], "etcd-servers"); !slices.Equal(v, []string{"https://etcd.example:2379"}) {
		t.Errorf("etcd's advertise-client-urls should replace --etcd-servers: %v", v)
	}
	// kubeadm keeps probing the advertised port, whatever secure-port says.
	if p := got[APIServerName].Spec.Containers[0].Ports[0].ContainerPort; p != 6443 {
		t.Errorf("apiserver probe port %d", p)
	}

	kcm := got[ControllerManagerName]
	if v := flagsNamed(kcm, "bind-address"); !slices.Equal(v, []string{"0.0.0.0"}) {
		t.Errorf("kcm bind-address: %v", v)
	}
	if h := kcm.Spec.Containers[0].LivenessProbe.HTTPGet.Host; h != "" {
		t.Errorf("kcm bound to 0.0.0.0 must be probed on the Pod IP (empty host), got %q", h)
	}
	if h := got[SchedulerName].Spec.Containers[0].ReadinessProbe.HTTPGet.Host; h != "10.0.0.5" {
		t.Errorf("scheduler probe host %q", h)
	}

	etcd := got[EtcdName]
	if v := flagsNamed(etcd, "snapshot-count"); !slices.Equal(v, []string{"5000"}) {
		t.Errorf("etcd snapshot-count: %v", v)
	}
	g := etcd.Spec.Containers[0].LivenessProbe.HTTPGet
	if g.Host != "0.0.0.0" || g.Scheme != corev1.URISchemeHTTPS || etcd.Spec.Containers[0].Ports[0].ContainerPort != 12381 {
		t.Errorf("etcd probe should follow the first listen-metrics-urls: %s://%s port %d", g.Scheme, g.Host, etcd.Spec.Containers[0].Ports[0].ContainerPort)
	}
}

func TestAuthorization(t *testing.T) {
	tests := []struct {
		name  string
		extra []config.Arg
		want  []string
	}{
		{"default", nil, []string{"Node,RBAC"}},
		{"mode replaced", []config.Arg{{Name: "authorization-mode", Value: "Node,RBAC,Webhook"}}, []string{"Node,RBAC,Webhook"}},
		{"structured config", []config.Arg{{Name: "authorization-config", Value: "/etc/kubernetes/authz.yaml"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaults(t, "10.0.0.5")
			cfg.Cluster.APIServer.ExtraArgs = tt.extra
			got := pods(t, cfg, Options{})[APIServerName]
			if d := diff(tt.want, flagsNamed(got, "authorization-mode")); d != "" {
				t.Errorf("--authorization-mode:\n%s", d)
			}
		})
	}
}

func TestExtraVolumesAndEnvs(t *testing.T) {
	cfg := defaults(t, "10.0.0.5")
	cc := &cfg.Cluster
	cc.APIServer.ExtraVolumes = []config.HostPathMount{
		{Name: "oidc", HostPath: "/etc/oidc", MountPath: "/oidc", ReadOnly: true, PathType: corev1.HostPathDirectory},
		{Name: "ca-certs", HostPath: "/etc/my-certs", MountPath: "/etc/ssl/certs", ReadOnly: true}, // replaces kubeadm's
	}
	cc.ControllerManager.ExtraVolumes = []config.HostPathMount{{Name: "plugins", HostPath: "/opt/plugins", MountPath: "/plugins"}}
	cc.Scheduler.ExtraVolumes = []config.HostPathMount{{Name: "sched-config", HostPath: "/etc/sched.yaml", MountPath: "/etc/sched.yaml", PathType: corev1.HostPathFile}}
	cc.APIServer.ExtraEnvs = []config.EnvVar{{EnvVar: corev1.EnvVar{Name: "HTTPS_PROXY", Value: "http://override:3128"}}, {EnvVar: corev1.EnvVar{Name: "GOMAXPROCS", Value: "2"}}}
	cc.Scheduler.ExtraEnvs = []config.EnvVar{{EnvVar: corev1.EnvVar{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}}}}
	cc.Etcd.Local.ExtraEnvs = []config.EnvVar{{EnvVar: corev1.EnvVar{Name: "ETCD_UNSUPPORTED_ARCH", Value: "arm"}}}
	opts := Options{ProxyEnv: []config.EnvVar{
		{EnvVar: corev1.EnvVar{Name: "no_proxy", Value: "10.0.0.0/8"}},
		{EnvVar: corev1.EnvVar{Name: "HTTPS_PROXY", Value: "http://proxy:3128"}},
	}}
	got := pods(t, cfg, opts)

	api := got[APIServerName]
	v, _ := volumeByName(api, "oidc")
	m, _ := mountByName(api, "oidc")
	if v.HostPath == nil || v.HostPath.Path != "/etc/oidc" || *v.HostPath.Type != corev1.HostPathDirectory || m.MountPath != "/oidc" || !m.ReadOnly {
		t.Errorf("oidc extra volume: %+v %+v", v, m)
	}
	v, _ = volumeByName(api, "ca-certs")
	if v.HostPath.Path != "/etc/my-certs" || *v.HostPath.Type != "" {
		t.Errorf("extra volume ca-certs should replace kubeadm's: %+v", v.HostPath)
	}
	wantEnv := []corev1.EnvVar{{Name: "GOMAXPROCS", Value: "2"}, {Name: "HTTPS_PROXY", Value: "http://override:3128"}, {Name: "no_proxy", Value: "10.0.0.0/8"}}
	if d := diff(wantEnv, api.Spec.Containers[0].Env); d != "" {
		t.Errorf("apiserver env, sorted, extraEnvs winning:\n%s", d)
	}
	if _, ok := volumeByName(got[ControllerManagerName], "plugins"); !ok {
		t.Error("kcm extra volume missing")
	}
	if _, ok := mountByName(got[SchedulerName], "sched-config"); !ok {
		t.Error("scheduler extra volume missing")
	}
	schedEnv := got[SchedulerName].Spec.Containers[0].Env
	if len(schedEnv) != 3 || schedEnv[1].Name != "POD_IP" || schedEnv[1].ValueFrom == nil { // sorted: HTTPS_PROXY, POD_IP, no_proxy
		t.Errorf("scheduler env: %+v", schedEnv)
	}
	if d := diff([]corev1.EnvVar{{Name: "ETCD_UNSUPPORTED_ARCH", Value: "arm"}}, got[EtcdName].Spec.Containers[0].Env); d != "" {
		t.Errorf("etcd env (no proxy variables):\n%s", d)
	}
}

func TestExternalEtcd(t *testing.T) {
	cfg := load(t, "10.0.0.5", `apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
etcd:
  external:
    endpoints: ["https://10.0.0.10:2379", "https://10.0.0.11:2379"]
    caFile: /etc/etcd/pki/ca.crt
    certFile: /etc/etcd/pki/client/apiserver.crt
    keyFile: /etc/kubernetes/pki/apiserver-etcd-client.key
`)
	files, err := Etcd(cfg)
	if err != nil || len(files) != 0 {
		t.Fatalf("external etcd: Etcd = %d files, %v; want none", len(files), err)
	}
	got := pods(t, cfg, Options{})
	if _, ok := got[EtcdName]; ok {
		t.Fatal("etcd manifest rendered for external etcd")
	}
	api := got[APIServerName]
	for flag, want := range map[string]string{
		"etcd-servers":  "https://10.0.0.10:2379,https://10.0.0.11:2379",
		"etcd-cafile":   "/etc/etcd/pki/ca.crt",
		"etcd-certfile": "/etc/etcd/pki/client/apiserver.crt",
		"etcd-keyfile":  "/etc/kubernetes/pki/apiserver-etcd-client.key",
	} {
		if v := flagsNamed(api, flag); !slices.Equal(v, []string{want}) {
			t.Errorf("--%s = %v, want %s", flag, v, want)
		}
	}
	// /etc/etcd/pki covers /etc/etcd/pki/client; the key is in k8s-certs.
	v, ok := volumeByName(api, "etcd-certs-0")
	m, _ := mountByName(api, "etcd-certs-0")
	if !ok || v.HostPath.Path != "/etc/etcd/pki" || m.MountPath != "/etc/etcd/pki" || !m.ReadOnly {
		t.Errorf("etcd-certs-0: %+v %+v", v, m)
	}
	if _, ok := volumeByName(api, "etcd-certs-1"); ok {
		t.Error("nested or covered directories must not get their own volume")
	}
}

func TestExternalEtcdCertDirs(t *testing.T) {
	covered := []string{"/etc/kubernetes/pki", "/etc/ssl/certs"}
	tests := []struct {
		name          string
		ca, cert, key string
		want          []string
	}{
		{"all covered", "/etc/kubernetes/pki/etcd/ca.crt", "/etc/ssl/certs/c.crt", "/etc/kubernetes/pki/k.key", nil},
		{"prefix is not a parent", "/etc/kubernetes/pki-etcd/ca.crt", "", "", []string{"/etc/kubernetes/pki-etcd"}},
		{"siblings sorted", "/srv/b/ca.crt", "/srv/a/c.crt", "/srv/a-b/k.key", []string{"/srv/a", "/srv/a-b", "/srv/b"}},
		{"parent wins", "/srv/a/b/ca.crt", "/srv/a-b/c.crt", "/srv/a/k.key", []string{"/srv/a", "/srv/a-b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := externalEtcdCertDirs(&config.ExternalEtcd{CAFile: tt.ca, CertFile: tt.cert, KeyFile: tt.key}, covered)
			if d := diff(tt.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestDualStack(t *testing.T) {
	cfg := load(t, "10.0.0.5", `apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
networking:
  serviceSubnet: 10.96.0.0/12,fd00:10:96::/112
  podSubnet: 10.244.0.0/16,fd00:10:244::/56
`)
	got := pods(t, cfg, Options{})
	if v := flagsNamed(got[APIServerName], "service-cluster-ip-range"); !slices.Equal(v, []string{"10.96.0.0/12,fd00:10:96::/112"}) {
		t.Errorf("apiserver --service-cluster-ip-range: %v", v)
	}
	kcm := got[ControllerManagerName]
	for flag, want := range map[string]string{
		"allocate-node-cidrs":      "true",
		"cluster-cidr":             "10.244.0.0/16,fd00:10:244::/56",
		"service-cluster-ip-range": "10.96.0.0/12,fd00:10:96::/112",
	} {
		if v := flagsNamed(kcm, flag); !slices.Equal(v, []string{want}) {
			t.Errorf("kcm --%s = %v, want %s", flag, v, want)
		}
	}
	// Without a pod subnet, kubeadm sets none of the three.
	plain := pods(t, defaults(t, "10.0.0.5"), Options{})[ControllerManagerName]
	for _, flag := range []string{"allocate-node-cidrs", "cluster-cidr", "service-cluster-ip-range"} {
		if v := flagsNamed(plain, flag); v != nil {
			t.Errorf("kcm without podSubnet has --%s=%v", flag, v)
		}
	}
}

func TestIPv6(t *testing.T) {
	cfg := load(t, "fd00::5", `apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
networking:
  serviceSubnet: fd00:10:96::/112
`)
	got := pods(t, cfg, Options{})
	api := got[APIServerName]
	if a := api.Annotations[APIServerEndpointAnnotation]; a != "[fd00::5]:6443" {
		t.Errorf("apiserver endpoint annotation %q", a)
	}
	for _, pr := range []*corev1.Probe{api.Spec.Containers[0].LivenessProbe, api.Spec.Containers[0].ReadinessProbe, api.Spec.Containers[0].StartupProbe} {
		// The kubelet brackets the host itself.
		if pr.HTTPGet.Host != "fd00::5" {
			t.Errorf("apiserver probe host %q", pr.HTTPGet.Host)
		}
	}
	for flag, want := range map[string]string{
		"advertise-address": "fd00::5",
		"etcd-servers":      "https://[::1]:2379",
	} {
		if v := flagsNamed(api, flag); !slices.Equal(v, []string{want}) {
			t.Errorf("apiserver --%s = %v, want %s", flag, v, want)
		}
	}
	etcd := got[EtcdName]
	if a := etcd.Annotations[EtcdClientURLsAnnotation]; a != "https://[fd00::5]:2379" {
		t.Errorf("etcd annotation %q", a)
	}
	for flag, want := range map[string]string{
		"advertise-client-urls":       "https://[fd00::5]:2379",
		"listen-client-urls":          "https://[::1]:2379,https://[fd00::5]:2379",
		"listen-peer-urls":            "https://[fd00::5]:2380",
		"initial-advertise-peer-urls": "https://[fd00::5]:2380",
		"initial-cluster":             "node1=https://[fd00::5]:2380",
		"listen-metrics-urls":         "http://[::1]:2381",
	} {
		if v := flagsNamed(etcd, flag); !slices.Equal(v, []string{want}) {
			t.Errorf("etcd --%s = %v, want %s", flag, v, want)
		}
	}
	if h := etcd.Spec.Containers[0].LivenessProbe.HTTPGet.Host; h != "::1" {
		t.Errorf("etcd probe host %q", h)
	}
	// kcm and scheduler stay on IPv4 loopback, as in kubeadm.
	if h := got[SchedulerName].Spec.Containers[0].LivenessProbe.HTTPGet.Host; h != "127.0.0.1" {
		t.Errorf("scheduler probe host %q", h)
	}
}

func TestImages(t *testing.T) {
	cfg := defaults(t, "10.0.0.5")
	cfg.Cluster.ImageRepository = "registry.example:5000/k8s"
	cfg.Cluster.KubernetesVersion = "v1.37.2+fleet.1"
	got := pods(t, cfg, Options{})
	if img := got[APIServerName].Spec.Containers[0].Image; img != "registry.example:5000/k8s/kube-apiserver:v1.37.2_fleet.1" {
		t.Errorf("apiserver image %s", img)
	}
	if img := got[EtcdName].Spec.Containers[0].Image; img != "registry.example:5000/k8s/etcd:3.7.0-0" {
		t.Errorf("etcd image %s", img)
	}
	cfg.Cluster.Etcd.Local.ImageRepository = "quay.io/coreos"
	cfg.Cluster.Etcd.Local.ImageTag = "v3.7.1"
	if img := pods(t, cfg, Options{})[EtcdName].Spec.Containers[0].Image; img != "quay.io/coreos/etcd:v3.7.1" {
		t.Errorf("etcd image with overrides %s", img)
	}
}

func TestAdditions(t *testing.T) {
	add := APIServerAdditions{
		Args: []config.Arg{{Name: "audit-log-path", Value: "/var/log/audit.log"}, {Name: "encryption-provider-config", Value: "/etc/enc/config.yaml"}},
		Volumes: []config.HostPathMount{
			{Name: "enc", HostPath: "/etc/enc", MountPath: "/etc/enc", ReadOnly: true, PathType: corev1.HostPathDirectory},
		},
	}
	cfg := defaults(t, "10.0.0.5")
	api := pods(t, cfg, Options{APIServer: []APIServerAdditions{add}})[APIServerName]
	cmd := api.Spec.Containers[0].Command
	// Sorted among kubeadm's defaults.
	if !slices.IsSorted(cmd[1:]) {
		t.Errorf("additions are not sorted among the defaults:\n%s", strings.Join(cmd, "\n"))
	}
	if !hasFlag(api, "--encryption-provider-config=/etc/enc/config.yaml") || !hasFlag(api, "--audit-log-path=/var/log/audit.log") {
		t.Errorf("additions missing:\n%s", strings.Join(cmd, "\n"))
	}
	if m, ok := mountByName(api, "enc"); !ok || !m.ReadOnly {
		t.Errorf("addition volume: %+v", m)
	}

	// The user's extraArgs and extraVolumes still win.
	cfg.Cluster.APIServer.ExtraArgs = []config.Arg{{Name: "audit-log-path", Value: "-"}}
	cfg.Cluster.APIServer.ExtraVolumes = []config.HostPathMount{{Name: "enc", HostPath: "/srv/enc", MountPath: "/etc/enc", ReadOnly: true}}
	api = pods(t, cfg, Options{APIServer: []APIServerAdditions{add}})[APIServerName]
	if v := flagsNamed(api, "audit-log-path"); !slices.Equal(v, []string{"-"}) {
		t.Errorf("extraArgs should replace an addition: %v", v)
	}
	if v, _ := volumeByName(api, "enc"); v.HostPath.Path != "/srv/enc" {
		t.Errorf("extraVolumes should replace an addition: %s", v.HostPath.Path)
	}

	// Two features may not claim the same flag or volume, nor kubeadm's.
	for name, adds := range map[string][]APIServerAdditions{
		"flag twice":       {add, {Args: []config.Arg{{Name: "audit-log-path", Value: "x"}}}},
		"kubeadm's flag":   {{Args: []config.Arg{{Name: "secure-port", Value: "1"}}}},
		"volume twice":     {add, {Volumes: []config.HostPathMount{{Name: "enc", HostPath: "/x", MountPath: "/x"}}}},
		"kubeadm's volume": {{Volumes: []config.HostPathMount{{Name: "k8s-certs", HostPath: "/x", MountPath: "/x"}}}},
	} {
		if _, err := ControlPlane(defaults(t, "10.0.0.5"), Options{APIServer: adds}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestExternalCA(t *testing.T) {
	kcm := pods(t, defaults(t, "10.0.0.5"), Options{ExternalCA: true})[ControllerManagerName]
	for _, flag := range []string{"cluster-signing-cert-file", "cluster-signing-key-file"} {
		if v := flagsNamed(kcm, flag); !slices.Equal(v, []string{""}) {
			t.Errorf("--%s = %v, want empty", flag, v)
		}
	}
}

func TestStartupProbeTimeout(t *testing.T) {
	cfg := defaults(t, "10.0.0.5")
	cfg.Init.Timeouts.ControlPlaneComponentHealthCheck = &metav1.Duration{Duration: 5*time.Minute + time.Second}
	for name, p := range pods(t, cfg, Options{}) {
		if f := p.Spec.Containers[0].StartupProbe.FailureThreshold; f != 31 {
			t.Errorf("%s: startup failureThreshold %d, want ceil(301s/10s) = 31", name, f)
		}
	}
}

func TestCACertDirs(t *testing.T) {
	tests := []struct {
		name string
		dirs []string
		want []string
	}{
		{"nil is the Debian set", nil, []string{"ca-certs", "etc-ca-certificates", "k8s-certs", "usr-local-share-ca-certificates", "usr-share-ca-certificates"}},
		{"empty is none", []string{}, []string{"ca-certs", "k8s-certs"}},
		{"RHEL", []string{"/etc/pki/ca-trust", "/etc/pki/tls/certs"}, []string{"ca-certs", "etc-pki-ca-trust", "etc-pki-tls-certs", "k8s-certs"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := pods(t, defaults(t, "10.0.0.5"), Options{CACertDirs: tt.dirs})
			for _, pod := range []string{APIServerName, ControllerManagerName} {
				var names []string
				for _, v := range got[pod].Spec.Volumes {
					if v.Name != "kubeconfig" {
						names = append(names, v.Name)
					}
				}
				if d := diff(tt.want, names); d != "" {
					t.Errorf("%s volumes:\n%s", pod, d)
				}
			}
		})
	}

	fsys := fstest.MapFS{
		"etc/pki/ca-trust/source/anchors": &fstest.MapFile{Mode: fs.ModeDir | 0o755},
		"usr/share/ca-certificates/x.crt": &fstest.MapFile{},
		"usr/local/share/other/unrelated": &fstest.MapFile{},
	}
	got, err := DetectCACertDirs(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if d := diff([]string{"/etc/pki/ca-trust", "/usr/share/ca-certificates"}, got); d != "" {
		t.Errorf("DetectCACertDirs:\n%s", d)
	}
}

func TestUnresolved(t *testing.T) {
	tests := []struct {
		name         string
		mutate       func(*config.Config)
		controlPlane bool // whether ControlPlane fails too
	}{
		{"no advertise address", func(c *config.Config) { c.Init.LocalAPIEndpoint.AdvertiseAddress = "" }, true},
		{"advertise address not an IP", func(c *config.Config) { c.Init.LocalAPIEndpoint.AdvertiseAddress = "node1" }, true},
		{"no node name", func(c *config.Config) { c.Init.NodeRegistration.Name = "" }, false},
	}
	for _, tt := range tests {
		cfg := defaults(t, "10.0.0.5")
		tt.mutate(cfg)
		if _, err := ControlPlane(cfg, Options{}); (err != nil) != tt.controlPlane {
			t.Errorf("%s: ControlPlane: %v", tt.name, err)
		}
		if _, err := Etcd(cfg); err == nil {
			t.Errorf("%s: Etcd: no error", tt.name)
		}
	}
	if _, err := ControlPlane(nil, Options{}); err == nil {
		t.Error("nil config: no error")
	}
}

func TestCommandMerge(t *testing.T) {
	base := []config.Arg{{Name: "b", Value: "2"}, {Name: "a", Value: "z"}, {Name: "a", Value: "y"}, {Name: "c", Value: "3"}}
	got := command("x", base, []config.Arg{{Name: "c", Value: "9"}, {Name: "d", Value: "4"}, {Name: "c", Value: "8"}})
	want := []string{"x", "--a=y", "--a=z", "--b=2", "--c=9", "--d=4", "--c=8"}
	if d := diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if !slices.Equal(base, []config.Arg{{Name: "b", Value: "2"}, {Name: "a", Value: "z"}, {Name: "a", Value: "y"}, {Name: "c", Value: "3"}}) {
		t.Error("command sorted its input")
	}
}
