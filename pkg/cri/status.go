package cri

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Status is the runtime's readiness. Only a RuntimeReady condition that
// is false means not ready; NetworkReady is not looked at, on purpose: the
// pod network comes later.
type Status struct {
	Ready           bool
	Reason, Message string
}

// Status asks the runtime whether it is ready.
func (c *Client) Status(ctx context.Context) (Status, error) {
	resp, err := c.runtime.Status(ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		return Status{}, fmt.Errorf("cri: status: %w", rpcError{err})
	}
	st := Status{Ready: true}
	for _, cond := range resp.GetStatus().GetConditions() {
		if cond.GetType() == runtimeapi.RuntimeReady {
			st.Ready, st.Reason, st.Message = cond.GetStatus(), cond.GetReason(), cond.GetMessage()
		}
	}
	return st, nil
}

// CgroupDriver asks the runtime which cgroup driver it uses. supported is
// false when the runtime predates the RuntimeConfig call (containerd 1.x),
// and the kubelet then uses its own configured driver.
func (c *Client) CgroupDriver(ctx context.Context) (driver string, supported bool, err error) {
	resp, err := c.runtime.RuntimeConfig(ctx, &runtimeapi.RuntimeConfigRequest{})
	if status.Code(err) == codes.Unimplemented {
		return "", false, nil
	}
	if err != nil {
		return "", true, fmt.Errorf("cri: runtime config: %w", rpcError{err})
	}
	switch resp.GetLinux().GetCgroupDriver() {
	case runtimeapi.CgroupDriver_SYSTEMD:
		return "systemd", true, nil
	case runtimeapi.CgroupDriver_CGROUPFS:
		return "cgroupfs", true, nil
	}
	return "", true, nil
}
