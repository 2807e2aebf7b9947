package firstboot

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/kubeboot/kubeboot/pkg/cni"
	"github.com/kubeboot/kubeboot/pkg/cri"
	"github.com/kubeboot/kubeboot/pkg/etcdmember"
	"github.com/kubeboot/kubeboot/pkg/host"
	"github.com/kubeboot/kubeboot/pkg/kubelet"
	"github.com/kubeboot/kubeboot/pkg/rootfs"
	"github.com/kubeboot/kubeboot/pkg/systemd"
)

// ResetPhases undoes init, in kubeadm reset's spirit. In a dry run each
// phase lists what it would remove and removes nothing.
func ResetPhases() []Phase {
	return []Phase{resetEtcdMemberPhase, resetKubeletPhase, resetContainersPhase, resetFilesPhase, resetNetworkPhase}
}

var resetKubeletPhase = Phase{
	Name:  "stop-kubelet",
	Short: "Stop the kubelet so that it restarts nothing",
	Render: func(context.Context, *Run) (Output, error) {
		return Output{Summary: "stops kubelet.service"}, nil
	},
	Apply: func(ctx context.Context, r *Run) (string, error) {
		m, err := systemd.Connect(ctx)
		if errors.Is(err, systemd.ErrNoSystemd) {
			r.warn("stop-kubelet", "kubelet not stopped: "+err.Error()+"; stop it yourself before its pods are removed")
			return "no systemd", nil
		}
		if err != nil {
			return "", err
		}
		defer m.Close()
		return "kubelet.service stopped", systemd.StopKubelet(ctx, m)
	},
}

var resetContainersPhase = Phase{
	Name:  "remove-containers",
	Short: "Remove every pod sandbox and its containers through the CRI",
	Render: func(ctx context.Context, r *Run) (Output, error) {
		sbs, err := sandboxes(ctx, r)
		if err != nil {
			return Output{Summary: "no container runtime answers: " + err.Error()}, nil
		}
		return Output{Summary: fmt.Sprintf("%d pod sandboxes: %s", len(sbs), sandboxNames(sbs))}, nil
	},
	Apply: func(ctx context.Context, r *Run) (string, error) {
		client, err := cri.Dial(ctx, r.Cfg.Init.NodeRegistration.CRISocket)
		if err != nil {
			r.warn("remove-containers", "no container runtime answers ("+err.Error()+"): containers left alone")
			return "", nil
		}
		defer client.Close()
		sbs, err := client.Sandboxes(ctx)
		if err != nil {
			return "", err
		}
		for _, sb := range sbs {
			if err := client.RemoveSandbox(ctx, sb.ID); err != nil {
				return "", err
			}
		}
		return fmt.Sprintf("%d pod sandboxes removed", len(sbs)), nil
	},
}

func sandboxes(ctx context.Context, r *Run) ([]cri.Sandbox, error) {
	client, err := cri.Dial(ctx, r.Cfg.Init.NodeRegistration.CRISocket)
	if err != nil {
		return nil, err
	}
	defer client.Close()
	return client.Sandboxes(ctx)
}

func sandboxNames(sbs []cri.Sandbox) string {
	names := make([]string, len(sbs))
	for i, s := range sbs {
		names[i] = s.Namespace + "/" + s.Name
	}
	return strings.Join(names, ", ")
}

// resetPaths are kubeboot's files and directories; everything else is
// left alone.
func resetPaths(r *Run) []string {
	c := r.Cfg
	p := []string{
		path.Join(c.Kubelet.StaticPodPath, "etcd.yaml"), path.Join(c.Kubelet.StaticPodPath, "kube-apiserver.yaml"),
		path.Join(c.Kubelet.StaticPodPath, "kube-controller-manager.yaml"), path.Join(c.Kubelet.StaticPodPath, "kube-scheduler.yaml"),
		"/etc/kubernetes/admin.conf", "/etc/kubernetes/super-admin.conf", "/etc/kubernetes/kubelet.conf",
		"/etc/kubernetes/bootstrap-kubelet.conf", "/etc/kubernetes/controller-manager.conf", "/etc/kubernetes/scheduler.conf",
		c.Cluster.CertificatesDir, "/etc/kubernetes/audit", "/etc/kubernetes/encryption",
		kubelet.ConfigPath, kubelet.FlagsEnvPath, "/var/lib/kubelet/instance-config.yaml", "/var/lib/kubelet/pki",
		kubelet.DropInPath, host.ModulesLoadPath, host.SysctlPath, cni.ConfPath,
		c.Boot.StateDir,
	}
	if c.Cluster.Etcd.Local != nil {
		p = append(p, c.Cluster.Etcd.Local.DataDir)
	}
	return p
}

var resetFilesPhase = Phase{
	Name:  "remove-files",
	Short: "Remove kubeboot's files: /etc/kubernetes, the kubelet's files, local etcd data, the state journal",
	Render: func(_ context.Context, r *Run) (Output, error) {
		var present []string
		for _, p := range resetPaths(r) {
			if _, err := r.readOptionalStat(p); err == nil {
				present = append(present, p)
			}
		}
		return Output{Summary: "removes " + strings.Join(present, " ")}, nil
	},
	Apply: func(_ context.Context, r *Run) (string, error) {
		n := 0
		if hosts, err := r.readOptional(host.HostsPath); err == nil {
			if data, changed, empty := host.HostsWithoutNode(hosts); changed && empty {
				r.Writer.Remove(host.HostsPath)
			} else if changed {
				if _, err := r.Writer.WriteFile(rootfs.File{Path: host.HostsPath, Mode: 0o644, Data: data}); err != nil {
					return "", err
				}
			}
		}
		for _, p := range resetPaths(r) {
			if _, err := r.readOptionalStat(p); err != nil {
				continue
			}
			if err := r.Writer.RemoveAll(p); err != nil {
				return "", fmt.Errorf("remove %s: %w", p, err)
			}
			n++
		}
		return fmt.Sprintf("%d paths removed; left alone: other files in /etc/kubernetes and /etc/cni/net.d, audit logs in %s", n, path.Dir(r.Cfg.Boot.Audit.LogPath)), nil
	},
}

var resetNetworkPhase = Phase{
	Name:  "reset-network",
	Short: "Remove kube-proxy's and the kubelet's packet-filter rules and the built-in pod network's bridge",
	Render: func(_ context.Context, r *Run) (Output, error) {
		if !hostRoot(r) {
			return Output{Summary: "packet-filter rules and interfaces belong to the host, not to --root " + r.Root + ": left alone"}, nil
		}
		rules, err := host.FlushKubeRules(true)
		if err != nil {
			return Output{}, err
		}
		return Output{Summary: fmt.Sprintf("removes %d rules and chains; keeps %d rules of others", len(rules.Removed), rules.Kept)}, nil
	},
	Apply: func(_ context.Context, r *Run) (string, error) {
		if !hostRoot(r) {
			return "", nil
		}
		rules, err := host.FlushKubeRules(false)
		if err != nil {
			return "", err
		}
		bridge := "none"
		if r.Cfg.Boot.PodNetwork.Builtin {
			name := r.Cfg.Boot.PodNetwork.Bridge
			if name == "" {
				name = cni.DefaultBridge
			}
			if l, err := netlink.LinkByName(name); err == nil {
				if err := netlink.LinkDel(l); err != nil {
					return "", fmt.Errorf("delete bridge %s: %w", name, err)
				}
				bridge = name
			}
		}
		return fmt.Sprintf("%d rules and chains removed, %d rules of others kept; bridge removed: %s", len(rules.Removed), rules.Kept, bridge), nil
	},
}

func hostRoot(r *Run) bool { return r.Root == "" || path.Clean(r.Root) == "/" }

// resetEtcdMemberPhase takes this node's etcd out of the cluster before
// its data goes, as kubeadm reset does: a member that vanishes without
// being removed still counts towards quorum, and in a two-member cluster
// it blocks every later membership change.
var resetEtcdMemberPhase = Phase{
	Name:  "remove-etcd-member",
	Short: "Remove this node's member from the cluster's etcd",
	Render: func(_ context.Context, r *Run) (Output, error) {
		self, _, err := r.localEtcdMember()
		if err != nil {
			return Output{Summary: err.Error()}, nil
		}
		return Output{Summary: "removes member " + self.Name}, nil
	},
	Apply: func(ctx context.Context, r *Run) (string, error) {
		self, clientURL, err := r.localEtcdMember()
		if err != nil {
			return err.Error(), nil
		}
		creds, err := r.etcdTLS()
		if err != nil {
			r.warn("remove-etcd-member", "member "+self.Name+" not removed: "+err.Error())
			return "", nil
		}
		ctx, cancel := context.WithTimeout(ctx, r.Cfg.Init.Timeouts.EtcdAPICall.Duration)
		defer cancel()
		c := etcdmember.Client{Endpoints: []string{clientURL}, TLS: creds, Log: r.Log}
		switch err := c.Remove(ctx, self); {
		case errors.Is(err, etcdmember.ErrLastVoter):
			return "member " + self.Name + " is the last one: nothing to leave", nil
		case err != nil:
			r.warn("remove-etcd-member", "member "+self.Name+" not removed ("+err.Error()+"): remove it from a remaining control-plane node (etcdctl member remove) before this node joins again")
			return "", nil
		}
		return "member " + self.Name + " removed", nil
	},
}

// localEtcdMember reads this node's member from its etcd manifest.
func (r *Run) localEtcdMember() (etcdmember.Member, string, error) {
	p := path.Join(r.Cfg.Kubelet.StaticPodPath, "etcd.yaml")
	data, err := r.readOptional(p)
	if err != nil || data == nil {
		return etcdmember.Member{}, "", fmt.Errorf("no local etcd member (%s absent)", p)
	}
	var pod corev1.Pod
	if err := yaml.Unmarshal(data, &pod); err != nil || len(pod.Spec.Containers) == 0 {
		return etcdmember.Member{}, "", fmt.Errorf("%s: not a pod manifest", p)
	}
	args := map[string]string{}
	for _, a := range pod.Spec.Containers[0].Command {
		if k, v, ok := strings.Cut(strings.TrimPrefix(a, "--"), "="); ok {
			args[k] = v
		}
	}
	self := etcdmember.Member{Name: args["name"], PeerURL: args["initial-advertise-peer-urls"]}
	client, _, _ := strings.Cut(args["advertise-client-urls"], ",")
	if self.Name == "" || self.PeerURL == "" || client == "" {
		return etcdmember.Member{}, "", fmt.Errorf("%s lacks --name, --initial-advertise-peer-urls or --advertise-client-urls", p)
	}
	return self, client, nil
}
