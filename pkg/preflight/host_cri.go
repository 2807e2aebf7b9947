package preflight

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kubeboot/kubeboot/pkg/cri"
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
	cctx, cancel := context.WithTimeout(ctx, criTimeout)
	defer cancel()
	c, err := cri.Dial(cctx, "unix://"+sock)
	if err != nil {
		if status.Code(errors.Unwrap(err)) == codes.Unimplemented || strings.Contains(err.Error(), "unknown service runtime.v1") {
			return nil, fmt.Errorf("the runtime does not serve CRI v1: %w", err)
		}
		return nil, err
	}
	defer c.Close()
	v, err := c.Version(cctx)
	if err != nil {
		return nil, err
	}
	info := &CRIInfo{RuntimeName: v.RuntimeName, RuntimeVersion: v.RuntimeVersion, RuntimeAPIVersion: v.RuntimeAPIVersion}
	if st, err := c.Status(cctx); err != nil {
		info.StatusErr = err
	} else {
		info.Ready, info.Reason, info.Message = st.Ready, st.Reason, st.Message
	}
	driver, supported, err := c.CgroupDriver(cctx)
	switch {
	case err != nil:
		info.RuntimeConfigErr = err
	case supported:
		info.RuntimeConfig, info.CgroupDriver = true, driver
	}
	return info, nil
}
