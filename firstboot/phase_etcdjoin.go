package firstboot

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"path"
	"sort"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeboot/kubeboot/pkg/etcdmember"
	"github.com/kubeboot/kubeboot/pkg/manifests"
	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

// etcdJoinPhase adds this node to the cluster's etcd as a learner and
// writes its etcd manifest. It acts on the cluster, so it is an Apply:
// the manifest's initial cluster is known only once the member is added.
var etcdJoinPhase = Phase{
	Name:  "etcd-join",
	Short: "Add this node to etcd as a learner and write its etcd manifest",
	Inputs: func(r *Run) (any, error) {
		return []any{r.Cfg.Cluster.Etcd, r.Cfg.Init.LocalAPIEndpoint, r.Cfg.Init.NodeRegistration.Name, r.Cfg.Kubelet.StaticPodPath}, nil
	},
	Apply: func(ctx context.Context, r *Run) (string, error) {
		if r.Cfg.Cluster.Etcd.External != nil {
			return "external etcd: no local member", nil
		}
		client, self, err := r.etcdClient(ctx)
		if err != nil {
			return "", err
		}
		dataEmpty, err := r.dirEmpty(r.Cfg.Cluster.Etcd.Local.DataDir)
		if err != nil {
			return "", err
		}
		manifest := path.Join(r.Cfg.Kubelet.StaticPodPath, "etcd.yaml")
		_, statErr := r.readOptionalStat(manifest)
		initial, err := client.Add(ctx, self, dataEmpty)
		if err != nil {
			return "", fmt.Errorf("etcd member %s: %w", self.Name, err)
		}
		// A member that runs from its data keeps its manifest: the initial
		// cluster only matters to an empty data directory, and a rewrite
		// would restart etcd for nothing.
		if !dataEmpty && statErr == nil {
			return fmt.Sprintf("member %s present, data kept", self.Name), nil
		}
		files, err := manifests.EtcdMember(r.Cfg, initial)
		if err != nil {
			return "", err
		}
		if _, err := r.Writer.Write(files); err != nil {
			return "", err
		}
		return fmt.Sprintf("member %s added as a learner; initial cluster %s", self.Name, initial), nil
	},
}

var etcdPromotePhase = Phase{
	Name:  "etcd-promote",
	Short: "Wait for this node's etcd learner to catch up, then promote it to a voting member",
	Apply: func(ctx context.Context, r *Run) (string, error) {
		if r.Cfg.Cluster.Etcd.External != nil {
			return "external etcd", nil
		}
		client, self, err := r.etcdClient(ctx)
		if err != nil {
			return "", err
		}
		start := time.Now()
		ctx, cancel := context.WithTimeout(ctx, r.Cfg.Init.Timeouts.ControlPlaneComponentHealthCheck.Duration)
		defer cancel()
		if err := client.Promote(ctx, self); err != nil {
			return "", fmt.Errorf("etcd member %s: %w", self.Name, err)
		}
		return fmt.Sprintf("member %s is a voting member after %s", self.Name, round(time.Since(start))), nil
	},
}

// etcdClient reaches the cluster's etcd as the API server does, through
// the members the cluster lists.
func (r *Run) etcdClient(ctx context.Context) (etcdmember.Client, etcdmember.Member, error) {
	creds, err := r.etcdTLS()
	if err != nil {
		return etcdmember.Client{}, etcdmember.Member{}, err
	}
	self := etcdmember.Member{Name: r.Cfg.Init.NodeRegistration.Name, PeerURL: manifests.EtcdPeerURL(r.Cfg)}
	endpoints, err := r.etcdEndpoints(ctx)
	if err != nil {
		return etcdmember.Client{}, self, err
	}
	return etcdmember.Client{Endpoints: endpoints, TLS: creds, Log: r.Log}, self, nil
}

// etcdTLS authenticates to etcd as the API server does: its etcd client
// certificate, and the etcd CA.
func (r *Run) etcdTLS() (*tls.Config, error) {
	pki := r.Cfg.Cluster.CertificatesDir
	return etcdmember.ClientTLS(r.Writer.HostPath(path.Join(pki, "etcd/ca.crt")),
		r.Writer.HostPath(path.Join(pki, "apiserver-etcd-client.crt")), r.Writer.HostPath(path.Join(pki, "apiserver-etcd-client.key")))
}

// etcdEndpoints are the client URLs of the cluster's etcd members: the
// annotation kubeadm puts on each etcd static pod, else port 2379 of each
// control-plane node's internal address. This node's own is left out.
func (r *Run) etcdEndpoints(ctx context.Context) ([]string, error) {
	admin, err := r.admin()
	if err != nil {
		return nil, err
	}
	own := "https://" + net.JoinHostPort(r.Cfg.Init.LocalAPIEndpoint.AdvertiseAddress, strconv.Itoa(manifests.EtcdClientPort))
	seen := map[string]bool{own: true}
	var out []string
	add := func(u string) {
		if u != "" && !seen[u] {
			seen[u] = true
			out = append(out, u)
		}
	}
	pods, err := admin.Typed.CoreV1().Pods(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{LabelSelector: "component=etcd,tier=control-plane"})
	if err != nil {
		return nil, fmt.Errorf("list the etcd pods: %w", err)
	}
	for _, p := range pods.Items {
		add(p.Annotations[manifests.EtcdClientURLsAnnotation])
	}
	if len(out) == 0 {
		nodes, err := admin.Typed.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "node-role.kubernetes.io/control-plane"})
		if err != nil {
			return nil, fmt.Errorf("list the control-plane nodes: %w", err)
		}
		for _, n := range nodes.Items {
			for _, a := range n.Status.Addresses {
				if a.Type == corev1.NodeInternalIP {
					add("https://" + net.JoinHostPort(a.Address, strconv.Itoa(manifests.EtcdClientPort)))
				}
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no etcd member found: no etcd pod carries " + manifests.EtcdClientURLsAnnotation + " and no control-plane node has an internal address")
	}
	sort.Strings(out)
	return out, nil
}

// dirEmpty tells whether a host directory is missing or empty.
func (r *Run) dirEmpty(dir string) (bool, error) {
	entries, err := fs.ReadDir(r.Writer.FS(), rootfs.Clean(dir)[1:])
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	return len(entries) == 0, err
}
