package config

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

const (
	BootGroupVersion = "kubeboot.dev/v1alpha1"
	KindBoot         = "BootConfiguration"
)

// BootConfiguration holds what a first boot needs and kubeadm has no place
// for. Switches that default to on are pointers so that an explicit false
// survives defaulting.
type BootConfiguration struct {
	metav1.TypeMeta `json:",inline"`
	// StateDir holds the phase journal and the completion stamp.
	StateDir string `json:"stateDir,omitempty"`
	// KernelModules are loaded by the host phase and persisted to modules-load.d.
	KernelModules []KernelModule `json:"kernelModules,omitempty"`
	// Sysctls are set on top of the ones Kubernetes needs.
	Sysctls map[string]string `json:"sysctls,omitempty"`
	// ImageArchiveDir holds OCI or docker archives imported before any pull.
	ImageArchiveDir string `json:"imageArchiveDir,omitempty"`
	// JoinSecret says where init publishes the join secret.
	JoinSecret JoinSecret `json:"joinSecret,omitempty"`
	Audit      Audit      `json:"audit,omitempty"`
	// UploadCerts uploads the shared certificates, encrypted, to
	// kube-system/kubeadm-certs for control-plane joins (kubeadm's --upload-certs).
	UploadCerts bool `json:"uploadCerts,omitempty"`
	// NodeNameInHosts adds "<advertise address> <node name>" to /etc/hosts
	// when the name is not there (default on): a node name that does not
	// resolve makes the kubelet stall at each registration step.
	NodeNameInHosts *bool `json:"nodeNameInHosts,omitempty"`
	// PodNetwork asks for kubeboot's built-in single-node pod network.
	PodNetwork PodNetwork `json:"podNetwork,omitempty"`
	// EncryptionAtRest encrypts Secrets in etcd.
	EncryptionAtRest EncryptionAtRest `json:"encryptionAtRest,omitempty"`
	// Join says where a joining machine reads its join secret from.
	Join JoinSource `json:"join,omitempty"`
	// Cluster forms a cluster from identical userdata (see Rendezvous).
	Cluster ClusterFormation `json:"cluster,omitempty"`
	// Manifests are files or directories of Kubernetes objects (a CNI
	// add-on, for instance) that init applies with server-side apply after
	// the addons, and again on every re-run.
	Manifests []string `json:"manifests,omitempty"`
}

// JoinSource is the joining side of the join secret.
type JoinSource struct {
	// Source is a file path, a file:// URL, an http(s):// metadata URL
	// (polled until the secret appears) or virtio-serial:NAME.
	Source string `json:"source,omitempty"`
	// Secret is the join secret document itself, carried in the userdata
	// (the JSON document, or its age-sealed armored form).
	Secret string `json:"secret,omitempty"`
	// Identity is an age X25519 identity (AGE-SECRET-KEY-1...) that opens
	// a sealed join secret; IdentityFile names a file holding one.
	Identity     string `json:"identity,omitempty"`
	IdentityFile string `json:"identityFile,omitempty"`
	// Timeout bounds the wait for the secret to appear (default 15m).
	Timeout *metav1.Duration `json:"timeout,omitempty"`
}

// ClusterFormation holds the rendezvous that lets identical machines
// decide who runs init.
type ClusterFormation struct {
	Rendezvous *Rendezvous `json:"rendezvous,omitempty"`
}

// Rendezvous is an HTTP(S) store with conditional writes (RFC 9110
// If-None-Match / If-Match, as S3, GCS and Azure Blob offer).
type Rendezvous struct {
	// URL is the prefix under which the claim, the join secret and the
	// member count live.
	URL string `json:"url"`
	// ControlPlaneReplicas is how many machines join as control-plane
	// nodes (the first runs init); the rest join as workers. Default 3.
	ControlPlaneReplicas *int32 `json:"controlPlaneReplicas,omitempty"`
	// LeaseDuration is how long a claim holds without being published
	// before another machine may take over. Default 10m.
	LeaseDuration *metav1.Duration `json:"leaseDuration,omitempty"`
	// Timeout bounds the whole rendezvous wait. Default 30m.
	Timeout *metav1.Duration `json:"timeout,omitempty"`
}

type KernelModule struct {
	Name string `json:"name"`
	// Optional modules may fail to load with a warning instead of an error.
	Optional bool `json:"optional,omitempty"`
}

type JoinSecret struct {
	Sinks []JoinSecretSink `json:"sinks,omitempty"`
	// Recipients are age X25519 public keys (age1...): when set, the
	// secret is sealed to them in every sink, so only holders of a
	// matching identity can read it.
	Recipients []string `json:"recipients,omitempty"`
}

// JoinSecretSink is one destination; exactly one field is set.
type JoinSecretSink struct {
	File         *FileSink         `json:"file,omitempty"`
	VirtioSerial *VirtioSerialSink `json:"virtioSerial,omitempty"`
	HTTP         *HTTPSink         `json:"http,omitempty"`
}

type FileSink struct {
	Path string `json:"path"`
}

type VirtioSerialSink struct {
	// Name of the port, as in /dev/virtio-ports/<name>.
	Name string `json:"name"`
}

type HTTPSink struct {
	URL     string           `json:"url"`
	Timeout *metav1.Duration `json:"timeout,omitempty"`
}

type Audit struct {
	Enabled *bool `json:"enabled,omitempty"`
	// PolicyFile replaces the default policy with the file's contents.
	PolicyFile string `json:"policyFile,omitempty"`
	LogPath    string `json:"logPath,omitempty"`
	MaxAge     int32  `json:"maxAge,omitempty"`
	MaxBackups int32  `json:"maxBackups,omitempty"`
	MaxSize    int32  `json:"maxSize,omitempty"`
}

type EncryptionAtRest struct {
	Enabled *bool `json:"enabled,omitempty"`
	// Provider is secretbox (default) or aescbc.
	Provider string `json:"provider,omitempty"`
}

// PodNetwork is a bridge network for the pod subnet on this node only,
// so that a single node works without a CNI add-on.
type PodNetwork struct {
	Builtin bool `json:"builtin,omitempty"`
	// Bridge names the Linux bridge; default cni0.
	Bridge string `json:"bridge,omitempty"`
}
