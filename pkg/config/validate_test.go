package config

import (
	"strings"
	"testing"

	"filippo.io/age"
)

// TestBootSecretsNotEchoed: an invalid join identity, join secret or
// credential-carrying URL is reported by field, never quoted, by init's
// and join's loaders alike (errors end up in logs and on consoles).
func TestBootSecretsNotEchoed(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	// One character off: the Bech32 checksum fails, the rest is a real key.
	good := id.String()
	bad := good[:len(good)-1] + map[bool]string{true: "Q", false: "P"}[good[len(good)-1] != 'Q']
	const secret = `{"token":"abcdef.0123456789abcdef","certificateKey":"` + "0011223344556677889900112233445566778899001122334455667788990011" + `"}`
	const boot = "apiVersion: kubeboot.dev/v1alpha1\nkind: BootConfiguration\n"
	for _, tc := range []struct {
		name, boot, field string
		leaks             []string
	}{
		{"identity", "join: {identity: " + bad + "}\n", "join.identity", []string{strings.TrimPrefix(bad, "AGE-SECRET-KEY-1")}},
		{"identity with spaces", "join: {identity: \"  " + bad + "x\"}\n", "join.identity", []string{strings.TrimPrefix(bad, "AGE-SECRET-KEY-1")}},
		{"secret beside a source", "join: {source: /run/j.json, secret: '" + secret + "'}\n", "join.secret", []string{"0123456789abcdef", "00112233"}},
		{"source URL with a password", "join: {source: \"ftp://user:hunter2@meta/join?sig=s3cr3t\"}\n", "join.source", []string{"hunter2", "s3cr3t"}},
		{"rendezvous URL with a signature", "cluster: {rendezvous: {url: \"s3://AKIA:hunter2@bucket/c?X-Amz-Signature=s3cr3t\"}}\n", "cluster.rendezvous.url", []string{"hunter2", "s3cr3t"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A valid identity is accepted: the failure is the key's, not the field's.
			if _, err := Load("init.yaml", []byte(boot+"join: {identity: "+good+"}\n")); err != nil {
				t.Fatalf("valid identity refused: %v", err)
			}
			_, initErr := Load("init.yaml", []byte(boot+tc.boot))
			_, joinErr := LoadJoin("join.yaml", []byte(boot+tc.boot))
			for flow, err := range map[string]error{"init": initErr, "join": joinErr} {
				if err == nil {
					t.Errorf("%s: accepted", flow)
					continue
				}
				if !strings.Contains(err.Error(), tc.field+": ") {
					t.Errorf("%s: error does not name %s: %v", flow, tc.field, err)
				}
				for _, leak := range tc.leaks {
					if strings.Contains(err.Error(), leak) {
						t.Errorf("%s: error shows the secret %q: %v", flow, leak, err)
					}
				}
			}
		})
	}
}
