package userdata

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

// maxNodes bounds the YAML nodes of one document, aliases followed, so a
// "billion laughs" document fails fast.
const maxNodes = 100000

// cloudConfig decodes a #cloud-config document: write_files, users'
// ssh_authorized_keys, hostname and the kubeboot key. Other keys are
// listed in a warning.
func (d *decoder) cloudConfig(text []byte) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(text, &doc); err != nil {
		return fmt.Errorf("cloud-config: YAML: %v", err)
	}
	if len(doc.Content) == 0 {
		return nil // "#cloud-config" and nothing else
	}
	top := doc.Content[0]
	if n := countNodes(top, 0); n > maxNodes {
		return fmt.Errorf("cloud-config: more than %d YAML nodes (aliases included)", maxNodes)
	}
	if top.Kind == yaml.ScalarNode && top.Tag == "!!null" {
		return nil
	}
	if top.Kind != yaml.MappingNode {
		return fmt.Errorf("cloud-config: line %d: top level is not a mapping", top.Line)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], resolve(top.Content[i+1])
		key := k.Value
		if seen[key] {
			return fmt.Errorf("cloud-config: line %d: key %q given twice", k.Line, key)
		}
		seen[key] = true
		var err error
		switch key {
		case "write_files":
			err = d.writeFiles(v)
		case "kubeboot":
			err = d.cloudConfigKubeboot(v)
		case "users":
			err = d.cloudConfigUsers(v)
		case "hostname", "fqdn":
			if key == "fqdn" && field(top, "hostname") != nil {
				continue
			}
			if v.Kind != yaml.ScalarNode {
				err = fmt.Errorf("not a string")
				break
			}
			if err = checkHostname(v.Value); err == nil {
				d.res.Hostname = v.Value
			}
		default:
			d.ignored[key] = true
			continue
		}
		if err != nil {
			return fmt.Errorf("cloud-config: %s (line %d): %w", key, k.Line, err)
		}
	}
	return nil
}

// countNodes counts the nodes under n, following aliases; it stops
// counting past maxNodes.
func countNodes(n *yaml.Node, count int) int {
	if n == nil || count > maxNodes {
		return count
	}
	count++
	if n.Kind == yaml.AliasNode {
		return countNodes(n.Alias, count)
	}
	for _, c := range n.Content {
		if count = countNodes(c, count); count > maxNodes {
			return count
		}
	}
	return count
}

// resolve follows an alias.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// expand copies n with every alias replaced by what it names, so that a
// subtree can be encoded on its own. countNodes bounds its work.
func expand(n *yaml.Node) *yaml.Node {
	n = resolve(n)
	if n == nil {
		return nil
	}
	c := *n
	c.Anchor = ""
	c.Content = nil
	for _, child := range n.Content {
		c.Content = append(c.Content, expand(child))
	}
	return &c
}

func (d *decoder) writeFiles(v *yaml.Node) error {
	if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		return fmt.Errorf("not a list")
	}
	for i, item := range v.Content {
		f, err := d.writeFile(resolve(item))
		if err != nil {
			return fmt.Errorf("[%d] (line %d): %w", i, item.Line, err)
		}
		d.res.Files = append(d.res.Files, f)
	}
	return nil
}

func (d *decoder) writeFile(m *yaml.Node) (File, error) {
	if m.Kind != yaml.MappingNode {
		return File{}, fmt.Errorf("not a mapping")
	}
	var (
		p, encoding, owner, perms string
		content                   []byte
		permsNode                 *yaml.Node
		appendMode                bool
		source                    *yaml.Node
	)
	for i := 0; i+1 < len(m.Content); i += 2 {
		key, v := m.Content[i].Value, resolve(m.Content[i+1])
		if key == "source" {
			source = v
			continue
		}
		if v.Kind != yaml.ScalarNode {
			return File{}, fmt.Errorf("%s: not a scalar", key)
		}
		switch key {
		case "path":
			p = v.Value
		case "content":
			if v.Tag == "!!binary" {
				b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(v.Value), ""))
				if err != nil {
					return File{}, fmt.Errorf("content: !!binary: %v", err)
				}
				content = b
			} else if v.Tag != "!!null" {
				content = []byte(v.Value)
			}
		case "encoding":
			encoding = strings.ToLower(strings.TrimSpace(v.Value))
		case "owner":
			owner = v.Value
		case "permissions":
			perms, permsNode = v.Value, v
		case "append":
			b, err := strconv.ParseBool(v.Value)
			if err != nil {
				return File{}, fmt.Errorf("append %q: not a boolean", v.Value)
			}
			appendMode = b
		case "defer":
			// kubeboot installs no packages and creates no users, so
			// deferring changes nothing.
		default:
			d.warnf("cloud-config: write_files %s: key %q not applied", p, key)
		}
	}
	if err := checkPath(p); err != nil {
		return File{}, err
	}
	f := File{File: rootfs.File{Path: p, Mode: 0o644}, Overwrite: true}
	if source != nil {
		data, err := d.writeFileSource(source)
		switch {
		case err == nil:
			content, encoding = data, ""
		case content == nil:
			return File{}, fmt.Errorf("%s: source: %w", p, err)
		default:
			d.warnf("cloud-config: write_files %s: source failed, using content: %v", p, err)
		}
	}
	data, err := d.decodeContent(content, encoding)
	if err != nil {
		return File{}, fmt.Errorf("%s: %w", p, err)
	}
	if permsNode != nil {
		mode, err := parsePermissions(perms, permsNode)
		if err != nil {
			return File{}, fmt.Errorf("%s: %w", p, err)
		}
		if f.Mode, err = modeOf(mode); err != nil {
			return File{}, fmt.Errorf("%s: permissions %q: %w", p, perms, err)
		}
	}
	if owner != "" {
		o, err := d.parseOwner(owner)
		if err != nil {
			return File{}, fmt.Errorf("%s: owner %q: %w", p, owner, err)
		}
		f.Owner = o
	}
	if appendMode {
		f.Append = data
	} else {
		f.Data, f.HasContents = data, true
	}
	if p == ConfigPath {
		d.warnf("cloud-config: write_files %s: prefer the top-level kubeboot key; the file is written and read as the configuration", p)
		if !appendMode {
			d.addConfig(data)
		}
	}
	f.Secret = isSecret(p, data)
	return f, nil
}

// writeFileSource fetches write_files[].source: {uri, headers}.
func (d *decoder) writeFileSource(s *yaml.Node) ([]byte, error) {
	uri := scalarField(s, "uri")
	if uri == "" {
		return nil, fmt.Errorf("no uri")
	}
	headers := http.Header{}
	if h := resolve(field(s, "headers")); h != nil && h.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(h.Content); i += 2 {
			headers.Add(h.Content[i].Value, resolve(h.Content[i+1]).Value)
		}
	}
	if !isDataURL(uri) && !strings.HasPrefix(uri, "http://") && !strings.HasPrefix(uri, "https://") {
		return nil, fmt.Errorf("uri %s: only data:, http and https are supported", RedactURL(uri))
	}
	data, err := d.fetch.get(d.ctx, uri, headers)
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > d.fetched.left {
		return nil, fmt.Errorf("uri %s: fetched contents exceed %d MiB in all", RedactURL(uri), MaxDecompressed>>20)
	}
	d.fetched.left -= int64(len(data))
	return data, nil
}

// decodeContent applies a write_files encoding.
func (d *decoder) decodeContent(content []byte, encoding string) ([]byte, error) {
	b64 := func(in []byte) ([]byte, error) {
		s := strings.Join(strings.Fields(string(in)), "")
		out, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			if out, err2 := base64.RawStdEncoding.DecodeString(s); err2 == nil {
				return out, nil
			}
			return nil, fmt.Errorf("encoding base64: %v", err)
		}
		return out, nil
	}
	switch encoding {
	case "", "text/plain", "text":
		return content, nil
	case "b64", "base64":
		return b64(content)
	case "gz", "gzip":
		return d.unzip.gunzip(content)
	case "gz+b64", "gz+base64", "gzip+b64", "gzip+base64":
		raw, err := b64(content)
		if err != nil {
			return nil, err
		}
		return d.unzip.gunzip(raw)
	}
	return nil, fmt.Errorf("encoding %q is not supported (b64, gzip, gz+b64)", encoding)
}

// parsePermissions reads a mode the way cloud-init does: a string is
// octal, an integer is taken as written (YAML 1.1 reads 0644 as octal).
func parsePermissions(s string, n *yaml.Node) (int, error) {
	s = strings.TrimSpace(s)
	base := 8
	if n.Tag == "!!int" && n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) == 0 {
		if !strings.HasPrefix(s, "0") || s == "0" {
			base = 10
		}
	}
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0o"), "0O")
	v, err := strconv.ParseInt(s, base, 32)
	if err != nil {
		return 0, fmt.Errorf("permissions %q: not an octal mode", n.Value)
	}
	return int(v), nil
}

// parseOwner reads "user", "user:group", names or numeric IDs.
func (d *decoder) parseOwner(s string) (*rootfs.Owner, error) {
	user, group, hasGroup := strings.Cut(strings.TrimSpace(s), ":")
	if user == "" || (hasGroup && group == "") {
		return nil, fmt.Errorf("want user[:group]")
	}
	u, err := d.owners.user(user)
	if err != nil {
		return nil, err
	}
	o := &rootfs.Owner{UID: u.UID, GID: u.GID}
	if hasGroup {
		if o.GID, err = d.owners.group(group); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// cloudConfigKubeboot reads the kubeboot key: a string holding the YAML
// stream, one document (a mapping) or a list of documents.
func (d *decoder) cloudConfigKubeboot(v *yaml.Node) error {
	var docs []*yaml.Node
	switch v.Kind {
	case yaml.ScalarNode:
		if v.Tag == "!!null" {
			return nil
		}
		if err := checkKubebootYAML([]byte(v.Value)); err != nil {
			return err
		}
		d.addConfig([]byte(v.Value))
		return nil
	case yaml.MappingNode:
		docs = []*yaml.Node{v}
	case yaml.SequenceNode:
		docs = v.Content
	default:
		return fmt.Errorf("want a mapping, a list of mappings or a string")
	}
	var buf bytes.Buffer
	for i, doc := range docs {
		doc = expand(doc)
		if doc.Kind != yaml.MappingNode {
			return fmt.Errorf("[%d]: not a mapping", i)
		}
		if i > 0 {
			buf.WriteString("---\n")
		}
		out, err := yaml.Marshal(doc)
		if err != nil {
			return fmt.Errorf("[%d]: %v", i, err)
		}
		buf.Write(out)
	}
	if err := checkKubebootYAML(buf.Bytes()); err != nil {
		return err
	}
	d.addConfig(buf.Bytes())
	return nil
}

func (d *decoder) cloudConfigUsers(v *yaml.Node) error {
	if v.Kind != yaml.SequenceNode {
		return fmt.Errorf("not a list")
	}
	for i, item := range v.Content {
		item = resolve(item)
		if item.Kind == yaml.ScalarNode {
			d.warnf("cloud-config: users[%d] %q: not applied (kubeboot creates no users)", i, item.Value)
			continue
		}
		if item.Kind != yaml.MappingNode {
			return fmt.Errorf("[%d]: not a mapping", i)
		}
		name := scalarField(item, "name")
		if err := checkUnitName(name); err != nil {
			return fmt.Errorf("[%d]: user %w", i, err)
		}
		var other []string
		for j := 0; j+1 < len(item.Content); j += 2 {
			key, val := item.Content[j].Value, resolve(item.Content[j+1])
			switch key {
			case "name":
			case "ssh_authorized_keys", "ssh-authorized-keys":
				if val.Kind != yaml.SequenceNode {
					return fmt.Errorf("[%d] %s: %s: not a list", i, name, key)
				}
				for _, k := range val.Content {
					k = resolve(k)
					if k.Kind != yaml.ScalarNode {
						return fmt.Errorf("[%d] %s: %s: not a string", i, name, key)
					}
					if err := d.addSSHKey(name, k.Value); err != nil {
						return fmt.Errorf("[%d] %s: %w", i, name, err)
					}
				}
			default:
				other = append(other, key)
			}
		}
		if len(other) > 0 {
			d.warnf("cloud-config: users[%d] %s: %s not applied (kubeboot only authorizes SSH keys for existing users)",
				i, name, strings.Join(other, ", "))
		}
	}
	return nil
}

// checkHostname accepts an RFC 1123 host name.
func checkHostname(h string) error {
	if h == "" || len(h) > 253 {
		return fmt.Errorf("hostname %q: want 1 to 253 characters", h)
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("hostname %q: not an RFC 1123 host name", h)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("hostname %q: not an RFC 1123 host name", h)
			}
		}
	}
	return nil
}
