package config

import (
	"fmt"
	"math/big"
	"net"
	"strings"
)

// ParseCIDRs parses a comma-separated list of at most two CIDRs, one per
// IP family, as kubeadm accepts for dual-stack clusters.
func ParseCIDRs(s string) ([]*net.IPNet, error) {
	var out []*net.IPNet
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		ip, n, err := net.ParseCIDR(part)
		if err != nil {
			return nil, fmt.Errorf("invalid CIDR %q", part)
		}
		if !ip.Equal(n.IP) {
			return nil, fmt.Errorf("invalid CIDR %q: host bits set (did you mean %s?)", part, n)
		}
		out = append(out, n)
	}
	if len(out) > 2 {
		return nil, fmt.Errorf("at most two CIDRs (one IPv4, one IPv6) are allowed, got %d", len(out))
	}
	if len(out) == 2 && (out[0].IP.To4() == nil) == (out[1].IP.To4() == nil) {
		return nil, fmt.Errorf("two CIDRs must be of different IP families: %q", s)
	}
	return out, nil
}

// NthIP returns the n-th address of a subnet (0 is the network address).
func NthIP(n *net.IPNet, i int64) (net.IP, error) {
	base := new(big.Int).SetBytes(n.IP)
	ip := new(big.Int).Add(base, big.NewInt(i))
	ones, bits := n.Mask.Size()
	size := new(big.Int).Lsh(big.NewInt(1), uint(bits-ones))
	if big.NewInt(i).Cmp(size) >= 0 {
		return nil, fmt.Errorf("subnet %s has no address number %d", n, i)
	}
	b := ip.Bytes()
	out := make(net.IP, len(n.IP))
	copy(out[len(out)-len(b):], b)
	return out, nil
}

// APIServerServiceIP is the first address of the first service subnet:
// the "kubernetes" Service's ClusterIP.
func APIServerServiceIP(serviceSubnet string) (net.IP, error) {
	nets, err := ParseCIDRs(serviceSubnet)
	if err != nil {
		return nil, err
	}
	return NthIP(nets[0], 1)
}

// DNSIP is the 10th address of the first service subnet, kube-dns's ClusterIP.
func DNSIP(serviceSubnet string) (net.IP, error) {
	nets, err := ParseCIDRs(serviceSubnet)
	if err != nil {
		return nil, err
	}
	return NthIP(nets[0], 10)
}

func overlaps(a, b *net.IPNet) bool {
	return a.Contains(b.IP) || b.Contains(a.IP)
}
