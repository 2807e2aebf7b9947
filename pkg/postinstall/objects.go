package postinstall

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/kubeboot/kubeboot/pkg/config"
)

// kubeadm's names; `kubeadm join` and `kubeadm upgrade` look them up.
const (
	KubeadmConfigMap         = "kubeadm-config"
	ClusterConfigurationKey  = "ClusterConfiguration"
	KubeletConfigMap         = "kubelet-config"
	KubeletConfigKey         = "kubelet"
	NodesKubeadmConfigRole   = "kubeadm:nodes-kubeadm-config"
	KubeletConfigRole        = "kubeadm:kubelet-config"
	ClusterAdminsGroup       = "kubeadm:cluster-admins"
	BootstrapGroup           = config.DefaultTokenGroup
	NodesGroup               = "system:nodes"
	ClusterInfoConfigMap     = "cluster-info"
	ClusterInfoRole          = "kubeadm:bootstrap-signer-clusterinfo"
	KubeadmCertsSecret       = "kubeadm-certs"
	KubeadmCertsRole         = "kubeadm:kubeadm-certs"
	GetNodesRole             = "kubeadm:get-nodes"
	KubeletBootstrapBinding  = "kubeadm:kubelet-bootstrap"
	AutoApproveBinding       = "kubeadm:node-autoapprove-bootstrap"
	AutoApproveRotation      = "kubeadm:node-autoapprove-certificate-rotation"
	KubeletAPIAdminBinding   = "kubeadm:apiserver-kubelet-client"
	APIServerKubeletClientCN = "kube-apiserver-kubelet-client"
)

var (
	cmType   = metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}
	secType  = metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}
	roleType = metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"}
	rbType   = metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"}
	crType   = metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"}
	crbType  = metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"}
)

func group(name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: name}
}

func user(name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}
}

// getOne is a Role allowing get on one named object, and its binding.
func getOne(ns, name, resource, object string, subjects ...rbacv1.Subject) []runtime.Object {
	return []runtime.Object{
		&rbacv1.Role{TypeMeta: roleType, ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Rules: []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{resource}, ResourceNames: []string{object}}}},
		&rbacv1.RoleBinding{TypeMeta: rbType, ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
			Subjects: subjects},
	}
}

func clusterBinding(name, role string, subjects ...rbacv1.Subject) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{TypeMeta: crbType, ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects: subjects}
}

// ClusterAdmins binds kubeadm:cluster-admins (admin.conf's group) to
// cluster-admin; it must exist before admin.conf can do anything.
func ClusterAdmins() runtime.Object {
	return clusterBinding(ClusterAdminsGroup, "cluster-admin", group(ClusterAdminsGroup))
}

// UploadConfig returns the kubeadm-config and kubelet-config ConfigMaps
// and their RBAC, as `kubeadm init phase upload-config all` creates them.
func UploadConfig(c *config.Config) ([]runtime.Object, error) {
	ccYAML, err := yaml.Marshal(&c.Cluster)
	if err != nil {
		return nil, fmt.Errorf("marshal ClusterConfiguration: %w", err)
	}
	// The ConfigMap holds the cluster-wide kubelet configuration; the
	// container runtime endpoint is per node (kubeadm keeps it out too).
	kc := c.Kubelet.DeepCopy()
	kc.ContainerRuntimeEndpoint = ""
	kcYAML, err := yaml.Marshal(kc)
	if err != nil {
		return nil, fmt.Errorf("marshal KubeletConfiguration: %w", err)
	}
	objs := []runtime.Object{
		&corev1.ConfigMap{TypeMeta: cmType, ObjectMeta: metav1.ObjectMeta{Name: KubeadmConfigMap, Namespace: metav1.NamespaceSystem},
			Data: map[string]string{ClusterConfigurationKey: string(ccYAML)}},
	}
	objs = append(objs, getOne(metav1.NamespaceSystem, NodesKubeadmConfigRole, "configmaps", KubeadmConfigMap, group(BootstrapGroup), group(NodesGroup))...)
	objs = append(objs, &corev1.ConfigMap{TypeMeta: cmType, ObjectMeta: metav1.ObjectMeta{Name: KubeletConfigMap, Namespace: metav1.NamespaceSystem},
		Data: map[string]string{KubeletConfigKey: string(kcYAML)}})
	objs = append(objs, getOne(metav1.NamespaceSystem, KubeletConfigRole, "configmaps", KubeletConfigMap, group(BootstrapGroup), group(NodesGroup))...)
	return objs, nil
}

// BootstrapRBAC is what lets a node join with a bootstrap token: post
// CSRs, have them approved, rotate its certificate, read nodes, and lets
// the API server reach kubelets.
func BootstrapRBAC() []runtime.Object {
	return []runtime.Object{
		clusterBinding(KubeletBootstrapBinding, "system:node-bootstrapper", group(BootstrapGroup)),
		&rbacv1.ClusterRole{TypeMeta: crType, ObjectMeta: metav1.ObjectMeta{Name: GetNodesRole},
			Rules: []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"nodes"}}}},
		clusterBinding(GetNodesRole, GetNodesRole, group(BootstrapGroup)),
		clusterBinding(AutoApproveBinding, "system:certificates.k8s.io:certificatesigningrequests:nodeclient", group(BootstrapGroup)),
		clusterBinding(AutoApproveRotation, "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", group(NodesGroup)),
		clusterBinding(KubeletAPIAdminBinding, "system:kubelet-api-admin", user(APIServerKubeletClientCN)),
	}
}
