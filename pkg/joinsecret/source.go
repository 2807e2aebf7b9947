package joinsecret

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// DefaultFetchTimeout bounds Fetch when the context has no deadline:
// kubeadm's discovery timeout.
const DefaultFetchTimeout = 5 * time.Minute

// maxDocument bounds what is read from a source; a secret is under 1 KiB.
const maxDocument = 1 << 20

// Source is one place a joining machine reads the join secret from.
type Source interface {
	Fetch(ctx context.Context) (Secret, error)
	// String names the source without anything secret in it.
	String() string
}

// ParseSource reads a source as --join-secret gives it: an http:// or
// https:// URL, a file:// URL or a file path.
func ParseSource(s string) (Source, error) {
	switch {
	case s == "":
		return nil, errors.New("join secret source: empty: expected a file path or an http(s) URL")
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
	case strings.Contains(s, "://"):
		return nil, fmt.Errorf("join secret source %s: unsupported scheme: expected a file path or an http(s) URL", RedactURL(s))
	}
	return FileSource{Path: s}, nil
}

// Fetch reads and parses the join secret from source (see ParseSource).
// An HTTP source is polled until the document appears; the wait ends with
// ctx, or after DefaultFetchTimeout if ctx has no deadline.
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
	return src.Fetch(ctx)
}

// FileSource reads the document from a file, once: it is there or not.
type FileSource struct {
	Path string
}

func (f FileSource) String() string { return "file " + f.Path }

func (f FileSource) Fetch(_ context.Context) (Secret, error) {
	fh, err := os.Open(f.Path)
	if err != nil {
		return Secret{}, fmt.Errorf("join secret: %w", err)
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, maxDocument+1))
	if err != nil {
		return Secret{}, fmt.Errorf("join secret: %w", err)
	}
	if len(data) > maxDocument {
		return Secret{}, fmt.Errorf("join secret from %s: more than %d bytes", f, maxDocument)
	}
	return Parse(f.String(), data)
}

// HTTPSource polls a metadata URL until the document appears: 404 (or an
// empty answer) means "not yet", as do connection errors, 5xx, 408 and
// 429; the polling backs off to 5 s between attempts. Other answers end
// it: 401 and 403 say the URL's credentials are refused (an S3 bucket also
// answers 403 for a missing object when the reader may not list it).
// Neither String nor any error shows the URL's query string or user
// info: a presigned URL carries its credentials there.
type HTTPSource struct {
	URL string
	// Timeout bounds the polling on top of the context; 0: the context alone.
	Timeout time.Duration
	Client  *http.Client
}

func (h HTTPSource) String() string { return "http " + RedactURL(h.URL) }

func (h HTTPSource) Fetch(ctx context.Context) (Secret, error) {
	if h.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.Timeout)
		defer cancel()
	}
	client := h.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	start := time.Now()
	backoff := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		data, err := h.get(ctx, client)
		if err == nil {
			return Parse(h.String(), data)
		}
		var perm permanent
		if errors.As(err, &perm) {
			return Secret{}, fmt.Errorf("join secret from %s: %w", h, perm.error)
		}
		select {
		case <-ctx.Done():
			return Secret{}, fmt.Errorf("join secret from %s: gave up after %s (%d attempts): %w",
				h, time.Since(start).Round(time.Millisecond), attempt, err)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

var errNotYet = errors.New("not published yet")

func (h HTTPSource) get(ctx context.Context, client *http.Client) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.URL, nil)
	if err != nil {
		return nil, permanent{errors.New("invalid URL")}
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		// url.Error repeats the full URL; keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			return nil, ue.Err
		}
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxDocument+1))
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, fmt.Errorf("%w (server answered %s)", errNotYet, resp.Status)
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return nil, permanent{fmt.Errorf("server answered %s: check the URL's credentials (an S3 bucket also answers 403 for a missing object unless the reader may list the bucket)", resp.Status)}
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout:
		return nil, fmt.Errorf("server answered %s", resp.Status)
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return nil, permanent{fmt.Errorf("server answered %s", resp.Status)}
	case err != nil:
		return nil, fmt.Errorf("reading the answer: %w", err)
	case len(data) > maxDocument:
		return nil, permanent{fmt.Errorf("answer is more than %d bytes", maxDocument)}
	case len(strings.TrimSpace(string(data))) == 0:
		return nil, fmt.Errorf("%w (server answered %s with an empty body)", errNotYet, resp.Status)
	}
	return data, nil
}
