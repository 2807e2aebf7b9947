// Command builder writes kubeadm's control-plane images as OCI archives,
// built locally from the project's binaries, for machines that cannot
// pull: <imageRepository>/kube-apiserver, kube-controller-manager,
// kube-scheduler and kube-proxy at the Kubernetes version, etcd, CoreDNS
// and pause at kubeadm's tags, named exactly as `kubeadm config images
// list` prints them; and the images of the add-ons in image/addons
// (kubeboot/flannel), named as their manifests name them. One archive per
// image, in $KUBEBOOT_CACHE/images/<kubernetes version>/ by default;
// images whose archive is there and whose inputs have not changed are
// skipped. Progress goes to stderr; the archive directory is the last line
// on stdout.
//
//	go run ./image/builder [flags] [image ...]
//
// See image/builder/README.md.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kubeboot/kubeboot/pkg/config"
)

// recipe is part of every archive's stamp: bump it when the builder makes
// different archives from the same inputs.
const recipe = "1"

type options struct {
	cache             string // $KUBEBOOT_CACHE
	out               string // archive directory
	src               string // the kubeboot module's root
	k8sBin, etcdBin   string
	kubernetesVersion string
	compression       compression
	goProcs           int
	check             bool
	only              []string
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	results, err := build(ctx, o)
	if err != nil {
		logf("%v", err)
		os.Exit(1)
	}
	summary(results)
	fmt.Println(o.out)
}

func parseFlags(args []string) (options, error) {
	cache := os.Getenv("KUBEBOOT_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return options{}, err
		}
		cache = filepath.Join(home, ".cache", "kubeboot")
	}
	fset := flag.NewFlagSet("builder", flag.ContinueOnError)
	fset.SetOutput(os.Stderr)
	fset.Usage = func() {
		fmt.Fprintf(fset.Output(), "usage: go run ./image/builder [flags] [image ...]\n\nimages: %s (default: all)\n\n",
			strings.Join(imageNames(), " "))
		fset.PrintDefaults()
	}
	o := options{cache: cache}
	var comp string
	fset.StringVar(&o.out, "out", "", "archive directory (default $KUBEBOOT_CACHE/images/<kubernetes version>)")
	fset.StringVar(&o.src, "src", "", "the kubeboot repository (default: found from the working directory)")
	fset.StringVar(&o.k8sBin, "k8s-bin", os.Getenv("KUBEBOOT_K8S_BIN"), "directory with kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy (and kubeadm, to check the names) ($KUBEBOOT_K8S_BIN)")
	fset.StringVar(&o.etcdBin, "etcd-bin", os.Getenv("KUBEBOOT_ETCD_BIN"), "directory with etcd and etcdctl ($KUBEBOOT_ETCD_BIN)")
	fset.StringVar(&o.kubernetesVersion, "kubernetes-version", config.KubernetesVersion, "tag of the kube-* images; the binaries must report it")
	fset.StringVar(&comp, "compression", envOr("KUBEBOOT_IMAGES_COMPRESSION", string(gzipped)), "layer compression: gzip or none ($KUBEBOOT_IMAGES_COMPRESSION)")
	fset.IntVar(&o.goProcs, "go-p", envInt("KUBEBOOT_GO_P", 1), "go build -p for CoreDNS and flannel ($KUBEBOOT_GO_P)")
	fset.BoolVar(&o.check, "check", true, "run each image's commands in its layer (chroot; root only)")
	if err := fset.Parse(args); err != nil {
		return options{}, err
	}
	o.only = fset.Args()
	o.compression = compression(comp)
	if o.compression != gzipped && o.compression != uncompressed {
		return options{}, fmt.Errorf("-compression %q: want gzip or none", comp)
	}
	if o.out == "" {
		o.out = filepath.Join(o.cache, "images", o.kubernetesVersion)
	}
	for _, n := range o.only {
		if !slices.Contains(imageNames(), n) {
			return options{}, fmt.Errorf("unknown image %q (known: %s)", n, strings.Join(imageNames(), " "))
		}
	}
	return o, nil
}

func imageNames() []string {
	var names []string
	for _, im := range images(inputs{}) {
		names = append(names, im.name)
	}
	return names
}

// A result is what the builder did for one image.
type result struct {
	image  image
	file   string
	size   int64
	cached bool
	took   time.Duration
	note   string
}

func build(ctx context.Context, o options) ([]result, error) {
	start := time.Now()
	want := func(n string) bool { return len(o.only) == 0 || slices.Contains(o.only, n) }
	wantAny := func(ns ...string) bool { return slices.ContainsFunc(ns, want) }
	if o.src == "" && wantAny("pause", "coredns", "flannel") {
		src, err := moduleRoot()
		if err != nil {
			return nil, err
		}
		o.src = src
	}
	if err := os.MkdirAll(filepath.Join(o.out, ".stamps"), 0o755); err != nil {
		return nil, err
	}
	unlock, err := lock(filepath.Join(o.cache, "images", ".lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()
	workRoot := filepath.Join(o.cache, "images")
	stale, _ := filepath.Glob(filepath.Join(workRoot, ".work*"))
	for _, s := range stale {
		os.RemoveAll(s) // left by a killed build; we hold the lock
	}

	in := inputs{kubernetesVersion: o.kubernetesVersion, k8sBin: o.k8sBin, etcdBin: o.etcdBin}
	all := images(in)
	for _, im := range all {
		if _, err := parseRef(im.ref); err != nil {
			return nil, fmt.Errorf("%s: %w", im.name, err)
		}
	}
	if err := checkNames(ctx, o, all); err != nil {
		return nil, err
	}
	k8sNames := []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"}
	if wantAny(k8sNames...) && o.k8sBin == "" {
		return nil, errors.New("no Kubernetes binaries: set -k8s-bin or KUBEBOOT_K8S_BIN (image/images.sh does, from test/k8sbin/build.sh)")
	}
	if want("etcd") && o.etcdBin == "" {
		return nil, errors.New("no etcd binary: set -etcd-bin or KUBEBOOT_ETCD_BIN (image/images.sh does, from test/k8sbin/build.sh)")
	}
	if want("pause") {
		if in.pause, err = buildPause(ctx, o.src, o.cache); err != nil {
			return nil, err
		}
	}
	if want("coredns") {
		bin, err := corednsWrapper.build(ctx, o.src, o.cache, o.goProcs)
		if err != nil {
			return nil, err
		}
		in.coredns = filepath.Join(bin, "coredns")
	}
	if want("flannel") {
		if in.flannelBin, err = flannelWrapper.build(ctx, o.src, o.cache, o.goProcs); err != nil {
			return nil, err
		}
		if in.flannelCNIBin, err = flannelCNIWrapper.build(ctx, o.src, o.cache, o.goProcs); err != nil {
			return nil, err
		}
	}
	// One apt question for the packages of every image, so that its
	// remembered answer holds whichever images are asked for.
	debs := map[string]deb{}
	triplet := ""
	if slices.ContainsFunc(all, func(im image) bool { return want(im.name) && len(im.debs) > 0 }) {
		fetched, err := fetchDebs(ctx, filepath.Join(o.cache, "debs"), debPackages(all))
		if err != nil {
			return nil, err
		}
		for _, d := range fetched {
			debs[d.Pkg] = d
		}
		if triplet, err = debianTriplet(runtime.GOARCH); err != nil {
			return nil, err
		}
	}

	digests := loadDigester(filepath.Join(workRoot, ".digests.json"))
	defer digests.save()
	var results []result
	for _, im := range images(in) {
		if !want(im.name) {
			continue
		}
		t0 := time.Now()
		var imDebs []deb
		for _, p := range im.debs {
			imDebs = append(imDebs, debs[p])
		}
		key, err := im.key(imDebs, o.compression, digests)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", im.name, err)
		}
		file := filepath.Join(o.out, im.archiveName())
		stampFile := filepath.Join(o.out, ".stamps", im.archiveName())
		if size, ok := upToDate(file, stampFile, key); ok {
			results = append(results, result{image: im, file: file, size: size, cached: true, took: time.Since(t0)})
			continue
		}
		logf("%s: building %s", im.name, im.ref)
		if err := checkInputVersion(ctx, o, im); err != nil {
			return nil, err
		}
		note, err := buildImage(ctx, o, im, imDebs, triplet, file, workRoot)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", im.name, err)
		}
		fi, err := os.Stat(file)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(stampFile, fmt.Appendf(nil, "key=%s\nsize=%d\n", key, fi.Size()), 0o644); err != nil {
			return nil, err
		}
		results = append(results, result{image: im, file: file, size: fi.Size(), took: time.Since(t0), note: note})
	}
	if len(o.only) == 0 {
		prune(o.out, results)
	}
	logf("done in %.1f s", time.Since(start).Seconds())
	return results, nil
}

// checkInputVersion makes sure the binary an image is built from is the
// version its tag says: the Kubernetes version for kube-*, and for etcd
// the release line of kubeadm's tag (3.7.0-0 takes any 3.7.x; the project
// builds 3.7.3). The binaries the builder makes were checked when built.
func checkInputVersion(ctx context.Context, o options, im image) error {
	switch im.name {
	case "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy":
		_, err := versionOf(ctx, filepath.Join(o.k8sBin, im.name), []string{"--version"}, "Kubernetes "+o.kubernetesVersion)
		return err
	case "etcd":
		line, err := versionOf(ctx, filepath.Join(o.etcdBin, "etcd"), []string{"--version"}, "etcd Version: "+etcdMinor(config.EtcdVersion))
		if err != nil {
			return fmt.Errorf("etcd: kubeadm's tag is %s: %w", config.EtcdVersion, err)
		}
		logf("etcd: %s, tagged %s as kubeadm expects", line, config.EtcdVersion)
	}
	return nil
}

// buildImage writes one image's archive to file.
func buildImage(ctx context.Context, o options, im image, debs []deb, triplet, file, workRoot string) (string, error) {
	work, err := os.MkdirTemp(workRoot, ".work")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	t := tree{}
	for p, e := range im.files {
		t[p] = e
	}
	if len(debs) > 0 {
		if err := addDebs(ctx, t, debs, work); err != nil {
			return "", err
		}
		if err := checkLinked(t, triplet); err != nil {
			return "", err
		}
	}
	var checks []check
	if o.check {
		checks = im.checks
	}
	note := ""
	layer, err := writeLayerChecked(ctx, t, filepath.Join(work, "layer"), o.compression, im.config.Env, checks, filepath.Join(work, "rootfs"))
	if errors.Is(err, errNoChroot) {
		note = "layer checks skipped: " + err.Error()
		logf("%s: %s", im.name, note)
	} else if err != nil {
		return "", err
	}
	img, err := newImage(layer, runtime.GOARCH, im.config, "kubeboot image/builder: "+im.about)
	if err != nil {
		return "", err
	}
	ref, err := parseRef(im.ref)
	if err != nil {
		return "", err
	}
	return note, writeArchive(file, ref, img)
}

// key is the digest of everything the image's archive is made of: the
// recipe, name, config, each layer entry with its content's digest, and
// the Debian packages' digests.
func (im image) key(debs []deb, c compression, d *digester) (string, error) {
	h := sha256.New()
	cfg, err := json.Marshal(im.config)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(h, "recipe=%s\nref=%s\narch=%s\ncompression=%s\nabout=%s\nconfig=%s\n",
		recipe, im.ref, runtime.GOARCH, c, im.about, cfg)
	for _, p := range im.files.paths() {
		e, ok := im.files[p]
		if !ok {
			fmt.Fprintf(h, "%s implied dir\n", p)
			continue
		}
		content := ""
		switch {
		case e.src != "" && e.mode.IsRegular():
			if content, err = d.sum(e.src); err != nil {
				return "", err
			}
		case e.mode.IsRegular():
			content = fmt.Sprintf("%x", sha256.Sum256(e.data))
		}
		fmt.Fprintf(h, "%s %s %q %t %s\n", p, e.mode, e.link, e.hard, content)
	}
	for _, deb := range debs {
		fmt.Fprintf(h, "deb %s %s\n", deb.Pkg, deb.SHA256)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// upToDate reports whether file is the archive the stamp says was built
// from key, and its size.
func upToDate(file, stampFile, key string) (int64, bool) {
	b, err := os.ReadFile(stampFile)
	if err != nil {
		return 0, false
	}
	fi, err := os.Stat(file)
	if err != nil || !fi.Mode().IsRegular() {
		return 0, false
	}
	want := fmt.Sprintf("key=%s\nsize=%d\n", key, fi.Size())
	return fi.Size(), string(b) == want
}

// prune removes archives the builder wrote earlier that are no longer
// among its images (an older tag), so that the directory holds exactly
// one archive per image. Files it did not write are left alone.
func prune(out string, current []result) {
	keep := map[string]bool{}
	for _, r := range current {
		keep[filepath.Base(r.file)] = true
	}
	stamps, _ := os.ReadDir(filepath.Join(out, ".stamps"))
	for _, s := range stamps {
		if keep[s.Name()] {
			continue
		}
		logf("removing %s: no longer one of the images", s.Name())
		os.Remove(filepath.Join(out, s.Name()))
		os.Remove(filepath.Join(out, ".stamps", s.Name()))
	}
}

// checkNames compares the names of kubeadm's images with what kubeadm,
// when it is in the Kubernetes bin directory, says it uses.
func checkNames(ctx context.Context, o options, all []image) error {
	if o.k8sBin == "" {
		return nil
	}
	kubeadm := filepath.Join(o.k8sBin, "kubeadm")
	if _, err := os.Stat(kubeadm); err != nil {
		logf("no kubeadm in %s: image names not checked against `kubeadm config images list`", o.k8sBin)
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, kubeadm, "config", "images", "list", "--kubernetes-version", o.kubernetesVersion).Output()
	if err != nil {
		return fmt.Errorf("kubeadm config images list: %w", err)
	}
	theirs := strings.Fields(string(out))
	var ours []string
	for _, im := range all {
		if !im.addon {
			ours = append(ours, im.ref)
		}
	}
	slices.Sort(theirs)
	slices.Sort(ours)
	if !slices.Equal(theirs, ours) {
		return fmt.Errorf("image names differ from `kubeadm config images list --kubernetes-version %s`:\n  kubeadm: %s\n  builder: %s",
			o.kubernetesVersion, strings.Join(theirs, " "), strings.Join(ours, " "))
	}
	return nil
}

// digester hashes input files, remembering across runs (in file) the
// digest of each by its size, inode, modification and change times, so an
// unchanged 100 MB binary is not read again.
type digester struct {
	file    string
	known   map[string]fileDigest
	changed bool
}

type fileDigest struct {
	Size   int64  `json:"size"`
	Ino    uint64 `json:"ino"`
	Mtime  int64  `json:"mtime"`
	Ctime  int64  `json:"ctime"`
	SHA256 string `json:"sha256"`
}

func loadDigester(file string) *digester {
	d := &digester{file: file, known: map[string]fileDigest{}}
	if b, err := os.ReadFile(file); err == nil {
		_ = json.Unmarshal(b, &d.known) // a damaged memo is only slower
	}
	return d
}

func (d *digester) sum(file string) (string, error) {
	fi, err := os.Stat(file)
	if err != nil {
		return "", err
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	if st == nil {
		return fileSHA256(file)
	}
	id := fileDigest{Size: fi.Size(), Ino: st.Ino, Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano()}
	if k, ok := d.known[file]; ok && k.SHA256 != "" {
		k2 := k
		k2.SHA256 = ""
		if k2 == id {
			return k.SHA256, nil
		}
	}
	s, err := fileSHA256(file)
	if err != nil {
		return "", err
	}
	id.SHA256 = s
	d.known[file] = id
	d.changed = true
	return s, nil
}

// save writes the memo back; losing it costs only time.
func (d *digester) save() {
	if !d.changed {
		return
	}
	b, err := json.Marshal(d.known)
	if err != nil {
		return
	}
	tmp := d.file + ".tmp"
	if os.WriteFile(tmp, b, 0o644) == nil {
		os.Rename(tmp, d.file)
	}
}

// lock takes an exclusive lock on file, waiting (and saying so) while
// another build holds it.
func lock(file string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(file, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		logf("another build holds %s; waiting", file)
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", file, err)
		}
	}
	return func() { f.Close() }, nil
}

// moduleRoot finds the kubeboot module from the working directory up.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && strings.HasPrefix(string(b), "module github.com/kubeboot/kubeboot\n") {
			return d, nil
		}
		if d == filepath.Dir(d) {
			return "", fmt.Errorf("no kubeboot repository at or above %s: run from it or pass -src", dir)
		}
	}
}

func summary(results []result) {
	var total int64
	for _, r := range results {
		state := fmt.Sprintf("built in %.1f s", r.took.Seconds())
		if r.cached {
			state = "up to date"
		}
		if r.note != "" {
			state += "; " + r.note
		}
		logf("%-48s %-36s %6.1f MB  %s", r.image.ref, filepath.Base(r.file), float64(r.size)/1e6, state)
		total += r.size
	}
	logf("%d archives, %.1f MB", len(results), float64(total)/1e6)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "images: "+format+"\n", args...)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func envInt(k string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(k)); err == nil && n > 0 {
		return n
	}
	return def
}
