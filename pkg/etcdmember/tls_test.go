package etcdmember

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestClientTLS(t *testing.T) {
	p := newTestPKI(t)
	notPEM := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name          string
		ca, cert, key string
		err           string
	}{
		{name: "ok", ca: p.CA, cert: p.ClientCert, key: p.ClientKey},
		{name: "no CA", ca: p.CA + ".missing", cert: p.ClientCert, key: p.ClientKey, err: "ca.crt.missing"},
		{name: "CA not PEM", ca: notPEM, cert: p.ClientCert, key: p.ClientKey, err: notPEM + ": no PEM certificate"},
		{name: "key of another certificate", ca: p.CA, cert: p.ClientCert, key: p.ServerKey,
			err: "client certificate " + p.ClientCert + " with key " + p.ServerKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := ClientTLS(tt.ca, tt.cert, tt.key)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(cfg.Certificates) != 1 || cfg.RootCAs == nil {
				t.Errorf("got %d certificates, RootCAs %v", len(cfg.Certificates), cfg.RootCAs)
			}
		})
	}
}
