package postinstall

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"

	"github.com/kubeboot/kubeboot/pkg/config"
)

// Token is a resolved bootstrap token. It never prints its secret.
type Token struct {
	ID          string    `json:"id"`
	Secret      string    `json:"secret"`
	Expires     time.Time `json:"expires,omitzero"`
	Description string    `json:"description,omitempty"`
	Usages      []string  `json:"usages"`
	Groups      []string  `json:"groups"`
}

// Value is "id.secret", what `kubeadm join --token` takes.
func (t Token) Value() string { return bootstraputil.TokenFromIDAndSecret(t.ID, t.Secret) }

func (t Token) String() string { return t.ID + ".<redacted>" }

// TokensFile holds the tokens init resolved, 0600 in the state directory,
// so that a re-run neither invents new tokens nor moves their expiry.
const TokensFile = "bootstrap-tokens.json"

// ResolveTokens turns the configured tokens into concrete ones: a token
// given in the file is used as is, one left empty is generated, and the
// expiry of a TTL is fixed the first time. previous is the state file's
// contents from an earlier run, if any; tokens that expired are renewed.
func ResolveTokens(cfg []config.BootstrapToken, previous []byte, now time.Time) ([]Token, error) {
	var old []Token
	if len(previous) > 0 {
		_ = json.Unmarshal(previous, &old) // a torn file only means fresh tokens
	}
	out := make([]Token, 0, len(cfg))
	for i, ct := range cfg {
		t := Token{Description: ct.Description, Usages: ct.Usages, Groups: ct.Groups}
		switch {
		case ct.Token != "":
			id, secret, _ := strings.Cut(ct.Token, ".")
			t.ID, t.Secret = id, secret
		case i < len(old) && old[i].ID != "" && (old[i].Expires.IsZero() || old[i].Expires.After(now)):
			t.ID, t.Secret = old[i].ID, old[i].Secret
		default:
			v, err := bootstraputil.GenerateBootstrapToken()
			if err != nil {
				return nil, fmt.Errorf("generate bootstrap token: %w", err)
			}
			t.ID, t.Secret, _ = strings.Cut(v, ".")
		}
		switch {
		case ct.Expires != nil:
			t.Expires = ct.Expires.Time.UTC()
		case ct.TTL != nil && ct.TTL.Duration > 0:
			t.Expires = now.Add(ct.TTL.Duration).UTC().Truncate(time.Second)
			if i < len(old) && old[i].ID == t.ID && old[i].Secret == t.Secret && !old[i].Expires.IsZero() && old[i].Expires.After(now) {
				t.Expires = old[i].Expires
			}
		}
		out = append(out, t)
	}
	return out, nil
}

// MarshalTokens encodes the state file.
func MarshalTokens(ts []Token) ([]byte, error) {
	b, err := json.MarshalIndent(ts, "", "  ")
	return append(b, '\n'), err
}

// ParseTokens decodes the state file.
func ParseTokens(data []byte) ([]Token, error) {
	var ts []Token
	if err := json.Unmarshal(data, &ts); err != nil {
		return nil, fmt.Errorf("bootstrap token state: %w", err)
	}
	return ts, nil
}

// TokenSecret is the Secret kube-system/bootstrap-token-<id>.
func TokenSecret(t Token) *corev1.Secret {
	data := map[string][]byte{
		bootstrapapi.BootstrapTokenIDKey:     []byte(t.ID),
		bootstrapapi.BootstrapTokenSecretKey: []byte(t.Secret),
	}
	if t.Description != "" {
		data[bootstrapapi.BootstrapTokenDescriptionKey] = []byte(t.Description)
	}
	if !t.Expires.IsZero() {
		data[bootstrapapi.BootstrapTokenExpirationKey] = []byte(t.Expires.UTC().Format(time.RFC3339))
	}
	for _, u := range t.Usages {
		data[bootstrapapi.BootstrapTokenUsagePrefix+u] = []byte("true")
	}
	if len(t.Groups) > 0 {
		data[bootstrapapi.BootstrapTokenExtraGroupsKey] = []byte(strings.Join(t.Groups, ","))
	}
	return &corev1.Secret{
		TypeMeta:   secType,
		ObjectMeta: metav1.ObjectMeta{Name: bootstraputil.BootstrapTokenSecretName(t.ID), Namespace: metav1.NamespaceSystem},
		Type:       bootstrapapi.SecretTypeBootstrapToken,
		Data:       data,
	}
}
