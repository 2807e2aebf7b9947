package pki

import (
	"bytes"
	"crypto/x509"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

var laterNow = testNow.Add(24 * time.Hour)

const laterStamp = "20260302T120000Z"

func at(spec Spec, now time.Time) Spec {
	spec.Now = func() time.Time { return now }
	return spec
}

func TestCANeverReplaced(t *testing.T) {
	base := fsOf(render(t, testSpec(t), nil).Files)
	other := fsOf(render(t, testSpec(t), nil).Files)
	p384, err := NewCA("kubernetes", ECDSAP384, testNow, DefaultCAValidity)
	if err != nil {
		t.Fatal(err)
	}
	p384Key, _ := EncodeKey(p384.Key)

	t.Run("provided CA of another algorithm is kept", func(t *testing.T) {
		m := with(with(fstest.MapFS{}, "ca.crt", EncodeCert(p384.Cert)), "ca.key", p384Key)
		res := render(t, testSpec(t), m)
		if !bytes.Equal(fileData(t, res, "ca.crt"), EncodeCert(p384.Cert)) || !bytes.Equal(fileData(t, res, "ca.key"), p384Key) {
			t.Error("provided CA was rewritten")
		}
		if o, _ := outcomeOf(res, "ca"); o.Action != Reused {
			t.Errorf("ca: %v", o.Action)
		}
		if _, err := certOf(t, res, "apiserver.crt").Verify(x509.VerifyOptions{Roots: pool(p384.Cert), CurrentTime: testNow}); err != nil {
			t.Errorf("apiserver not signed by the provided CA: %v", err)
		}
		if !strings.Contains(strings.Join(res.Warnings, "\n"), "keeps its ECDSA-P384 key") {
			t.Errorf("no warning about the CA's algorithm: %q", res.Warnings)
		}
	})

	for _, tc := range []struct {
		name string
		fsys fstest.MapFS
		now  time.Time
		want []string
	}{
		{"mismatched key", with(base, "ca.key", other["etc/kubernetes/pki/ca.key"].Data), testNow,
			[]string{"certs: ca: existing /etc/kubernetes/pki/ca.key does not match /etc/kubernetes/pki/ca.crt"}},
		{"mismatched etcd key", with(base, "etcd/ca.key", other["etc/kubernetes/pki/etcd/ca.key"].Data), testNow,
			[]string{"certs: etcd-ca: existing /etc/kubernetes/pki/etcd/ca.key does not match /etc/kubernetes/pki/etcd/ca.crt"}},
		{"unparsable certificate", with(base, "ca.crt", []byte("garbage")), testNow,
			[]string{"certs: ca: existing /etc/kubernetes/pki/ca.crt: no PEM CERTIFICATE block"}},
		{"unparsable key", with(base, "front-proxy-ca.key", []byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n")), testNow,
			[]string{"certs: front-proxy-ca: existing /etc/kubernetes/pki/front-proxy-ca.key: EC PRIVATE KEY"}},
		{"not a CA", with(with(base, "ca.crt", base["etc/kubernetes/pki/apiserver.crt"].Data), "ca.key", base["etc/kubernetes/pki/apiserver.key"].Data), testNow,
			[]string{"certs: ca: existing /etc/kubernetes/pki/ca.crt is not a CA certificate"}},
		{"expired", base, testNow.Add(87601 * time.Hour),
			[]string{"certs: ca: existing /etc/kubernetes/pki/ca.crt expired at 2036-02-27T12:00:00Z"}},
		{"key without certificate", without(base, "ca.crt"), testNow,
			[]string{"certs: ca: /etc/kubernetes/pki/ca.key exists without /etc/kubernetes/pki/ca.crt"}},
		{"every problem is reported", with(without(base, "ca.crt"), "etcd/ca.crt", []byte("x")), testNow,
			[]string{"/etc/kubernetes/pki/ca.key exists without", "existing /etc/kubernetes/pki/etcd/ca.crt"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Render(at(testSpec(t), tc.now), tc.fsys)
			if err == nil {
				t.Fatalf("no error; outcomes %v", res.Outcomes)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nwant it to contain %q", err, w)
				}
			}
			if len(res.Files) != 0 {
				t.Errorf("files returned with an error")
			}
		})
	}
}

func pool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

func TestLeafReissue(t *testing.T) {
	spec := testSpec(t)
	first := render(t, spec, nil)
	base := fsOf(first.Files)
	foreign := fsOf(render(t, spec, nil).Files)
	baseCA, err := LoadCA(base["etc/kubernetes/pki/ca.crt"].Data, base["etc/kubernetes/pki/ca.key"].Data)
	if err != nil {
		t.Fatal(err)
	}
	apiKey, _ := ParseKey(base["etc/kubernetes/pki/apiserver.key"].Data)
	clientOnly, err := baseCA.Issue(Identity{CommonName: "kube-apiserver", Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		DNSNames: certOf(t, first, "apiserver.crt").DNSNames, IPs: certOf(t, first, "apiserver.crt").IPAddresses}, apiKey.Public(), testNow, DefaultValidity)
	if err != nil {
		t.Fatal(err)
	}
	otherKey, _ := ECDSAP256.GenerateKey()
	otherKeyPEM, _ := EncodeKey(otherKey)

	allLeaves := []string{"apiserver", "apiserver-kubelet-client", "front-proxy-client", "etcd/server", "etcd/peer", "etcd/healthcheck-client", "apiserver-etcd-client"}

	for _, tc := range []struct {
		name     string
		spec     func(*Spec)
		fsys     fstest.MapFS
		now      time.Time
		reissued []string // file bases re-issued; all other leaves reused
		created  []string // file bases whose certificate was missing
		newKey   bool     // re-issued leaves got new keys (and key backups)
		reason   string   // in the apiserver's (or first re-issued) outcome
	}{
		{name: "SAN added", spec: func(s *Spec) { s.APIServerCertSANs = append(s.APIServerCertSANs, "10.0.0.6") },
			reissued: []string{"apiserver"}, reason: "existing /etc/kubernetes/pki/apiserver.crt lacks SAN 10.0.0.6"},
		{name: "SAN removed is still covered", spec: func(s *Spec) { s.APIServerCertSANs = nil }},
		{name: "control-plane endpoint changed", spec: func(s *Spec) { s.ControlPlaneEndpoint = "cp2.example.com" },
			reissued: []string{"apiserver"}, reason: "lacks SAN cp2.example.com"},
		{name: "node renamed", spec: func(s *Spec) { s.NodeName = "cp-2" },
			reissued: []string{"apiserver", "etcd/server", "etcd/peer"}, reason: "lacks SAN cp-2"},
		{name: "signed by another CA", fsys: with(with(base, "apiserver.crt", foreign["etc/kubernetes/pki/apiserver.crt"].Data), "apiserver.key", foreign["etc/kubernetes/pki/apiserver.key"].Data),
			reissued: []string{"apiserver"}, reason: "existing /etc/kubernetes/pki/apiserver.crt is not signed by /etc/kubernetes/pki/ca.crt"},
		{name: "wrong usages", fsys: with(base, "apiserver.crt", EncodeCert(clientOnly)),
			reissued: []string{"apiserver"}, reason: "does not verify against /etc/kubernetes/pki/ca.crt"},
		{name: "key does not match", fsys: with(base, "apiserver.key", otherKeyPEM),
			reissued: []string{"apiserver"}, reason: "/etc/kubernetes/pki/apiserver.key does not match /etc/kubernetes/pki/apiserver.crt"},
		{name: "key missing", fsys: without(base, "etcd/peer.key"),
			reissued: []string{"etcd/peer"}, newKey: true, reason: "has no key"},
		{name: "certificate missing", fsys: without(base, "front-proxy-client.crt"), created: []string{"front-proxy-client"}},
		{name: "within renewal window", now: testNow.Add(DefaultValidity - 10*24*time.Hour),
			reissued: allLeaves, reason: "within 720h0m0s"},
		{name: "expired", now: testNow.Add(DefaultValidity + time.Hour), reissued: allLeaves, reason: "expired at 2027-03-01T12:00:00Z"},
		{name: "algorithm changed", spec: func(s *Spec) { s.Algorithm = ECDSAP384 },
			reissued: allLeaves, newKey: true, reason: "/etc/kubernetes/pki/apiserver.key is ECDSA-P256, the configuration asks for ECDSA-P384"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := at(testSpec(t), laterNow)
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
			res := render(t, s, fsys)
			now := s.Now()
			stamp := now.UTC().Format("20060102T150405Z")

			// CAs and the service-account key are never touched.
			for _, n := range []string{"ca.crt", "ca.key", "front-proxy-ca.crt", "front-proxy-ca.key", "etcd/ca.crt", "etcd/ca.key", "sa.key", "sa.pub"} {
				if !bytes.Equal(fileData(t, res, n), base["etc/kubernetes/pki/"+n].Data) {
					t.Errorf("%s changed", n)
				}
			}
			for _, leaf := range allLeaves {
				name := strings.Replace(leaf, "etcd/", "etcd-", 1)
				o, _ := outcomeOf(res, name)
				crt, key := leaf+".crt", leaf+".key"
				oldCrt, oldKey := fsys["etc/kubernetes/pki/"+crt], fsys["etc/kubernetes/pki/"+key]
				_, crtBak := res.Lookup(pkiPath(crt + ".bak-" + stamp))
				_, keyBak := res.Lookup(pkiPath(key + ".bak-" + stamp))
				switch {
				case contains(tc.reissued, leaf):
					if o.Action != Reissued {
						t.Errorf("%s: %v, want reissued", leaf, o.Action)
					}
					if leaf == tc.reissued[0] && !strings.Contains(o.Reason, tc.reason) {
						t.Errorf("%s: reason %q, want %q", leaf, o.Reason, tc.reason)
					}
					if bytes.Equal(fileData(t, res, crt), oldCrt.Data) {
						t.Errorf("%s: certificate unchanged", leaf)
					}
					if data, ok := res.Lookup(pkiPath(crt + ".bak-" + stamp)); !ok || !bytes.Equal(data, oldCrt.Data) {
						t.Errorf("%s: no backup of the old certificate", leaf)
					}
					keptKey := oldKey != nil && bytes.Equal(fileData(t, res, key), oldKey.Data)
					if tc.newKey == keptKey {
						t.Errorf("%s: key kept = %v, want %v", leaf, keptKey, !tc.newKey)
					}
					if tc.newKey && oldKey != nil && !keyBak {
						t.Errorf("%s: replaced key not backed up", leaf)
					}
				case contains(tc.created, leaf):
					if o.Action != Created || crtBak || keyBak {
						t.Errorf("%s: %v (backups %v %v), want created without backups", leaf, o.Action, crtBak, keyBak)
					}
					if !bytes.Equal(fileData(t, res, key), oldKey.Data) {
						t.Errorf("%s: existing key not used", leaf)
					}
				default:
					if o.Action != Reused || crtBak || keyBak {
						t.Errorf("%s: %v %q, want reused", leaf, o.Action, o.Reason)
					}
					if !bytes.Equal(fileData(t, res, crt), oldCrt.Data) || !bytes.Equal(fileData(t, res, key), oldKey.Data) {
						t.Errorf("%s: reused files differ", leaf)
					}
				}
				// Whatever happened, the result is consistent and signed by the
				// same CA, with the current identity.
				cert := certOf(t, res, crt)
				k, err := ParseKey(fileData(t, res, key))
				if err != nil || !KeyMatches(k, cert.PublicKey) {
					t.Errorf("%s: key does not match certificate", leaf)
				}
				r, _ := s.resolve()
				var def *certDef
				for _, d := range leaves {
					if d.base == leaf {
						def = d
					}
				}
				ca, _ := LoadCA(fileData(t, res, def.ca.base+".crt"), nil)
				if err := ca.Check(cert, nil, r.identity(def), now, 0); err != nil {
					t.Errorf("%s: %v", leaf, err)
				}
			}
			// A run over the result changes nothing more.
			again := render(t, s, fsOf(res.Files))
			for _, f := range again.Files {
				if data, _ := res.Lookup(f.Path); !bytes.Equal(data, f.Data) {
					t.Errorf("%s changed on the next run", f.Path)
				}
			}
			if again.Certificates.Reused != 10 {
				t.Errorf("next run: %s", again.Summary())
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestLeafCappedByCA(t *testing.T) {
	spec := testSpec(t)
	spec.CAValidity = 100 * 24 * time.Hour
	first := render(t, spec, nil)
	ca := certOf(t, first, "ca.crt")
	if got := certOf(t, first, "apiserver.crt").NotAfter; !got.Equal(ca.NotAfter) {
		t.Errorf("apiserver NotAfter %s, want the CA's %s", got, ca.NotAfter)
	}
	// 90 days on, the leaf is within its renewal window, but a new one
	// would expire with the CA just the same: keep it, warn about the CA.
	second := render(t, at(spec, testNow.Add(90*24*time.Hour)), fsOf(first.Files))
	if second.Certificates.Reused != 10 {
		t.Errorf("second run: %s", second.Summary())
	}
	if !strings.Contains(strings.Join(second.Warnings, "\n"), "certs: ca: /etc/kubernetes/pki/ca.crt expires at") {
		t.Errorf("warnings %q", second.Warnings)
	}
}

func TestBackupNameNeverOverwrites(t *testing.T) {
	spec := at(testSpec(t), laterNow)
	base := fsOf(render(t, spec, nil).Files)
	old := []byte("an earlier backup")
	m := with(base, "apiserver.crt.bak-"+laterStamp, old)
	spec.APIServerCertSANs = append(spec.APIServerCertSANs, "10.0.0.6")
	res := render(t, spec, m)
	if _, ok := res.Lookup(pkiPath("apiserver.crt.bak-" + laterStamp)); ok {
		t.Error("existing backup overwritten")
	}
	if data, ok := res.Lookup(pkiPath("apiserver.crt.bak-" + laterStamp + ".1")); !ok || !bytes.Equal(data, base["etc/kubernetes/pki/apiserver.crt"].Data) {
		t.Error("no backup under a fresh name")
	}
}

func TestExternalCA(t *testing.T) {
	spec := testSpec(t)
	first := render(t, spec, nil)
	base := fsOf(first.Files)
	foreign := fsOf(render(t, spec, nil).Files)

	t.Run("leaves provided", func(t *testing.T) {
		res := render(t, at(spec, laterNow), without(base, "ca.key"))
		if _, ok := res.Lookup(pkiPath("ca.key")); ok {
			t.Error("ca.key appeared")
		}
		for _, n := range []string{"ca", "apiserver", "apiserver-kubelet-client"} {
			if o, _ := outcomeOf(res, n); o.Action != Verified {
				t.Errorf("%s: %v, want verified", n, o.Action)
			}
		}
		if o, _ := outcomeOf(res, "front-proxy-client"); o.Action != Reused {
			t.Errorf("front-proxy-client: %v; other CAs are independent", o.Action)
		}
		for _, f := range res.Files {
			if !bytes.Equal(f.Data, base[strings.TrimPrefix(f.Path, "/")].Data) {
				t.Errorf("%s changed", f.Path)
			}
		}
		if len(res.Files) != len(first.Files)-1 {
			t.Errorf("%d files, want %d", len(res.Files), len(first.Files)-1)
		}
	})

	t.Run("front-proxy CA alone external", func(t *testing.T) {
		res := render(t, spec, without(base, "front-proxy-ca.key"))
		for n, want := range map[string]Action{"ca": Reused, "front-proxy-ca": Verified, "front-proxy-client": Verified, "etcd-ca": Reused} {
			if o, _ := outcomeOf(res, n); o.Action != want {
				t.Errorf("%s: %v, want %v", n, o.Action, want)
			}
		}
	})

	for _, tc := range []struct {
		name string
		fsys fstest.MapFS
		spec func(*Spec)
		now  time.Time
		want []string
	}{
		{name: "leaves missing", fsys: without(base, "ca.key", "apiserver.crt", "apiserver-kubelet-client.key"), want: []string{
			"certs: apiserver: external CA (/etc/kubernetes/pki/ca.crt without its key): /etc/kubernetes/pki/apiserver.crt must be provided",
			"certs: apiserver-kubelet-client: external CA (/etc/kubernetes/pki/ca.crt without its key): /etc/kubernetes/pki/apiserver-kubelet-client.key must be provided"}},
		{name: "SANs not covered", fsys: without(base, "ca.key"), spec: func(s *Spec) { s.APIServerCertSANs = []string{"10.0.0.99"} },
			want: []string{"certs: apiserver: external CA (/etc/kubernetes/pki/ca.crt without its key): /etc/kubernetes/pki/apiserver.crt lacks SAN 10.0.0.99"}},
		{name: "signed by another CA", fsys: with(with(without(base, "etcd/ca.key"), "etcd/peer.crt", foreign["etc/kubernetes/pki/etcd/peer.crt"].Data), "etcd/peer.key", foreign["etc/kubernetes/pki/etcd/peer.key"].Data),
			want: []string{"certs: etcd-peer: external CA (/etc/kubernetes/pki/etcd/ca.crt without its key): /etc/kubernetes/pki/etcd/peer.crt is not signed by /etc/kubernetes/pki/etcd/ca.crt"}},
		{name: "key does not match", fsys: with(without(base, "front-proxy-ca.key"), "front-proxy-client.key", foreign["etc/kubernetes/pki/front-proxy-client.key"].Data),
			want: []string{"/etc/kubernetes/pki/front-proxy-client.key does not match /etc/kubernetes/pki/front-proxy-client.crt"}},
		{name: "expired", fsys: without(base, "ca.key"), now: testNow.Add(DefaultValidity + time.Hour),
			want: []string{"/etc/kubernetes/pki/apiserver.crt expired at", "/etc/kubernetes/pki/apiserver-kubelet-client.crt expired at"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := spec
			if tc.spec != nil {
				tc.spec(&s)
			}
			if !tc.now.IsZero() {
				s = at(s, tc.now)
			}
			_, err := Render(s, tc.fsys)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

func TestServiceAccountKey(t *testing.T) {
	spec := at(testSpec(t), laterNow)
	base := fsOf(render(t, spec, nil).Files)
	oldKey := base["etc/kubernetes/pki/sa.key"].Data
	p384, _ := ECDSAP384.GenerateKey()
	p384PEM, _ := EncodeKey(p384)
	otherPub, _ := EncodePublicKey(p384.Public())

	for _, tc := range []struct {
		name    string
		fsys    fstest.MapFS
		action  Action
		backup  bool
		keyKept bool
		warn    string
		errWant string
	}{
		{name: "pub mismatched", fsys: with(base, "sa.pub", otherPub), action: Reissued, backup: true, keyKept: true},
		{name: "pub missing", fsys: without(base, "sa.pub"), action: Reissued, keyKept: true},
		{name: "key missing", fsys: without(base, "sa.key"), action: Created, backup: true},
		{name: "key of another algorithm kept", fsys: without(with(base, "sa.key", p384PEM), "sa.pub"), action: Reissued,
			warn: "certs: sa: /etc/kubernetes/pki/sa.key keeps its ECDSA-P384 key"},
		{name: "key unparsable", fsys: with(base, "sa.key", []byte("nope")), errWant: "certs: sa: existing /etc/kubernetes/pki/sa.key: no PEM private key block"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Render(spec, tc.fsys)
			if tc.errWant != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errWant) {
					t.Fatalf("error %v, want %q", err, tc.errWant)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o, _ := outcomeOf(res, "sa"); o.Action != tc.action {
				t.Errorf("sa: %v, want %v", o.Action, tc.action)
			}
			if _, ok := res.Lookup(pkiPath("sa.pub.bak-" + laterStamp)); ok != tc.backup {
				t.Errorf("backup of sa.pub: %v, want %v", ok, tc.backup)
			}
			if kept := bytes.Equal(fileData(t, res, "sa.key"), oldKey); kept != tc.keyKept {
				t.Errorf("sa.key kept: %v, want %v", kept, tc.keyKept)
			}
			key, _ := ParseKey(fileData(t, res, "sa.key"))
			pub, err := ParsePublicKey(fileData(t, res, "sa.pub"))
			if err != nil || !KeyMatches(key, pub) {
				t.Error("sa.pub does not match sa.key")
			}
			if tc.warn != "" && !strings.Contains(strings.Join(res.Warnings, "\n"), tc.warn) {
				t.Errorf("warnings %q, want %q", res.Warnings, tc.warn)
			}
		})
	}
}
