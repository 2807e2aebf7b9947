package preflight

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/kubeboot/kubeboot/pkg/config"
	"github.com/kubeboot/kubeboot/pkg/host"
)

// HostEnv on this very machine: every check gives a result with a detail,
// nothing crashes, and the table goes to the test log. These machines run
// without systemd as PID 1: the systemd checks must say so.
func TestHostEnvOnThisMachine(t *testing.T) {
	cfg := config.Defaults()
	if err := config.Resolve(cfg, host.Facts{}); err != nil {
		t.Logf("host facts: %v; using a fixed node name and address", err)
		cfg = config.Defaults()
		if err := config.Resolve(cfg, config.StaticFacts{Host: "node1", IPs: []net.IP{net.ParseIP("10.0.0.10")}}); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	rep, err := Run(context.Background(), cfg, HostEnv("/"), nil)
	var b bytes.Buffer
	if werr := rep.WriteTable(&b); werr != nil {
		t.Fatal(werr)
	}
	t.Logf("kubeboot preflight on this machine (%v):\n%s", time.Since(start).Round(time.Millisecond), b.String())
	if err != nil {
		var pe *Error
		if !errors.As(err, &pe) {
			t.Fatalf("not a preflight error: %v", err)
		}
		t.Logf("%v", err)
	}
	if len(rep.Results) != len(Checks(cfg)) {
		t.Fatalf("%d results for %d checks", len(rep.Results), len(Checks(cfg)))
	}
	for _, r := range rep.Results {
		if r.Name == "" || r.Detail == "" || r.Status == "" {
			t.Errorf("incomplete result %+v", r)
		}
	}
	if st, err := os.Stat("/run/systemd/system"); err != nil || !st.IsDir() {
		for _, name := range []string{"Service-Kubelet", "Firewalld"} {
			if r := find(rep, name); r.Status != StatusWarning || !strings.Contains(r.Detail, "systemd is not PID 1") {
				t.Errorf("%s without systemd: %s %q", name, r.Status, r.Detail)
			}
		}
	}
}

func TestLookPathUnderRoot(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{"/usr/sbin/losetup": "#!/bin/sh\n", "/usr/bin/notexec": "", "/usr/bin/dir/": ""})
	os.Chmod(filepath.Join(root, "/usr/sbin/losetup"), 0o755)
	t.Setenv("PATH", "relative:/usr/local/bin:/usr/bin:/usr/sbin")
	if p, err := lookPath(root, "losetup"); err != nil || p != "/usr/sbin/losetup" {
		t.Errorf("losetup: %q %v", p, err)
	}
	for _, f := range []string{"notexec", "dir", "missing"} {
		if p, err := lookPath(root, f); err == nil {
			t.Errorf("%s found at %s", f, p)
		}
	}
	t.Setenv("PATH", "")
	if p, err := lookPath(root, "losetup"); err != nil || p != "/usr/sbin/losetup" {
		t.Errorf("systemd's default PATH: %q %v", p, err)
	}
}

// The kubelet found under the root is the one run for its version.
func TestHostKubeletVersion(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{"/usr/bin/kubelet": "#!/bin/sh\necho Kubernetes v1.37.2\n"})
	os.Chmod(filepath.Join(root, "/usr/bin/kubelet"), 0o755)
	t.Setenv("PATH", "/usr/bin")
	out, err := HostEnv(root).KubeletVersion(context.Background())
	if err != nil || strings.TrimSpace(out) != "Kubernetes v1.37.2" {
		t.Errorf("%q %v", out, err)
	}
	if _, err := HostEnv(t.TempDir()).KubeletVersion(context.Background()); err == nil {
		t.Error("no kubelet, no error")
	}
}

func TestSystemdUnitWithoutSystemd(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{"/proc/1/comm": "process_api\n"})
	_, err := HostEnv(root).Unit(context.Background(), "kubelet")
	var nosd *NoSystemdError
	if !errors.As(err, &nosd) || err.Error() != `systemd is not PID 1 (PID 1 is "process_api")` {
		t.Errorf("%v", err)
	}
}

func TestParseSystemctlShow(t *testing.T) {
	tests := []struct {
		out  string
		want UnitState
	}{
		{"LoadState=loaded\nActiveState=active\nUnitFileState=enabled\n", UnitState{Exists: true, Enabled: "enabled", Active: "active"}},
		{"LoadState=not-found\nActiveState=inactive\nUnitFileState=\n", UnitState{Active: "inactive"}},
		{"LoadState=masked\nActiveState=inactive\nUnitFileState=masked\n", UnitState{Exists: true, Enabled: "masked", Active: "inactive"}},
	}
	for _, tt := range tests {
		if got := parseSystemctlShow([]byte(tt.out)); got != tt.want {
			t.Errorf("%q: %+v, want %+v", tt.out, got, tt.want)
		}
	}
}

// pki is a CA with a server certificate for 127.0.0.1 and a client
// certificate, all ECDSA.
type pki struct {
	caPEM, certPEM, keyPEM string
	server                 tls.Certificate
	pool                   *x509.CertPool
}

func newPKI(t *testing.T) pki {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "etcd-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, usage x509.ExtKeyUsage, ips []net.IP) ([]byte, *ecdsa.PrivateKey) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: fmt.Sprint("cert", serial)},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	pemOf := func(typ string, b []byte) string { return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b})) }
	keyPEM := func(k *ecdsa.PrivateKey) string {
		b, _ := x509.MarshalECPrivateKey(k)
		return pemOf("EC PRIVATE KEY", b)
	}
	srvDER, srvKey := issue(2, x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")})
	cliDER, cliKey := issue(3, x509.ExtKeyUsageClientAuth, nil)
	server, err := tls.X509KeyPair([]byte(pemOf("CERTIFICATE", srvDER)), []byte(keyPEM(srvKey)))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pki{caPEM: pemOf("CERTIFICATE", caDER), certPEM: pemOf("CERTIFICATE", cliDER), keyPEM: keyPEM(cliKey), server: server, pool: pool}
}

func testCerts(t *testing.T) (ca, cert, key string) {
	p := newPKI(t)
	return p.caPEM, p.certPEM, p.keyPEM
}

// The real etcd version request, over mutual TLS, through the check:
// one 503 is retried.
func TestEtcdVersionOverTLS(t *testing.T) {
	p := newPKI(t)
	calls := 0
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		if calls == 1 {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		if r.URL.Path != "/version" || len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		fmt.Fprint(w, `{"etcdserver":"3.6.4","etcdcluster":"3.6.0"}`)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{p.server}, ClientCAs: p.pool, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()
	defer func(d time.Duration) { etcdRequestInterval = d }(etcdRequestInterval)
	etcdRequestInterval = 10 * time.Millisecond

	cfg := testConfig(t)
	cfg.Cluster.Etcd.Local = nil
	cfg.Cluster.Etcd.External = &config.ExternalEtcd{Endpoints: []string{srv.URL}, HTTPEndpoints: []string{srv.URL},
		CAFile: "/etc/etcd/ca.crt", CertFile: "/etc/etcd/client.crt", KeyFile: "/etc/etcd/client.key"}
	env := fakeEnv(t, map[string]string{"/etc/etcd/ca.crt": p.caPEM, "/etc/etcd/client.crt": p.certPEM, "/etc/etcd/client.key": p.keyPEM})
	env.EtcdVersion = etcdVersion
	got := runCheck(t, cfg, env, "ExternalEtcdVersion")
	if got.Status != StatusOK || got.Detail != srv.URL+": etcd 3.6.4" || calls != 2 {
		t.Errorf("%s %q after %d calls", got.Status, got.Detail, calls)
	}

	// Without the client certificate the server refuses the handshake.
	if _, err := etcdVersion(context.Background(), srv.URL+"/version", &tls.Config{RootCAs: p.pool}); err == nil {
		t.Error("no client certificate, no error")
	}
}

// fakeRuntime is a CRI runtime service: containerd 1.6 (no RuntimeConfig)
// or 2.x (RuntimeConfig with a cgroup driver).
type fakeRuntime struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	version string
	ready   bool
	driver  *runtimeapi.CgroupDriver
}

func (f *fakeRuntime) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{Version: "0.1.0", RuntimeName: "containerd", RuntimeVersion: f.version, RuntimeApiVersion: "v1"}, nil
}

func (f *fakeRuntime) Status(context.Context, *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	return &runtimeapi.StatusResponse{Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
		{Type: runtimeapi.RuntimeReady, Status: f.ready, Reason: "NotYet", Message: "plugins loading"},
		{Type: runtimeapi.NetworkReady, Status: false, Reason: "NetworkPluginNotReady"},
	}}}, nil
}

func (f *fakeRuntime) RuntimeConfig(ctx context.Context, r *runtimeapi.RuntimeConfigRequest) (*runtimeapi.RuntimeConfigResponse, error) {
	if f.driver == nil {
		return f.UnimplementedRuntimeServiceServer.RuntimeConfig(ctx, r)
	}
	return &runtimeapi.RuntimeConfigResponse{Linux: &runtimeapi.LinuxRuntimeConfiguration{CgroupDriver: *f.driver}}, nil
}

// serveCRI serves rt on root/run/containerd/containerd.sock.
func serveCRI(t *testing.T, root string, rt *fakeRuntime) {
	t.Helper()
	sock := filepath.Join(root, "/run/containerd/containerd.sock")
	os.MkdirAll(filepath.Dir(sock), 0o755)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(srv, rt)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
}

func TestAskRuntime(t *testing.T) {
	const ep = "unix:///run/containerd/containerd.sock"
	cgroupfs := runtimeapi.CgroupDriver_CGROUPFS
	tests := []struct {
		name string
		rt   *fakeRuntime
		want CRIInfo
	}{
		{name: "containerd 1.6", rt: &fakeRuntime{version: "1.6.20~ds1", ready: true},
			want: CRIInfo{RuntimeName: "containerd", RuntimeVersion: "1.6.20~ds1", RuntimeAPIVersion: "v1", Ready: true, Reason: "NotYet", Message: "plugins loading"}},
		{name: "containerd 2 with cgroupfs", rt: &fakeRuntime{version: "v2.1.4", ready: true, driver: &cgroupfs},
			want: CRIInfo{RuntimeName: "containerd", RuntimeVersion: "v2.1.4", RuntimeAPIVersion: "v1", Ready: true, Reason: "NotYet", Message: "plugins loading", RuntimeConfig: true, CgroupDriver: "cgroupfs"}},
		{name: "not ready", rt: &fakeRuntime{version: "v2.1.4"},
			want: CRIInfo{RuntimeName: "containerd", RuntimeVersion: "v2.1.4", RuntimeAPIVersion: "v1", Reason: "NotYet", Message: "plugins loading"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A short root: unix socket paths are limited to 108 bytes.
			root, err := os.MkdirTemp("", "cri")
			if err != nil {
				t.Fatal(err)
			}
			defer os.RemoveAll(root)
			serveCRI(t, root, tt.rt)
			got, err := HostEnv(root).CRI(context.Background(), ep)
			if err != nil {
				t.Fatal(err)
			}
			if *got != tt.want {
				t.Errorf("got  %+v\nwant %+v", *got, tt.want)
			}
		})
	}
	t.Run("no socket", func(t *testing.T) {
		_, err := HostEnv(t.TempDir()).CRI(context.Background(), ep)
		if err == nil || !strings.Contains(err.Error(), "no runtime socket (is the container runtime running?)") {
			t.Errorf("%v", err)
		}
	})
	t.Run("tcp endpoint", func(t *testing.T) {
		if _, err := HostEnv("/").CRI(context.Background(), "tcp://10.0.0.1:1234"); err == nil {
			t.Error("tcp accepted")
		}
	})
}
