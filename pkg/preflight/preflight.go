// Package preflight checks that a machine can become a Kubernetes control
// plane before anything is written: kubeadm 1.37's preflight checks, with
// kubeadm's names so that --ignore-preflight-errors lists written for
// kubeadm keep working, plus the seed flow's checks that still matter.
//
// Every check runs, then the results are judged: a check whose name is in
// the ignore list (case-insensitive), or any check when the list holds
// "all", has its errors turned into warnings. Host access goes through Env.
package preflight

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/kubeboot/kubeboot/pkg/config"
)

// Check is one preflight check.
type Check struct {
	// Name is kubeadm's name for it, as --ignore-preflight-errors takes it.
	Name string
	// Run looks at the host through env and says what it found.
	Run func(ctx context.Context, env *Env) Finding
}

// Finding is what one check found: errors fail the preflight unless
// ignored, warnings are shown, Note says what was seen.
type Finding struct {
	Errors   []string
	Warnings []string
	Note     string
	// Skipped means the check does not apply to this configuration; Note
	// says why.
	Skipped bool
}

func okf(format string, args ...any) Finding { return Finding{Note: fmt.Sprintf(format, args...)} }

func errorf(format string, args ...any) Finding {
	return Finding{Errors: []string{fmt.Sprintf(format, args...)}}
}

func warnf(format string, args ...any) Finding {
	return Finding{Warnings: []string{fmt.Sprintf(format, args...)}}
}

func skipf(format string, args ...any) Finding {
	return Finding{Skipped: true, Note: fmt.Sprintf(format, args...)}
}

// Status is the outcome of one check.
type Status string

const (
	StatusOK      Status = "ok"
	StatusWarning Status = "warning"
	StatusError   Status = "error"
	StatusSkipped Status = "skipped"
)

// Result is one check's outcome after the ignore list was applied.
type Result struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	// Detail is one line: the errors, then the warnings, then the note.
	Detail   string   `json:"detail"`
	Errors   []string `json:"errors,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
	// Ignored says that the check had errors and the ignore list turned
	// them into warnings.
	Ignored bool `json:"ignored,omitempty"`
}

// Report is the outcome of a preflight run, one result per check in order.
type Report struct {
	Results []Result `json:"checks"`
	// UnknownIgnores are ignore-list entries that name no check of this
	// run (a typo, or a kubeadm check kubeboot does elsewhere, like ImagePull).
	UnknownIgnores []string `json:"unknownIgnores,omitempty"`
}

// Failed returns the results with errors that were not ignored.
func (r Report) Failed() []Result {
	var out []Result
	for _, res := range r.Results {
		if res.Status == StatusError {
			out = append(out, res)
		}
	}
	return out
}

// Err is an *Error listing the failed checks, or nil.
func (r Report) Err() error {
	if failed := r.Failed(); len(failed) > 0 {
		return &Error{Failed: failed}
	}
	return nil
}

// Count returns how many results have each status.
func (r Report) Count() map[Status]int {
	n := map[Status]int{StatusOK: 0, StatusWarning: 0, StatusError: 0, StatusSkipped: 0}
	for _, res := range r.Results {
		n[res.Status]++
	}
	return n
}

// Error is a failed preflight: the checks whose errors were not ignored.
type Error struct {
	Failed []Result
}

func (e *Error) Error() string {
	var b strings.Builder
	names := make([]string, len(e.Failed))
	for i, r := range e.Failed {
		names[i] = r.Name
	}
	fmt.Fprintf(&b, "preflight: %d %s failed:", len(e.Failed), plural(len(e.Failed), "check", "checks"))
	for _, r := range e.Failed {
		for _, msg := range r.Errors {
			fmt.Fprintf(&b, "\n\t[ERROR %s]: %s", r.Name, msg)
		}
	}
	fmt.Fprintf(&b, "\nIf you know what you are doing, make them non-fatal with --ignore-preflight-errors=%s (or all)", strings.Join(names, ","))
	return b.String()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// Run runs every check for the configuration and judges the results. The
// ignore list is the command line's; the InitConfiguration's
// nodeRegistration.ignorePreflightErrors is added to it, as kubeadm does.
// The error is an *Error when checks failed.
func Run(ctx context.Context, cfg *config.Config, env Env, ignore []string) (Report, error) {
	all := append(append([]string(nil), ignore...), cfg.Init.NodeRegistration.IgnorePreflightErrors...)
	return RunChecks(ctx, Checks(cfg), env, all)
}

// RunChecks runs the checks one after the other, then applies the ignore
// list. The error is an *Error when checks failed, or the ignore list's
// own error.
func RunChecks(ctx context.Context, checks []Check, env Env, ignore []string) (Report, error) {
	ign, err := parseIgnore(ignore)
	if err != nil {
		return Report{}, err
	}
	env = env.cached()
	var rep Report
	names := map[string]bool{}
	for _, c := range checks {
		names[strings.ToLower(c.Name)] = true
		rep.Results = append(rep.Results, judge(c.Name, runOne(ctx, c, &env), ign))
	}
	for _, n := range ign.names {
		if !names[n] {
			rep.UnknownIgnores = append(rep.UnknownIgnores, n)
		}
	}
	return rep, rep.Err()
}

// runOne runs a check; a check that panics is a failed check, not a crash.
func runOne(ctx context.Context, c Check, env *Env) (f Finding) {
	defer func() {
		if p := recover(); p != nil {
			f = errorf("check panicked: %v", p)
		}
	}()
	if err := ctx.Err(); err != nil {
		return errorf("not run: %v", err)
	}
	return c.Run(ctx, env)
}

func judge(name string, f Finding, ign ignoreList) Result {
	r := Result{Name: name, Errors: f.Errors, Warnings: f.Warnings}
	if len(r.Errors) > 0 && ign.has(name) {
		r.Warnings = append(append([]string(nil), r.Errors...), r.Warnings...)
		r.Errors = nil
		r.Ignored = true
	}
	switch {
	case len(r.Errors) > 0:
		r.Status = StatusError
	case len(r.Warnings) > 0:
		r.Status = StatusWarning
	case f.Skipped:
		r.Status = StatusSkipped
	default:
		r.Status = StatusOK
	}
	parts := append(append([]string(nil), r.Errors...), r.Warnings...)
	if f.Note != "" {
		parts = append(parts, f.Note)
	}
	r.Detail = oneLine(strings.Join(parts, "; "))
	if r.Ignored {
		r.Detail = "ignored: " + r.Detail
	}
	if r.Detail == "" {
		r.Detail = string(r.Status)
	}
	return r
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// ignoreList is a parsed --ignore-preflight-errors list.
type ignoreList struct {
	all   bool
	set   map[string]bool
	names []string // lower-cased, sorted, without "all"
}

func (l ignoreList) has(name string) bool { return l.all || l.set[strings.ToLower(name)] }

// ValidateIgnore checks an --ignore-preflight-errors list as kubeadm does:
// names are case-insensitive, and "all" stands alone.
func ValidateIgnore(names []string) error {
	_, err := parseIgnore(names)
	return err
}

func parseIgnore(names []string) (ignoreList, error) {
	l := ignoreList{set: map[string]bool{}}
	for _, n := range names {
		n = strings.ToLower(strings.TrimSpace(n))
		if n == "" || l.set[n] {
			continue
		}
		l.set[n] = true
		if n == "all" {
			l.all = true
			continue
		}
		l.names = append(l.names, n)
	}
	if l.all && len(l.names) > 0 {
		return ignoreList{}, fmt.Errorf("preflight: ignore list %q: don't name individual checks when 'all' is used", strings.Join(names, ","))
	}
	sort.Strings(l.names)
	return l, nil
}
