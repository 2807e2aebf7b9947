package pki

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"net"
	"path"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func mustCIDR(t testing.TB, s string) *net.IPNet {
	t.Helper()
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func testSpec(t testing.TB) Spec {
	return Spec{
		NodeName:             "cp-1",
		AdvertiseAddress:     net.ParseIP("192.0.2.10"),
		ControlPlaneEndpoint: "cp.example.com:6443",
		ServiceSubnets:       []*net.IPNet{mustCIDR(t, "10.96.0.0/12"), mustCIDR(t, "fd00:10:96::/112")},
		DNSDomain:            "cluster.local",
		APIServerCertSANs:    []string{"10.0.0.5", "api.example.com", "*.apps.example.com"},
		EtcdServerCertSANs:   []string{"etcd.example.com"},
		EtcdPeerCertSANs:     []string{"198.51.100.7"},
		Now:                  func() time.Time { return testNow },
	}
}

func render(t testing.TB, spec Spec, existing fstest.MapFS) Result {
	t.Helper()
	var fsys = existing
	if existing == nil {
		fsys = fstest.MapFS{}
	}
	res, err := Render(spec, fsys)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	return res
}

// fsOf lays files out as a host root, as rootfs.Writer would.
func fsOf(files ...[]rootfs.File) fstest.MapFS {
	m := fstest.MapFS{}
	for _, fs := range files {
		for _, f := range fs {
			m[strings.TrimPrefix(f.Path, "/")] = &fstest.MapFile{Data: f.Data, Mode: f.Mode}
		}
	}
	return m
}

func pkiPath(name string) string { return path.Join(DefaultCertificatesDir, name) }

// without copies m without the named files (relative to the PKI dir).
func without(m fstest.MapFS, names ...string) fstest.MapFS {
	out := fstest.MapFS{}
	for k, v := range m {
		out[k] = v
	}
	for _, n := range names {
		delete(out, strings.TrimPrefix(pkiPath(n), "/"))
	}
	return out
}

// with copies m with the named file (relative to the PKI dir) set to data.
func with(m fstest.MapFS, name string, data []byte) fstest.MapFS {
	out := fstest.MapFS{}
	for k, v := range m {
		out[k] = v
	}
	out[strings.TrimPrefix(pkiPath(name), "/")] = &fstest.MapFile{Data: data, Mode: 0o600}
	return out
}

func fileData(t testing.TB, res Result, name string) []byte {
	t.Helper()
	data, ok := res.Lookup(pkiPath(name))
	if !ok {
		t.Fatalf("no file %s in result", pkiPath(name))
	}
	return data
}

func certOf(t testing.TB, res Result, name string) *x509.Certificate {
	t.Helper()
	certs, err := ParseCerts(fileData(t, res, name))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return certs[0]
}

func outcomeOf(res Result, name string) (Outcome, bool) {
	for _, o := range res.Outcomes {
		if o.Name == name {
			return o, true
		}
	}
	return Outcome{}, false
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
