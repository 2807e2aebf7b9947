package userdata

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Fetch says how to fetch userdata from http(s) URLs: each attempt has its
// own timeout, attempts back off exponentially, and all attempts together
// stop at Timeout.
type Fetch struct {
	Client *http.Client
	// Timeout bounds all attempts of one URL together (default 2 minutes).
	Timeout time.Duration
	// AttemptTimeout bounds one attempt, body included (default 20 s).
	AttemptTimeout time.Duration
	// Backoff is the first pause between attempts (default 1 s); it doubles
	// up to MaxBackoff (default 16 s).
	Backoff, MaxBackoff time.Duration
	// Attempts bounds the number of attempts; 0 means until Timeout.
	Attempts int
	// Headers are added to every request.
	Headers http.Header
}

func (f Fetch) withDefaults() Fetch {
	if f.Client == nil {
		f.Client = &http.Client{}
	}
	if f.Timeout <= 0 {
		f.Timeout = 2 * time.Minute
	}
	if f.AttemptTimeout <= 0 {
		f.AttemptTimeout = 20 * time.Second
	}
	if f.Backoff <= 0 {
		f.Backoff = time.Second
	}
	if f.MaxBackoff <= 0 {
		f.MaxBackoff = 16 * time.Second
	}
	return f
}

// RedactURL gives a URL as it may be shown: without user information,
// query string and fragment, which may hold credentials. A data: URL is
// shown by its size only.
func RedactURL(raw string) string {
	if len(raw) >= 5 && strings.EqualFold(raw[:5], "data:") {
		return fmt.Sprintf("data: URL (%d bytes)", len(raw))
	}
	u, err := url.Parse(raw)
	if err != nil {
		// Cut by hand what url.Parse would have cut.
		s := raw
		if i := strings.IndexAny(s, "?#"); i >= 0 {
			s = s[:i]
		}
		if i := strings.Index(s, "@"); i >= 0 {
			if j := strings.Index(s, "://"); j >= 0 && j < i {
				s = s[:j+3] + s[i+1:]
			}
		}
		return s
	}
	note := ""
	if u.RawQuery != "" || u.ForceQuery {
		note = " (query redacted)"
	}
	u.User = nil
	u.RawQuery = ""
	u.ForceQuery = false
	u.Fragment = ""
	u.RawFragment = ""
	return u.String() + note
}

var errHTTPNotFound = errors.New("HTTP status 404 Not Found")

// errPermanent marks a fetch failure that a retry will not cure.
type errPermanent struct{ error }

func (e errPermanent) Unwrap() error { return e.error }

// get fetches one URL (http, https or data:), retrying http(s) until it
// succeeds, fails permanently or the total timeout passes. Errors name the
// URL without its query string.
func (f Fetch) get(ctx context.Context, raw string, headers http.Header) ([]byte, error) {
	shown := RedactURL(raw)
	u, err := url.Parse(raw)
	if err != nil {
		if len(raw) >= 5 && strings.EqualFold(raw[:5], "data:") {
			u = &url.URL{Scheme: "data"}
		} else {
			return nil, fmt.Errorf("URL %s: not a URL", shown)
		}
	}
	switch strings.ToLower(u.Scheme) {
	case "data":
		d, err := ParseDataURL(raw)
		if err != nil {
			return nil, err
		}
		if len(d.Data) > MaxUserdata {
			return nil, fmt.Errorf("data URL is larger than %d MiB", MaxUserdata>>20)
		}
		return d.Data, nil
	case "http", "https":
	default:
		return nil, fmt.Errorf("URL %s: scheme %q not supported (http, https, data)", shown, u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("URL %s: no host", shown)
	}
	f = f.withDefaults()
	ctx, cancel := context.WithTimeout(ctx, f.Timeout)
	defer cancel()
	wait := f.Backoff
	var last error
	for attempt := 1; ; attempt++ {
		data, err := f.attempt(ctx, raw, headers)
		if err == nil {
			return data, nil
		}
		last = err
		var perm errPermanent
		if errors.As(err, &perm) {
			return nil, fmt.Errorf("fetch %s: %w", shown, err)
		}
		if f.Attempts > 0 && attempt >= f.Attempts {
			return nil, fmt.Errorf("fetch %s: gave up after %d attempts: %w", shown, attempt, last)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("fetch %s: gave up after %d attempts in %s: %w", shown, attempt, f.Timeout, last)
		case <-time.After(wait):
		}
		wait *= 2
		if wait > f.MaxBackoff {
			wait = f.MaxBackoff
		}
	}
}

func (f Fetch) attempt(ctx context.Context, raw string, headers http.Header) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, f.AttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return nil, errPermanent{stripURL(err)}
	}
	req.Header.Set("Accept-Encoding", "identity")
	for k, vs := range f.Headers {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	for k, vs := range headers {
		req.Header.Del(k)
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := f.Client.Do(req)
	if err != nil {
		return nil, stripURL(err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode >= 500, resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode == http.StatusTooManyRequests:
		return nil, fmt.Errorf("HTTP status %s", resp.Status)
	case resp.StatusCode == http.StatusNotFound:
		return nil, errPermanent{errHTTPNotFound}
	default:
		return nil, errPermanent{fmt.Errorf("HTTP status %s", resp.Status)}
	}
	if resp.ContentLength > MaxUserdata {
		return nil, errPermanent{fmt.Errorf("response is larger than %d MiB (Content-Length %d)", MaxUserdata>>20, resp.ContentLength)}
	}
	data, err := readLimited(resp.Body, MaxUserdata, "response")
	if err != nil {
		if strings.Contains(err.Error(), "larger than") {
			return nil, errPermanent{err}
		}
		return nil, fmt.Errorf("reading body: %w", stripURL(err))
	}
	return data, nil
}

// stripURL drops the URL that net/http puts in its errors: it would show
// the query string.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", strings.ToLower(ue.Op), ue.Err)
	}
	return err
}
