// Package joinsecret is what init publishes so that other machines can
// join: the API endpoint, a bootstrap token, the CA's public-key hash and,
// for control-plane joins, the certificate key. It is a small versioned
// JSON document written to each configured sink.
package joinsecret

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

const (
	APIVersion = "kubeboot.dev/v1alpha1"
	Kind       = "JoinSecret"
)

// Secret is the document. Token and CertificateKey are secrets: never log
// a Secret, use Redacted.
type Secret struct {
	APIVersion        string    `json:"apiVersion"`
	Kind              string    `json:"kind"`
	ClusterName       string    `json:"clusterName"`
	APIServerEndpoint string    `json:"apiServerEndpoint"`
	Token             string    `json:"token"`
	TokenExpires      time.Time `json:"tokenExpires,omitzero"`
	CACertHashes      []string  `json:"caCertHashes"`
	CertificateKey    string    `json:"certificateKey,omitempty"`
	KubernetesVersion string    `json:"kubernetesVersion"`
	Created           time.Time `json:"created"`
}

// New fills the type fields.
func New() Secret { return Secret{APIVersion: APIVersion, Kind: Kind} }

// Marshal encodes the document.
func (s Secret) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Parse decodes a document, refusing versions it does not know.
func Parse(source string, data []byte) (Secret, error) {
	var s Secret
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return Secret{}, fmt.Errorf("join secret from %s: %w", source, err)
	}
	if s.APIVersion != APIVersion || s.Kind != Kind {
		return Secret{}, fmt.Errorf("join secret from %s: unsupported document %s %s (expected %s %s)", source, s.APIVersion, s.Kind, APIVersion, Kind)
	}
	if s.APIServerEndpoint == "" || s.Token == "" || len(s.CACertHashes) == 0 {
		return Secret{}, fmt.Errorf("join secret from %s: apiServerEndpoint, token and caCertHashes are required", source)
	}
	return s, nil
}

// Redacted is safe to print: the token keeps only its public ID.
func (s Secret) Redacted() Secret {
	if id, _, ok := strings.Cut(s.Token, "."); ok {
		s.Token = id + ".<redacted>"
	} else if s.Token != "" {
		s.Token = "<redacted>"
	}
	if s.CertificateKey != "" {
		s.CertificateKey = "<redacted>"
	}
	return s
}

// JoinCommands are the kubeadm-style commands a person would run; the
// secret parts are shown only when reveal is set (never in logs).
func (s Secret) JoinCommands(reveal bool) (worker, controlPlane string) {
	v := s
	if !reveal {
		v = s.Redacted()
	}
	worker = fmt.Sprintf("kubeadm join %s --token %s", v.APIServerEndpoint, v.Token)
	for _, h := range v.CACertHashes {
		worker += " --discovery-token-ca-cert-hash " + h
	}
	if v.CertificateKey != "" {
		controlPlane = worker + " --control-plane --certificate-key " + v.CertificateKey
	}
	return worker, controlPlane
}
