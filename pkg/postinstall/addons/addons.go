// Package addons renders the objects of the two addons `kubeadm init phase
// addon all` installs: CoreDNS and kube-proxy, as kubeadm 1.37 creates them.
//
// The renderers are pure: they take the resolved configuration and return
// typed API objects with apiVersion and kind set, in the order they should
// be applied. The caller serialises each one to JSON and applies it with
// server-side apply, so nothing here sets status, resourceVersion or
// creationTimestamp, and fields the API server defaults are left unset
// unless kubeadm sets them itself.
//
// Where kubeboot differs from kubeadm, the comment at the difference says so.
package addons

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The kinds the renderers return, for TypeMeta.
var (
	kindServiceAccount     = typeMeta(schema.GroupVersion{Version: "v1"}, "ServiceAccount")
	kindConfigMap          = typeMeta(schema.GroupVersion{Version: "v1"}, "ConfigMap")
	kindService            = typeMeta(schema.GroupVersion{Version: "v1"}, "Service")
	kindDeployment         = typeMeta(schema.GroupVersion{Group: "apps", Version: "v1"}, "Deployment")
	kindDaemonSet          = typeMeta(schema.GroupVersion{Group: "apps", Version: "v1"}, "DaemonSet")
	kindClusterRole        = typeMeta(rbacGroupVersion, "ClusterRole")
	kindClusterRoleBinding = typeMeta(rbacGroupVersion, "ClusterRoleBinding")
	kindRole               = typeMeta(rbacGroupVersion, "Role")
	kindRoleBinding        = typeMeta(rbacGroupVersion, "RoleBinding")
	kindPDB                = typeMeta(schema.GroupVersion{Group: "policy", Version: "v1"}, "PodDisruptionBudget")
)

var rbacGroupVersion = schema.GroupVersion{Group: "rbac.authorization.k8s.io", Version: "v1"}

func typeMeta(gv schema.GroupVersion, kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: gv.String(), Kind: kind}
}

// Facts shared by both addons (kubeadm's constants.go).
const (
	namespace = metav1.NamespaceSystem
	// controlPlaneTaintKey is kubeadm's LabelNodeRoleControlPlane.
	controlPlaneTaintKey = "node-role.kubernetes.io/control-plane"
	osLabel              = "kubernetes.io/os"
)

// objectMeta names a namespaced object; cluster-scoped ones pass "".
func objectMeta(ns, name string, labels map[string]string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels}
}
