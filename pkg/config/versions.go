package config

// What this build of kubeboot deploys: kubeadm 1.37's versions.
const (
	KubernetesVersion = "v1.37.2"
	PauseVersion      = "3.10.2"
	EtcdVersion       = "3.7.0-0"
	CoreDNSVersion    = "v1.14.6"
	// MinKubernetesMinor is the oldest control plane minor we can deploy
	// (kubeadm allows the current minor and one before it).
	MinKubernetesMinor = 36
	MaxKubernetesMinor = 37
)
