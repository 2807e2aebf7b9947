package postinstall

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	"k8s.io/cluster-bootstrap/token/jws"
)

// ClusterInfo is kube-public/cluster-info, which joining nodes read
// anonymously: a kubeconfig with the server and the CA, signed per token.
// The controller manager's bootstrapsigner signs it too; signing here
// means joins work the moment init ends, and the signature is
// deterministic, so the two never disagree.
func ClusterInfo(server string, caPEM []byte, tokens []Token) ([]runtime.Object, error) {
	kc := clientcmdapi.NewConfig()
	kc.Clusters[""] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	data, err := clientcmd.Write(*kc)
	if err != nil {
		return nil, fmt.Errorf("cluster-info kubeconfig: %w", err)
	}
	cm := &corev1.ConfigMap{TypeMeta: cmType,
		ObjectMeta: metav1.ObjectMeta{Name: bootstrapapi.ConfigMapClusterInfo, Namespace: metav1.NamespacePublic},
		Data:       map[string]string{bootstrapapi.KubeConfigKey: string(data)}}
	for _, t := range tokens {
		if !contains(t.Usages, "signing") {
			continue
		}
		sig, err := jws.ComputeDetachedSignature(string(data), t.ID, t.Secret)
		if err != nil {
			return nil, fmt.Errorf("sign cluster-info for token %s: %w", t.ID, err)
		}
		cm.Data[bootstrapapi.JWSSignatureKeyPrefix+t.ID] = sig
	}
	objs := []runtime.Object{cm}
	objs = append(objs, getOne(metav1.NamespacePublic, ClusterInfoRole, "configmaps", bootstrapapi.ConfigMapClusterInfo, user("system:anonymous"))...)
	return objs, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
