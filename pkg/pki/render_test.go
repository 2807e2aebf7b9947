package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

var kubeadmFiles = []string{
	"ca.crt", "ca.key",
	"apiserver.crt", "apiserver.key",
	"apiserver-kubelet-client.crt", "apiserver-kubelet-client.key",
	"front-proxy-ca.crt", "front-proxy-ca.key",
	"front-proxy-client.crt", "front-proxy-client.key",
	"etcd/ca.crt", "etcd/ca.key",
	"etcd/server.crt", "etcd/server.key",
	"etcd/peer.crt", "etcd/peer.key",
	"etcd/healthcheck-client.crt", "etcd/healthcheck-client.key",
	"apiserver-etcd-client.crt", "apiserver-etcd-client.key",
	"sa.key", "sa.pub",
}

func TestRenderFreshNodeFiles(t *testing.T) {
	res := render(t, testSpec(t), nil)
	var got []string
	for _, f := range res.Files {
		got = append(got, f.Path)
		secret := strings.HasSuffix(f.Path, ".key")
		wantMode := map[bool]uint32{true: 0o600, false: 0o644}[secret]
		if f.Secret != secret || uint32(f.Mode) != wantMode {
			t.Errorf("%s: Secret=%v Mode=%o, want %v %o", f.Path, f.Secret, f.Mode, secret, wantMode)
		}
		if secret && !bytes.HasPrefix(f.Data, []byte("-----BEGIN EC PRIVATE KEY-----")) {
			t.Errorf("%s: not an EC PRIVATE KEY PEM", f.Path)
		}
	}
	var want []string
	for _, n := range kubeadmFiles {
		want = append(want, pkiPath(n))
	}
	if !slices.Equal(got, want) {
		t.Errorf("files:\n got %q\nwant %q", got, want)
	}
	if s := res.Summary(); s != "10 certificates (10 created), 1 key pair (1 created)" {
		t.Errorf("Summary() = %q", s)
	}
	if len(res.Warnings) != 0 {
		t.Errorf("warnings: %q", res.Warnings)
	}
}

func TestRenderCAs(t *testing.T) {
	res := render(t, testSpec(t), nil)
	for _, tc := range []struct{ file, cn string }{
		{"ca", "kubernetes"},
		{"front-proxy-ca", "front-proxy-ca"},
		{"etcd/ca", "etcd-ca"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			ca := certOf(t, res, tc.file+".crt")
			if ca.Subject.CommonName != tc.cn || !ca.IsCA || !ca.BasicConstraintsValid {
				t.Errorf("CN %q IsCA %v, want %q CA", ca.Subject.CommonName, ca.IsCA, tc.cn)
			}
			if !slices.Equal(ca.DNSNames, []string{tc.cn}) {
				t.Errorf("DNS SANs %q, want [%q]", ca.DNSNames, tc.cn)
			}
			if want := x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign; ca.KeyUsage != want {
				t.Errorf("KeyUsage %b, want %b", ca.KeyUsage, want)
			}
			if !ca.NotBefore.Equal(testNow.Add(-5*time.Minute)) || !ca.NotAfter.Equal(testNow.Add(87600*time.Hour)) {
				t.Errorf("validity %s..%s", ca.NotBefore, ca.NotAfter)
			}
			if err := ca.CheckSignatureFrom(ca); err != nil {
				t.Errorf("not self-signed: %v", err)
			}
			if ca.SerialNumber.Sign() <= 0 {
				t.Errorf("serial %v", ca.SerialNumber)
			}
			key, err := ParseKey(fileData(t, res, tc.file+".key"))
			if err != nil || !KeyMatches(key, ca.PublicKey) {
				t.Errorf("key does not match: %v", err)
			}
		})
	}
	if certOf(t, res, "ca.crt").SerialNumber.Cmp(certOf(t, res, "etcd/ca.crt").SerialNumber) == 0 {
		t.Error("two CAs share a serial number")
	}
}

func ips(ss ...string) []net.IP {
	var out []net.IP
	for _, s := range ss {
		out = append(out, net.ParseIP(s))
	}
	return out
}

func TestRenderLeaves(t *testing.T) {
	res := render(t, testSpec(t), nil)
	server := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	client := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	both := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	for _, tc := range []struct {
		file, ca, cn string
		org          []string
		usages       []x509.ExtKeyUsage
		dns          []string
		ips          []net.IP
	}{
		{file: "apiserver", ca: "ca", cn: "kube-apiserver", usages: server,
			dns: []string{"*.apps.example.com", "api.example.com", "cp-1", "cp.example.com", "kubernetes",
				"kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
			ips: ips("10.96.0.1", "192.0.2.10", "10.0.0.5")},
		{file: "apiserver-kubelet-client", ca: "ca", cn: "kube-apiserver-kubelet-client", usages: client},
		{file: "front-proxy-client", ca: "front-proxy-ca", cn: "front-proxy-client", usages: client},
		{file: "etcd/server", ca: "etcd/ca", cn: "cp-1", usages: both,
			dns: []string{"cp-1", "etcd.example.com", "localhost"},
			ips: ips("192.0.2.10", "127.0.0.1", "::1")},
		{file: "etcd/peer", ca: "etcd/ca", cn: "cp-1", usages: both,
			dns: []string{"cp-1", "localhost"},
			ips: ips("192.0.2.10", "127.0.0.1", "::1", "198.51.100.7")},
		{file: "etcd/healthcheck-client", ca: "etcd/ca", cn: "kube-etcd-healthcheck-client", usages: client},
		{file: "apiserver-etcd-client", ca: "etcd/ca", cn: "kube-apiserver-etcd-client", usages: client},
	} {
		t.Run(tc.file, func(t *testing.T) {
			cert := certOf(t, res, tc.file+".crt")
			ca := certOf(t, res, tc.ca+".crt")
			roots := x509.NewCertPool()
			roots.AddCert(ca)
			for _, u := range tc.usages {
				if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: testNow, KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
					t.Errorf("verify for usage %v against %s: %v", u, tc.ca, err)
				}
			}
			for _, other := range []string{"ca", "front-proxy-ca", "etcd/ca"} {
				if other == tc.ca {
					continue
				}
				pool := x509.NewCertPool()
				pool.AddCert(certOf(t, res, other+".crt"))
				if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: testNow, KeyUsages: tc.usages}); err == nil {
					t.Errorf("verifies against %s too", other)
				}
			}
			if cert.Subject.CommonName != tc.cn || !slices.Equal(cert.Subject.Organization, tc.org) {
				t.Errorf("subject CN %q O %q, want %q %q", cert.Subject.CommonName, cert.Subject.Organization, tc.cn, tc.org)
			}
			if cert.IsCA {
				t.Error("leaf is a CA")
			}
			if want := x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment; cert.KeyUsage != want {
				t.Errorf("KeyUsage %b, want %b", cert.KeyUsage, want)
			}
			if !slices.Equal(cert.ExtKeyUsage, tc.usages) {
				t.Errorf("ExtKeyUsage %v, want %v", cert.ExtKeyUsage, tc.usages)
			}
			if !slices.Equal(cert.DNSNames, tc.dns) {
				t.Errorf("DNS SANs\n got %q\nwant %q", cert.DNSNames, tc.dns)
			}
			if !slices.EqualFunc(cert.IPAddresses, tc.ips, net.IP.Equal) {
				t.Errorf("IP SANs %v, want %v", cert.IPAddresses, tc.ips)
			}
			if !cert.NotBefore.Equal(testNow.Add(-5*time.Minute)) || !cert.NotAfter.Equal(testNow.Add(8760*time.Hour)) {
				t.Errorf("validity %s..%s", cert.NotBefore, cert.NotAfter)
			}
			key, err := ParseKey(fileData(t, res, tc.file+".key"))
			if err != nil || !KeyMatches(key, cert.PublicKey) {
				t.Errorf("key does not match: %v", err)
			}
		})
	}
	sa, err := ParseKey(fileData(t, res, "sa.key"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKey(fileData(t, res, "sa.pub"))
	if err != nil || !KeyMatches(sa, pub) {
		t.Errorf("sa.pub does not match sa.key: %v", err)
	}
}

func TestRenderAlgorithms(t *testing.T) {
	for _, tc := range []struct {
		name string
		sig  x509.SignatureAlgorithm
		slow bool
	}{
		{"ECDSA-P256", x509.ECDSAWithSHA256, false},
		{"ECDSA-P384", x509.ECDSAWithSHA384, false},
		{"RSA-2048", x509.SHA256WithRSA, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.slow && testing.Short() {
				t.Skip("RSA key generation is slow")
			}
			alg, err := ParseAlgorithm(tc.name)
			if err != nil || alg.String() != tc.name {
				t.Fatalf("ParseAlgorithm(%q) = %v, %v", tc.name, alg, err)
			}
			spec := testSpec(t)
			spec.Algorithm = alg
			res := render(t, spec, nil)
			for _, f := range res.Files {
				var pub any
				switch {
				case strings.HasSuffix(f.Path, ".crt"):
					cert := certOf(t, res, strings.TrimPrefix(f.Path, DefaultCertificatesDir+"/"))
					pub = cert.PublicKey
					if cert.SignatureAlgorithm != tc.sig {
						t.Errorf("%s: signature %v, want %v", f.Path, cert.SignatureAlgorithm, tc.sig)
					}
				case strings.HasSuffix(f.Path, ".key"):
					key, err := ParseKey(f.Data)
					if err != nil {
						t.Fatalf("%s: %v", f.Path, err)
					}
					pub = key.Public()
					wantType := map[bool]string{true: "RSA PRIVATE KEY", false: "EC PRIVATE KEY"}[tc.slow]
					if !bytes.HasPrefix(f.Data, []byte("-----BEGIN "+wantType+"-----")) {
						t.Errorf("%s: want PEM type %s", f.Path, wantType)
					}
				case strings.HasSuffix(f.Path, ".pub"):
					if pub, err = ParsePublicKey(f.Data); err != nil {
						t.Fatal(err)
					}
				}
				if got, ok := AlgorithmOf(pub); !ok || got != alg {
					t.Errorf("%s: key is %s, want %s", f.Path, describe(pub), alg)
				}
			}
		})
	}
	if _, err := ParseAlgorithm("RSA-1024"); err == nil {
		t.Error(`ParseAlgorithm("RSA-1024") succeeded`)
	}
}

func TestRenderRerunIsByteIdentical(t *testing.T) {
	spec := testSpec(t)
	first := render(t, spec, nil)
	// A day later, with the same configuration: nothing changes.
	spec.Now = func() time.Time { return testNow.Add(24 * time.Hour) }
	second := render(t, spec, fsOf(first.Files))
	if len(first.Files) != len(second.Files) {
		t.Fatalf("%d files, then %d", len(first.Files), len(second.Files))
	}
	for i := range first.Files {
		a, b := first.Files[i], second.Files[i]
		if a.Path != b.Path || a.Mode != b.Mode || a.Secret != b.Secret || !bytes.Equal(a.Data, b.Data) {
			t.Errorf("%s changed on the second run", a.Path)
		}
	}
	if s := second.Summary(); s != "10 certificates (10 reused), 1 key pair (1 reused)" {
		t.Errorf("Summary() = %q", s)
	}
}

func TestRenderExternalEtcd(t *testing.T) {
	spec := testSpec(t)
	spec.ExternalEtcd = true
	res := render(t, spec, nil)
	for _, f := range res.Files {
		if strings.Contains(f.Path, "/etcd/") || strings.Contains(f.Path, "etcd-client") {
			t.Errorf("external etcd, yet %s", f.Path)
		}
	}
	if len(res.Files) != 12 || res.Certificates.Total() != 5 {
		t.Errorf("%d files, %d certificates; want 12, 5", len(res.Files), res.Certificates.Total())
	}
}

func TestRenderSpecErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Spec)
		want   string
	}{
		{"bad apiserver SAN", func(s *Spec) { s.APIServerCertSANs = []string{"10.0.0.1/24"} }, `certs: apiserver: SAN "10.0.0.1/24": not an IP address or DNS name`},
		{"bad etcd peer SAN", func(s *Spec) { s.EtcdPeerCertSANs = []string{"a_b"} }, `certs: etcd-peer: SAN "a_b"`},
		{"no node name", func(s *Spec) { s.NodeName = "" }, "node name is empty"},
		{"no advertise address", func(s *Spec) { s.AdvertiseAddress = nil }, "advertise address"},
		{"no service subnet", func(s *Spec) { s.ServiceSubnets = nil }, "no service subnet"},
		{"tiny service subnet", func(s *Spec) { s.ServiceSubnets = []*net.IPNet{mustCIDR(t, "10.96.0.0/32")} }, "too small"},
		{"bad endpoint port", func(s *Spec) { s.ControlPlaneEndpoint = "cp:99999" }, `control-plane endpoint "cp:99999"`},
		{"bad endpoint host", func(s *Spec) { s.ControlPlaneEndpoint = "cp_1:6443" }, `control-plane endpoint "cp_1:6443"`},
		{"relative dir", func(s *Spec) { s.CertificatesDir = "pki" }, "not an absolute path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := testSpec(t)
			tc.mutate(&spec)
			_, err := Render(spec, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestRenderSANVariants(t *testing.T) {
	for _, tc := range []struct {
		name     string
		mutate   func(*Spec)
		wantIPs  []net.IP
		wantDNS  string
		noDomain bool
	}{
		{"IPv6 first", func(s *Spec) {
			s.ServiceSubnets = []*net.IPNet{mustCIDR(t, "fd00:10:96::/112"), mustCIDR(t, "10.96.0.0/12")}
			s.ControlPlaneEndpoint = "[2001:db8::1]:6443"
			s.APIServerCertSANs = nil
		}, ips("fd00:10:96::1", "192.0.2.10", "2001:db8::1"), "", false},
		{"endpoint is an IP without port", func(s *Spec) {
			s.ControlPlaneEndpoint = "203.0.113.9"
			s.APIServerCertSANs = nil
		}, ips("10.96.0.1", "192.0.2.10", "203.0.113.9"), "", false},
		{"bare IPv6 endpoint, no DNS domain", func(s *Spec) {
			s.ControlPlaneEndpoint = "2001:db8::2"
			s.APIServerCertSANs = nil
			s.DNSDomain = ""
		}, ips("10.96.0.1", "192.0.2.10", "2001:db8::2"), "", true},
		{"duplicates collapse", func(s *Spec) {
			s.ControlPlaneEndpoint = "192.0.2.10:6443"
			s.APIServerCertSANs = []string{"192.0.2.10", "kubernetes", "cp-1"}
		}, ips("10.96.0.1", "192.0.2.10"), "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := testSpec(t)
			tc.mutate(&spec)
			cert := certOf(t, render(t, spec, nil), "apiserver.crt")
			if !slices.EqualFunc(cert.IPAddresses, tc.wantIPs, net.IP.Equal) {
				t.Errorf("IP SANs %v, want %v", cert.IPAddresses, tc.wantIPs)
			}
			hasDomain := slices.Contains(cert.DNSNames, "kubernetes.default.svc.cluster.local")
			if hasDomain == tc.noDomain {
				t.Errorf("DNS SANs %q", cert.DNSNames)
			}
			if len(slices.Compact(slices.Clone(cert.DNSNames))) != len(cert.DNSNames) {
				t.Errorf("duplicate DNS SANs %q", cert.DNSNames)
			}
		})
	}
}

func TestCAHash(t *testing.T) {
	res := render(t, testSpec(t), nil)
	caPEM := fileData(t, res, "ca.crt")
	got, err := CAHash(caPEM)
	if err != nil {
		t.Fatal(err)
	}
	// Independently: SHA-256 over the DER SubjectPublicKeyInfo of the key.
	key, _ := ParseKey(fileData(t, res, "ca.key"))
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	if want := "sha256:" + sha256Hex(der); got != want {
		t.Errorf("CAHash = %s, want %s", got, want)
	}
	if _, err := CAHash([]byte("junk")); err == nil {
		t.Error("CAHash of junk succeeded")
	}
}

func TestAlgorithmOf(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if a, ok := AlgorithmOf(p256.Public()); !ok || a != ECDSAP256 {
		t.Errorf("AlgorithmOf(P-256) = %v %v", a, ok)
	}
	if _, ok := AlgorithmOf(p224.Public()); ok {
		t.Error("AlgorithmOf(P-224) is known")
	}
	if _, ok := AlgorithmOf(&rsa.PublicKey{}); ok {
		t.Error("AlgorithmOf(empty RSA) is known")
	}
}
