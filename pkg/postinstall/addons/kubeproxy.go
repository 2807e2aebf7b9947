package addons

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	kubeproxyv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/kubeboot/kubeboot/pkg/config"
	"github.com/kubeboot/kubeboot/pkg/images"
)

// Names and paths of kubeadm 1.37's kube-proxy objects.
const (
	kubeProxyName = "kube-proxy" // ServiceAccount, Role, RoleBinding, ConfigMap, DaemonSet
	// kubeadm's KubeProxyClusterRoleBindingName and KubeProxyClusterRoleName.
	nodeProxierBindingName = "kubeadm:node-proxier"
	nodeProxierRoleName    = "system:node-proxier"
	// kubeadm's KubeProxyConfigMapKey, and the kubeconfig key next to it.
	kubeProxyConfigKey     = "config.conf"
	kubeProxyKubeconfigKey = "kubeconfig.conf"
	kubeProxyConfigDir     = "/var/lib/kube-proxy"
	// What every pod's service account token volume holds.
	serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"
)

// KubeProxy returns kube-proxy's objects in apply order: ServiceAccount,
// ClusterRoleBinding, Role, RoleBinding, ConfigMap, DaemonSet.
// apiServerURL is the control-plane endpoint (https://host:port) the
// kube-proxy kubeconfig points at, as kubeadm does. With proxy.disabled it
// returns nil.
func KubeProxy(cfg *config.Config, apiServerURL string) ([]runtime.Object, error) {
	cc := &cfg.Cluster
	if cc.Proxy.Disabled {
		return nil, nil
	}
	if err := checkServerURL(apiServerURL); err != nil {
		return nil, fmt.Errorf("addons: kube-proxy: API server URL %q: %w", apiServerURL, err)
	}
	if cc.ImageRepository == "" {
		return nil, errors.New("addons: kube-proxy: image: imageRepository is empty")
	}
	if cc.KubernetesVersion == "" {
		return nil, errors.New("addons: kube-proxy: image: kubernetesVersion is empty")
	}
	cm, err := kubeProxyConfigMap(&cfg.KubeProxy, apiServerURL)
	if err != nil {
		return nil, fmt.Errorf("addons: kube-proxy: %w", err)
	}
	image := images.Kubernetes(cfg, kubeProxyName)
	return []runtime.Object{
		&corev1.ServiceAccount{
			TypeMeta:   kindServiceAccount,
			ObjectMeta: objectMeta(namespace, kubeProxyName, nil),
		},
		&rbacv1.ClusterRoleBinding{
			TypeMeta:   kindClusterRoleBinding,
			ObjectMeta: objectMeta("", nodeProxierBindingName, nil),
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: nodeProxierRoleName},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: kubeProxyName, Namespace: namespace}},
		},
		// Lets a joining node, still authenticated by its bootstrap token,
		// read kube-proxy's configuration.
		&rbacv1.Role{
			TypeMeta:   kindRole,
			ObjectMeta: objectMeta(namespace, kubeProxyName, nil),
			Rules: []rbacv1.PolicyRule{{
				Verbs:         []string{"get"},
				APIGroups:     []string{""},
				Resources:     []string{"configmaps"},
				ResourceNames: []string{kubeProxyName},
			}},
		},
		&rbacv1.RoleBinding{
			TypeMeta:   kindRoleBinding,
			ObjectMeta: objectMeta(namespace, kubeProxyName, nil),
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: kubeProxyName},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.GroupKind, Name: config.DefaultTokenGroup}},
		},
		cm,
		kubeProxyDaemonSet(image),
	}, nil
}

// checkServerURL accepts what kubeadm's GetControlPlaneEndpoint produces:
// https://host:port with nothing after it.
func checkServerURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return err
	case u.Scheme != "https":
		return errors.New("not an https:// URL")
	case u.Hostname() == "":
		return errors.New("no host")
	case u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return errors.New("want only https://host:port")
	}
	return nil
}

// kubeProxyConfigMap holds kube-proxy's component configuration and the
// kubeconfig that makes it talk to apiServerURL as its service account.
//
// kubeadm signs this ConfigMap with a checksum annotation when it generated
// the configuration itself, and leaves it unsigned when a user supplied it.
// kubeboot's is always a resolved configuration whose defaults differ from
// kubeadm's (mode nftables), so it is left unsigned: `kubeadm upgrade`
// then keeps it as the user's.
func kubeProxyConfigMap(kp *kubeproxyv1alpha1.KubeProxyConfiguration, apiServerURL string) (*corev1.ConfigMap, error) {
	kp = kp.DeepCopy()
	kp.APIVersion, kp.Kind = config.KubeProxyGroupVersion, config.KindKubeProxy
	conf, err := yaml.Marshal(kp)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kubeProxyConfigKey, err)
	}
	kubeconfig, err := clientcmd.Write(clientcmdapi.Config{
		Clusters: map[string]*clientcmdapi.Cluster{
			"default": {Server: apiServerURL, CertificateAuthority: serviceAccountDir + "/ca.crt"},
		},
		Contexts: map[string]*clientcmdapi.Context{
			"default": {Cluster: "default", Namespace: "default", AuthInfo: "default"},
		},
		AuthInfos: map[string]*clientcmdapi.AuthInfo{
			"default": {TokenFile: serviceAccountDir + "/token"},
		},
		CurrentContext: "default",
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kubeProxyKubeconfigKey, err)
	}
	return &corev1.ConfigMap{
		TypeMeta:   kindConfigMap,
		ObjectMeta: objectMeta(namespace, kubeProxyName, map[string]string{"app": kubeProxyName}),
		// kubeadm's manifest holds both as YAML block scalars with "|-",
		// which drops the final newline; so do we.
		Data: map[string]string{
			kubeProxyConfigKey:     string(bytes.TrimRight(conf, "\n")),
			kubeProxyKubeconfigKey: string(bytes.TrimRight(kubeconfig, "\n")),
		},
	}, nil
}

// kubeProxyDaemonSet runs kube-proxy on every node.
//
// kubeadm also copies every non-empty *_proxy variable of its own process
// environment (HTTP_PROXY, NO_PROXY, ...) into the container; a pure
// renderer reads no environment, so kubeboot does not.
func kubeProxyDaemonSet(image string) *appsv1.DaemonSet {
	const (
		configVolume = "kube-proxy"
		xtablesLock  = "/run/xtables.lock"
		libModules   = "/lib/modules"
	)
	labels := func() map[string]string { return map[string]string{"k8s-app": kubeProxyName} }
	return &appsv1.DaemonSet{
		TypeMeta:   kindDaemonSet,
		ObjectMeta: objectMeta(namespace, kubeProxyName, labels()),
		Spec: appsv1.DaemonSetSpec{
			Selector:       &metav1.LabelSelector{MatchLabels: labels()},
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels()},
				Spec: corev1.PodSpec{
					PriorityClassName: "system-node-critical",
					Containers: []corev1.Container{{
						Name:            kubeProxyName,
						Image:           image,
						ImagePullPolicy: corev1.PullIfNotPresent,
						Command: []string{
							"/usr/local/bin/kube-proxy",
							"--config=" + kubeProxyConfigDir + "/" + kubeProxyConfigKey,
							"--hostname-override=$(NODE_NAME)",
						},
						SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)},
						VolumeMounts: []corev1.VolumeMount{
							{Name: configVolume, MountPath: kubeProxyConfigDir},
							{Name: "xtables-lock", MountPath: xtablesLock, ReadOnly: false},
							{Name: "lib-modules", MountPath: libModules, ReadOnly: true},
						},
						Env: []corev1.EnvVar{{
							Name:      "NODE_NAME",
							ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}},
						}},
					}},
					HostNetwork:        true,
					ServiceAccountName: kubeProxyName,
					Volumes: []corev1.Volume{
						{Name: configVolume, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
							LocalObjectReference: corev1.LocalObjectReference{Name: kubeProxyName},
						}}},
						{Name: "xtables-lock", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{
							Path: xtablesLock, Type: ptr.To(corev1.HostPathFileOrCreate),
						}}},
						{Name: "lib-modules", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{
							Path: libModules,
						}}},
					},
					Tolerations:  []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
					NodeSelector: map[string]string{osLabel: "linux"},
				},
			},
		},
	}
}
