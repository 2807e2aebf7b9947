// Package wait waits for the control plane to become healthy and, when it
// does not, says which component is unhealthy and why: its last HTTP
// status or connection error and the last lines of its container's log.
package wait

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

// Check is one health endpoint.
type Check struct {
	// Name is the component, e.g. kube-apiserver.
	Name string
	URL  string
	// Container names the component's container for log lines on failure.
	Container string
	// RootCAs verifies the endpoint; nil skips verification, which kubeadm
	// does too for the components' self-signed serving certificates.
	RootCAs *x509.CertPool
}

// Logs returns the last lines of a container's log, through the CRI.
type Logs func(ctx context.Context, container string, lines int) (string, error)

// Waiter polls every check in parallel until all are healthy.
type Waiter struct {
	Timeout     time.Duration
	Interval    time.Duration // first poll interval; doubles up to MaxInterval
	MaxInterval time.Duration
	// Progress, when set, is called whenever a check's state changes.
	Progress func(name string, healthy bool, detail string, elapsed time.Duration)
	Logs     Logs
}

// Result of one check.
type Result struct {
	Name    string
	Healthy bool
	After   time.Duration // time to healthy
	Last    string        // last status or error
	Logs    string
}

// TimeoutError lists every component that did not become healthy.
type TimeoutError struct {
	Timeout time.Duration
	Failed  []Result
}

func (e *TimeoutError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "control plane not healthy after %s:", e.Timeout)
	for _, r := range e.Failed {
		fmt.Fprintf(&b, "\n  %s: %s", r.Name, r.Last)
		if r.Logs != "" {
			fmt.Fprintf(&b, "\n    last log lines:\n")
			for _, l := range strings.Split(strings.TrimRight(r.Logs, "\n"), "\n") {
				fmt.Fprintf(&b, "      %s\n", l)
			}
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

// Wait returns the per-check results; the error is a *TimeoutError when
// the timeout passes first.
func (w Waiter) Wait(ctx context.Context, checks []Check) ([]Result, error) {
	if w.Timeout <= 0 {
		w.Timeout = 4 * time.Minute
	}
	if w.Interval <= 0 {
		w.Interval = 100 * time.Millisecond
	}
	if w.MaxInterval <= 0 {
		w.MaxInterval = time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, w.Timeout)
	defer cancel()
	start := time.Now()
	results := make([]Result, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = w.poll(ctx, c, start)
		}()
	}
	wg.Wait()
	var failed []Result
	for i, r := range results {
		if r.Healthy {
			continue
		}
		if w.Logs != nil && checks[i].Container != "" {
			lctx, lcancel := context.WithTimeout(context.Background(), 5*time.Second)
			if logs, err := w.Logs(lctx, checks[i].Container, 15); err == nil {
				results[i].Logs = logs
			} else {
				results[i].Logs = "(no container log: " + err.Error() + ")"
			}
			lcancel()
		}
		failed = append(failed, results[i])
	}
	if len(failed) > 0 {
		sort.Slice(failed, func(i, j int) bool { return failed[i].Name < failed[j].Name })
		return results, &TimeoutError{Timeout: w.Timeout, Failed: failed}
	}
	return results, nil
}

func (w Waiter) poll(ctx context.Context, c Check, start time.Time) Result {
	client := &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: c.RootCAs, InsecureSkipVerify: c.RootCAs == nil},
			DisableKeepAlives: true,
			Proxy:             nil, // health checks are local; never through a proxy
		},
	}
	r := Result{Name: c.Name, Last: "not checked yet"}
	interval := w.Interval
	for {
		status, healthy := probe(ctx, client, c.URL)
		if status != r.Last && w.Progress != nil {
			w.Progress(c.Name, healthy, status, time.Since(start))
		}
		r.Last = status
		if healthy {
			r.Healthy, r.After = true, time.Since(start)
			return r
		}
		select {
		case <-ctx.Done():
			return r
		case <-time.After(interval):
		}
		interval = min(interval*2, w.MaxInterval)
	}
}

func probe(ctx context.Context, client *http.Client, rawURL string) (string, bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return "bad URL: " + err.Error(), false
	}
	resp, err := client.Do(req)
	if err != nil {
		return describe(err), false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode == http.StatusOK {
		return "ok", true
	}
	detail := strings.TrimSpace(string(body))
	if i := strings.LastIndex(detail, "\n"); len(detail) > 300 && i > 0 {
		detail = detail[len(detail)-300:]
	}
	return fmt.Sprintf("HTTP %d from %s: %s", resp.StatusCode, rawURL, failingChecks(detail)), false
}

// failingChecks keeps the "[-]check failed" lines of a verbose health
// answer; that is where the apiserver says what is wrong.
func failingChecks(body string) string {
	var bad []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "[-]") {
			bad = append(bad, strings.TrimSpace(l))
		}
	}
	if len(bad) > 0 {
		return strings.Join(bad, "; ")
	}
	return body
}

func describe(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return fmt.Sprintf("%s %s: %v", op.Op, op.Addr, op.Err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "no answer before the timeout"
	}
	return err.Error()
}
