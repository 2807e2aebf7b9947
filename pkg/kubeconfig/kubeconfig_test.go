package kubeconfig

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"net"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubeboot/kubeboot/pkg/pki"
	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type testCA struct {
	*pki.CA
	certPEM, keyPEM []byte
}

func newTestCA(t testing.TB) testCA {
	t.Helper()
	ca, err := pki.NewCA("kubernetes", pki.ECDSAP256, testNow, pki.DefaultCAValidity)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := pki.EncodeKey(ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return testCA{ca, pki.EncodeCert(ca.Cert), keyPEM}
}

func testSpec(ca testCA) Spec {
	return Spec{
		ControlPlaneURL: "https://cp.example.com:6443",
		LocalURL:        "https://192.0.2.10:6443",
		CACert:          ca.certPEM,
		CAKey:           ca.keyPEM,
		NodeName:        "cp-1",
		Now:             func() time.Time { return testNow },
	}
}

func at(s Spec, now time.Time) Spec {
	s.Now = func() time.Time { return now }
	return s
}

func render(t testing.TB, spec Spec, existing fstest.MapFS) Result {
	t.Helper()
	res, err := Render(spec, existing)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	return res
}

func fsOf(files []rootfs.File) fstest.MapFS {
	m := fstest.MapFS{}
	for _, f := range files {
		m[strings.TrimPrefix(f.Path, "/")] = &fstest.MapFile{Data: f.Data, Mode: f.Mode}
	}
	return m
}

func with(m fstest.MapFS, p string, data []byte) fstest.MapFS {
	out := fstest.MapFS{}
	for k, v := range m {
		out[k] = v
	}
	out[strings.TrimPrefix(p, "/")] = &fstest.MapFile{Data: data, Mode: 0o600}
	return out
}

func without(m fstest.MapFS, p string) fstest.MapFS {
	out := fstest.MapFS{}
	for k, v := range m {
		out[k] = v
	}
	delete(out, strings.TrimPrefix(p, "/"))
	return out
}

func lookup(t testing.TB, res Result, p string) []byte {
	t.Helper()
	for _, f := range res.Files {
		if f.Path == p {
			return f.Data
		}
	}
	t.Fatalf("no %s in result", p)
	return nil
}

func outcome(res Result, name string) pki.Outcome {
	for _, o := range res.Outcomes {
		if o.Name == name {
			return o
		}
	}
	return pki.Outcome{}
}

var identities = []struct {
	name, file, user, server string
	org                      []string
}{
	{"admin", "/etc/kubernetes/admin.conf", "kubernetes-admin", "https://cp.example.com:6443", []string{"kubeadm:cluster-admins"}},
	{"super-admin", "/etc/kubernetes/super-admin.conf", "kubernetes-super-admin", "https://cp.example.com:6443", []string{"system:masters"}},
	{"kubelet", "/etc/kubernetes/kubelet.conf", "system:node:cp-1", "https://cp.example.com:6443", []string{"system:nodes"}},
	{"controller-manager", "/etc/kubernetes/controller-manager.conf", "system:kube-controller-manager", "https://192.0.2.10:6443", nil},
	{"scheduler", "/etc/kubernetes/scheduler.conf", "system:kube-scheduler", "https://192.0.2.10:6443", nil},
}

func TestRenderFiles(t *testing.T) {
	ca := newTestCA(t)
	res := render(t, testSpec(ca), nil)
	if len(res.Files) != len(identities) {
		t.Fatalf("%d files, want %d", len(res.Files), len(identities))
	}
	if s := res.Summary(); s != "5 kubeconfig files (5 created)" {
		t.Errorf("Summary() = %q", s)
	}
	for i, tc := range identities {
		t.Run(tc.name, func(t *testing.T) {
			f := res.Files[i]
			if f.Path != tc.file || f.Mode != 0o600 || !f.Secret {
				t.Errorf("file %s mode %o secret %v, want %s 0600 secret", f.Path, f.Mode, f.Secret, tc.file)
			}
			cfg, err := clientcmd.Load(f.Data)
			if err != nil {
				t.Fatal(err)
			}
			wantCtx := tc.user + "@kubernetes"
			if cfg.CurrentContext != wantCtx || cfg.Contexts[wantCtx].Cluster != "kubernetes" || cfg.Contexts[wantCtx].AuthInfo != tc.user {
				t.Errorf("context %q %+v", cfg.CurrentContext, cfg.Contexts[cfg.CurrentContext])
			}
			rest, err := clientcmd.NewNonInteractiveClientConfig(*cfg, cfg.CurrentContext, &clientcmd.ConfigOverrides{}, nil).ClientConfig()
			if err != nil {
				t.Fatalf("ClientConfig: %v", err)
			}
			if rest.Host != tc.server {
				t.Errorf("server %s, want %s", rest.Host, tc.server)
			}
			if !bytes.Equal(rest.TLSClientConfig.CAData, ca.certPEM) {
				t.Error("CA data is not the cluster CA")
			}
			pair, err := tls.X509KeyPair(rest.TLSClientConfig.CertData, rest.TLSClientConfig.KeyData)
			if err != nil {
				t.Fatalf("client key pair: %v", err)
			}
			cert, err := x509.ParseCertificate(pair.Certificate[0])
			if err != nil {
				t.Fatal(err)
			}
			roots := x509.NewCertPool()
			roots.AddCert(ca.Cert)
			if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: testNow, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Errorf("client certificate: %v", err)
			}
			if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: testNow, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
				t.Error("client certificate is good for server auth too")
			}
			if cert.Subject.CommonName != tc.user || !slices.Equal(cert.Subject.Organization, tc.org) {
				t.Errorf("CN %q O %q, want %q %q", cert.Subject.CommonName, cert.Subject.Organization, tc.user, tc.org)
			}
			if !cert.NotAfter.Equal(testNow.Add(pki.DefaultValidity)) || cert.NotBefore.After(testNow) {
				t.Errorf("validity %s..%s", cert.NotBefore, cert.NotAfter)
			}
			if a, _ := pki.AlgorithmOf(cert.PublicKey); a != pki.ECDSAP256 {
				t.Errorf("client key %v", a)
			}
		})
	}
}

func TestRenderRerunIsByteIdentical(t *testing.T) {
	ca := newTestCA(t)
	spec := testSpec(ca)
	first := render(t, spec, nil)
	second := render(t, at(spec, testNow.Add(48*time.Hour)), fsOf(first.Files))
	if len(first.Files) != len(second.Files) {
		t.Fatalf("%d then %d files", len(first.Files), len(second.Files))
	}
	for i := range first.Files {
		if first.Files[i].Path != second.Files[i].Path || !bytes.Equal(first.Files[i].Data, second.Files[i].Data) {
			t.Errorf("%s changed", first.Files[i].Path)
		}
	}
	if second.Summary() != "5 kubeconfig files (5 reused)" {
		t.Errorf("Summary() = %q", second.Summary())
	}
}

// TestRenderFromPKI feeds the CA that pki.Render makes, as the caller will.
func TestRenderFromPKI(t *testing.T) {
	_, svc, _ := net.ParseCIDR("10.96.0.0/12")
	certs, err := pki.Render(pki.Spec{NodeName: "cp-1", AdvertiseAddress: net.ParseIP("192.0.2.10"), ServiceSubnets: []*net.IPNet{svc}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := certs.Lookup("/etc/kubernetes/pki/ca.crt")
	caKey, _ := certs.Lookup("/etc/kubernetes/pki/ca.key")
	cp, local, err := ServerURLs("", net.ParseIP("192.0.2.10"), 6443)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Render(Spec{ControlPlaneURL: cp, LocalURL: local, CACert: caCert, CAKey: caKey, NodeName: "cp-1"}, fsOf(certs.Files))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.Load(res.Files[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Clusters["kubernetes"].Server; got != "https://192.0.2.10:6443" {
		t.Errorf("server %s", got)
	}
}

func TestServerURLs(t *testing.T) {
	for _, tc := range []struct {
		endpoint, advertise string
		port                int
		cp, local, err      string
	}{
		{"", "192.0.2.10", 6443, "https://192.0.2.10:6443", "https://192.0.2.10:6443", ""},
		{"cp.example.com", "192.0.2.10", 6443, "https://cp.example.com:6443", "https://192.0.2.10:6443", ""},
		{"cp.example.com:443", "192.0.2.10", 6443, "https://cp.example.com:443", "https://192.0.2.10:6443", ""},
		{"[2001:db8::1]:8443", "2001:db8::10", 6443, "https://[2001:db8::1]:8443", "https://[2001:db8::10]:6443", ""},
		{"2001:db8::1", "2001:db8::10", 6443, "https://[2001:db8::1]:6443", "https://[2001:db8::10]:6443", ""},
		{"cp:0", "192.0.2.10", 6443, "", "", `port "0"`},
		{"", "192.0.2.10", 70000, "", "", "bind port"},
		{"", "0.0.0.0", 6443, "", "", "advertise address"},
	} {
		cp, local, err := ServerURLs(tc.endpoint, net.ParseIP(tc.advertise), tc.port)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ServerURLs(%q, %s, %d) error %v, want %q", tc.endpoint, tc.advertise, tc.port, err, tc.err)
			}
			continue
		}
		if err != nil || cp != tc.cp || local != tc.local {
			t.Errorf("ServerURLs(%q, %s, %d) = %s, %s, %v; want %s, %s", tc.endpoint, tc.advertise, tc.port, cp, local, err, tc.cp, tc.local)
		}
	}
}

// configWith builds a kubeconfig like ours, for the odd cases.
func configWith(t testing.TB, server, ctxName, user string, caPEM, certPEM, keyPEM []byte, certFile, keyFile string) []byte {
	t.Helper()
	cfg := clientcmdapi.Config{
		Clusters:       map[string]*clientcmdapi.Cluster{"kubernetes": {Server: server, CertificateAuthorityData: caPEM}},
		Contexts:       map[string]*clientcmdapi.Context{ctxName: {Cluster: "kubernetes", AuthInfo: user}},
		AuthInfos:      map[string]*clientcmdapi.AuthInfo{user: {ClientCertificateData: certPEM, ClientKeyData: keyPEM, ClientCertificate: certFile, ClientKey: keyFile}},
		CurrentContext: ctxName,
	}
	data, err := clientcmd.Write(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func issue(t testing.TB, ca *pki.CA, cn string, org []string, now time.Time, validity time.Duration) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := pki.ECDSAP256.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue(pki.Identity{CommonName: cn, Organization: org, Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, key.Public(), now, validity)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ = pki.EncodeKey(key)
	return pki.EncodeCert(cert), keyPEM
}

func TestReuseRules(t *testing.T) {
	ca := newTestCA(t)
	other := newTestCA(t)
	spec := testSpec(ca)
	base := fsOf(render(t, spec, nil).Files)
	foreign := fsOf(render(t, testSpec(other), nil).Files)
	later := testNow.Add(24 * time.Hour)

	// kubelet.conf after kubelet-finalize: credentials in the kubelet's file.
	kcCert, kcKey := issue(t, ca.CA, "system:node:cp-1", []string{"system:nodes"}, testNow, 30*24*time.Hour)
	finalized := configWith(t, "https://cp.example.com:6443", "system:node:cp-1@kubernetes", "system:node:cp-1", ca.certPEM, nil, nil,
		"/var/lib/kubelet/pki/kubelet-client-current.pem", "/var/lib/kubelet/pki/kubelet-client-current.pem")
	finalizedFS := with(with(base, "/etc/kubernetes/kubelet.conf", finalized), "/var/lib/kubelet/pki/kubelet-client-current.pem", append(kcCert, kcKey...))

	// Our CA in the cluster entry, but a client certificate from another CA.
	oCert, oKey := issue(t, other.CA, "kubernetes-admin", []string{"kubeadm:cluster-admins"}, testNow, pki.DefaultValidity)
	mixed := configWith(t, "https://cp.example.com:6443", "kubernetes-admin@kubernetes", "kubernetes-admin", ca.certPEM, oCert, oKey, "", "")
	// Right CA, wrong group.
	wCert, wKey := issue(t, ca.CA, "kubernetes-admin", []string{"system:masters"}, testNow, pki.DefaultValidity)
	wrongOrg := configWith(t, "https://cp.example.com:6443", "kubernetes-admin@kubernetes", "kubernetes-admin", ca.certPEM, wCert, wKey, "", "")

	for _, tc := range []struct {
		name     string
		spec     func(*Spec)
		fsys     fstest.MapFS
		now      time.Time
		rerender []string
		reason   string // in the first re-rendered outcome
		err      string
		warn     string
		verified bool
	}{
		{name: "control-plane URL changed", spec: func(s *Spec) { s.ControlPlaneURL = "https://cp2.example.com:6443" },
			rerender: []string{"admin", "super-admin", "kubelet"},
			reason:   "/etc/kubernetes/admin.conf has server https://cp.example.com:6443, want https://cp2.example.com:6443"},
		{name: "local URL changed", spec: func(s *Spec) { s.LocalURL = "https://192.0.2.11:6443" },
			rerender: []string{"controller-manager", "scheduler"}, reason: "has server https://192.0.2.10:6443"},
		{name: "node renamed", spec: func(s *Spec) { s.NodeName = "cp-2" },
			rerender: []string{"kubelet"}, reason: `want "system:node:cp-2@kubernetes"`},
		{name: "cluster renamed", spec: func(s *Spec) { s.ClusterName = "prod" },
			rerender: Names, reason: `want "kubernetes-admin@prod"`},
		{name: "client certificate from another CA", fsys: with(base, "/etc/kubernetes/admin.conf", mixed),
			rerender: []string{"admin"}, reason: "client certificate is not signed by /etc/kubernetes/pki/ca.crt"},
		{name: "wrong organization", fsys: with(base, "/etc/kubernetes/admin.conf", wrongOrg),
			rerender: []string{"admin"}, reason: `client certificate has O ["system:masters"], want ["kubeadm:cluster-admins"]`},
		{name: "within renewal window", now: testNow.Add(pki.DefaultValidity - 24*time.Hour),
			rerender: Names, reason: "client certificate expires at"},
		{name: "kubelet-finalize credentials kept", fsys: finalizedFS, now: testNow.Add(29 * 24 * time.Hour)},
		{name: "kubelet-finalize credentials expired", fsys: finalizedFS, now: testNow.Add(31 * 24 * time.Hour),
			rerender: []string{"kubelet"}, reason: "client certificate expired at"},
		{name: "another CA is refused", fsys: with(base, "/etc/kubernetes/scheduler.conf", foreign["etc/kubernetes/scheduler.conf"].Data),
			err: `kubeconfig: scheduler: existing /etc/kubernetes/scheduler.conf trusts another CA (CN "kubernetes") than /etc/kubernetes/pki/ca.crt`},
		{name: "unparsable file", fsys: with(base, "/etc/kubernetes/admin.conf", []byte("{{{")),
			err: "kubeconfig: admin: existing /etc/kubernetes/admin.conf"},
		{name: "external CA, files provided", spec: func(s *Spec) { s.CAKey = nil }, verified: true},
		{name: "external CA, server differs", spec: func(s *Spec) { s.CAKey = nil; s.LocalURL = "https://192.0.2.11:6443" }, verified: true,
			warn: "kubeconfig: controller-manager: /etc/kubernetes/controller-manager.conf has server https://192.0.2.10:6443, want https://192.0.2.11:6443; external CA"},
		{name: "external CA, file missing", spec: func(s *Spec) { s.CAKey = nil }, fsys: without(base, "/etc/kubernetes/kubelet.conf"),
			err: "kubeconfig: kubelet: external CA (/etc/kubernetes/pki/ca.crt without its key): /etc/kubernetes/kubelet.conf must be provided"},
		{name: "external CA, node renamed", spec: func(s *Spec) { s.CAKey = nil; s.NodeName = "cp-2" },
			err: "kubeconfig: kubelet: external CA (/etc/kubernetes/pki/ca.crt without its key): /etc/kubernetes/kubelet.conf has context"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := at(spec, later)
			if !tc.now.IsZero() {
				s = at(s, tc.now)
			}
			if tc.spec != nil {
				tc.spec(&s)
			}
			fsys := tc.fsys
			if fsys == nil {
				fsys = base
			}
			res, err := Render(s, fsys)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v\nwant it to contain %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i, name := range Names {
				o := outcome(res, name)
				old := fsys["etc/kubernetes/"+name+".conf"].Data
				data := lookup(t, res, "/etc/kubernetes/"+name+".conf")
				switch {
				case slices.Contains(tc.rerender, name):
					if o.Action != pki.Reissued || bytes.Equal(data, old) {
						t.Errorf("%s: %v, want re-rendered", name, o.Action)
					}
					if name == tc.rerender[0] && !strings.Contains(o.Reason, tc.reason) {
						t.Errorf("%s: reason %q, want %q", name, o.Reason, tc.reason)
					}
				case tc.verified:
					if o.Action != pki.Verified || !bytes.Equal(data, old) {
						t.Errorf("%s: %v, want verified and unchanged", name, o.Action)
					}
				default:
					if o.Action != pki.Reused || !bytes.Equal(data, old) {
						t.Errorf("%s: %v %q, want reused", name, o.Action, o.Reason)
					}
				}
				if res.Files[i].Mode != 0o600 || !res.Files[i].Secret {
					t.Errorf("%s: mode %o secret %v", name, res.Files[i].Mode, res.Files[i].Secret)
				}
			}
			if tc.warn != "" && !strings.Contains(strings.Join(res.Warnings, "\n"), tc.warn) {
				t.Errorf("warnings %q, want %q", res.Warnings, tc.warn)
			}
			if tc.verified {
				return
			}
			// The result is stable: the next run keeps it all.
			merged := fsys
			for _, f := range res.Files {
				merged = with(merged, f.Path, f.Data)
			}
			again := render(t, s, merged)
			if again.Counts.Reused != len(Names) {
				t.Errorf("next run: %s %v", again.Summary(), again.Outcomes)
			}
		})
	}
}

func TestRenderOnly(t *testing.T) {
	ca := newTestCA(t)
	spec := testSpec(ca)
	spec.Only = []string{"scheduler", "admin"}
	spec.NodeName = "" // not needed without kubelet.conf
	res := render(t, spec, nil)
	if len(res.Files) != 2 || res.Files[0].Path != "/etc/kubernetes/admin.conf" || res.Files[1].Path != "/etc/kubernetes/scheduler.conf" {
		t.Errorf("files %v", res.Files)
	}
}

func TestSpecErrors(t *testing.T) {
	ca := newTestCA(t)
	other := newTestCA(t)
	for _, tc := range []struct {
		name   string
		mutate func(*Spec)
		want   string
	}{
		{"http URL", func(s *Spec) { s.ControlPlaneURL = "http://cp:6443" }, `control-plane URL "http://cp:6443"`},
		{"no local URL", func(s *Spec) { s.LocalURL = "" }, "local URL"},
		{"no node name", func(s *Spec) { s.NodeName = "" }, "kubeconfig: kubelet: node name is empty"},
		{"unknown name", func(s *Spec) { s.Only = []string{"proxy"} }, `unknown kubeconfig "proxy"`},
		{"CA key mismatch", func(s *Spec) { s.CAKey = other.keyPEM }, "kubeconfig: /etc/kubernetes/pki/ca.crt: CA key does not match"},
		{"no CA", func(s *Spec) { s.CACert = nil }, "kubeconfig: /etc/kubernetes/pki/ca.crt: CA certificate"},
		{"expired CA", func(s *Spec) { s.Now = func() time.Time { return testNow.Add(pki.DefaultCAValidity + time.Hour) } }, "expired at"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := testSpec(ca)
			tc.mutate(&s)
			_, err := Render(s, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// BenchmarkRender renders the five kubeconfig files from nothing (ECDSA-P256).
func BenchmarkRender(b *testing.B) {
	spec := testSpec(newTestCA(b))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Render(spec, nil); err != nil {
			b.Fatal(err)
		}
	}
}
