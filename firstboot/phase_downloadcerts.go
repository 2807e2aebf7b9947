package firstboot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeboot/kubeboot/pkg/encryption"
	"github.com/kubeboot/kubeboot/pkg/postinstall"
	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

var downloadCertsPhase = Phase{
	Name:  "download-certs",
	Short: "Download the shared certificates from kube-system/kubeadm-certs and decrypt them with the certificate key",
	// Runs every time, but reads the cluster only while a file is missing:
	// kubeadm-certs expires two hours after its upload.
	Render: func(ctx context.Context, r *Run) (Output, error) {
		shared := postinstall.SharedCerts(r.Cfg.Cluster.CertificatesDir, r.Cfg.Cluster.Etcd.External != nil)
		local := map[string][]byte{}
		for name, p := range shared {
			data, err := r.readOptional(p)
			if err != nil {
				return Output{}, err
			}
			if data != nil {
				local[name] = data
			}
		}
		if len(local) == len(shared) {
			if err := r.followClusterEncryption(nil); err != nil {
				return Output{}, err
			}
			return Output{Summary: fmt.Sprintf("%d shared files already present", len(shared))}, nil
		}
		cp := r.Join.Join.ControlPlane
		if cp == nil || cp.CertificateKey == "" {
			return Output{}, errors.New("no certificate key: a control-plane join needs the key that decrypts kube-system/kubeadm-certs (--certificate-key, controlPlane.certificateKey, or a join secret that carries one)")
		}
		key, err := postinstall.ParseCertificateKey(cp.CertificateKey)
		if err != nil {
			return Output{}, err
		}
		info, err := r.clusterInfoConfig()
		if err != nil {
			return Output{}, err
		}
		client, err := r.bootstrapClients(info)
		if err != nil {
			return Output{}, err
		}
		var data map[string][]byte
		err = postinstall.Retry(ctx, r.Join.Join.Timeouts.KubernetesAPICall.Duration, nil, func(ctx context.Context) error {
			s, err := client.Typed.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, postinstall.KubeadmCertsSecret, metav1.GetOptions{})
			if apierrors.IsNotFound(err) || apierrors.IsForbidden(err) {
				return fmt.Errorf("kube-system/%s: %w: it lives two hours after an upload; upload the certificates again on a control-plane node (`kubeboot init phase upload-certs` or `kubeadm init phase upload-certs --upload-certs`) and use the new certificate key", postinstall.KubeadmCertsSecret, err)
			}
			if err != nil {
				return err
			}
			data = s.Data
			return nil
		})
		if err != nil {
			return Output{}, err
		}
		var files []rootfs.File
		var names []string
		for name, p := range shared {
			sealed, ok := data[name]
			if !ok {
				return Output{}, fmt.Errorf("kube-system/%s has no %s", postinstall.KubeadmCertsSecret, name)
			}
			plain, err := postinstall.Open(sealed, key)
			if err != nil {
				return Output{}, fmt.Errorf("kube-system/%s: the certificate key does not decrypt %s: check that the key belongs to the latest upload", postinstall.KubeadmCertsSecret, name)
			}
			if old, ok := local[name]; ok && !bytes.Equal(old, plain) {
				// An existing CA or key is never replaced.
				return Output{}, fmt.Errorf("%s exists and differs from the cluster's %s: this node holds another cluster's PKI; run `kubeboot reset` first", p, name)
			}
			files = append(files, sharedFile(p, plain))
			names = append(names, name)
		}
		if sealed, ok := data[postinstall.EncryptionConfigKey]; ok {
			plain, err := postinstall.Open(sealed, key)
			if err != nil {
				return Output{}, fmt.Errorf("kube-system/%s: the certificate key does not decrypt %s", postinstall.KubeadmCertsSecret, postinstall.EncryptionConfigKey)
			}
			files = append(files, rootfs.File{Path: encryption.ConfigPath, Mode: 0o600, Data: plain, Secret: true})
			names = append(names, "encryption configuration")
		}
		if err := r.followClusterEncryption(data[postinstall.EncryptionConfigKey]); err != nil {
			return Output{}, err
		}
		sort.Strings(names)
		return Output{Files: files, Summary: fmt.Sprintf("%d files: %s", len(files), strings.Join(names, ", "))}, nil
	},
}

// sharedFile is a downloaded file with the mode kubeadm gives it: keys
// 0600, certificates and public keys 0644.
func sharedFile(p string, data []byte) rootfs.File {
	if strings.HasSuffix(p, ".key") {
		return rootfs.File{Path: p, Mode: 0o600, Data: data, Secret: true}
	}
	return rootfs.File{Path: p, Mode: 0o644, Data: data}
}

// followClusterEncryption makes this API server encrypt Secrets exactly
// as the cluster's others do: with the configuration kubeadm-certs carried
// (or this node kept from an earlier run), or not at all when the cluster
// has none (a cluster kubeadm made). A key of its own would make Secrets
// it writes unreadable to the other API servers.
func (r *Run) followClusterEncryption(uploaded []byte) error {
	kept, err := r.readOptional(encryption.ConfigPath)
	if err != nil {
		return err
	}
	on := uploaded != nil || kept != nil
	if !on && r.Cfg.Boot.EncryptionAtRest.Enabled != nil && *r.Cfg.Boot.EncryptionAtRest.Enabled {
		r.warn("download-certs", "the cluster shares no encryption-at-rest configuration (kubeadm-certs has none): this API server does not encrypt Secrets either")
	}
	r.Cfg.Boot.EncryptionAtRest.Enabled = &on
	return nil
}
