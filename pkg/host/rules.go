package host

import (
	"fmt"
	"os/exec"
	"strings"
)

// KubeRules removes the packet-filter state Kubernetes components leave
// behind: kube-proxy's nftables tables and the KUBE-* iptables chains of
// kube-proxy and the kubelet, with the jumps into them. Rules of others
// are kept and counted. It shells out to nft and iptables when present:
// reset runs long after first boot, on a machine with those tools.
type KubeRules struct {
	Removed []string
	Kept    int
}

// FlushKubeRules removes the rules; dryRun only lists them.
func FlushKubeRules(dryRun bool) (KubeRules, error) {
	var r KubeRules
	var errs []string
	if nft, err := exec.LookPath("nft"); err == nil {
		out, _ := exec.Command(nft, "list", "tables").Output()
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) == 3 && f[0] == "table" && f[2] == "kube-proxy" {
				r.Removed = append(r.Removed, "nft table "+f[1]+" kube-proxy")
				if !dryRun {
					if o, err := exec.Command(nft, "delete", "table", f[1], "kube-proxy").CombinedOutput(); err != nil {
						errs = append(errs, fmt.Sprintf("nft delete table %s kube-proxy: %s", f[1], strings.TrimSpace(string(o))))
					}
				}
			}
		}
	}
	for _, tool := range []string{"iptables", "ip6tables"} {
		bin, err := exec.LookPath(tool)
		if err != nil {
			continue
		}
		for _, table := range []string{"filter", "nat", "mangle"} {
			out, err := exec.Command(bin, "-w", "-t", table, "-S").Output()
			if err != nil {
				continue
			}
			var chains, jumps []string
			for _, line := range strings.Split(string(out), "\n") {
				f := strings.Fields(line)
				switch {
				case len(f) == 2 && f[0] == "-N" && strings.HasPrefix(f[1], "KUBE-"):
					chains = append(chains, f[1])
				case len(f) > 2 && f[0] == "-A" && !strings.HasPrefix(f[1], "KUBE-") && strings.Contains(line, "-j KUBE-"):
					jumps = append(jumps, line)
				case len(f) > 2 && f[0] == "-A" && !strings.HasPrefix(f[1], "KUBE-"):
					r.Kept++
				}
			}
			for _, j := range jumps {
				r.Removed = append(r.Removed, fmt.Sprintf("%s -t %s %s", tool, table, j))
				if !dryRun {
					args := append([]string{"-w", "-t", table, "-D"}, strings.Fields(j)[1:]...)
					if o, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
						errs = append(errs, strings.TrimSpace(string(o)))
					}
				}
			}
			for _, c := range chains {
				r.Removed = append(r.Removed, fmt.Sprintf("%s -t %s chain %s", tool, table, c))
				if !dryRun {
					exec.Command(bin, "-w", "-t", table, "-F", c).Run()
				}
			}
			for _, c := range chains {
				if !dryRun {
					if o, err := exec.Command(bin, "-w", "-t", table, "-X", c).CombinedOutput(); err != nil {
						errs = append(errs, strings.TrimSpace(string(o)))
					}
				}
			}
		}
	}
	if len(errs) > 0 {
		return r, fmt.Errorf("packet filter cleanup: %s", strings.Join(errs, "; "))
	}
	return r, nil
}
