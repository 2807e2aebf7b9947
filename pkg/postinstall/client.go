package postinstall

import (
	"fmt"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Clients talk to the API server as one kubeconfig's identity.
type Clients struct {
	Typed   kubernetes.Interface
	Dynamic dynamic.Interface
	Config  *rest.Config
}

// NewClients loads a kubeconfig file (a host path already mapped under the
// root prefix by the caller).
func NewClients(kubeconfigFile string) (*Clients, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfigFile)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", kubeconfigFile, err)
	}
	cfg.Timeout = 30 * time.Second
	// First boot talks to one local API server; client-side throttling only
	// adds latency here.
	cfg.QPS, cfg.Burst = 100, 200
	return ClientsFor(cfg)
}

// UseRotatingCert rewrites a kubelet.conf so that its user reads the
// kubelet's rotating certificate file instead of embedded data.
func UseRotatingCert(kubeconfig []byte, pemPath string) ([]byte, bool, error) {
	cfg, err := clientcmd.Load(kubeconfig)
	if err != nil {
		return nil, false, err
	}
	ctx, ok := cfg.Contexts[cfg.CurrentContext]
	if !ok {
		return nil, false, fmt.Errorf("no current context")
	}
	user, ok := cfg.AuthInfos[ctx.AuthInfo]
	if !ok {
		return nil, false, fmt.Errorf("no user %q", ctx.AuthInfo)
	}
	if user.ClientCertificate == pemPath && user.ClientKey == pemPath && len(user.ClientCertificateData) == 0 {
		return kubeconfig, false, nil
	}
	user.ClientCertificate, user.ClientKey = pemPath, pemPath
	user.ClientCertificateData, user.ClientKeyData = nil, nil
	out, err := clientcmd.Write(*cfg)
	return out, err == nil, err
}

// ClientsFor builds the clients for a REST configuration made in memory,
// such as a bootstrap token's during a join.
func ClientsFor(cfg *rest.Config) (*Clients, error) {
	cfg.UserAgent = "kubeboot"
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	typed, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &Clients{Typed: typed, Dynamic: dyn, Config: cfg}, nil
}
