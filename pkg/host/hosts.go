package host

import (
	"strings"

	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

// HostsPath is the resolver's static table.
const HostsPath = "/etc/hosts"

// HostsWithNode returns /etc/hosts with "<ip> <name>" appended when no
// line already names the node; ok is false when nothing needs to change.
func HostsWithNode(current []byte, ip, name string) (rootfs.File, bool) {
	for _, line := range strings.Split(string(current), "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		for _, alias := range f[min(1, len(f)):] {
			if strings.EqualFold(alias, name) {
				return rootfs.File{}, false
			}
		}
	}
	data := string(current)
	if data != "" && !strings.HasSuffix(data, "\n") {
		data += "\n"
	}
	data += ip + " " + name + " " + hostsMark + "\n"
	return rootfs.File{Path: HostsPath, Mode: 0o644, Data: []byte(data)}, true
}

// hostsMark ends the line kubeboot adds, so that reset finds it.
const hostsMark = "# added by kubeboot: the kubelet needs its node name to resolve"

// HostsWithoutNode removes the lines kubeboot added. empty tells that
// nothing else is left (the file was kubeboot's alone).
func HostsWithoutNode(current []byte) (data []byte, changed, empty bool) {
	var kept []string
	for _, line := range strings.SplitAfter(string(current), "\n") {
		if strings.Contains(line, hostsMark) {
			changed = true
			continue
		}
		kept = append(kept, line)
	}
	out := strings.Join(kept, "")
	return []byte(out), changed, strings.TrimSpace(out) == ""
}
