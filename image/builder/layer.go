package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// epoch is every timestamp in a layer and a config: archives built from
// the same inputs are the same bytes, so their digests can be compared.
var epoch = time.Unix(0, 0).UTC()

// A tree is the content of one layer: slash-separated paths without a
// leading "/" to what is there. Parent directories are implied.
type tree map[string]entry

// An entry is one file, directory, symlink or hard link of a tree.
type entry struct {
	// mode is the type (0, fs.ModeDir or fs.ModeSymlink) and permissions.
	mode fs.FileMode
	// src is the host file a regular file's content comes from; data is
	// the content when src is empty.
	src  string
	data []byte
	// link is a symlink's target, or for a hard link the tree path of the
	// file it links to.
	link string
	hard bool
}

func (t tree) dir(p string, perm fs.FileMode) { t[clean(p)] = entry{mode: fs.ModeDir | perm} }
func (t tree) file(p, src string, perm fs.FileMode) {
	t[clean(p)] = entry{mode: perm, src: src}
}
func (t tree) bytes(p string, data []byte, perm fs.FileMode) {
	t[clean(p)] = entry{mode: perm, data: data}
}
func (t tree) symlink(p, target string) {
	t[clean(p)] = entry{mode: fs.ModeSymlink | 0o777, link: target}
}

func clean(p string) string { return strings.TrimPrefix(path.Clean("/"+p), "/") }

// paths returns the tree's paths with every implied parent directory,
// parents first.
func (t tree) paths() []string {
	seen := map[string]bool{}
	for p := range t {
		for d := path.Dir(p); d != "." && d != "/"; d = path.Dir(d) {
			seen[d] = true
		}
		seen[p] = true
	}
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	// Components compare before the separator, so a directory comes right
	// before its contents ("a/b" < "a/b/c" < "a/b-c").
	slices.SortFunc(out, func(a, b string) int {
		return slices.Compare(strings.Split(a, "/"), strings.Split(b, "/"))
	})
	return out
}

// resolve follows symlinks inside the tree, as the kernel would inside a
// container whose root is the tree, and returns the path of what p names.
func (t tree) resolve(p string) (string, bool) {
	p = clean(p)
	for hops := 0; hops < 40; hops++ {
		// Resolve the directories first: /lib/x may be usr/lib/x.
		parts := strings.Split(p, "/")
		resolved := ""
		changed := false
		for i, part := range parts {
			cur := path.Join(resolved, part)
			e, ok := t[cur]
			if ok && e.mode&fs.ModeSymlink != 0 {
				target := e.link
				if !path.IsAbs(target) {
					target = path.Join(path.Dir(cur), target)
				}
				p = clean(path.Join(append([]string{target}, parts[i+1:]...)...))
				changed = true
				break
			}
			resolved = cur
		}
		if !changed {
			e, ok := t[p]
			if ok && e.hard {
				return clean(e.link), true
			}
			if ok {
				return p, true
			}
			// An implied directory.
			for q := range t {
				if strings.HasPrefix(q, p+"/") {
					return p, true
				}
			}
			return p, false
		}
	}
	return p, false
}

// A compression is how layers are stored in an archive.
type compression string

const (
	gzipped      compression = "gzip"
	uncompressed compression = "none"
)

func (c compression) mediaType() types.MediaType {
	if c == uncompressed {
		return types.OCIUncompressedLayer
	}
	return types.OCILayer
}

// writeLayer writes the tree as a tar to file, compressed as c says, in one
// pass that also yields the layer's digest and diff ID, and copies the
// uncompressed tar to each of also. Entries are in path order with root
// ownership and epoch times.
func writeLayer(t tree, file string, c compression, also ...io.Writer) (v1.Layer, error) {
	f, err := os.Create(file)
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	defer f.Close()
	digest := sha256.New()
	diffID := sha256.New()
	counted := &countWriter{w: io.MultiWriter(f, digest)}
	var zw *gzip.Writer
	var compressed io.Writer = counted
	if c == gzipped {
		zw, err = gzip.NewWriterLevel(counted, gzip.BestSpeed)
		if err != nil {
			return nil, err
		}
		compressed = zw
	}
	tarOut := io.MultiWriter(append([]io.Writer{compressed, diffID}, also...)...)
	tw := tar.NewWriter(tarOut)
	if err := writeTree(tw, t); err != nil {
		return nil, fmt.Errorf("layer %s: %w", file, err)
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("layer %s: %w", file, err)
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			return nil, fmt.Errorf("layer %s: %w", file, err)
		}
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("layer %s: %w", file, err)
	}
	return &fileLayer{
		file:      file,
		digest:    sum(digest),
		diffID:    sum(diffID),
		size:      counted.n,
		mediaType: c.mediaType(),
	}, nil
}

func writeTree(tw *tar.Writer, t tree) error {
	for _, p := range t.paths() {
		e, ok := t[p]
		if !ok {
			e = entry{mode: fs.ModeDir | 0o755}
		}
		hdr := &tar.Header{
			Name:    p,
			Mode:    int64(e.mode.Perm()),
			ModTime: epoch,
			Format:  tar.FormatPAX,
		}
		if e.mode&fs.ModeSetuid != 0 {
			hdr.Mode |= 0o4000
		}
		if e.mode&fs.ModeSetgid != 0 {
			hdr.Mode |= 0o2000
		}
		if e.mode&fs.ModeSticky != 0 {
			hdr.Mode |= 0o1000
		}
		switch {
		case e.mode.IsDir():
			hdr.Typeflag, hdr.Name = tar.TypeDir, p+"/"
		case e.mode&fs.ModeSymlink != 0:
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, e.link
		case e.hard:
			hdr.Typeflag, hdr.Linkname = tar.TypeLink, clean(e.link)
		default:
			if err := writeFile(tw, hdr, e); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			continue
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	return nil
}

// writeFile writes a regular file's header and content.
func writeFile(tw *tar.Writer, hdr *tar.Header, e entry) error {
	hdr.Typeflag = tar.TypeReg
	var content io.Reader = bytes.NewReader(e.data)
	hdr.Size = int64(len(e.data))
	if e.src != "" {
		src, err := os.Open(e.src)
		if err != nil {
			return err
		}
		defer src.Close()
		fi, err := src.Stat()
		if err != nil {
			return err
		}
		hdr.Size, content = fi.Size(), src
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	n, err := io.Copy(tw, content)
	if err != nil {
		return err
	}
	if n != hdr.Size {
		return fmt.Errorf("changed while being read (%d of %d bytes)", n, hdr.Size)
	}
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func sum(h hash.Hash) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", h.Sum(nil))}
}

// fileLayer is a layer written by writeLayer: a file whose digests are
// already known, so go-containerregistry never reads it twice.
type fileLayer struct {
	file           string
	digest, diffID v1.Hash
	size           int64
	mediaType      types.MediaType
}

var _ v1.Layer = (*fileLayer)(nil)

func (l *fileLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *fileLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *fileLayer) Size() (int64, error)                { return l.size, nil }
func (l *fileLayer) MediaType() (types.MediaType, error) { return l.mediaType, nil }
func (l *fileLayer) Compressed() (io.ReadCloser, error)  { return os.Open(l.file) }
func (l *fileLayer) Uncompressed() (io.ReadCloser, error) {
	return openUncompressed(l.file, l.mediaType)
}

func openUncompressed(file string, mt types.MediaType) (io.ReadCloser, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	if mt == types.OCIUncompressedLayer || mt == types.DockerUncompressedLayer {
		return f, nil
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return &readCloser{Reader: zr, close: func() error { return errors.Join(zr.Close(), f.Close()) }}, nil
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r *readCloser) Close() error { return r.close() }
