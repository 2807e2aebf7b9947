package cri

import (
	"context"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Sandbox is one pod sandbox the runtime holds for the kubelet.
type Sandbox struct {
	ID, Namespace, Name string
	Ready               bool
}

// Sandboxes lists every pod sandbox.
func (c *Client) Sandboxes(ctx context.Context) ([]Sandbox, error) {
	resp, err := c.runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return nil, fmt.Errorf("list pod sandboxes: %w", rpcError{err})
	}
	var out []Sandbox
	for _, s := range resp.Items {
		sb := Sandbox{ID: s.Id, Ready: s.State == runtimeapi.PodSandboxState_SANDBOX_READY}
		if s.Metadata != nil {
			sb.Namespace, sb.Name = s.Metadata.Namespace, s.Metadata.Name
		}
		out = append(out, sb)
	}
	return out, nil
}

// RemoveSandbox stops a pod sandbox, which stops its containers, and
// removes it with them, as `kubeadm reset` does through crictl.
func (c *Client) RemoveSandbox(ctx context.Context, id string) error {
	if _, err := c.runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		return fmt.Errorf("stop pod sandbox %s: %w", short(id), rpcError{err})
	}
	if _, err := c.runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		return fmt.Errorf("remove pod sandbox %s: %w", short(id), rpcError{err})
	}
	return nil
}
