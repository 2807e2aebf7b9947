package joinsecret

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

// Sink is one destination of the join secret.
type Sink interface {
	Put(ctx context.Context, doc []byte) error
	String() string
}

// FileSink writes the document 0600, atomically, under a root prefix.
type FileSink struct {
	Writer rootfs.Writer
	Path   string
}

func (f FileSink) String() string { return "file " + f.Path }

func (f FileSink) Put(_ context.Context, doc []byte) error {
	_, err := f.Writer.WriteFile(rootfs.File{Path: f.Path, Mode: 0o600, Data: doc, Secret: true})
	return err
}

// VirtioSerialSink writes to a virtio-serial port that the hypervisor
// connects to a file or socket on the host side.
type VirtioSerialSink struct {
	Root string
	Name string
}

func (v VirtioSerialSink) String() string { return "virtio-serial port " + v.Name }

func (v VirtioSerialSink) Put(_ context.Context, doc []byte) error {
	dev, err := FindVirtioPort(v.Root, v.Name)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("virtio-serial port %s: %w", v.Name, err)
	}
	defer f.Close()
	if _, err := f.Write(doc); err != nil {
		return fmt.Errorf("virtio-serial port %s: %w", v.Name, err)
	}
	return nil
}

// FindVirtioPort returns the device of a named port: /dev/virtio-ports/NAME
// where udev made it, otherwise the /dev/vportNpM whose sysfs name matches
// (a minimal initramfs has no udev).
func FindVirtioPort(root, name string) (string, error) {
	link := filepath.Join(root, "/dev/virtio-ports", name)
	if _, err := os.Stat(link); err == nil {
		return link, nil
	}
	matches, _ := filepath.Glob(filepath.Join(root, "/sys/class/virtio-ports/*/name"))
	for _, m := range matches {
		data, err := os.ReadFile(m)
		if err != nil || strings.TrimSpace(string(data)) != name {
			continue
		}
		dev := filepath.Join(root, "/dev", filepath.Base(filepath.Dir(m)))
		if _, err := os.Stat(dev); err == nil {
			return dev, nil
		}
	}
	return "", fmt.Errorf("virtio-serial port %q not found (no /dev/virtio-ports/%s and no matching /sys/class/virtio-ports/*/name)", name, name)
}

// HTTPSink PUTs the document to a metadata URL, retrying with backoff
// until Timeout.
type HTTPSink struct {
	URL     string
	Timeout time.Duration
	Client  *http.Client
}

// String never shows the query string or user info: they may hold credentials.
func (h HTTPSink) String() string { return "http " + RedactURL(h.URL) }

func (h HTTPSink) Put(ctx context.Context, doc []byte) error {
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := h.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	backoff := 200 * time.Millisecond
	var last error
	for attempt := 1; ; attempt++ {
		last = h.put(ctx, client, doc)
		if last == nil {
			return nil
		}
		var perm permanent
		if errors.As(last, &perm) {
			return fmt.Errorf("%s: %w", h, last)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: gave up after %d attempts in %s: %w", h, attempt, timeout, last)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

type permanent struct{ error }

func (h HTTPSink) put(ctx context.Context, client *http.Client, doc []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, h.URL, bytes.NewReader(doc))
	if err != nil {
		return permanent{fmt.Errorf("bad request: %v", err)}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		// url.Error repeats the full URL; keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			return ue.Err
		}
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout:
		return fmt.Errorf("server answered %s", resp.Status)
	}
	return permanent{fmt.Errorf("server answered %s", resp.Status)}
}

// RedactURL drops user info and the query string.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<invalid URL>"
	}
	u.User = nil
	if u.RawQuery != "" {
		u.RawQuery = "<redacted>"
	}
	u.Fragment = ""
	return u.String()
}
