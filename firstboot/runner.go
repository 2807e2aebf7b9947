package firstboot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

// FaultEnv names a phase after which kubeboot kills itself with SIGKILL,
// once the phase is recorded. Tests use it to prove that a crash at any
// phase boundary converges on re-run.
const FaultEnv = "KUBEBOOT_FAULT_KILL_AFTER"

// Status says how a phase ended in one run.
type Status string

const (
	StatusDone        Status = "done"
	StatusAlreadyDone Status = "already done"
	StatusSkipped     Status = "skipped (--skip-phases)"
	StatusDryRun      Status = "host step skipped (dry run)"
	StatusFailed      Status = "failed"
)

// Step is one line of the timeline.
type Step struct {
	Phase    string
	Status   Status
	Summary  string
	Duration time.Duration
	Written  int
}

// Timeline is the record of one run.
type Timeline struct {
	Steps []Step
	Total time.Duration
}

// Execute runs the phases in order. The journal is loaded as soon as the
// configuration is known (it names the state directory).
func Execute(ctx context.Context, r *Run, phases []Phase) (*Timeline, error) {
	if r.Log == nil {
		r.Log = slog.New(slog.DiscardHandler)
	}
	r.Writer = rootfs.Writer{Root: r.Root}
	skip := map[string]bool{}
	for _, s := range r.SkipPhases {
		skip[s] = true
	}
	tl := &Timeline{}
	start := time.Now()
	defer func() { tl.Total = time.Since(start) }()
	for i, p := range phases {
		if err := ctx.Err(); err != nil {
			return tl, err
		}
		r.notify(fmt.Sprintf("STATUS=[%d/%d] %s: %s", i+1, len(phases), p.Name, p.Short))
		step, err := r.runPhase(ctx, p, skip[p.Name])
		tl.Steps = append(tl.Steps, step)
		// `init phase NAME` skips every other phase; saying so each time is noise.
		if !(r.Force && step.Status == StatusSkipped) {
			r.progress(step)
		}
		if err != nil {
			r.notify("STATUS=failed in phase " + p.Name)
			return tl, fmt.Errorf("%s: %w", p.Name, err)
		}
		if os.Getenv(FaultEnv) == p.Name {
			r.Log.Warn("fault injection: killing kubeboot", "after", p.Name)
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	}
	r.notify("READY=1\nSTATUS=done")
	return tl, nil
}

func (r *Run) runPhase(ctx context.Context, p Phase, skipped bool) (step Step, err error) {
	step = Step{Phase: p.Name}
	began := time.Now()
	defer func() { step.Duration = time.Since(began) }()
	if skipped {
		step.Status = StatusSkipped
		return step, nil
	}
	var hash string
	if p.Inputs != nil && r.Cfg != nil {
		if err := r.ensureJournal(); err != nil {
			return step, err
		}
		h, err := r.inputsHash(p)
		if err != nil {
			step.Status = StatusFailed
			return step, err
		}
		hash = h
		if !r.Force && r.Journal.done(r.Writer, p.Name, hash) {
			step.Status = StatusAlreadyDone
			return step, nil
		}
	}
	rec := Record{Files: map[string]string{}}
	if p.Render != nil {
		out, err := p.Render(ctx, r)
		if err != nil {
			step.Status = StatusFailed
			return step, err
		}
		step.Summary = out.Summary
		for _, w := range out.Warnings {
			r.warn(p.Name, w)
		}
		results, err := r.Writer.Write(out.Files)
		if err != nil {
			step.Status = StatusFailed
			return step, err
		}
		for _, f := range out.Files {
			rec.Files[f.Path] = f.Digest()
			if results[f.Path] != rootfs.Unchanged {
				step.Written++
			}
			r.Log.Debug("file", "phase", p.Name, "path", f.Path, "result", results[f.Path].String(), "mode", fmt.Sprintf("%#o", f.Mode))
		}
		if out.Write != nil {
			if err := out.Write(r.Writer); err != nil {
				step.Status = StatusFailed
				return step, err
			}
		}
		for _, path := range out.Remove {
			if err := r.Writer.Remove(path); err != nil {
				step.Status = StatusFailed
				return step, fmt.Errorf("remove %s: %w", path, err)
			}
		}
	}
	step.Status = StatusDone
	if p.Apply != nil {
		if r.DryRun {
			step.Status = StatusDryRun
			return step, nil
		}
		summary, err := p.Apply(ctx, r)
		if err != nil {
			step.Status = StatusFailed
			return step, err
		}
		step.Summary = joinSummary(step.Summary, summary)
	}
	if hash != "" {
		rec.InputsHash = hash
		rec.Completed = r.now().UTC()
		rec.Duration = time.Since(began).Round(time.Microsecond).String()
		r.Journal.Phases[p.Name] = rec
		if err := r.Journal.save(r.Writer, r.Cfg.Boot.StateDir); err != nil {
			step.Status = StatusFailed
			return step, err
		}
	}
	return step, nil
}

func (r *Run) ensureJournal() error {
	if r.Journal != nil {
		return nil
	}
	j, err := loadJournal(r.Writer, r.Cfg.Boot.StateDir)
	if err != nil {
		return err
	}
	r.Journal = j
	return nil
}

// inputsHash covers the phase's inputs and kubeboot's version: a new
// kubeboot may render differently, so it re-checks every phase.
func (r *Run) inputsHash(p Phase) (string, error) {
	in, err := p.Inputs(r)
	if err != nil {
		return "", err
	}
	data, err := json.Marshal(struct {
		Version string
		Inputs  any
	}{r.Version, in})
	if err != nil {
		return "", fmt.Errorf("hash inputs: %w", err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

// warn shows a warning to the user and logs it.
func (r *Run) warn(phase, msg string) {
	r.Log.Warn(msg, "phase", phase)
	if r.Out != nil {
		fmt.Fprintf(r.Out, "[%s] warning: %s\n", phase, msg)
	}
}

func (r *Run) notify(state string) {
	if r.Notify != nil {
		r.Notify(state)
	}
}

func (r *Run) progress(s Step) {
	if r.Out == nil {
		return
	}
	detail := s.Summary
	switch s.Status {
	case StatusDone:
		if s.Written > 0 {
			detail = joinSummary(detail, fmt.Sprintf("%d files written", s.Written))
		}
	default:
		detail = joinSummary(string(s.Status), detail)
	}
	if detail == "" {
		detail = "ok"
	}
	fmt.Fprintf(r.Out, "[%s] %s (%s)\n", s.Phase, detail, round(s.Duration))
}

func joinSummary(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Microsecond)
}

// Print writes the timeline as an aligned table.
func (t *Timeline) Print(w interface{ Write([]byte) (int, error) }) {
	width := 5
	for _, s := range t.Steps {
		width = max(width, len(s.Phase))
	}
	fmt.Fprintf(w, "\n%-*s  %10s  %s\n", width, "PHASE", "DURATION", "RESULT")
	for _, s := range t.Steps {
		fmt.Fprintf(w, "%-*s  %10s  %s\n", width, s.Phase, round(s.Duration), s.Status)
	}
	fmt.Fprintf(w, "%-*s  %10s\n", width, "total", round(t.Total))
}

// Names lists phase names, for flags and errors.
func Names(phases []Phase) []string {
	out := make([]string, len(phases))
	for i, p := range phases {
		out[i] = p.Name
	}
	return out
}

// CheckSkip rejects unknown names in --skip-phases, which kubeadm ignores
// silently and users then wonder why a phase ran.
func CheckSkip(phases []Phase, skip []string) error {
	known := map[string]bool{}
	for _, p := range phases {
		known[p.Name] = true
	}
	var bad []string
	for _, s := range skip {
		if !known[s] {
			bad = append(bad, s)
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return fmt.Errorf("unknown phase(s) %s: known phases are %s", strings.Join(bad, ", "), strings.Join(Names(phases), ", "))
	}
	return nil
}
