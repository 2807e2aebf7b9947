package rendezvous

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"time"
)

// How an answer is handled: conflicts are re-read and retried at once,
// passing failures after a backoff, and anything else ends the operation.
var (
	// errPrecondition is 412: someone wrote since we read.
	errPrecondition = errors.New("server answered 412 Precondition Failed: the object changed since it was read")
	// errBusy is S3's 409 ConditionalRequestConflict: another conditional
	// write to the object is in flight.
	errBusy = errors.New("server answered 409 Conflict: a concurrent conditional write is in flight")
)

// transient marks a failure that may pass: retry after a backoff. Any
// other failure ends the operation.
type transient struct{ error }

func (t transient) Unwrap() error { return t.error }

func isTransient(err error) bool {
	var t transient
	return errors.As(err, &t)
}

// object is one GET's result.
type object struct {
	data  []byte
	etag  string
	found bool
}

// precondition is the conditional header of a PUT.
type precondition struct{ header, value string }

func ifAbsent() precondition               { return precondition{"If-None-Match", "*"} }
func ifUnchanged(etag string) precondition { return precondition{"If-Match", etag} }

var always = precondition{}

func (s *Store) get(ctx context.Context, name string) (object, error) {
	resp, err := s.do(ctx, http.MethodGet, name, nil, "", always)
	if err != nil {
		return object{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return object{}, nil
	}
	if err := statusError(resp); err != nil {
		return object{}, err
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	switch {
	case err != nil:
		return object{}, transient{fmt.Errorf("reading the answer: %w", err)}
	case len(data) > maxBody:
		return object{}, fmt.Errorf("the object is more than %d bytes", maxBody)
	}
	return object{data: data, etag: resp.Header.Get("ETag"), found: true}, nil
}

// put writes an object if pre holds.
func (s *Store) put(ctx context.Context, name string, data []byte, contentType string, pre precondition) error {
	resp, err := s.do(ctx, http.MethodPut, name, data, contentType, pre)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
	switch resp.StatusCode {
	case http.StatusPreconditionFailed:
		return errPrecondition
	case http.StatusConflict:
		return errBusy
	}
	return statusError(resp)
}

func (s *Store) do(ctx context.Context, method, name string, body []byte, contentType string, pre precondition) (*http.Response, error) {
	u, err := s.objectURL(name)
	if err != nil {
		return nil, err
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, errors.New("invalid URL")
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
		// Azure Blob refuses a PUT that does not say which kind of blob it
		// makes; other stores ignore the header.
		req.Header.Set("x-ms-blob-type", "BlockBlob")
	}
	if pre.header != "" {
		req.Header.Set(pre.header, pre.value)
	}
	resp, err := s.client().Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// url.Error repeats the full URL, credentials and all; keep the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, transient{err}
	}
	return resp, nil
}

// statusError sorts a non-2xx answer into passing and lasting failures.
func statusError(resp *http.Response) error {
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return fmt.Errorf("server answered %s: check the URL's credentials (they must allow reading and writing objects under the prefix; an S3 bucket also answers 403 for a missing object unless the reader may list it)", resp.Status)
	case code >= 500 || code == http.StatusTooManyRequests || code == http.StatusRequestTimeout:
		return transient{fmt.Errorf("server answered %s", resp.Status)}
	default:
		return fmt.Errorf("server answered %s", resp.Status)
	}
}

// update runs one read-decide-write step until it succeeds or fails for
// good: a lost race re-reads at once, a collision after a jitter, a
// passing failure after a backoff. The step re-reads every time, so a
// write whose answer was lost (it landed, then the connection dropped)
// is seen on the next read; every step is written to be idempotent.
func (s *Store) update(ctx context.Context, step func() error) error {
	backoff, most := s.backoff()
	lost := 0
	for {
		err := step()
		var wait time.Duration
		switch {
		case err == nil:
			return nil
		case errors.Is(err, errPrecondition):
			// Someone else made progress; a few quick retries, then spread
			// out in case the store refuses every conditional write.
			if lost++; lost > 3 {
				wait = rand.N(maxJitter)
			}
		case errors.Is(err, errBusy):
			wait = rand.N(maxJitter)
		case isTransient(err):
			wait, backoff = backoff, min(backoff*2, most)
		default:
			return err
		}
		s.log().Debug("rendezvous: retrying", "url", s.show(""), "after", wait, "error", err)
		if werr := sleep(ctx, wait); werr != nil {
			return fmt.Errorf("%w (last: %v)", werr, err)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
