package encryption

import (
	"encoding/base64"
	"errors"
	"fmt"
	"slices"

	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Parse decodes an EncryptionConfiguration strictly and checks what the
// apiserver checks of its providers and keys. Errors never include a key.
func Parse(data []byte) (*apiserverv1.EncryptionConfiguration, error) {
	var c apiserverv1.EncryptionConfiguration
	j, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, err
	}
	strictErrs, err := kjson.UnmarshalStrict(j, &c)
	if err != nil {
		return nil, err
	}
	if len(strictErrs) > 0 {
		return nil, errors.Join(strictErrs...)
	}
	if c.APIVersion != apiVersion || c.Kind != kind {
		return nil, fmt.Errorf("want apiVersion %s and kind %s, got %q and %q", apiVersion, kind, c.APIVersion, c.Kind)
	}
	if len(c.Resources) == 0 {
		return nil, errors.New("resources: at least one entry is required")
	}
	var errs []error
	for i, r := range c.Resources {
		p := fmt.Sprintf("resources[%d]", i)
		if len(r.Resources) == 0 {
			errs = append(errs, fmt.Errorf("%s.resources: at least one resource is required", p))
		}
		if len(r.Providers) == 0 {
			errs = append(errs, fmt.Errorf("%s.providers: at least one provider is required", p))
		}
		for j, pc := range r.Providers {
			if err := checkProvider(pc); err != nil {
				errs = append(errs, fmt.Errorf("%s.providers[%d]: %w", p, j, err))
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &c, nil
}

// providerType names the one provider set in p, "" if not exactly one.
func providerType(p apiserverv1.ProviderConfiguration) string {
	var names []string
	if p.AESGCM != nil {
		names = append(names, "aesgcm")
	}
	if p.AESCBC != nil {
		names = append(names, AESCBC)
	}
	if p.Secretbox != nil {
		names = append(names, Secretbox)
	}
	if p.Identity != nil {
		names = append(names, "identity")
	}
	if p.KMS != nil {
		names = append(names, "kms")
	}
	if len(names) != 1 {
		return ""
	}
	return names[0]
}

func checkProvider(p apiserverv1.ProviderConfiguration) error {
	switch providerType(p) {
	case "":
		return errors.New("exactly one of aesgcm, aescbc, secretbox, identity or kms must be set")
	case "aesgcm":
		return checkKeys("aesgcm", p.AESGCM.Keys, 16, 24, 32)
	case AESCBC:
		return checkKeys(AESCBC, p.AESCBC.Keys, 16, 24, 32)
	case Secretbox:
		return checkKeys(Secretbox, p.Secretbox.Keys, 32)
	case "kms":
		if p.KMS.Name == "" || p.KMS.Endpoint == "" {
			return errors.New("kms: name and endpoint are required")
		}
	}
	return nil
}

func checkKeys(provider string, keys []apiserverv1.Key, sizes ...int) error {
	if len(keys) == 0 {
		return fmt.Errorf("%s.keys: at least one key is required", provider)
	}
	names := map[string]bool{}
	for i, k := range keys {
		p := fmt.Sprintf("%s.keys[%d]", provider, i)
		if k.Name == "" {
			return fmt.Errorf("%s.name: required", p)
		}
		if names[k.Name] {
			return fmt.Errorf("%s.name: %q used twice", p, k.Name)
		}
		names[k.Name] = true
		secret, err := base64.StdEncoding.DecodeString(k.Secret)
		if err != nil || k.Secret == "" {
			return fmt.Errorf("%s.secret: must be a non-empty base64 string", p)
		}
		if !slices.Contains(sizes, len(secret)) {
			return fmt.Errorf("%s.secret: %d bytes, want %v", p, len(secret), sizes)
		}
	}
	return nil
}
