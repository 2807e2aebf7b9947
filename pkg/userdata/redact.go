package userdata

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

// RedactedValue stands in for secret values.
const RedactedValue = "<redacted>"

// Redacted describes the Result for `kubeboot userdata show`: where it
// came from, what it writes (file contents only by size and digest), and
// the kubeboot configuration with tokens, keys, passwords and certificate
// keys replaced by <redacted>.
func (r *Result) Redacted() string {
	if r == nil {
		return "no userdata found\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "source: %s\n", r.Source)
	format := r.Format
	if format == "" {
		format = "(none: meta-data only)"
	}
	fmt.Fprintf(&b, "format: %s\n", format)
	if r.Hostname != "" {
		fmt.Fprintf(&b, "hostname: %s\n", r.Hostname)
	}
	if r.InstanceID != "" {
		fmt.Fprintf(&b, "instance-id: %s\n", r.InstanceID)
	}
	if len(r.Warnings) > 0 {
		b.WriteString("warnings:\n")
		for _, w := range r.Warnings {
			fmt.Fprintf(&b, "  - %s\n", w)
		}
	}
	if len(r.Directories) > 0 {
		b.WriteString("directories:\n")
		for _, d := range r.Directories {
			fmt.Fprintf(&b, "  %s mode %04o%s%s\n", d.Path, modeBits(d.Mode), ownerText(d.Owner), when(d.Overwrite, " overwrite"))
		}
	}
	if len(r.Files) > 0 {
		b.WriteString("files:\n")
		for _, f := range r.Files {
			what := "keep existing contents"
			if f.HasContents {
				what = fmt.Sprintf("%d bytes sha256:%s", len(f.Data), f.Digest()[:16])
			}
			if len(f.Append) > 0 {
				what += fmt.Sprintf(", append %d bytes", len(f.Append))
			}
			if f.Secret {
				what += ", secret"
			}
			fmt.Fprintf(&b, "  %s mode %04o%s%s: %s\n", f.Path, modeBits(f.Mode), ownerText(f.Owner), when(f.Overwrite, " overwrite"), what)
		}
	}
	if len(r.Links) > 0 {
		b.WriteString("links:\n")
		for _, l := range r.Links {
			kind := "->"
			if l.Hard {
				kind = "=> (hard)"
			}
			fmt.Fprintf(&b, "  %s %s %s%s%s\n", l.Path, kind, l.Target, ownerText(l.Owner), when(l.Overwrite, " overwrite"))
		}
	}
	if len(r.Units) > 0 {
		b.WriteString("units:\n")
		for _, u := range r.Units {
			var parts []string
			if u.Contents != nil {
				parts = append(parts, fmt.Sprintf("contents %d bytes", len(*u.Contents)))
			}
			if u.Enabled != nil {
				parts = append(parts, map[bool]string{true: "enable", false: "disable"}[*u.Enabled])
			}
			if u.Mask {
				parts = append(parts, "mask")
			}
			for _, d := range u.Dropins {
				if d.Contents == nil {
					parts = append(parts, "remove drop-in "+d.Name)
				} else {
					parts = append(parts, "drop-in "+d.Name)
				}
			}
			fmt.Fprintf(&b, "  %s: %s\n", u.Name, strings.Join(parts, ", "))
		}
	}
	if len(r.SSHAuthorizedKeys) > 0 {
		b.WriteString("ssh authorized keys:\n")
		users := make([]string, 0, len(r.SSHAuthorizedKeys))
		for u := range r.SSHAuthorizedKeys {
			users = append(users, u)
		}
		sort.Strings(users)
		for _, u := range users {
			for _, k := range r.SSHAuthorizedKeys[u] {
				fmt.Fprintf(&b, "  %s: %s\n", u, redactSSHKey(k))
			}
		}
	}
	if len(r.Config) > 0 {
		b.WriteString("configuration:\n")
		cfg, err := RedactConfig(r.Config)
		if err != nil {
			fmt.Fprintf(&b, "  (%d bytes not shown: %v)\n", len(r.Config), err)
		} else {
			for _, line := range strings.Split(strings.TrimRight(string(cfg), "\n"), "\n") {
				b.WriteString("  " + line + "\n")
			}
		}
	} else {
		b.WriteString("configuration: none in this userdata\n")
	}
	return b.String()
}

func modeBits(m fs.FileMode) uint32 {
	bits := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		bits |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		bits |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		bits |= 0o1000
	}
	return bits
}

func ownerText(o *rootfs.Owner) string {
	if o == nil {
		return ""
	}
	return fmt.Sprintf(" owner %d:%d", o.UID, o.GID)
}

func when(on bool, s string) string {
	if on {
		return s
	}
	return ""
}

// redactSSHKey keeps the key type and comment of an authorized key.
func redactSSHKey(k string) string {
	f := strings.Fields(k)
	for i, w := range f {
		if len(w) > 40 && !strings.Contains(w, "=\"") {
			f[i] = RedactedValue
		}
	}
	return strings.Join(f, " ")
}

// RedactConfig re-encodes a kubeboot configuration with the values of
// secret fields (token, tlsBootstrapToken, certificateKey, *password*,
// *secret*, *Key, ...) and PEM private keys replaced by <redacted>.
func RedactConfig(cfg []byte) ([]byte, error) {
	dec := yaml.NewDecoder(bytes.NewReader(cfg))
	var out bytes.Buffer
	for i := 0; ; i++ {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("YAML: %v", err)
		}
		if countNodes(&doc, 0) > maxNodes {
			return nil, fmt.Errorf("more than %d YAML nodes", maxNodes)
		}
		redactNode(expand(&doc), &out, i)
	}
	return out.Bytes(), nil
}

func redactNode(doc *yaml.Node, out *bytes.Buffer, i int) {
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		switch n.Kind {
		case yaml.MappingNode:
			for j := 0; j+1 < len(n.Content); j += 2 {
				k, v := n.Content[j], n.Content[j+1]
				if v.Kind == yaml.ScalarNode && isSecretKey(k.Value) && v.Value != "" {
					v.Value, v.Tag, v.Style = RedactedValue, "!!str", 0
					continue
				}
				walk(v)
			}
		case yaml.ScalarNode:
			if strings.Contains(n.Value, "PRIVATE KEY-----") {
				n.Value, n.Tag, n.Style = RedactedValue, "!!str", 0
			}
		default:
			for _, c := range n.Content {
				walk(c)
			}
		}
	}
	walk(doc)
	if i > 0 {
		out.WriteString("---\n")
	}
	enc := yaml.NewEncoder(out)
	enc.SetIndent(2)
	_ = enc.Encode(doc)
	_ = enc.Close()
}

// isSecretKey tells whether a configuration field holds a secret.
func isSecretKey(key string) bool {
	k := strings.ToLower(key)
	for _, s := range []string{"token", "password", "passwd", "secret", "key", "credential", "identity"} {
		if strings.HasSuffix(k, s) {
			return true
		}
	}
	return strings.Contains(k, "privatekey") || strings.Contains(k, "certificatekey")
}
