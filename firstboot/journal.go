package firstboot

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

// JournalVersion is bumped when the journal's meaning changes; an unknown
// version makes every phase run again rather than trust stale records.
const JournalVersion = 1

// Journal records completed phases so that a re-run after a crash or a
// reboot skips what is done and redoes what changed.
type Journal struct {
	Version int               `json:"version"`
	Phases  map[string]Record `json:"phases"`
	// Facts holds values that must stay stable across runs of one machine
	// (e.g. the instance-id of the userdata that initialised it).
	Facts map[string]string `json:"facts,omitempty"`
}

// Record is one completed phase.
type Record struct {
	InputsHash string            `json:"inputsHash"`
	Files      map[string]string `json:"files,omitempty"` // host path → sha256
	Completed  time.Time         `json:"completed"`
	Duration   string            `json:"duration"`
}

func journalPath(stateDir string) string { return stateDir + "/journal.json" }

func loadJournal(w rootfs.Writer, stateDir string) (*Journal, error) {
	j := &Journal{Version: JournalVersion, Phases: map[string]Record{}, Facts: map[string]string{}}
	data, err := w.ReadFile(journalPath(stateDir))
	if errors.Is(err, fs.ErrNotExist) {
		return j, nil
	}
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	var read Journal
	if err := json.Unmarshal(data, &read); err != nil || read.Version != JournalVersion {
		// A torn or foreign journal is not trusted: every phase runs again,
		// and phases are idempotent, so this converges.
		return j, nil
	}
	if read.Phases != nil {
		j.Phases = read.Phases
	}
	if read.Facts != nil {
		j.Facts = read.Facts
	}
	return j, nil
}

func (j *Journal) save(w rootfs.Writer, stateDir string) error {
	data, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	if _, err := w.WriteFile(rootfs.File{Path: journalPath(stateDir), Mode: 0o600, Data: append(data, '\n')}); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// done tells whether a phase can be skipped: same inputs, and every file it
// wrote is still there with the same contents.
func (j *Journal) done(w rootfs.Writer, name, inputsHash string) bool {
	r, ok := j.Phases[name]
	if !ok || r.InputsHash != inputsHash {
		return false
	}
	for p, digest := range r.Files {
		data, err := w.ReadFile(p)
		if err != nil || (rootfs.File{Data: data}).Digest() != digest {
			return false
		}
	}
	return true
}
