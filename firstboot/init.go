package firstboot

// InitPhases is the init flow, in kubeadm 1.37's order with kubeboot's
// additions (../shared/docs/init-flow.md maps every step).
func InitPhases() []Phase {
	return []Phase{
		userdataPhase,
		configPhase,
		hostPhase,
		preflightPhase,
		imagesPhase,
		certsPhase,
		kubeconfigPhase,
		auditPhase,
		encryptionPhase,
		etcdPhase,
		controlPlanePhase,
		podNetworkPhase,
		kubeletStartPhase,
		waitControlPlanePhase,
		uploadConfigPhase,
		uploadCertsPhase,
		markControlPlanePhase,
		bootstrapTokenPhase,
		kubeletFinalizePhase,
		addonsPhase,
		userManifestsPhase,
		joinSecretPhase,
	}
}
