package host

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// modTree is what modprobe would know about this kernel: the modules
// directory's index files, modprobe.d and /proc/modules. Module names are
// normalised ('-' → '_'), as the kernel and kmod do.
type modTree struct {
	root string
	// dir is the host path of /lib/modules/<release>, "" when absent.
	dir string
	// proc tells whether /proc/modules exists, i.e. the kernel can load
	// modules at all.
	proc bool

	files   map[string]string   // name → host path of its .ko file
	deps    map[string][]string // name → modules.dep dependencies, as listed
	builtin map[string]bool
	aliases map[string][]string // exact alias → module names, in file order
	loaded  map[string]bool     // /proc/modules
	pre     map[string][]string // softdep pre: names (modules or aliases)
	post    map[string][]string // softdep post:
	options map[string]string
}

// modulesDirs are where distributions put /lib/modules; merged-/usr
// systems may have only the second.
var modulesDirs = []string{"/lib/modules", "/usr/lib/modules"}

// modprobeDirs are kmod's configuration directories, highest priority
// first: a file name in an earlier directory hides the same name later.
var modprobeDirs = []string{"/etc/modprobe.d", "/run/modprobe.d", "/usr/local/lib/modprobe.d", "/lib/modprobe.d", "/usr/lib/modprobe.d"}

func modName(s string) string { return strings.ReplaceAll(s, "-", "_") }

// moduleFileName returns the module name of a .ko file path and whether it
// is one.
func moduleFileName(p string) (string, bool) {
	b := path.Base(p)
	for _, ext := range []string{".ko", ".ko.zst", ".ko.xz", ".ko.gz"} {
		if n, ok := strings.CutSuffix(b, ext); ok && n != "" {
			return modName(n), true
		}
	}
	return "", false
}

func (t *modTree) hostPath(p string) string { return filepath.Join(t.root, p) }

func readModTree(root, release string) (*modTree, error) {
	t := &modTree{
		root:    root,
		files:   map[string]string{},
		deps:    map[string][]string{},
		builtin: map[string]bool{},
		aliases: map[string][]string{},
		loaded:  map[string]bool{},
		pre:     map[string][]string{},
		post:    map[string][]string{},
		options: map[string]string{},
	}
	if err := t.readProcModules(); err != nil {
		return nil, err
	}
	for _, d := range modulesDirs {
		dir := path.Join(d, release)
		if fi, err := os.Stat(t.hostPath(dir)); err == nil && fi.IsDir() {
			t.dir = dir
			break
		}
	}
	if t.dir == "" {
		return t, nil
	}
	for _, step := range []struct {
		file     string
		required bool
		parse    func(dir string, data []byte)
	}{
		{"modules.dep", true, t.parseDep},
		{"modules.builtin", false, t.parseBuiltin},
		{"modules.builtin.modinfo", false, t.parseBuiltinModinfo},
		{"modules.alias", false, t.parseAlias},
		{"modules.softdep", false, t.parseConfig},
	} {
		p := path.Join(t.dir, step.file)
		data, err := os.ReadFile(t.hostPath(p))
		if errors.Is(err, fs.ErrNotExist) && !step.required {
			continue
		}
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("read %s: %w (run depmod %s)", p, err, release)
			}
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
		step.parse(t.dir, data)
	}
	// modprobe.d comes after modules.softdep: the administrator's softdep
	// for a module replaces the one the module declares.
	return t, t.readModprobeD()
}

func (t *modTree) readProcModules() error {
	data, err := os.ReadFile(t.hostPath("/proc/modules"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read /proc/modules: %w", err)
	}
	t.proc = true
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			t.loaded[modName(f[0])] = true
		}
	}
	return nil
}

// parseDep reads "kernel/a/b.ko.zst: kernel/c.ko kernel/d.ko" lines.
// Relative paths are relative to the modules directory.
func (t *modTree) parseDep(dir string, data []byte) {
	abs := func(p string) string {
		if path.IsAbs(p) {
			return path.Clean(p)
		}
		return path.Join(dir, p)
	}
	for _, line := range strings.Split(string(data), "\n") {
		file, deps, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		name, ok := moduleFileName(strings.TrimSpace(file))
		if !ok {
			continue
		}
		t.files[name] = abs(strings.TrimSpace(file))
		var names []string
		for _, d := range strings.Fields(deps) {
			if n, ok := moduleFileName(d); ok {
				names = append(names, n)
			}
		}
		t.deps[name] = names
	}
}

func (t *modTree) parseBuiltin(_ string, data []byte) {
	for _, line := range strings.Split(string(data), "\n") {
		if n, ok := moduleFileName(strings.TrimSpace(line)); ok {
			t.builtin[n] = true
		}
	}
}

// parseBuiltinModinfo reads the NUL-separated "name.key=value" records
// the kernel build writes for built-in modules; it names built-in modules
// and their aliases (crc32c for crc32c_generic, say).
func (t *modTree) parseBuiltinModinfo(_ string, data []byte) {
	for _, rec := range bytes.Split(data, []byte{0}) {
		name, kv, ok := strings.Cut(string(rec), ".")
		if !ok || name == "" {
			continue
		}
		name = modName(name)
		t.builtin[name] = true
		if a, ok := strings.CutPrefix(kv, "alias="); ok {
			t.addAlias(a, name)
		}
	}
}

// parseAlias reads "alias PATTERN module" lines. Only exact aliases are
// kept: the wildcard ones are device IDs, which name no module a
// configuration or a softdep asks for.
func (t *modTree) parseAlias(_ string, data []byte) {
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == "alias" {
			t.addAlias(f[1], modName(f[2]))
		}
	}
}

func (t *modTree) addAlias(alias, name string) {
	if strings.ContainsAny(alias, "*?[") {
		return
	}
	a := modName(alias)
	for _, n := range t.aliases[a] {
		if n == name {
			return
		}
	}
	t.aliases[a] = append(t.aliases[a], name)
}

// readModprobeD reads *.conf from kmod's configuration directories in
// file-name order, a name in a higher-priority directory hiding the same
// name in a lower one.
func (t *modTree) readModprobeD() error {
	chosen := map[string]string{}
	for _, d := range modprobeDirs {
		entries, err := os.ReadDir(t.hostPath(d))
		if err != nil {
			continue
		}
		for _, e := range entries {
			if e.IsDir() || !strings.HasSuffix(e.Name(), ".conf") {
				continue
			}
			if _, seen := chosen[e.Name()]; !seen {
				chosen[e.Name()] = path.Join(d, e.Name())
			}
		}
	}
	names := make([]string, 0, len(chosen))
	for n := range chosen {
		names = append(names, n)
	}
	sort.Strings(names)
	seen := map[string]bool{} // softdeps set by modprobe.d so far
	for _, n := range names {
		p := chosen[n]
		data, err := os.ReadFile(t.hostPath(p))
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		t.parseModprobeConf(data, seen)
	}
	return nil
}

// parseConfig reads modules.softdep, whose syntax is modprobe.d's. Several
// lines for one module add up: a module may declare several softdeps.
func (t *modTree) parseConfig(_ string, data []byte) {
	for _, f := range configLines(data) {
		if f[0] == "softdep" && len(f) >= 3 {
			name := modName(f[1])
			pre, post := parseSoftdep(f[2:])
			t.pre[name] = append(t.pre[name], pre...)
			t.post[name] = append(t.post[name], post...)
		}
	}
}

// parseModprobeConf honours softdep and options lines (alias, blacklist
// and install lines are kmod's business, not ours). The first softdep line
// for a module in modprobe.d replaces what modules.softdep said, as in kmod.
func (t *modTree) parseModprobeConf(data []byte, seen map[string]bool) {
	for _, f := range configLines(data) {
		switch {
		case f[0] == "softdep" && len(f) >= 3:
			name := modName(f[1])
			if seen[name] {
				continue
			}
			seen[name] = true
			t.pre[name], t.post[name] = parseSoftdep(f[2:])
		case f[0] == "options" && len(f) >= 3:
			name := modName(f[1])
			opts := strings.Join(f[2:], " ")
			if old := t.options[name]; old != "" {
				opts = old + " " + opts
			}
			t.options[name] = opts
		}
	}
}

// parseSoftdep reads "pre: a b post: c"; names before any pre: or post:
// are ignored, as kmod does.
func parseSoftdep(words []string) (pre, post []string) {
	var into *[]string
	for _, w := range words {
		switch w {
		case "pre:":
			into = &pre
		case "post:":
			into = &post
		default:
			if into != nil {
				*into = append(*into, w)
			}
		}
	}
	return pre, post
}

// configLines splits modprobe.d syntax into words per logical line:
// '#' starts a comment line and a trailing backslash continues a line.
func configLines(data []byte) [][]string {
	var out [][]string
	var cur strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if cont, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(cont)
			cur.WriteByte(' ')
			continue
		}
		cur.WriteString(line)
		text := strings.TrimSpace(cur.String())
		cur.Reset()
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		out = append(out, strings.Fields(text))
	}
	return out
}

// resolve returns the modules a name stands for: itself when the tree or
// the kernel knows it as a module, else the modules that carry it as an
// alias (crc32c → crc32c_intel, crc32c_generic). Nil when unknown.
func (t *modTree) resolve(name string) []string {
	n := modName(name)
	if t.known(n) {
		return []string{n}
	}
	return t.aliases[n]
}

func (t *modTree) known(n string) bool {
	_, file := t.files[n]
	return file || t.builtin[n] || t.loaded[n]
}
