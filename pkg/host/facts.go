// Package host is kubeboot's access to the machine: kernel modules,
// sysctls, network facts. Each piece sits behind a small interface so that
// phases can be tested without the host, and the real implementation is
// tested for real (network namespaces, the QEMU guest).
package host

import (
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Facts reads the hostname and the default routes of this machine.
type Facts struct{}

func (Facts) Hostname() (string, error) { return os.Hostname() }

// DefaultRouteSources returns the source address of each default route,
// IPv4 first; a route without a preferred source gets the address the
// kernel would choose for its gateway.
func (Facts) DefaultRouteSources() ([]net.IP, error) {
	var out []net.IP
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := listRoutes(family)
		if err != nil {
			return nil, fmt.Errorf("list routes: %w", err)
		}
		for _, r := range routes {
			if !isDefault(r) {
				continue
			}
			src := r.Src
			if src == nil && r.Gw != nil {
				if got, err := netlink.RouteGet(r.Gw); err == nil && len(got) > 0 {
					src = got[0].Src
				}
			}
			if src != nil && !containsIP(out, src) {
				out = append(out, src)
			}
		}
	}
	return out, nil
}

func isDefault(r netlink.Route) bool {
	if r.Dst == nil {
		return true
	}
	ones, _ := r.Dst.Mask.Size()
	return ones == 0
}

// listRoutes retries when the kernel interrupts a dump because the table
// changed underneath it, which happens while DHCP is still settling.
func listRoutes(family int) ([]netlink.Route, error) {
	var err error
	for range 5 {
		var routes []netlink.Route
		routes, err = netlink.RouteList(nil, family)
		if err == nil {
			return routes, nil
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) && !errors.Is(err, unix.EINTR) {
			return nil, err
		}
	}
	return nil, err
}

func containsIP(list []net.IP, ip net.IP) bool {
	for _, x := range list {
		if x.Equal(ip) {
			return true
		}
	}
	return false
}
