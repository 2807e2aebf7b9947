package postinstall

import (
	"bytes"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cluster-bootstrap/token/jws"

	"github.com/kubeboot/kubeboot/pkg/config"
)

func TestResolveTokens(t *testing.T) {
	now := time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)
	ttl := &metav1.Duration{Duration: 24 * time.Hour}
	cfg := []config.BootstrapToken{{TTL: ttl, Usages: []string{"signing", "authentication"}, Groups: []string{BootstrapGroup}}}
	first, err := ResolveTokens(cfg, nil, now)
	if err != nil || len(first) != 1 || len(first[0].Value()) != 23 {
		t.Fatalf("%v %v", first, err)
	}
	state, _ := MarshalTokens(first)
	for _, tc := range []struct {
		name    string
		at      time.Time
		sameTok bool
		expires time.Time
	}{
		{"re-run keeps token and expiry", now.Add(time.Hour), true, now.Add(24 * time.Hour)},
		{"expired token is renewed", now.Add(25 * time.Hour), false, now.Add(49 * time.Hour)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			again, err := ResolveTokens(cfg, state, tc.at)
			if err != nil {
				t.Fatal(err)
			}
			if (again[0].Value() == first[0].Value()) != tc.sameTok || !again[0].Expires.Equal(tc.expires) {
				t.Errorf("token same=%v expires %s", again[0].Value() == first[0].Value(), again[0].Expires)
			}
		})
	}
	given := []config.BootstrapToken{{Token: "abcdef.0123456789abcdef", TTL: ttl}}
	got, _ := ResolveTokens(given, state, now)
	if got[0].Value() != "abcdef.0123456789abcdef" {
		t.Errorf("configured token replaced: %s", got[0].ID)
	}
	if strings.Contains(got[0].String(), "0123456789abcdef") {
		t.Errorf("String leaks the secret")
	}
}

func TestTokenSecret(t *testing.T) {
	s := TokenSecret(Token{ID: "abcdef", Secret: "0123456789abcdef", Expires: time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC),
		Usages: []string{"signing", "authentication"}, Groups: []string{BootstrapGroup}})
	want := map[string]string{
		"token-id": "abcdef", "token-secret": "0123456789abcdef", "expiration": "2026-11-30T08:00:00Z",
		"usage-bootstrap-signing": "true", "usage-bootstrap-authentication": "true", "auth-extra-groups": BootstrapGroup,
	}
	if s.Name != "bootstrap-token-abcdef" || s.Namespace != "kube-system" || s.Type != "bootstrap.kubernetes.io/token" {
		t.Errorf("%s/%s %s", s.Namespace, s.Name, s.Type)
	}
	for k, v := range want {
		if string(s.Data[k]) != v {
			t.Errorf("%s = %q, want %q", k, s.Data[k], v)
		}
	}
}

func TestClusterInfoSignature(t *testing.T) {
	tok := Token{ID: "abcdef", Secret: "0123456789abcdef", Usages: []string{"signing"}}
	objs, err := ClusterInfo("https://192.0.2.10:6443", []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), []Token{tok, {ID: "zzzzzz", Secret: "x", Usages: []string{"authentication"}}})
	if err != nil {
		t.Fatal(err)
	}
	cm := objs[0].(*corev1.ConfigMap)
	sig := cm.Data["jws-kubeconfig-abcdef"]
	if !jws.DetachedTokenIsValid(sig, cm.Data["kubeconfig"], "abcdef", "0123456789abcdef") {
		t.Errorf("signature does not verify")
	}
	if jws.DetachedTokenIsValid(sig, cm.Data["kubeconfig"]+" ", "abcdef", "0123456789abcdef") {
		t.Errorf("signature verifies tampered content")
	}
	if _, ok := cm.Data["jws-kubeconfig-zzzzzz"]; ok {
		t.Errorf("a token without the signing usage signed cluster-info")
	}
	if cm.Namespace != "kube-public" || !strings.Contains(cm.Data["kubeconfig"], "server: https://192.0.2.10:6443") {
		t.Errorf("cluster-info: %+v", cm)
	}
}

func TestCertsSealOpen(t *testing.T) {
	keyHex, _ := NewCertificateKey()
	key, err := ParseCertificateKey(keyHex)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"ca.crt": []byte("cert"), "ca.key": []byte("key")}
	s, err := CertsSecret(files, key, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "bootstrap-token-aaaaaa", UID: "u1"}})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(s.Data["ca.key"], []byte("key")) {
		t.Errorf("not encrypted")
	}
	if !SameCerts(s, files, key) {
		t.Errorf("SameCerts false for the same files")
	}
	files["ca.key"] = []byte("other")
	if SameCerts(s, files, key) {
		t.Errorf("SameCerts true for changed files")
	}
	other, _ := NewCertificateKey()
	okey, _ := ParseCertificateKey(other)
	if _, err := Open(s.Data["ca.crt"], okey); err == nil {
		t.Errorf("opened with the wrong key")
	}
	if s.OwnerReferences[0].Name != "bootstrap-token-aaaaaa" || !*s.OwnerReferences[0].Controller {
		t.Errorf("owner %+v", s.OwnerReferences)
	}
	if _, err := ParseCertificateKey("abc"); err == nil {
		t.Errorf("short key accepted")
	}
}
