package joinsecret

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

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

func (h HTTPSource) Read(ctx context.Context) ([]byte, error) {
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
			return data, nil
		}
		var perm permanent
		if errors.As(err, &perm) {
			return nil, fmt.Errorf("join secret from %s: %w", h, perm.error)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("join secret from %s: gave up after %s (%d attempts): %w",
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
