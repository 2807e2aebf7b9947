package preflight

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// criTimeout bounds each CRI call; a runtime that is up answers in
// milliseconds.
const criTimeout = 10 * time.Second

// askRuntime asks the runtime at a unix:// CRI endpoint (its socket taken
// under root) for its version, status and runtime configuration.
func askRuntime(ctx context.Context, root, endpoint string) (*CRIInfo, error) {
	p, ok := strings.CutPrefix(endpoint, "unix://")
	if !ok && strings.Contains(endpoint, "://") {
		return nil, fmt.Errorf("only unix:// endpoints are supported")
	}
	if !filepath.IsAbs(p) {
		return nil, fmt.Errorf("expected unix:///absolute/path")
	}
	sock := filepath.Join(root, p)
	if _, err := os.Stat(sock); err != nil {
		return nil, fmt.Errorf("no runtime socket (is the container runtime running?): %w", err)
	}
	conn, err := grpc.NewClient("passthrough:///"+sock,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", addr)
		}))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	rt := runtimeapi.NewRuntimeServiceClient(conn)

	cctx, cancel := context.WithTimeout(ctx, criTimeout)
	defer cancel()
	v, err := rt.Version(cctx, &runtimeapi.VersionRequest{})
	if err != nil {
		if status.Code(err) == codes.Unimplemented {
			return nil, fmt.Errorf("the runtime does not serve CRI v1: %w", err)
		}
		return nil, err
	}
	info := &CRIInfo{RuntimeName: v.RuntimeName, RuntimeVersion: v.RuntimeVersion, RuntimeAPIVersion: v.RuntimeApiVersion}

	st, err := rt.Status(cctx, &runtimeapi.StatusRequest{})
	if err != nil {
		info.StatusErr = err
	} else {
		// Only a RuntimeReady condition that is false means not ready;
		// NetworkReady is not tested, on purpose (the CNI comes later).
		info.Ready = true
		for _, c := range st.GetStatus().GetConditions() {
			if c.GetType() == runtimeapi.RuntimeReady {
				info.Ready, info.Reason, info.Message = c.GetStatus(), c.GetReason(), c.GetMessage()
			}
		}
	}

	rc, err := rt.RuntimeConfig(cctx, &runtimeapi.RuntimeConfigRequest{})
	switch {
	case status.Code(err) == codes.Unimplemented:
	case err != nil:
		info.RuntimeConfigErr = err
	default:
		info.RuntimeConfig = true
		if l := rc.GetLinux(); l != nil {
			switch l.GetCgroupDriver() {
			case runtimeapi.CgroupDriver_SYSTEMD:
				info.CgroupDriver = "systemd"
			case runtimeapi.CgroupDriver_CGROUPFS:
				info.CgroupDriver = "cgroupfs"
			}
		}
	}
	return info, nil
}
