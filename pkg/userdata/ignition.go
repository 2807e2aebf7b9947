package userdata

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"net/http"
	"path"
	"sort"
	"strings"
	"time"

	ignutil "github.com/coreos/ignition/v2/config/util"
	ign "github.com/coreos/ignition/v2/config/v3_6"
	igntypes "github.com/coreos/ignition/v2/config/v3_6/types"
	"github.com/coreos/vcontext/report"

	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

// ignition decodes an Ignition config of spec 3.0 to 3.6 and returns its
// spec version ("3.4").
func (d *decoder) ignition(raw []byte, depth int) (string, error) {
	cfg, version, err := d.parseIgnition(raw)
	if err != nil {
		return "", err
	}
	if cfg, err = d.ignitionReferences(cfg, depth); err != nil {
		return "", err
	}
	if err := d.ignitionApply(cfg); err != nil {
		return "", fmt.Errorf("ignition: %w", err)
	}
	return version, nil
}

func (d *decoder) parseIgnition(raw []byte) (igntypes.Config, string, error) {
	ver, rpt, err := ignutil.GetConfigVersion(raw)
	if err != nil {
		return igntypes.Config{}, "", fmt.Errorf("ignition: %v%s", err, reportErrors(rpt))
	}
	cfg, rpt, err := ign.ParseCompatibleVersion(raw)
	if err != nil {
		return igntypes.Config{}, "", fmt.Errorf("ignition %d.%d: %v%s", ver.Major, ver.Minor, err, reportErrors(rpt))
	}
	for _, e := range rpt.Entries {
		if e.Kind == report.Warn {
			d.warnf("ignition: %s", e.String())
		}
	}
	return cfg, fmt.Sprintf("%d.%d", ver.Major, ver.Minor), nil
}

func reportErrors(r report.Report) string {
	var msgs []string
	for _, e := range r.Entries {
		if e.Kind.IsFatal() {
			msgs = append(msgs, e.String())
		}
	}
	if len(msgs) == 0 {
		return ""
	}
	return ": " + strings.Join(msgs, "; ")
}

// ignitionReferences follows ignition.config.replace and .merge, as
// Ignition does, up to MaxConfigDepth levels.
func (d *decoder) ignitionReferences(cfg igntypes.Config, depth int) (igntypes.Config, error) {
	if t := cfg.Ignition.Timeouts.HTTPTotal; t != nil && *t > 0 {
		d.fetch.Timeout = time.Duration(*t) * time.Second
	}
	if t := cfg.Ignition.Timeouts.HTTPResponseHeaders; t != nil && *t > 0 {
		d.fetch.AttemptTimeout = time.Duration(*t) * time.Second
	}
	if cfg.Ignition.Proxy.HTTPProxy != nil || cfg.Ignition.Proxy.HTTPSProxy != nil || len(cfg.Ignition.Proxy.NoProxy) > 0 {
		d.warnf("ignition: ignition.proxy is not applied: fetches use the environment's proxy settings")
	}
	if len(cfg.Ignition.Security.TLS.CertificateAuthorities) > 0 {
		d.warnf("ignition: ignition.security.tls.certificateAuthorities is not applied: https fetches trust the image's CA bundle")
	}
	refs := cfg.Ignition.Config
	if refs.Replace.Source == nil && len(refs.Merge) == 0 {
		return cfg, nil
	}
	if depth >= MaxConfigDepth {
		return cfg, fmt.Errorf("ignition: config references nest deeper than %d", MaxConfigDepth)
	}
	if refs.Replace.Source != nil {
		child, err := d.ignitionChild(refs.Replace, "ignition.config.replace", depth)
		if err != nil {
			return cfg, err
		}
		return child, nil
	}
	cfg.Ignition.Config = igntypes.IgnitionConfig{}
	for i, r := range refs.Merge {
		child, err := d.ignitionChild(r, fmt.Sprintf("ignition.config.merge[%d]", i), depth)
		if err != nil {
			return cfg, err
		}
		cfg = ign.Merge(cfg, child)
	}
	return cfg, nil
}

func (d *decoder) ignitionChild(r igntypes.Resource, what string, depth int) (igntypes.Config, error) {
	raw, err := d.resource(r)
	if err != nil {
		return igntypes.Config{}, fmt.Errorf("ignition: %s: %w", what, err)
	}
	child, _, err := d.parseIgnition(raw)
	if err != nil {
		return igntypes.Config{}, fmt.Errorf("%s: %w", what, err)
	}
	return d.ignitionReferences(child, depth+1)
}

// resource fetches an Ignition resource: data: or http(s) source,
// optional gzip compression, optional sha256/sha512 verification of the
// decompressed contents (as Ignition verifies).
func (d *decoder) resource(r igntypes.Resource) ([]byte, error) {
	if r.Source == nil {
		return nil, nil
	}
	src := *r.Source
	headers := http.Header{}
	for _, h := range r.HTTPHeaders {
		if h.Value != nil {
			headers.Add(h.Name, *h.Value)
		}
	}
	if !isDataURL(src) {
		if !strings.HasPrefix(src, "http://") && !strings.HasPrefix(src, "https://") {
			return nil, fmt.Errorf("source %s: only data:, http and https sources are supported", RedactURL(src))
		}
	}
	data, err := d.fetch.get(d.ctx, src, headers)
	if err != nil {
		return nil, err
	}
	if !isDataURL(src) {
		if int64(len(data)) > d.fetched.left {
			return nil, fmt.Errorf("source %s: fetched contents exceed %d MiB in all", RedactURL(src), MaxDecompressed>>20)
		}
		d.fetched.left -= int64(len(data))
	}
	if c := r.Compression; c != nil && *c != "" {
		if *c != "gzip" {
			return nil, fmt.Errorf("source %s: compression %q is not supported", RedactURL(src), *c)
		}
		if data, err = d.unzip.gunzip(data); err != nil {
			return nil, fmt.Errorf("source %s: %w", RedactURL(src), err)
		}
	}
	if r.Verification.Hash != nil {
		if err := verify(*r.Verification.Hash, data); err != nil {
			return nil, fmt.Errorf("source %s: %w", RedactURL(src), err)
		}
	}
	return data, nil
}

func verify(want string, data []byte) error {
	fn, sum, ok := strings.Cut(want, "-")
	if !ok {
		return fmt.Errorf("verification hash %q: want <function>-<hex>", want)
	}
	var h hash.Hash
	switch fn {
	case "sha256":
		h = sha256.New()
	case "sha512":
		h = sha512.New()
	default:
		return fmt.Errorf("verification hash function %q is not supported (sha256, sha512)", fn)
	}
	h.Write(data)
	if got := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(got, sum) {
		return fmt.Errorf("verification failed: %s is %s-%s, want %s", "contents", fn, got, want)
	}
	return nil
}

// ignitionApply turns the parts of a config kubeboot applies into the
// Result, and warns about the others.
func (d *decoder) ignitionApply(cfg igntypes.Config) error {
	var unapplied []string
	s := cfg.Storage
	for name, n := range map[string]int{
		"storage.disks": len(s.Disks), "storage.raid": len(s.Raid),
		"storage.filesystems": len(s.Filesystems), "storage.luks": len(s.Luks),
		"kernelArguments": len(cfg.KernelArguments.ShouldExist) + len(cfg.KernelArguments.ShouldNotExist),
		"passwd.groups":   len(cfg.Passwd.Groups),
	} {
		if n > 0 {
			unapplied = append(unapplied, name)
		}
	}
	for i, f := range s.Files {
		if err := d.ignitionFile(f); err != nil {
			return fmt.Errorf("storage.files[%d] %s: %w", i, f.Path, err)
		}
	}
	for i, dir := range s.Directories {
		if err := d.ignitionDirectory(dir); err != nil {
			return fmt.Errorf("storage.directories[%d] %s: %w", i, dir.Path, err)
		}
	}
	for i, l := range s.Links {
		if err := d.ignitionLink(l); err != nil {
			return fmt.Errorf("storage.links[%d] %s: %w", i, l.Path, err)
		}
	}
	for i, u := range cfg.Systemd.Units {
		if err := d.ignitionUnit(u); err != nil {
			return fmt.Errorf("systemd.units[%d] %s: %w", i, u.Name, err)
		}
	}
	for i, u := range cfg.Passwd.Users {
		if err := d.ignitionUser(u, &unapplied); err != nil {
			return fmt.Errorf("passwd.users[%d] %s: %w", i, u.Name, err)
		}
	}
	if len(unapplied) > 0 {
		sort.Strings(unapplied)
		d.warnf("ignition: sections not applied by kubeboot (the initramfs's Ignition handles them, or nothing does): %s",
			strings.Join(unapplied, ", "))
	}
	return nil
}

func (d *decoder) ignitionNode(n igntypes.Node) (*rootfs.Owner, bool, error) {
	if err := checkPath(n.Path); err != nil {
		return nil, false, err
	}
	owner, err := d.ignitionOwner(n.User, n.Group)
	return owner, n.Overwrite != nil && *n.Overwrite, err
}

func (d *decoder) ignitionOwner(u igntypes.NodeUser, g igntypes.NodeGroup) (*rootfs.Owner, error) {
	if u.ID == nil && u.Name == nil && g.ID == nil && g.Name == nil {
		return nil, nil
	}
	o := &rootfs.Owner{}
	switch {
	case u.ID != nil:
		if err := checkID("user", *u.ID); err != nil {
			return nil, err
		}
		o.UID = *u.ID
	case u.Name != nil && *u.Name != "":
		e, err := d.owners.user(*u.Name)
		if err != nil {
			return nil, err
		}
		o.UID = e.UID
	}
	switch {
	case g.ID != nil:
		if err := checkID("group", *g.ID); err != nil {
			return nil, err
		}
		o.GID = *g.ID
	case g.Name != nil && *g.Name != "":
		id, err := d.owners.group(*g.Name)
		if err != nil {
			return nil, err
		}
		o.GID = id
	}
	return o, nil
}

func (d *decoder) ignitionFile(f igntypes.File) error {
	owner, overwrite, err := d.ignitionNode(f.Node)
	if err != nil {
		return err
	}
	mode := 0o644
	if f.Mode != nil {
		mode = *f.Mode
	}
	fm, err := modeOf(mode)
	if err != nil {
		return err
	}
	out := File{File: rootfs.File{Path: f.Path, Mode: fm}, Overwrite: overwrite, Owner: owner}
	if f.Contents.Source != nil {
		data, err := d.resource(f.Contents)
		if err != nil {
			return fmt.Errorf("contents: %w", err)
		}
		out.Data, out.HasContents = data, true
	}
	for i, a := range f.Append {
		data, err := d.resource(a)
		if err != nil {
			return fmt.Errorf("append[%d]: %w", i, err)
		}
		out.Append = append(out.Append, data...)
	}
	if f.Path == ConfigPath {
		if !out.HasContents {
			return fmt.Errorf("kubeboot configuration: no contents")
		}
		cfg := append(append([]byte(nil), out.Data...), out.Append...)
		if err := checkKubebootYAML(cfg); err != nil {
			return fmt.Errorf("kubeboot configuration: %w", err)
		}
		d.addConfig(cfg)
	}
	out.Secret = isSecret(out.Path, out.Data, out.Append)
	d.res.Files = append(d.res.Files, out)
	return nil
}

func (d *decoder) ignitionDirectory(dir igntypes.Directory) error {
	owner, overwrite, err := d.ignitionNode(dir.Node)
	if err != nil {
		return err
	}
	mode := 0o755
	if dir.Mode != nil {
		mode = *dir.Mode
	}
	fm, err := modeOf(mode)
	if err != nil {
		return err
	}
	d.res.Directories = append(d.res.Directories, Directory{
		Directory: rootfs.Directory{Path: dir.Path, Mode: fm}, Overwrite: overwrite, Owner: owner,
	})
	return nil
}

func (d *decoder) ignitionLink(l igntypes.Link) error {
	owner, overwrite, err := d.ignitionNode(l.Node)
	if err != nil {
		return err
	}
	if l.Target == nil || *l.Target == "" {
		return fmt.Errorf("no target")
	}
	hard := l.Hard != nil && *l.Hard
	if err := checkLinkTarget(l.Path, *l.Target, hard); err != nil {
		return err
	}
	d.res.Links = append(d.res.Links, Link{
		Link: rootfs.Link{Path: l.Path, Target: *l.Target, Hard: hard}, Overwrite: overwrite, Owner: owner,
	})
	return nil
}

// checkLinkTarget refuses link targets that lead out of the root.
func checkLinkTarget(p, target string, hard bool) error {
	if strings.ContainsRune(target, 0) {
		return fmt.Errorf("target %q: contains a NUL byte", target)
	}
	if hard {
		if err := checkPath(target); err != nil {
			return fmt.Errorf("hard link target: %w", err)
		}
		return nil
	}
	if path.IsAbs(target) {
		for _, part := range strings.Split(target, "/") {
			if part == ".." {
				return fmt.Errorf("target %q: escapes the root (..)", target)
			}
		}
		return nil
	}
	if _, err := rootfs.ResolveLinkTarget(p, target); err != nil {
		return fmt.Errorf("target %q: points outside the root", target)
	}
	return nil
}

func (d *decoder) ignitionUnit(u igntypes.Unit) error {
	if err := checkUnitName(u.Name); err != nil {
		return err
	}
	out := Unit{Name: u.Name, Contents: u.Contents, Enabled: u.Enabled, Mask: u.Mask != nil && *u.Mask}
	if out.Mask && out.Contents != nil {
		d.warnf("ignition: systemd.units %s: masked, so its contents are not written", u.Name)
		out.Contents = nil
	}
	for _, dr := range u.Dropins {
		if err := checkUnitName(dr.Name); err != nil {
			return fmt.Errorf("dropin: %w", err)
		}
		if !strings.HasSuffix(dr.Name, ".conf") {
			return fmt.Errorf("dropin %q: name must end in .conf", dr.Name)
		}
		out.Dropins = append(out.Dropins, Dropin{Name: dr.Name, Contents: dr.Contents})
	}
	d.res.Units = append(d.res.Units, out)
	return nil
}

// checkUnitName accepts a file name: no slash, not "." or "..".
func checkUnitName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("name %q: not a file name", name)
	}
	return nil
}

func (d *decoder) ignitionUser(u igntypes.PasswdUser, unapplied *[]string) error {
	var fields []string
	if u.PasswordHash != nil {
		fields = append(fields, "passwordHash")
	}
	if u.UID != nil {
		fields = append(fields, "uid")
	}
	if u.Gecos != nil {
		fields = append(fields, "gecos")
	}
	if u.HomeDir != nil {
		fields = append(fields, "homeDir")
	}
	if u.Shell != nil {
		fields = append(fields, "shell")
	}
	if len(u.Groups) > 0 {
		fields = append(fields, "groups")
	}
	if u.PrimaryGroup != nil {
		fields = append(fields, "primaryGroup")
	}
	if u.System != nil || u.NoCreateHome != nil || u.NoUserGroup != nil || u.NoLogInit != nil || u.ShouldExist != nil {
		fields = append(fields, "account options")
	}
	if len(fields) > 0 {
		*unapplied = append(*unapplied, fmt.Sprintf("passwd.users[%s].{%s}", u.Name, strings.Join(fields, ",")))
	}
	if len(u.SSHAuthorizedKeys) == 0 {
		return nil
	}
	if err := checkUnitName(u.Name); err != nil {
		return err
	}
	for _, k := range u.SSHAuthorizedKeys {
		if err := d.addSSHKey(u.Name, string(k)); err != nil {
			return err
		}
	}
	return nil
}

func (d *decoder) addSSHKey(user, key string) error {
	key = strings.TrimSpace(key)
	if key == "" {
		return nil
	}
	if strings.ContainsAny(key, "\n\r\x00") {
		return fmt.Errorf("ssh key: more than one line")
	}
	if d.res.SSHAuthorizedKeys == nil {
		d.res.SSHAuthorizedKeys = map[string][]string{}
	}
	d.res.SSHAuthorizedKeys[user] = append(d.res.SSHAuthorizedKeys[user], key)
	return nil
}

// isSecret tells whether file contents must never be shown: kubeboot's
// configuration (it holds tokens and keys) and private keys.
func isSecret(p string, data ...[]byte) bool {
	if p == ConfigPath || strings.HasSuffix(p, ".key") {
		return true
	}
	for _, b := range data {
		if strings.Contains(string(b), "PRIVATE KEY-----") {
			return true
		}
	}
	return false
}
