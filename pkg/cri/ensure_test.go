package cri

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeRuntime holds a set of images; pulls succeed only for pullable ones.
type fakeRuntime struct {
	mu       sync.Mutex
	have     map[string]bool
	pullable map[string]bool
	pulls    []string
	// hidden images are imported but never listed, as with a runtime that
	// imports into another namespace.
	hidden map[string]bool
}

func (f *fakeRuntime) ImageStatus(_ context.Context, image string) (*Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.have[normalize(image)] && !f.hidden[normalize(image)] {
		return &Image{ID: "sha256:" + image, RepoTags: []string{image}}, nil
	}
	return nil, nil
}

func (f *fakeRuntime) PullImage(_ context.Context, image string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pulls = append(f.pulls, image)
	if !f.pullable[image] {
		return "", errors.New(`failed to resolve reference "` + image + `": no such host`)
	}
	f.have[normalize(image)] = true
	return "sha256:" + image, nil
}

// fakeImporter "imports" an archive by adding the names it declares.
type fakeImporter struct {
	rt    *fakeRuntime
	files []string
	fail  map[string]error
}

func (f *fakeImporter) Import(_ context.Context, file string) ([]string, error) {
	f.files = append(f.files, filepath.Base(file))
	if err := f.fail[filepath.Base(file)]; err != nil {
		return nil, err
	}
	names, err := ArchiveImages(file)
	if err != nil {
		return nil, err
	}
	f.rt.mu.Lock()
	for _, n := range names {
		f.rt.have[n] = true
	}
	f.rt.mu.Unlock()
	return names, nil
}

func TestEnsure(t *testing.T) {
	img := tinyImage(t, []byte("x"), true)
	dir := t.TempDir()
	writeOCIArchive(t, filepath.Join(dir, "a-pause.tar"), img, "registry.k8s.io/pause:3.10.2")
	writeDockerArchive(t, filepath.Join(dir, "b-etcd.tar"), img, "registry.k8s.io/etcd:3.7.0-0")
	writeDockerArchive(t, filepath.Join(dir, "c-unrelated.tar"), img, "example.com/unrelated:1")
	if err := os.WriteFile(filepath.Join(dir, "d-broken.tar"), []byte("not a tar"), 0o644); err != nil {
		t.Fatal(err)
	}
	const (
		api   = "registry.k8s.io/kube-apiserver:v1.37.2"
		pause = "registry.k8s.io/pause:3.10.2"
		etcd  = "registry.k8s.io/etcd:3.7.0-0"
		dns   = "registry.k8s.io/coredns/coredns:v1.14.6"
	)
	all := []string{api, dns, pause, etcd}

	for _, tc := range []struct {
		name      string
		have      []string
		pullable  []string
		hidden    []string
		policy    PullPolicy
		parallel  bool
		failOn    string
		want      map[string]State
		imported  []string // archives imported, in order
		pulls     []string
		errSubstr []string
	}{
		{
			name: "all present: nothing imported or pulled", have: all,
			want: map[string]State{api: Present, dns: Present, pause: Present, etcd: Present},
		},
		{
			name: "archives before pulls", have: []string{api}, pullable: []string{dns, pause, etcd},
			want:     map[string]State{api: Present, dns: Pulled, pause: Imported, etcd: Imported},
			imported: []string{"a-pause.tar", "b-etcd.tar"}, pulls: []string{dns},
		},
		{
			name: "no registry: clear error naming the image and the directory", have: []string{api, pause, etcd},
			want:      map[string]State{api: Present, dns: Missing, pause: Present, etcd: Present},
			pulls:     []string{dns},
			errSubstr: []string{"image " + dns + ": failed to resolve", "no such host", "no archive in " + dir + " provides it: put an OCI or docker archive of " + dns + " in imageArchiveDir (" + dir + ")", "1 archive(s) could not be read: read archive " + filepath.Join(dir, "d-broken.tar")},
		},
		{
			name: "never pull", policy: PullNever, have: []string{api},
			want:      map[string]State{api: Present, dns: Missing, pause: Imported, etcd: Imported},
			imported:  []string{"a-pause.tar", "b-etcd.tar"},
			errSubstr: []string{"image " + dns + ": not present, and imagePullPolicy is Never"},
		},
		{
			name: "always pull: no archives", policy: PullAlways, have: all, pullable: all,
			want:  map[string]State{api: Pulled, dns: Pulled, pause: Pulled, etcd: Pulled},
			pulls: all,
		},
		{
			name: "parallel pulls", parallel: true, pullable: all,
			want:     map[string]State{api: Pulled, dns: Pulled, pause: Imported, etcd: Imported},
			imported: []string{"a-pause.tar", "b-etcd.tar"}, pulls: []string{api, dns},
		},
		{
			name: "import fails, pull fails: both said", failOn: "b-etcd.tar", have: []string{api, dns},
			want:      map[string]State{api: Present, dns: Present, pause: Imported, etcd: Missing},
			imported:  []string{"a-pause.tar", "b-etcd.tar"},
			pulls:     []string{etcd},
			errSubstr: []string{"image " + etcd + ": failed to resolve", "; the archive that holds it failed to import: import b-etcd.tar: disk full"},
		},
		{
			name: "imported but invisible", have: []string{api, dns, etcd}, hidden: []string{pause},
			want:      map[string]State{api: Present, dns: Present, pause: Missing, etcd: Present},
			imported:  []string{"a-pause.tar"},
			errSubstr: []string{"image " + pause + ": imported from " + filepath.Join(dir, "a-pause.tar") + ", but the runtime does not list it"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := &fakeRuntime{have: set(tc.have), pullable: set(tc.pullable), hidden: set(tc.hidden)}
			imp := &fakeImporter{rt: rt, fail: map[string]error{}}
			if tc.failOn != "" {
				imp.fail[tc.failOn] = errors.New("import " + tc.failOn + ": disk full")
			}
			var mu sync.Mutex
			var progress []ImageReport
			rep, err := Ensure{
				Runtime: rt, Importer: imp, ArchiveDir: dir, Policy: tc.policy, Parallel: tc.parallel,
				Settle:   50 * time.Millisecond,
				Progress: func(r ImageReport) { mu.Lock(); progress = append(progress, r); mu.Unlock() },
			}.Run(context.Background(), all)
			for _, r := range rep.Images {
				if r.State != tc.want[r.Image] {
					t.Errorf("%s: %s, want %s (%v)", r.Image, r.State, tc.want[r.Image], r.Err)
				}
			}
			if !slices.Equal(imp.files, tc.imported) {
				t.Errorf("imported %q, want %q", imp.files, tc.imported)
			}
			slices.Sort(rt.pulls)
			wantPulls := slices.Clone(tc.pulls)
			slices.Sort(wantPulls)
			if !slices.Equal(rt.pulls, wantPulls) {
				t.Errorf("pulled %q, want %q", rt.pulls, wantPulls)
			}
			if len(tc.errSubstr) == 0 && err != nil {
				t.Errorf("error: %v", err)
			}
			for _, s := range tc.errSubstr {
				if err == nil || !strings.Contains(err.Error(), s) {
					t.Errorf("error %v\nlacks %q", err, s)
				}
			}
			// One final progress report per image, plus one per pull start.
			final := 0
			for _, p := range progress {
				if p.State != Pulling {
					final++
				}
			}
			if final != len(all) {
				t.Errorf("%d final progress reports, want %d: %v", final, len(all), progress)
			}
		})
	}
}

func TestReportSummary(t *testing.T) {
	r := &Report{Images: []ImageReport{
		{Image: "a", State: Present}, {Image: "b", State: Imported, From: "/x/b.tar", Took: 1500 * time.Microsecond},
		{Image: "c", State: Imported}, {Image: "d", State: Missing, Err: errors.New("image d: gone")},
	}}
	if got, want := r.Summary(), "4 images: 1 present, 2 imported, 1 missing"; got != want {
		t.Errorf("Summary = %q, want %q", got, want)
	}
	if got, want := r.Images[1].String(), "b: imported from /x/b.tar (2ms)"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if err := r.Err(); err == nil || err.Error() != "image d: gone" {
		t.Errorf("Err = %v", err)
	}
}

func set(list []string) map[string]bool {
	m := map[string]bool{}
	for _, s := range list {
		m[normalize(s)] = true
		m[s] = true
	}
	return m
}

// TestEnsureDeclared: archives the caller already read are not read again
// (Ensure trusts Declared), and an unreadable archive before them does not
// spoil them.
func TestEnsureDeclared(t *testing.T) {
	img := tinyImage(t, []byte("x"), true)
	dir := t.TempDir()
	const pause = "registry.k8s.io/pause:3.10.2"
	broken, good := filepath.Join(dir, "a-broken.tar"), filepath.Join(dir, "b-pause.tar")
	if err := os.WriteFile(broken, []byte("not a tar"), 0o644); err != nil {
		t.Fatal(err)
	}
	writeOCIArchive(t, good, img, pause)
	for _, tc := range []struct {
		name     string
		declared map[string][]string
		want     State
		imported []string
	}{
		{"declared as holding it, after an unreadable one", map[string][]string{good: {pause}}, Imported, []string{"b-pause.tar"}},
		{"declared as holding something else: not read, not imported", map[string][]string{good: {"example.com/other:1"}}, Missing, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := &fakeRuntime{have: map[string]bool{}, pullable: map[string]bool{}, hidden: map[string]bool{}}
			imp := &fakeImporter{rt: rt}
			e := Ensure{Runtime: rt, Importer: imp, ArchiveDir: dir, Policy: PullNever, Settle: time.Second, Declared: tc.declared}
			rep, _ := e.Run(context.Background(), []string{pause})
			if got := rep.Images[0].State; got != tc.want {
				t.Errorf("state %s, want %s (%v)", got, tc.want, rep.Images[0].Err)
			}
			if !slices.Equal(imp.files, tc.imported) {
				t.Errorf("imported %v, want %v", imp.files, tc.imported)
			}
		})
	}
}
