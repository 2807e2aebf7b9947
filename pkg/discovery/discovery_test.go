package discovery

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	"k8s.io/cluster-bootstrap/token/jws"
)

const (
	testToken  = "abcdef.0123456789abcdef"
	testID     = "abcdef"
	testSecret = "0123456789abcdef"
)

type ca struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T, name string) *ca {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &ca{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// serving issues an API server certificate for the addresses.
func (c *ca) serving(t *testing.T, ips ...net.IP) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: ips,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, key.Public(), c.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func kubeconfig(t *testing.T, server string, caPEM []byte) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters[""] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	data, err := clientcmd.Write(*kc)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func clusterInfo(kubeconfig string, sigs map[string]string) *corev1.ConfigMap {
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: "cluster-info", Namespace: "kube-public"},
		Data:       map[string]string{bootstrapapi.KubeConfigKey: kubeconfig},
	}
	for id, sig := range sigs {
		cm.Data[bootstrapapi.JWSSignatureKeyPrefix+id] = sig
	}
	return cm
}

func sign(t *testing.T, content, id, secret string) string {
	t.Helper()
	sig, err := jws.ComputeDetachedSignature(content, id, secret)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// apiServer is a TLS server with a certificate from its CA that serves
// cluster-info; answer decides each response (n counts from 1).
type apiServer struct {
	*httptest.Server
	ca       *ca
	endpoint string
	reads    atomic.Int32
}

func newAPIServer(t *testing.T, answer func(s *apiServer, n int, w http.ResponseWriter), sans ...net.IP) *apiServer {
	t.Helper()
	s := &apiServer{ca: newCA(t, "kubernetes")}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != clusterInfoPath || r.Header.Get("Authorization") != "" {
			http.Error(w, "unexpected request", http.StatusBadRequest)
			return
		}
		answer(s, int(s.reads.Add(1)), w)
	}))
	if sans == nil {
		sans = []net.IP{net.ParseIP("127.0.0.1")}
	}
	s.Server.TLS = &tls.Config{Certificates: []tls.Certificate{s.ca.serving(t, sans...)}}
	s.StartTLS()
	t.Cleanup(s.Close)
	s.endpoint = strings.TrimPrefix(s.URL, "https://")
	return s
}

func writeCM(w http.ResponseWriter, cm *corev1.ConfigMap) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(cm)
}

// signedBy serves a cluster-info naming the server's CA, signed with the token.
func signedBy(t *testing.T, id, secret string) func(*apiServer, int, http.ResponseWriter) {
	return func(s *apiServer, _ int, w http.ResponseWriter) {
		kc := kubeconfig(t, "https://"+s.endpoint, s.ca.pem)
		writeCM(w, clusterInfo(kc, map[string]string{id: sign(t, kc, id, secret)}))
	}
}

func TestByToken(t *testing.T) {
	good := signedBy(t, testID, testSecret)
	otherCA := newCA(t, "other")
	for _, tc := range []struct {
		name    string
		answer  func(*apiServer, int, http.ResponseWriter)
		token   string
		hashes  func(s *apiServer) []string // default: the server CA's hash
		unsafe  bool
		timeout time.Duration
		sans    []net.IP // of the serving certificate; default 127.0.0.1
		want    error    // nil: success
		says    []string // the error names these
	}{
		{name: "good token", answer: good},
		{name: "hash in upper case among others", answer: good, hashes: func(s *apiServer) []string {
			return []string{Hash(otherCA.cert), strings.ToUpper(Hash(s.ca.cert))}
		}},
		{name: "signature appears after a while", answer: func(s *apiServer, n int, w http.ResponseWriter) {
			if n < 3 {
				writeCM(w, clusterInfo(kubeconfig(t, "https://"+s.endpoint, s.ca.pem), nil))
				return
			}
			good(s, n, w)
		}},
		{name: "apiserver starting", answer: func(s *apiServer, n int, w http.ResponseWriter) {
			if n < 3 {
				http.Error(w, "forbidden", http.StatusForbidden)
				return
			}
			good(s, n, w)
		}},
		{name: "wrong secret", answer: good, token: testID + ".ffffffffffffffff",
			want: ErrBadSignature, says: []string{`token ID "abcdef"`, "secret is wrong"}},
		{name: "unknown token ID", answer: signedBy(t, "zzzzzz", testSecret), timeout: 3 * time.Second,
			want: ErrUnknownToken, says: []string{`no signature for token ID "abcdef"`, "may have expired", "kubeadm token create", "kubeboot init phase bootstrap-token", "gave up after 3s"}},
		{name: "tampered kubeconfig", answer: func(s *apiServer, _ int, w http.ResponseWriter) {
			kc := kubeconfig(t, "https://"+s.endpoint, s.ca.pem)
			sig := sign(t, kc, testID, testSecret)
			writeCM(w, clusterInfo(strings.Replace(kc, s.endpoint, "192.0.2.66:6443", 1), map[string]string{testID: sig}))
		}, want: ErrBadSignature, says: []string{"altered"}},
		{name: "wrong hash", answer: good, hashes: func(*apiServer) []string { return []string{Hash(otherCA.cert)} },
			want: ErrCAHashMismatch, says: []string{"expected " + Hash(otherCA.cert)}},
		{name: "unsafe skip without hashes", answer: good, hashes: func(*apiServer) []string { return nil }, unsafe: true},
		{name: "unsafe skip still checks given hashes", answer: good, unsafe: true,
			hashes: func(*apiServer) []string { return []string{Hash(otherCA.cert)} }, want: ErrCAHashMismatch},
		{name: "server certificate not from the signed CA", answer: func(s *apiServer, _ int, w http.ResponseWriter) {
			kc := kubeconfig(t, "https://"+s.endpoint, otherCA.pem)
			writeCM(w, clusterInfo(kc, map[string]string{testID: sign(t, kc, testID, testSecret)}))
		}, hashes: func(*apiServer) []string { return []string{Hash(otherCA.cert)} },
			want: ErrUntrustedServer, says: []string{"unknown authority", "not from the cluster CA"}},
		{name: "endpoint not in the certificate's SANs", answer: good, sans: []net.IP{net.ParseIP("192.0.2.10")},
			want: ErrUntrustedServer, says: []string{"127.0.0.1", "apiServer.certSANs"}},
		{name: "second read differs", answer: func(s *apiServer, n int, w http.ResponseWriter) {
			server := "https://" + s.endpoint
			if n > 1 {
				server = "https://192.0.2.66:6443"
			}
			kc := kubeconfig(t, server, s.ca.pem)
			writeCM(w, clusterInfo(kc, map[string]string{testID: sign(t, kc, testID, testSecret)}))
		}, want: ErrChanged},
		{name: "no cluster-info", answer: func(_ *apiServer, _ int, w http.ResponseWriter) {
			http.Error(w, `{"kind":"Status","code":404}`, http.StatusNotFound)
		}, timeout: 3 * time.Second, want: ErrNoClusterInfo, says: []string{"404", "gave up"}},
		{name: "anonymous forbidden", answer: func(_ *apiServer, _ int, w http.ResponseWriter) {
			http.Error(w, `{"kind":"Status","code":403}`, http.StatusForbidden)
		}, timeout: 3 * time.Second, want: ErrNoClusterInfo, says: []string{"anonymous", "kubeadm:bootstrap-signer-clusterinfo"}},
		{name: "not an API server", answer: func(_ *apiServer, _ int, w http.ResponseWriter) {
			w.Write([]byte("<html>hello</html>"))
		}, want: ErrNoClusterInfo, says: []string{"not with a ConfigMap"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newAPIServer(t, tc.answer, tc.sans...)
			hashes := []string{Hash(s.ca.cert)}
			if tc.hashes != nil {
				hashes = tc.hashes(s)
			}
			token := testToken
			if tc.token != "" {
				token = tc.token
			}
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 10 * time.Second
			}
			cfg, err := ByToken(context.Background(), s.endpoint, token, hashes, tc.unsafe, timeout)
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				c, err := Cluster(cfg)
				if err != nil || string(c.CertificateAuthorityData) != string(s.ca.pem) || c.Server != "https://"+s.endpoint {
					t.Fatalf("cluster %+v, %v", c, err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			for _, sentinel := range []error{ErrUnreachable, ErrNoClusterInfo, ErrUnknownToken, ErrBadSignature, ErrCAHashMismatch, ErrUntrustedServer, ErrChanged} {
				if sentinel != tc.want && errors.Is(err, sentinel) {
					t.Errorf("error is also %v", sentinel)
				}
			}
			for _, want := range tc.says {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not say %q: %v", want, err)
				}
			}
			_, secret, _ := strings.Cut(token, ".")
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error shows the token secret: %v", err)
			}
			t.Log(err)
		})
	}
}

func TestByTokenUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := l.Addr().String()
	l.Close()
	start := time.Now()
	_, err = ByToken(context.Background(), endpoint, testToken, []string{Hash(newCA(t, "x").cert)}, false, 600*time.Millisecond)
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("got %v, want ErrUnreachable", err)
	}
	if d := time.Since(start); d < 500*time.Millisecond || d > 10*time.Second {
		t.Errorf("gave up after %s, want about the 600ms timeout", d)
	}
	for _, want := range []string{endpoint, "connection refused", "gave up after 600ms"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q: %v", want, err)
		}
	}
	t.Log(err)
}

func TestByTokenCanceled(t *testing.T) {
	s := newAPIServer(t, signedBy(t, "zzzzzz", testSecret))
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	_, err := ByToken(ctx, s.endpoint, testToken, []string{Hash(s.ca.cert)}, false, time.Minute)
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrUnknownToken) {
		t.Fatalf("got %v", err)
	}
}

func TestByTokenInputs(t *testing.T) {
	hash := []string{Hash(newCA(t, "x").cert)}
	for _, tc := range []struct {
		name, endpoint, token string
		hashes                []string
		says                  string
	}{
		{"malformed token", "127.0.0.1:6443", "abcdef.0123456789ABCDEF", hash, "invalid bootstrap token"},
		{"no hash", "127.0.0.1:6443", testToken, nil, "unsafeSkipCAVerification"},
		{"bad hash", "127.0.0.1:6443", testToken, []string{"sha1:abcd"}, `invalid CA hash "sha1:abcd"`},
		{"short hash", "127.0.0.1:6443", testToken, []string{"sha256:abcd"}, `invalid CA hash "sha256:abcd"`},
		{"no port", "127.0.0.1", testToken, hash, `invalid API server endpoint "127.0.0.1"`},
		{"path", "127.0.0.1:6443/x", testToken, hash, "invalid API server endpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ByToken(context.Background(), tc.endpoint, tc.token, tc.hashes, false, time.Second)
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("got %v, want %q", err, tc.says)
			}
			if strings.Contains(err.Error(), "0123456789") {
				t.Errorf("error shows the token: %v", err)
			}
		})
	}
	// https:// in front of the endpoint is accepted.
	s := newAPIServer(t, signedBy(t, testID, testSecret))
	if _, err := ByToken(context.Background(), "https://"+s.endpoint+"/", testToken, []string{Hash(s.ca.cert)}, false, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestByFile(t *testing.T) {
	dir := t.TempDir()
	c := newCA(t, "kubernetes")
	os.WriteFile(filepath.Join(dir, "ca.crt"), c.pem, 0o644)
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A relative CA path is relative to the kubeconfig, and gets embedded.
	good := write("good.conf", `apiVersion: v1
kind: Config
clusters:
- name: kubernetes
  cluster: {server: "https://192.0.2.10:6443", certificate-authority: ca.crt}
users:
- name: bootstrap
  user: {token: abcdef.0123456789abcdef}
contexts:
- name: join
  context: {cluster: kubernetes, user: bootstrap}
current-context: join
`)
	cfg, err := ByFile(good)
	if err != nil {
		t.Fatal(err)
	}
	cl, _ := Cluster(cfg)
	if string(cl.CertificateAuthorityData) != string(c.pem) || cl.CertificateAuthority != "" {
		t.Errorf("CA not embedded: %+v", cl)
	}
	if cfg.AuthInfos["bootstrap"].Token != testToken {
		t.Errorf("credentials lost")
	}
	for _, tc := range []struct{ name, content, says string }{
		{"no cluster", "apiVersion: v1\nkind: Config\n", "0 clusters"},
		{"no CA", "apiVersion: v1\nkind: Config\nclusters:\n- name: a\n  cluster: {server: \"https://192.0.2.10:6443\"}\n", "no certificate-authority-data"},
		{"missing CA file", "apiVersion: v1\nkind: Config\nclusters:\n- name: a\n  cluster: {server: \"https://192.0.2.10:6443\", certificate-authority: nope.crt}\n", "nope.crt"},
		{"http server", "apiVersion: v1\nkind: Config\nclusters:\n- name: a\n  cluster: {server: \"http://192.0.2.10:6443\", certificate-authority: ca.crt}\n", "expected https://host:port"},
		{"dangling context", "apiVersion: v1\nkind: Config\ncurrent-context: x\n", `current context "x"`},
		{"not yaml", "{{{", "bad.conf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ByFile(write("bad.conf", tc.content))
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("got %v, want %q", err, tc.says)
			}
		})
	}
	if _, err := ByFile(filepath.Join(dir, "missing.conf")); err == nil || !strings.Contains(err.Error(), "missing.conf") {
		t.Errorf("missing file: %v", err)
	}
}
