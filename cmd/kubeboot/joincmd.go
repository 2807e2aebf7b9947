package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kubeboot/kubeboot/firstboot"
	"github.com/kubeboot/kubeboot/pkg/config"
	"github.com/kubeboot/kubeboot/pkg/preflight"
)

// joinFlags are kubeadm join's flags, plus --join-secret.
type joinFlags struct {
	initFlags
	token, tlsBootstrapToken, discoveryFile string
	caCertHashes                            []string
	unsafeSkipCAVerification                bool
	controlPlane                            bool
	certificateKey                          string
	advertiseAddress                        string
	bindPort                                int32
	nodeName                                string
	joinSecret                              string
}

func newJoinCommand(g *globalFlags) *cobra.Command {
	f := &joinFlags{}
	all := firstboot.JoinPhases(true)
	cmd := &cobra.Command{
		Use:   "join [api-server-endpoint]",
		Short: "Join this machine to an existing cluster as a worker or control-plane node",
		Long: "Run the join flow: " + strings.Join(firstboot.Names(all), ", ") + " (a worker skips the control-plane phases).\n" +
			"Discovery comes from --token and --discovery-token-ca-cert-hash, --discovery-file, a JoinConfiguration (--config), or a join secret (--join-secret: a file, an http(s) URL polled until the secret appears, or virtio-serial:NAME).",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError{fmt.Errorf("accepts at most one argument (the API server endpoint), got %d", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := preflight.ValidateIgnore(f.ignoreErrors); err != nil {
				return usageError{err}
			}
			return runJoin(cmd, g, f, args, f.skipPhases, false)
		},
	}
	fl := cmd.PersistentFlags()
	fl.StringVar(&f.configFile, "config", "", "join configuration file (JoinConfiguration, KubeletConfiguration, BootConfiguration; - for standard input)")
	fl.StringVar(&f.userdataFile, "userdata", "", "userdata file (Ignition or cloud-init) carrying the join configuration")
	fl.StringVar(&f.root, "root", "/", "root prefix for every file kubeboot reads and writes")
	fl.BoolVar(&f.dryRun, "dry-run", false, "discover the cluster and render every file under --root, skipping the steps that act on the host or the cluster")
	fl.StringSliceVar(&f.ignoreErrors, "ignore-preflight-errors", nil, "preflight checks whose errors become warnings, comma-separated, or all")
	fl.StringVar(&f.token, "token", "", "bootstrap token for both discovery and TLS bootstrap")
	fl.StringVar(&f.tlsBootstrapToken, "tls-bootstrap-token", "", "bootstrap token for the kubelet's TLS bootstrap, when it differs from --token")
	fl.StringSliceVar(&f.caCertHashes, "discovery-token-ca-cert-hash", nil, "pin the cluster CA's public key (sha256:<hex>)")
	fl.BoolVar(&f.unsafeSkipCAVerification, "discovery-token-unsafe-skip-ca-verification", false, "trust any API server that knows the token (no CA pinning)")
	fl.StringVar(&f.discoveryFile, "discovery-file", "", "kubeconfig file to take the cluster from, instead of token discovery")
	fl.BoolVar(&f.controlPlane, "control-plane", false, "join as a control-plane node (a new etcd member and API server)")
	fl.StringVar(&f.certificateKey, "certificate-key", "", "key that decrypts kube-system/kubeadm-certs (control-plane join)")
	fl.StringVar(&f.advertiseAddress, "apiserver-advertise-address", "", "this control-plane node's API server address (default: the default route's source)")
	fl.Int32Var(&f.bindPort, "apiserver-bind-port", 0, "this control-plane node's API server port (default 6443)")
	fl.StringVar(&f.nodeName, "node-name", "", "node name (default: the lower-cased hostname)")
	fl.StringVar(&f.joinSecret, "join-secret", "", "where to read the join secret init published: a file, file://, http(s):// (polled) or virtio-serial:NAME")
	cmd.Flags().StringSliceVar(&f.skipPhases, "skip-phases", nil, "phases to skip, comma-separated")

	// discovery feeds every later phase the cluster's configuration; once
	// the node has joined it reads the copy kept at join time.
	phaseCmd := phaseCommands("join", all, []string{"discovery"}, func(cmd *cobra.Command, skip []string) error {
		return runJoin(cmd, g, f, nil, skip, true)
	})
	cmd.AddCommand(phaseCmd)
	return cmd
}

// joinConfig builds the join configuration from the file or userdata and
// the command line, then defaults and validates it: bad input exits with
// status 2 before anything is written.
func joinConfig(f *joinFlags, args []string, opts firstboot.Options) (*config.JoinConfig, error) {
	var j *config.JoinConfig
	var err error
	switch {
	case opts.ConfigSource != "":
		j, err = config.DecodeJoin(opts.ConfigSource, opts.ConfigData)
	case opts.Userdata != nil && len(opts.Userdata.Config) > 0:
		j, err = config.DecodeJoin(opts.Userdata.Source, opts.Userdata.Config)
	default:
		j = config.NewJoinConfig("command line")
	}
	if err != nil {
		return nil, err
	}
	d := &j.Join.Discovery
	endpoint := ""
	if len(args) == 1 {
		endpoint = args[0]
	}
	if endpoint != "" || f.token != "" || len(f.caCertHashes) > 0 || f.unsafeSkipCAVerification {
		if d.BootstrapToken == nil {
			d.BootstrapToken = &config.BootstrapTokenDiscovery{}
		}
		b := d.BootstrapToken
		if endpoint != "" {
			b.APIServerEndpoint = endpoint
		}
		if f.token != "" {
			b.Token = f.token
		}
		if len(f.caCertHashes) > 0 {
			b.CACertHashes = f.caCertHashes
		}
		b.UnsafeSkipCAVerification = b.UnsafeSkipCAVerification || f.unsafeSkipCAVerification
	}
	if f.discoveryFile != "" {
		d.File = &config.FileDiscovery{KubeConfigPath: f.discoveryFile}
	}
	if f.tlsBootstrapToken != "" {
		d.TLSBootstrapToken = f.tlsBootstrapToken
	} else if f.token != "" && d.TLSBootstrapToken == "" {
		d.TLSBootstrapToken = f.token
	}
	if f.controlPlane || f.certificateKey != "" || f.advertiseAddress != "" || f.bindPort != 0 {
		if j.Join.ControlPlane == nil {
			j.Join.ControlPlane = &config.JoinControlPlane{}
		}
		cp := j.Join.ControlPlane
		if f.certificateKey != "" {
			cp.CertificateKey = f.certificateKey
		}
		if f.advertiseAddress != "" {
			cp.LocalAPIEndpoint.AdvertiseAddress = f.advertiseAddress
		}
		if f.bindPort != 0 {
			cp.LocalAPIEndpoint.BindPort = f.bindPort
		}
	}
	if f.nodeName != "" {
		j.Join.NodeRegistration.Name = f.nodeName
	}
	if f.joinSecret != "" {
		j.Boot.Join.Source = f.joinSecret
		j.Boot.Join.Secret = ""
	}
	config.SetJoinDefaults(j)
	if err := config.ValidateJoin(j); err != nil {
		return nil, err
	}
	return j, nil
}

func runJoin(cmd *cobra.Command, g *globalFlags, f *joinFlags, args []string, skip []string, force bool) error {
	f.force = force
	opts, err := flowOptions(cmd, g, &f.initFlags, skip)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if f.configFile == "" && f.userdataFile != "" {
		ud, err := findUserdata(ctx, f.root, f.userdataFile, f.dryRun)
		if err != nil {
			return err
		}
		opts.Userdata = ud
	}
	j, err := joinConfig(f, args, opts)
	if err != nil {
		return err
	}
	if err := firstboot.CheckSkip(firstboot.JoinPhases(true), append(skip, j.Join.SkipPhases...)); err != nil {
		return usageError{err}
	}
	opts.SkipPhases = append(opts.SkipPhases, j.Join.SkipPhases...)
	return firstboot.RunJoin(ctx, opts, j, cmd.OutOrStdout(), force || len(f.skipPhases) > 0)
}
