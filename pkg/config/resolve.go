package config

import (
	"fmt"
	"net"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// HostFacts are the dynamic values kubeadm derives from the machine.
type HostFacts interface {
	Hostname() (string, error)
	// DefaultRouteSources returns the source addresses of the routes to the
	// default gateways, IPv4 first.
	DefaultRouteSources() ([]net.IP, error)
}

// Resolve fills the values that come from the machine rather than the file:
// the node name (the lower-cased hostname) and the advertise address (the
// source address of the default route). Values the user set are kept.
func Resolve(c *Config, h HostFacts) error {
	e := c.errorsFor(KindInit)
	resolveNodeName(e, &c.Init.NodeRegistration, h)
	ep := &c.Init.LocalAPIEndpoint
	if ep.AdvertiseAddress == "" {
		ips, err := h.DefaultRouteSources()
		switch {
		case err != nil:
			e.add("localAPIEndpoint.advertiseAddress", "not set and the default route cannot be read: %v", err)
		case len(ips) == 0:
			e.add("localAPIEndpoint.advertiseAddress", "not set and this machine has no default route to take it from; set it in the InitConfiguration")
		default:
			ep.AdvertiseAddress = pickFamily(ips, c.Cluster.Networking.ServiceSubnet).String()
		}
	}
	if len(e.errs) > 0 {
		return &Error{Errs: e.errs}
	}
	return nil
}

// pickFamily prefers the address of the service subnet's primary family, so
// an IPv6-primary cluster advertises its IPv6 address.
func pickFamily(ips []net.IP, serviceSubnet string) net.IP {
	nets, err := ParseCIDRs(serviceSubnet)
	if err == nil {
		v4 := nets[0].IP.To4() != nil
		for _, ip := range ips {
			if (ip.To4() != nil) == v4 {
				return ip
			}
		}
	}
	return ips[0]
}

// StaticFacts are fixed host facts, for tests and for hosts where the
// caller already knows the answers.
type StaticFacts struct {
	Host string
	IPs  []net.IP
}

func (s StaticFacts) Hostname() (string, error) {
	if s.Host == "" {
		return "", fmt.Errorf("no hostname")
	}
	return s.Host, nil
}

func (s StaticFacts) DefaultRouteSources() ([]net.IP, error) { return s.IPs, nil }

// resolveNodeName defaults the node name to the lower-cased hostname, as
// kubeadm does, for init and join alike.
func resolveNodeName(e *docErrors, nr *NodeRegistrationOptions, h HostFacts) {
	if nr.Name != "" {
		return
	}
	name, err := h.Hostname()
	if err != nil {
		e.add("nodeRegistration.name", "not set and the hostname cannot be read: %v", err)
		return
	}
	nr.Name = strings.ToLower(strings.TrimSpace(name))
	for _, msg := range validation.IsDNS1123Subdomain(nr.Name) {
		e.add("nodeRegistration.name", "not set, and the hostname %q is not a valid node name (%s); set nodeRegistration.name", nr.Name, msg)
	}
}
