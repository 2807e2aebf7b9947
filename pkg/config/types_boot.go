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
}

type KernelModule struct {
	Name string `json:"name"`
	// Optional modules may fail to load with a warning instead of an error.
	Optional bool `json:"optional,omitempty"`
}

type JoinSecret struct {
	Sinks []JoinSecretSink `json:"sinks,omitempty"`
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
