package joinsecret

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"filippo.io/age"
)

// DefaultFetchTimeout bounds Fetch when the context has no deadline:
// kubeadm's discovery timeout.
const DefaultFetchTimeout = 5 * time.Minute

// maxDocument bounds what is read from a source; a secret is under 1 KiB
// (its sealed form under 2 KiB).
const maxDocument = 1 << 20

// Source is one place a joining machine reads the join secret from. It
// returns the bytes as published, sealed or not; Load opens them.
type Source interface {
	Read(ctx context.Context) ([]byte, error)
	// String names the source without anything secret in it.
	String() string
}

// Load reads the document from src and opens it with ids (see Open).
func Load(ctx context.Context, src Source, ids []age.Identity) (Secret, error) {
	data, err := src.Read(ctx)
	if err != nil {
		return Secret{}, err
	}
	return Open(src.String(), data, ids)
}

// Fetch reads and parses a plain (unsealed) join secret from source (see
// ParseSource). A source that waits is polled until the document appears;
// the wait ends with ctx, or after DefaultFetchTimeout if ctx has no
// deadline. A sealed document needs FromConfig or Load with identities.
func Fetch(ctx context.Context, source string) (Secret, error) {
	src, err := ParseSource(source)
	if err != nil {
		return Secret{}, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultFetchTimeout)
		defer cancel()
	}
	return Load(ctx, src, nil)
}

const sourceForms = "expected a file path, a file:// or http(s):// URL, or virtio-serial:NAME"

// portName is what a virtio-serial port may be called here: it becomes a
// path element under /dev and /sys.
var portName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// ParseSource reads a source as --join-secret and join.source give it: an
// http:// or https:// URL, a file:// URL, virtio-serial:NAME or a file
// path. Errors never show a URL's query string or user info.
func ParseSource(s string) (Source, error) {
	switch {
	case s == "":
		return nil, errors.New("join secret source: empty: " + sourceForms)
	case strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://"):
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("join secret source %s: invalid URL: expected http(s)://host/path", RedactURL(s))
		}
		return HTTPSource{URL: s}, nil
	case strings.HasPrefix(s, "file://"):
		u, err := url.Parse(s)
		if err != nil || u.Path == "" || (u.Host != "" && u.Host != "localhost") {
			return nil, fmt.Errorf("join secret source %s: invalid file URL: expected file:///absolute/path", RedactURL(s))
		}
		return FileSource{Path: u.Path}, nil
	case strings.HasPrefix(s, "virtio-serial:"):
		name := strings.TrimPrefix(s, "virtio-serial:")
		if !portName.MatchString(name) || name == "." || name == ".." {
			return nil, fmt.Errorf("join secret source %q: invalid port name: expected virtio-serial:NAME, NAME of letters, digits, '.', '_' and '-'", s)
		}
		return VirtioSerialSource{Name: name}, nil
	case strings.Contains(s, "://"):
		return nil, fmt.Errorf("join secret source %s: unsupported scheme: %s", RedactURL(s), sourceForms)
	}
	return FileSource{Path: s}, nil
}

// FileSource reads the document from a file, once: it is there or not.
type FileSource struct {
	Path string
}

func (f FileSource) String() string { return "file " + f.Path }

func (f FileSource) Read(_ context.Context) ([]byte, error) {
	fh, err := os.Open(f.Path)
	if err != nil {
		return nil, fmt.Errorf("join secret: %w", err)
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, maxDocument+1))
	if err != nil {
		return nil, fmt.Errorf("join secret: %w", err)
	}
	if len(data) > maxDocument {
		return nil, fmt.Errorf("join secret from %s: more than %d bytes", f, maxDocument)
	}
	return data, nil
}

// InlineSource is a document carried in the userdata itself (join.secret).
type InlineSource struct {
	Data []byte
}

func (InlineSource) String() string { return "join.secret in the userdata" }

func (i InlineSource) Read(_ context.Context) ([]byte, error) {
	if len(strings.TrimSpace(string(i.Data))) == 0 {
		return nil, fmt.Errorf("join secret from %s: empty", i)
	}
	if len(i.Data) > maxDocument {
		return nil, fmt.Errorf("join secret from %s: more than %d bytes", i, maxDocument)
	}
	return i.Data, nil
}
