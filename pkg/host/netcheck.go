package host

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// CheckAdvertise fails unless the advertise address is assigned to an
// interface that is up: an API server advertising an address no interface
// holds is unreachable, and kubeadm finds out only at the wait.
func CheckAdvertise(advertise net.IP) error {
	addrs, err := listAddrs()
	if err != nil {
		return fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		if a.IP.Equal(advertise) {
			link, err := netlink.LinkByIndex(a.LinkIndex)
			if err != nil {
				return fmt.Errorf("advertise address %s: interface %d: %w", advertise, a.LinkIndex, err)
			}
			if link.Attrs().Flags&net.FlagUp == 0 {
				return fmt.Errorf("advertise address %s is on interface %s, which is down", advertise, link.Attrs().Name)
			}
			return nil
		}
	}
	return fmt.Errorf("advertise address %s is not assigned to any interface of this machine", advertise)
}

// CheckSubnets fails when a local route covers part of the pod or service
// subnets: packets for pods or services would leave through that route, a
// classic cause of clusters that half work. Routes inside the pod subnet
// are the pod network's own and are fine.
func CheckSubnets(pods, services []*net.IPNet) error {
	var routes []netlink.Route
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		r, err := listRoutes(family)
		if err != nil {
			return fmt.Errorf("list routes: %w", err)
		}
		routes = append(routes, r...)
	}
	var problems []string
	for _, r := range routes {
		if isDefault(r) || r.Dst == nil {
			continue
		}
		for _, kind := range []struct {
			name string
			nets []*net.IPNet
		}{{"pod", pods}, {"service", services}} {
			for _, n := range kind.nets {
				if !overlap(r.Dst, n) {
					continue
				}
				if kind.name == "pod" && within(r.Dst, n) {
					continue
				}
				dev := fmt.Sprintf("interface %d", r.LinkIndex)
				if l, err := netlink.LinkByIndex(r.LinkIndex); err == nil {
					dev = l.Attrs().Name
				}
				problems = append(problems, fmt.Sprintf("the %s subnet %s overlaps the route to %s via %s", kind.name, n, r.Dst, dev))
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s: choose subnets this machine does not route to (networking.podSubnet, networking.serviceSubnet)", strings.Join(problems, "; "))
	}
	return nil
}

func overlap(a, b *net.IPNet) bool { return a.Contains(b.IP) || b.Contains(a.IP) }

// within tells whether a lies inside b.
func within(a, b *net.IPNet) bool {
	ao, ab := a.Mask.Size()
	bo, bb := b.Mask.Size()
	return ab == bb && ao >= bo && b.Contains(a.IP)
}

// listAddrs retries an interrupted dump, like listRoutes.
func listAddrs() ([]netlink.Addr, error) {
	var err error
	for range 5 {
		var addrs []netlink.Addr
		addrs, err = netlink.AddrList(nil, netlink.FAMILY_ALL)
		if err == nil {
			return addrs, nil
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) && !errors.Is(err, unix.EINTR) {
			return nil, err
		}
	}
	return nil, err
}
