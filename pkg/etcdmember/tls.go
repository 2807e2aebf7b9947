package etcdmember

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// ClientTLS loads what a client needs to reach etcd: the etcd CA that
// signed the members' serving certificates, and a client certificate and
// key it trusts. kubeadm uses /etc/kubernetes/pki/etcd/ca.crt with
// apiserver-etcd-client.crt/.key (or etcd/healthcheck-client.crt/.key).
func ClientTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("etcd TLS: CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("etcd TLS: CA %s: no PEM certificate in it", caFile)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("etcd TLS: client certificate %s with key %s: %w", certFile, keyFile, err)
	}
	return &tls.Config{
		RootCAs:      pool,
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
	}, nil
}
