package host

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

// Module is a kernel module the node needs, as BootConfiguration lists it.
type Module struct {
	Name string
	// Optional modules may fail to load with a warning instead of an error.
	Optional bool
}

// ModuleState says how a module came to be present, or that it is not.
type ModuleState string

const (
	// ModuleLoaded: this call loaded it (and the dependencies in Deps).
	ModuleLoaded ModuleState = "loaded"
	// ModuleAlreadyLoaded: /proc/modules listed it, or the kernel said EEXIST.
	ModuleAlreadyLoaded ModuleState = "already-loaded"
	// ModuleBuiltIn: compiled into the kernel (modules.builtin).
	ModuleBuiltIn ModuleState = "built-in"
	// ModuleNoModuleSupport: the kernel cannot load modules at all (no
	// /proc/modules, no /lib/modules/<release>), so whatever it has is
	// built in; the module is taken as present.
	ModuleNoModuleSupport ModuleState = "no-module-support"
	// ModuleFailedOptional: an optional module that could not be loaded.
	ModuleFailedOptional ModuleState = "failed-optional"
	// ModuleFailed: a required module that could not be loaded; LoadModules
	// also returns an error for it.
	ModuleFailed ModuleState = "failed"
)

// ModuleReport is what LoadModules did for one requested module.
type ModuleReport struct {
	Name  string
	State ModuleState
	// File is the module's file as a host path, when it has one.
	File string
	// Detail says why, in words for a person: the failure, the alias it
	// resolved through, where a built-in module was found.
	Detail string
	// Deps are the other modules this call loaded for it (modules.dep
	// dependencies and softdeps), in load order. A dependency shared with
	// an earlier module appears only in that module's report.
	Deps []string
	// Warnings are things that did not stop the module: a softdep that
	// could not be loaded, an optional module that failed.
	Warnings []string
}

// Present tells whether the module is in the kernel now.
func (r ModuleReport) Present() bool {
	return r.State != ModuleFailed && r.State != ModuleFailedOptional
}

// ModulesLoadPath is where systemd-modules-load finds the list on later boots.
const ModulesLoadPath = "/etc/modules-load.d/kubeboot.conf"

// LoadModules makes each module present in the kernel, the way modprobe
// would but in-process: the module is looked up in modules.dep of
// root/lib/modules/<release> (or /usr/lib/modules), by name or by exact
// alias; its softdep "pre:" modules (modules.softdep and modprobe.d),
// then its modules.dep dependencies (deepest first, each with its own
// softdeps), then the module itself are loaded with l, then its "post:"
// softdeps. Modules listed in /proc/modules and built-in modules are left
// alone; nothing is loaded twice. An empty release means the running
// kernel's (uname -r); root "" means "/".
//
// Every module is tried. The error joins one error per required module
// that is not present, each naming the module, its file and the kernel's
// reason; optional modules that fail are reported with a warning instead.
func LoadModules(ctx context.Context, root, release string, mods []Module, l Loader) ([]ModuleReport, error) {
	if root == "" {
		root = "/"
	}
	if release == "" {
		r, err := KernelRelease()
		if err != nil {
			return nil, fmt.Errorf("modules: %w", err)
		}
		release = r
	}
	tree, err := readModTree(root, release)
	if err != nil {
		return nil, fmt.Errorf("modules: %w", err)
	}
	p := &prober{ctx: ctx, tree: tree, loader: l, done: map[string]error{}, busy: map[string]bool{}}
	var reports []ModuleReport
	var errs []error
	for _, m := range mods {
		r, err := p.probe(m, release)
		if err != nil && m.Optional {
			r.State = ModuleFailedOptional
			r.Detail = err.Error()
			r.Warnings = append(r.Warnings, fmt.Sprintf("optional kernel module %s not loaded: %v", m.Name, err))
			err = nil
		}
		if err != nil {
			r.State = ModuleFailed
			r.Detail = err.Error()
			errs = append(errs, fmt.Errorf("modules: %s: %w", m.Name, err))
		}
		reports = append(reports, r)
		if ctx.Err() != nil {
			return reports, fmt.Errorf("modules: %w", ctx.Err())
		}
	}
	return reports, errors.Join(errs...)
}

// prober loads modules for one LoadModules call; it remembers what it
// did so that a shared dependency is loaded, or fails, once.
type prober struct {
	ctx    context.Context
	tree   *modTree
	loader Loader
	done   map[string]error // module → outcome of loading it in this call
	busy   map[string]bool  // modules being loaded (softdep cycles)
	order  []string         // modules loaded in this call, in order
}

func (p *prober) probe(m Module, release string) (ModuleReport, error) {
	t := p.tree
	r := ModuleReport{Name: m.Name}
	if t.dir == "" && !t.proc {
		r.State = ModuleNoModuleSupport
		r.Detail = fmt.Sprintf("the kernel has no loadable module support (no /proc/modules, no /lib/modules/%s): taken as built in", release)
		return r, nil
	}
	names := t.resolve(m.Name)
	if len(names) == 0 {
		if fileExists(t.hostPath(path.Join("/sys/module", modName(m.Name)))) {
			r.State = ModuleBuiltIn
			r.Detail = "not in modules.dep, but the kernel has /sys/module/" + modName(m.Name)
			return r, nil
		}
		if t.dir == "" {
			return r, fmt.Errorf("not loaded, and there is no /lib/modules/%s to load it from", release)
		}
		return r, fmt.Errorf("not found in %s/modules.dep, modules.builtin or modules.alias", t.dir)
	}
	if names[0] != modName(m.Name) {
		r.Detail = fmt.Sprintf("alias of %s", strings.Join(names, ", "))
	}
	// Already present under one of its names: nothing to do.
	for _, n := range names {
		switch {
		case t.builtin[n]:
			r.State = ModuleBuiltIn
			return r, nil
		case t.loaded[n]:
			r.State, r.File = ModuleAlreadyLoaded, t.files[n]
			if contains(p.order, n) {
				r.Detail = joinDetail(r.Detail, "loaded earlier in this run as a dependency")
			}
			return r, nil
		}
	}
	before := len(p.order)
	var err error
	for _, n := range names {
		r.File = t.files[n]
		var w []string
		w, err = p.load(n)
		r.Warnings = append(r.Warnings, w...)
		if err == nil {
			break
		}
	}
	loadedNow := p.order[before:]
	for _, n := range loadedNow {
		if !contains(names, n) {
			r.Deps = append(r.Deps, n)
		}
	}
	if err != nil {
		return r, err
	}
	r.State = ModuleLoaded
	if !containsAny(loadedNow, names) {
		// The kernel said EEXIST: loaded behind our back.
		r.State = ModuleAlreadyLoaded
	}
	return r, nil
}

// load makes one module present: softdep pre:, modules.dep dependencies,
// the module, softdep post:. Softdep failures are warnings.
func (p *prober) load(name string) (warnings []string, err error) {
	t := p.tree
	if err, ok := p.done[name]; ok {
		return nil, err
	}
	if t.loaded[name] || t.builtin[name] || p.busy[name] {
		return nil, nil
	}
	if err := p.ctx.Err(); err != nil {
		return nil, err
	}
	file, ok := t.files[name]
	if !ok {
		return nil, fmt.Errorf("not found in %s/modules.dep", t.dir)
	}
	p.busy[name] = true
	defer delete(p.busy, name)

	for _, s := range t.pre[name] {
		warnings = append(warnings, p.soft(name, "pre", s)...)
	}
	deps := t.deps[name]
	// modules.dep lists the dependencies that need the others first;
	// load from the end.
	for i := len(deps) - 1; i >= 0; i-- {
		w, err := p.load(deps[i])
		warnings = append(warnings, w...)
		if err != nil {
			err = fmt.Errorf("dependency %s: %w", deps[i], err)
			p.done[name] = err
			return warnings, err
		}
	}
	err = p.insert(name, file)
	p.done[name] = err
	if err != nil {
		return warnings, err
	}
	for _, s := range t.post[name] {
		warnings = append(warnings, p.soft(name, "post", s)...)
	}
	return warnings, nil
}

// soft loads a softdep of mod. The name may be an alias with several
// modules behind it (crc32c: crc32c_intel, crc32c_generic); one of them
// present is enough, and they are tried in order until one loads, so a
// CPU without SSE4.2 quietly gets the generic one.
func (p *prober) soft(mod, kind, dep string) []string {
	t := p.tree
	names := t.resolve(dep)
	if len(names) == 0 {
		return []string{fmt.Sprintf("kernel module %s: softdep %s %s: not found", mod, kind, dep)}
	}
	for _, n := range names {
		if t.loaded[n] || t.builtin[n] {
			return nil
		}
	}
	var warnings []string
	var errs []string
	for _, n := range names {
		w, err := p.load(n)
		warnings = append(warnings, w...)
		if err == nil {
			return warnings
		}
		errs = append(errs, err.Error())
	}
	return append(warnings, fmt.Sprintf("kernel module %s: softdep %s %s: %s", mod, kind, dep, strings.Join(errs, "; ")))
}

// insert calls the loader for one file. EEXIST means another loader won
// the race: the module is there.
func (p *prober) insert(name, file string) error {
	t := p.tree
	err := p.loader.Load(t.hostPath(file), t.options[name])
	if errors.Is(err, unix.EEXIST) {
		t.loaded[name] = true
		return nil
	}
	if err != nil {
		return fmt.Errorf("load %s: %s", file, kernelReason(err))
	}
	t.loaded[name] = true
	p.order = append(p.order, name)
	return nil
}

// kernelReason renders a loader error with the errno's name and, for the
// errnos init_module is known for, what they usually mean.
func kernelReason(err error) string {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return err.Error()
	}
	s := fmt.Sprintf("%v (%s)", err, unix.ErrnoName(errno))
	switch errno {
	case unix.ENOENT:
		s += ": the module needs a symbol that no loaded module provides; a dependency or softdep is missing"
	case unix.ENOEXEC:
		s += ": invalid module format; is it built for this kernel?"
	case unix.EKEYREJECTED, unix.ENOKEY:
		s += ": the kernel rejects the module's signature"
	case unix.EPERM:
		s += ": loading modules is not permitted (CAP_SYS_MODULE, kernel lockdown or modules_disabled)"
	case unix.ENOSYS:
		s += ": the kernel has no loadable module support"
	case unix.ENODEV:
		s += ": the hardware or CPU feature it drives is absent"
	}
	return s
}

// ModulesLoadFile renders /etc/modules-load.d/kubeboot.conf, which makes
// systemd-modules-load load the modules on later boots, in the given order.
// Optional modules are listed too: systemd-modules-load skips a module it
// cannot find.
func ModulesLoadFile(mods []Module) rootfs.File {
	var b strings.Builder
	b.WriteString("# Written by kubeboot: kernel modules this Kubernetes node needs.\n")
	seen := map[string]bool{}
	for _, m := range mods {
		if seen[m.Name] {
			continue
		}
		seen[m.Name] = true
		b.WriteString(m.Name)
		b.WriteByte('\n')
	}
	return rootfs.File{Path: ModulesLoadPath, Mode: 0o644, Data: []byte(b.String())}
}

func joinDetail(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func containsAny(list, of []string) bool {
	for _, s := range of {
		if contains(list, s) {
			return true
		}
	}
	return false
}
