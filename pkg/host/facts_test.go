package host

import (
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// TestDefaultRouteSources builds a dual-stack network namespace with
// default routes with and without a preferred source and reads them back.
func TestDefaultRouteSources(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		t.Skipf("cannot create a network namespace here: %v", err)
	}
	defer func() { netns.Set(orig); ns.Close() }()

	la := netlink.NewLinkAttrs()
	la.Name = "kb0"
	// A veth pair: this kernel has no dummy interfaces.
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "kb1"}); err != nil {
		t.Fatal(err)
	}
	peer, _ := netlink.LinkByName("kb1")
	netlink.LinkSetUp(peer)
	link, _ := netlink.LinkByName("kb0")
	for _, a := range []string{"192.0.2.10/24", "192.0.2.11/24", "2001:db8::10/64"} {
		addr, _ := netlink.ParseAddr(a)
		addr.Flags = unix.IFA_F_NODAD // usable at once, no duplicate address detection
		if err := netlink.AddrAdd(link, addr); err != nil {
			t.Fatal(err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		t.Fatal(err)
	}
	// IPv4 default with an explicit source; IPv6 default without one.
	if err := netlink.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Gw: net.ParseIP("192.0.2.1"), Src: net.ParseIP("192.0.2.11")}); err != nil {
		t.Fatal(err)
	}
	if err := netlink.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Gw: net.ParseIP("2001:db8::1")}); err != nil {
		t.Fatal(err)
	}
	got, err := Facts{}.DefaultRouteSources()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[0].Equal(net.ParseIP("192.0.2.11")) || !got[1].Equal(net.ParseIP("2001:db8::10")) {
		t.Fatalf("got %v, want [192.0.2.11 2001:db8::10]", got)
	}
	// The advertise checks, in the same namespace.
	if err := CheckAdvertise(net.ParseIP("192.0.2.11")); err != nil {
		t.Errorf("CheckAdvertise on an up interface: %v", err)
	}
	if err := CheckAdvertise(net.ParseIP("198.51.100.1")); err == nil || !strings.Contains(err.Error(), "not assigned") {
		t.Errorf("CheckAdvertise of a foreign address: %v", err)
	}
	cidr := func(s string) []*net.IPNet { _, n, _ := net.ParseCIDR(s); return []*net.IPNet{n} }
	if err := CheckSubnets(cidr("10.244.0.0/16"), cidr("10.96.0.0/12")); err != nil {
		t.Errorf("CheckSubnets without overlap: %v", err)
	}
	if err := CheckSubnets(cidr("192.0.2.0/25"), cidr("10.96.0.0/12")); err == nil || !strings.Contains(err.Error(), "pod subnet 192.0.2.0/25 overlaps the route to 192.0.2.0/24 via kb0") {
		t.Errorf("CheckSubnets with a pod subnet inside a local route: %v", err)
	}
	if err := CheckSubnets(cidr("10.244.0.0/16"), cidr("192.0.0.0/16")); err == nil || !strings.Contains(err.Error(), "service subnet") {
		t.Errorf("CheckSubnets with a service subnet around a local route: %v", err)
	}
	if err := CheckSubnets(cidr("192.0.0.0/16"), cidr("10.96.0.0/12")); err != nil {
		t.Errorf("a route inside the pod subnet is the pod network's: %v", err)
	}
	netlink.LinkSetDown(link)
	if err := CheckAdvertise(net.ParseIP("192.0.2.11")); err == nil || !strings.Contains(err.Error(), "down") {
		t.Errorf("CheckAdvertise on a down interface: %v", err)
	}
}
