package cri

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// State is where an image came from, or that it could not be had.
type State string

const (
	// Present: the runtime already had the image.
	Present State = "present"
	// Imported: loaded from an archive in imageArchiveDir.
	Imported State = "imported"
	// Pulling is only reported as progress, when a pull starts.
	Pulling State = "pulling"
	// Pulled: pulled from its registry.
	Pulled State = "pulled"
	// Missing: neither there, nor in an archive, nor pullable.
	Missing State = "missing"
)

// ImageReport is what happened to one image.
type ImageReport struct {
	Image string
	State State
	// From is the archive an imported image came from.
	From string
	// Took is the time the import (of its archive) or the pull took.
	Took time.Duration
	Err  error
}

func (r ImageReport) String() string {
	switch r.State {
	case Imported:
		return fmt.Sprintf("%s: imported from %s (%s)", r.Image, r.From, r.Took.Round(time.Millisecond))
	case Pulled:
		return fmt.Sprintf("%s: pulled (%s)", r.Image, r.Took.Round(time.Millisecond))
	case Missing:
		return fmt.Sprintf("%s: missing: %v", r.Image, r.Err)
	}
	return fmt.Sprintf("%s: %s", r.Image, r.State)
}

// Report is the outcome of Ensure: one entry per image, in the order asked,
// and one per archive that was imported.
type Report struct {
	Images   []ImageReport
	Archives []ArchiveResult
}

// Summary counts images by state: "7 images: 2 present, 5 imported".
func (r *Report) Summary() string {
	counts := map[State]int{}
	for _, i := range r.Images {
		counts[i.State]++
	}
	var parts []string
	for _, s := range []State{Present, Imported, Pulled, Missing} {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
		}
	}
	return fmt.Sprintf("%d images: %s", len(r.Images), strings.Join(parts, ", "))
}

// Err joins the errors of the missing images, or is nil.
func (r *Report) Err() error {
	var errs []error
	for _, i := range r.Images {
		if i.State == Missing {
			errs = append(errs, i.Err)
		}
	}
	return errors.Join(errs...)
}

// Puller is the part of the CRI that Ensure needs.
type Puller interface {
	ImageStatus(ctx context.Context, image string) (*Image, error)
	PullImage(ctx context.Context, image string) (string, error)
}

// PullPolicy is nodeRegistration.imagePullPolicy.
type PullPolicy string

const (
	PullAlways       PullPolicy = "Always"
	PullIfNotPresent PullPolicy = "IfNotPresent"
	PullNever        PullPolicy = "Never"
)

// Ensure makes the images present: it checks what the runtime has, imports
// the archives in ArchiveDir that hold what is missing, and only then pulls
// what is still missing. Progress, when set, is called as each image's
// state becomes known (and with Pulling when a pull starts).
type Ensure struct {
	Runtime  Puller
	Importer ArchiveImporter
	// ArchiveDir is BootConfiguration.imageArchiveDir.
	ArchiveDir string
	Policy     PullPolicy
	// Parallel pulls at once (nodeRegistration.imagePullSerial: false).
	Parallel bool
	Progress func(ImageReport)
	// Settle bounds the wait for the CRI to see imported images: containerd
	// 1.6 learns of them through events, a moment after the import.
	Settle time.Duration
	// Declared, when set, holds what the caller already read of each
	// archive (ArchiveImages by file), so that no archive is read twice;
	// archives missing from it are read here.
	Declared map[string][]string
}

// Run ensures the images and reports on each. The error is the report's
// Err, or a failure to talk to the runtime at all.
func (e Ensure) Run(ctx context.Context, images []string) (*Report, error) {
	rep := &Report{Images: make([]ImageReport, len(images))}
	progress := func(r ImageReport) {
		if e.Progress != nil {
			e.Progress(r)
		}
	}
	policy := e.Policy
	if policy == "" {
		policy = PullIfNotPresent
	}
	var missing []int
	for i, img := range images {
		rep.Images[i] = ImageReport{Image: img}
		ok, err := e.present(ctx, img)
		if err != nil {
			return rep, err
		}
		if ok && policy != PullAlways {
			rep.Images[i].State = Present
			progress(rep.Images[i])
			continue
		}
		missing = append(missing, i)
	}
	if len(missing) == 0 {
		return rep, nil
	}

	// Archives first: the air-gapped path, and faster than any registry.
	var imp imports
	if e.Importer != nil && e.ArchiveDir != "" && policy != PullAlways {
		var err error
		imp, err = e.importArchives(ctx, images, missing, rep)
		if err != nil {
			return rep, err
		}
		settle := e.Settle
		if settle == 0 {
			settle = 10 * time.Second
		}
		deadline := time.Now().Add(settle)
		var still []int
		for _, i := range missing {
			arch, ok := imp.from[normalize(images[i])]
			if !ok {
				still = append(still, i)
				continue
			}
			present, err := e.waitPresent(ctx, images[i], deadline)
			if err != nil {
				return rep, err
			}
			if !present {
				rep.Images[i].State, rep.Images[i].From = Missing, arch.File
				rep.Images[i].Err = fmt.Errorf("image %s: imported from %s, but the runtime does not list it after %s (containerd must import into namespace %s and serve the CRI on the same socket)", images[i], arch.File, settle, Namespace)
				progress(rep.Images[i])
				continue
			}
			rep.Images[i].State, rep.Images[i].From, rep.Images[i].Took = Imported, arch.File, arch.Took
			progress(rep.Images[i])
		}
		missing = still
	}

	pull := func(i int) {
		img := images[i]
		r := &rep.Images[i]
		if policy == PullNever {
			r.State, r.Err = Missing, e.missingError(img, errors.New("not present, and imagePullPolicy is Never"), imp)
			progress(*r)
			return
		}
		progress(ImageReport{Image: img, State: Pulling})
		start := time.Now()
		_, err := e.Runtime.PullImage(ctx, img)
		r.Took = time.Since(start)
		if err != nil {
			r.State, r.Err = Missing, e.missingError(img, err, imp)
		} else {
			r.State = Pulled
		}
		progress(*r)
	}
	if e.Parallel {
		var wg sync.WaitGroup
		var mu sync.Mutex
		orig := progress
		progress = func(r ImageReport) { mu.Lock(); defer mu.Unlock(); orig(r) }
		for _, i := range missing {
			wg.Go(func() { pull(i) })
		}
		wg.Wait()
	} else {
		for _, i := range missing {
			if ctx.Err() != nil {
				rep.Images[i].State, rep.Images[i].Err = Missing, fmt.Errorf("image %s: %w", images[i], ctx.Err())
				progress(rep.Images[i])
				continue
			}
			pull(i)
		}
	}
	return rep, rep.Err()
}

// present asks the runtime whether it has an image.
func (e Ensure) present(ctx context.Context, image string) (bool, error) {
	img, err := e.Runtime.ImageStatus(ctx, image)
	if err != nil {
		return false, fmt.Errorf("images: %w", err)
	}
	return img != nil, nil
}

func (e Ensure) waitPresent(ctx context.Context, image string, deadline time.Time) (bool, error) {
	for {
		ok, err := e.present(ctx, image)
		if err != nil || ok {
			return ok, err
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// imports is what importing the archives did.
type imports struct {
	// from maps an image name to the archive that provided it.
	from map[string]ArchiveResult
	// failed maps an image name to the error of an archive that holds it
	// but did not import.
	failed map[string]error
	// unreadable lists archives whose names could not be read.
	unreadable []error
}

// importArchives imports the archives that declare a missing image, each
// once, in name order.
func (e Ensure) importArchives(ctx context.Context, images []string, missing []int, rep *Report) (imports, error) {
	imp := imports{from: map[string]ArchiveResult{}, failed: map[string]error{}}
	files, err := ArchiveFiles(e.ArchiveDir)
	if err != nil {
		return imp, err
	}
	want := map[string]bool{}
	for _, i := range missing {
		want[normalize(images[i])] = true
	}
	for _, file := range files {
		if len(want) == 0 {
			break
		}
		declared, ok := e.Declared[file]
		var err error
		if !ok {
			declared, err = ArchiveImages(file)
		}
		if err != nil {
			imp.unreadable = append(imp.unreadable, err)
			rep.Archives = append(rep.Archives, ArchiveResult{File: file, Err: err})
			continue
		}
		if !slices.ContainsFunc(declared, func(n string) bool { return want[n] }) {
			continue
		}
		start := time.Now()
		names, err := e.Importer.Import(ctx, file)
		res := ArchiveResult{File: file, Images: names, Took: time.Since(start), Err: err}
		rep.Archives = append(rep.Archives, res)
		if ctx.Err() != nil {
			return imp, ctx.Err()
		}
		for _, n := range names {
			n = normalize(n)
			if want[n] {
				imp.from[n] = res
				delete(want, n)
			}
		}
		if err != nil {
			for _, n := range declared {
				if want[n] {
					imp.failed[n] = err
				}
			}
		}
	}
	return imp, nil
}

// missingError says what failed and what to do: on a machine without a
// registry, the fix is an archive.
func (e Ensure) missingError(image string, err error, imp imports) error {
	msg := fmt.Errorf("image %s: %w", image, err)
	if e.ArchiveDir == "" || e.Importer == nil {
		return msg
	}
	if ierr := imp.failed[normalize(image)]; ierr != nil {
		return fmt.Errorf("%w; the archive that holds it failed to import: %v", msg, ierr)
	}
	hint := fmt.Sprintf("no archive in %s provides it: put an OCI or docker archive of %s in imageArchiveDir (%s)", e.ArchiveDir, image, e.ArchiveDir)
	if len(imp.unreadable) > 0 {
		var parts []string
		for _, u := range imp.unreadable {
			parts = append(parts, u.Error())
		}
		hint += fmt.Sprintf("; %d archive(s) could not be read: %s", len(parts), strings.Join(parts, "; "))
	}
	return fmt.Errorf("%w; %s", msg, hint)
}
