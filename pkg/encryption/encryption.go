// Package encryption renders encryption at rest for Secrets: the
// kube-apiserver's EncryptionConfiguration and the flag and volume that
// load it. kubeadm has no such phase; Talos turns secretbox on by default
// and so does kubeboot.
//
// A new configuration encrypts secrets with the configured provider
// (secretbox or aescbc) under a fresh 32-byte key from crypto/rand, with
// identity after it so that Secrets written before encryption was on stay
// readable:
//
//	resources:
//	- resources: [secrets]
//	  providers:
//	  - secretbox: {keys: [{name: key1, secret: <base64>}]}
//	  - identity: {}
//
// The key is the only way to read the Secrets stored with it, so an
// existing configuration is never thrown away:
//
//   - When it is valid and the first provider of the entry that covers
//     secrets is the configured one, it is returned byte for byte.
//   - When the configured provider changed, that entry gets the new
//     provider in front (the existing one of that type, keys and all, if
//     the list has one; else a new one with a fresh key) and keeps every
//     provider it had after it, so Secrets written with the old key stay
//     readable. New writes use the new provider; Secrets are re-encrypted
//     only when rewritten (kubectl get secrets -A -o json | kubectl
//     replace -f -). The other entries stay as they are.
//   - When it cannot be read, parsed or validated, or no entry covers
//     secrets, Render fails and names the file; it never overwrites it.
//   - When encryption is disabled but the file exists, Render fails too:
//     an apiserver started without it could not read the Secrets encrypted
//     so far. Decrypt them (put identity first and rewrite them), then
//     remove the file.
package encryption

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
	"sigs.k8s.io/yaml"

	"github.com/kubeboot/kubeboot/pkg/config"
	"github.com/kubeboot/kubeboot/pkg/manifests"
	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

const (
	// ConfigPath is the apiserver's --encryption-provider-config.
	ConfigPath = "/etc/kubernetes/encryption/config.yaml"

	// Providers kubeboot configures.
	Secretbox = "secretbox"
	AESCBC    = "aescbc"

	configMode = 0o600
	keySize    = 32
	keyName    = "key1"
	volumeName = "encryption-config"
	apiVersion = "apiserver.config.k8s.io/v1"
	kind       = "EncryptionConfiguration"
)

// Render returns the encryption configuration and the apiserver additions
// when boot.encryptionAtRest.enabled is true, reusing the configuration in
// existing (the host's root; nil when nothing exists) as the package
// documentation describes.
func Render(cfg *config.Config, existing fs.FS) ([]rootfs.File, manifests.APIServerAdditions, error) {
	return render(cfg, existing, rand.Reader)
}

func render(cfg *config.Config, existing fs.FS, random io.Reader) ([]rootfs.File, manifests.APIServerAdditions, error) {
	var none manifests.APIServerAdditions
	e := cfg.Boot.EncryptionAtRest
	old, err := readExisting(existing)
	if err != nil {
		return nil, none, err
	}
	if e.Enabled == nil || !*e.Enabled {
		if old != nil {
			return nil, none, fmt.Errorf("encryption: disabled, but %s exists: an apiserver without it cannot read the Secrets encrypted with it; keep encryption enabled, or decrypt the Secrets (identity first, rewrite them) and remove the file", ConfigPath)
		}
		return nil, none, nil
	}
	if e.Provider != Secretbox && e.Provider != AESCBC {
		return nil, none, fmt.Errorf("encryption: unknown provider %q (expected %s or %s)", e.Provider, Secretbox, AESCBC)
	}
	var data []byte
	if old == nil {
		key, err := newKey(random)
		if err != nil {
			return nil, none, err
		}
		data, err = marshal(&apiserverv1.EncryptionConfiguration{
			Resources: []apiserverv1.ResourceConfiguration{{
				Resources: []string{"secrets"},
				Providers: []apiserverv1.ProviderConfiguration{provider(e.Provider, key), {Identity: &apiserverv1.IdentityConfiguration{}}},
			}},
		})
		if err != nil {
			return nil, none, err
		}
	} else {
		data, err = update(old, e.Provider, random)
		if err != nil {
			return nil, none, err
		}
	}
	dir := path.Dir(ConfigPath)
	add := manifests.APIServerAdditions{
		Args: []config.Arg{{Name: "encryption-provider-config", Value: ConfigPath}},
		// The directory, not the file: a file bind mount would keep
		// showing the old inode after an atomic replace.
		Volumes: []config.HostPathMount{{Name: volumeName, HostPath: dir, MountPath: dir, ReadOnly: true, PathType: corev1.HostPathDirectory}},
	}
	return []rootfs.File{{Path: ConfigPath, Mode: configMode, Data: data, Secret: true}}, add, nil
}

// existingConfig is a configuration found on the host.
type existingConfig struct {
	data []byte
	cfg  *apiserverv1.EncryptionConfiguration
}

func readExisting(fsys fs.FS) (*existingConfig, error) {
	if fsys == nil {
		return nil, nil
	}
	data, err := rootfs.ReadFile(fsys, ConfigPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("encryption: %s: %w", ConfigPath, err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("encryption: %s is invalid, and is never overwritten since its keys may be the only way to read stored Secrets; fix or remove it: %w", ConfigPath, err)
	}
	return &existingConfig{data: data, cfg: c}, nil
}

// update returns the existing configuration unchanged when the entry for
// secrets writes with want, and otherwise puts a want provider in front.
func update(old *existingConfig, want string, random io.Reader) ([]byte, error) {
	c := old.cfg
	i := secretsEntry(c)
	if i < 0 {
		return nil, fmt.Errorf("encryption: %s has no entry for secrets; fix or remove it", ConfigPath)
	}
	providers := c.Resources[i].Providers
	if providerType(providers[0]) == want {
		return old.data, nil
	}
	var front apiserverv1.ProviderConfiguration
	rest := make([]apiserverv1.ProviderConfiguration, 0, len(providers))
	found := false
	for _, p := range providers {
		if !found && providerType(p) == want {
			front, found = p, true
			continue
		}
		rest = append(rest, p)
	}
	if !found {
		key, err := newKey(random)
		if err != nil {
			return nil, err
		}
		front = provider(want, key)
	}
	c.Resources[i].Providers = append([]apiserverv1.ProviderConfiguration{front}, rest...)
	return marshal(c)
}

// secretsEntry is the index of the entry the apiserver uses for secrets:
// the first that names them or a wildcard covering them.
func secretsEntry(c *apiserverv1.EncryptionConfiguration) int {
	for i, r := range c.Resources {
		for _, name := range r.Resources {
			if name == "secrets" || name == "*." || name == "*.*" {
				return i
			}
		}
	}
	return -1
}

func newKey(random io.Reader) ([]byte, error) {
	key := make([]byte, keySize)
	if _, err := io.ReadFull(random, key); err != nil {
		return nil, fmt.Errorf("encryption: generate key: %w", err)
	}
	return key, nil
}

func provider(name string, key []byte) apiserverv1.ProviderConfiguration {
	keys := []apiserverv1.Key{{Name: keyName, Secret: base64.StdEncoding.EncodeToString(key)}}
	if name == AESCBC {
		return apiserverv1.ProviderConfiguration{AESCBC: &apiserverv1.AESConfiguration{Keys: keys}}
	}
	return apiserverv1.ProviderConfiguration{Secretbox: &apiserverv1.SecretboxConfiguration{Keys: keys}}
}

func marshal(c *apiserverv1.EncryptionConfiguration) ([]byte, error) {
	c.TypeMeta = metav1.TypeMeta{APIVersion: apiVersion, Kind: kind}
	data, err := yaml.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encryption: marshal: %w", err)
	}
	return data, nil
}
