package discovery

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// ByFile takes the cluster from a kubeconfig file (kubeadm's
// discovery.file.kubeConfigPath): the file is trusted as it is. Files it
// refers to (certificate-authority, client-certificate, ...) are read and
// embedded, so that the result stands alone when written elsewhere, as
// bootstrap-kubelet.conf is. The cluster must have an https server and a CA.
func ByFile(path string) (*clientcmdapi.Config, error) {
	cfg, err := clientcmd.LoadFromFile(path)
	var perr *fs.PathError
	if errors.As(err, &perr) {
		return nil, fmt.Errorf("discovery: kubeconfig: %w", err) // names the path already
	}
	if err != nil {
		return nil, fmt.Errorf("discovery: kubeconfig %s: %w", path, err)
	}
	if err := clientcmdapi.FlattenConfig(cfg); err != nil {
		return nil, fmt.Errorf("discovery: kubeconfig %s: reading the files it names: %w", path, err)
	}
	cluster, err := Cluster(cfg)
	if err != nil {
		return nil, fmt.Errorf("discovery: kubeconfig %s: %w", path, err)
	}
	if u, err := url.Parse(cluster.Server); err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("discovery: kubeconfig %s: server %q: expected https://host:port", path, cluster.Server)
	}
	if _, err := caCerts(cluster); err != nil {
		return nil, fmt.Errorf("discovery: kubeconfig %s: cluster CA: %w", path, err)
	}
	return cfg, nil
}
