package postinstall

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// Labels kubeadm puts on control-plane nodes, and the CRI socket annotation
// older tools still read.
const (
	LabelControlPlane   = "node-role.kubernetes.io/control-plane"
	LabelExcludeFromLB  = "node.kubernetes.io/exclude-from-external-load-balancers"
	AnnotationCRISocket = "kubeadm.alpha.kubernetes.io/cri-socket"
)

// WaitForNode polls until the kubelet has registered the Node.
func WaitForNode(ctx context.Context, c kubernetes.Interface, name string, timeout time.Duration) (*corev1.Node, error) {
	deadline := time.Now().Add(timeout)
	ready := ReadyFunc(c)
	for {
		n, err := c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			return n, nil
		}
		if !apierrors.IsNotFound(err) && !Transient(err) {
			return nil, fmt.Errorf("get node %s: %w", name, err)
		}
		// After a restart the API server answers before its authorizer is
		// warm; asking again before /readyz says ok gets a false "forbidden".
		if Transient(err) {
			waitReady(ctx, deadline, ready)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("node %s did not register within %s (is the kubelet running? last error: %v)", name, timeout, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// MarkControlPlane applies the labels and annotation with server-side
// apply, and adds missing taints with a strategic merge patch. Taints are
// an atomic list for server-side apply: applying ours would remove those
// other owners add (not-ready, unreachable), so taints are merged instead.
// It returns whether anything changed.
func MarkControlPlane(ctx context.Context, c kubernetes.Interface, node *corev1.Node, criSocket string, taints []corev1.Taint) (bool, error) {
	changed := false
	want := map[string]string{LabelControlPlane: "", LabelExcludeFromLB: ""}
	needLabels := node.Annotations[AnnotationCRISocket] != criSocket
	for k, v := range want {
		if got, ok := node.Labels[k]; !ok || got != v {
			needLabels = true
		}
	}
	if needLabels {
		apply := map[string]any{
			"apiVersion": "v1", "kind": "Node",
			"metadata": map[string]any{"name": node.Name, "labels": want, "annotations": map[string]string{AnnotationCRISocket: criSocket}},
		}
		data, _ := json.Marshal(apply)
		force := true
		if _, err := c.CoreV1().Nodes().Patch(ctx, node.Name, types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: FieldManager, Force: &force}); err != nil {
			return false, fmt.Errorf("label node %s: %w", node.Name, err)
		}
		changed = true
	}
	var missing []corev1.Taint
	for _, t := range taints {
		found := false
		for _, have := range node.Spec.Taints {
			if have.Key == t.Key && have.Effect == t.Effect && have.Value == t.Value {
				found = true
			}
		}
		if !found {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		// A strategic merge patch of spec.taints merges by key.
		all := append(append([]corev1.Taint(nil), node.Spec.Taints...), missing...)
		patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"taints": all}})
		if _, err := c.CoreV1().Nodes().Patch(ctx, node.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{FieldManager: FieldManager}); err != nil {
			return changed, fmt.Errorf("taint node %s: %w", node.Name, err)
		}
		changed = true
	}
	return changed, nil
}
