// Package rendezvous lets machines that boot identical userdata agree on
// which one runs init and how each of the others joins, through an HTTP
// object store with RFC 9110 conditional writes (PUT with If-None-Match: *
// or If-Match: <etag>, as S3, GCS and Azure Blob offer).
//
// Three objects live under the URL prefix:
//
//	claim        JSON Claim: the node that runs init, its lease, whether it published
//	members      JSON Members: control-plane nodes (the init node first) and workers
//	join-secret  the join secret document, opaque here (it may be sealed)
//
// Every write is conditional on the version read just before it, so the
// store's compare-and-swap on one object is all the coordination there is.
// Lease expiry is judged by each reader's own clock: keep leases far
// longer than the machines' clock skew.
package rendezvous

import (
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"time"
)

// Object names under Store.URL.
const (
	claimObject   = "claim"
	membersObject = "members"
	secretObject  = "join-secret"
)

const (
	// maxBody bounds every answer read; the documents are a few hundred bytes.
	maxBody = 1 << 20
	// The backoff for passing failures (5xx, 429, 408, no connection) and
	// while waiting for the secret: quick at first, at most one request
	// per object every few seconds from each machine after that.
	minBackoff = 200 * time.Millisecond
	maxBackoff = 5 * time.Second
	// maxJitter spreads writers that collided, so that they do not collide
	// again in lockstep.
	maxJitter = 100 * time.Millisecond
)

var (
	// ErrClaimExpired says the node that claimed init let its lease lapse
	// without publishing (it probably died): go back to Claim, which may
	// take init over.
	ErrClaimExpired = errors.New("the init claim expired without the join secret being published")
	// ErrClaimLost says another node holds the init claim now.
	ErrClaimLost = errors.New("the init claim is held by another node")
)

// Store is the rendezvous at one URL prefix.
type Store struct {
	// URL is the prefix, http:// or https://; objects are URL/claim and so
	// on. A query string (a SAS token, say) is kept on every object's URL.
	URL string
	// Client defaults to one with a 30 s timeout per request.
	Client *http.Client
	// Now defaults to time.Now; tests move it to expire leases.
	Now func() time.Time
	// Log receives what was decided (never the secret); nil: nothing.
	Log *slog.Logger

	// fast shortens the backoff so that tests of failures take
	// milliseconds, not the seconds a real store deserves.
	fast bool
}

// backoff returns the first wait after a passing failure and the longest.
func (s *Store) backoff() (first, most time.Duration) {
	if s.fast {
		return minBackoff / 20, maxBackoff / 100
	}
	return minBackoff, maxBackoff
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Store) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (s *Store) client() *http.Client {
	if s.Client != nil {
		return s.Client
	}
	return &http.Client{Timeout: 30 * time.Second}
}

// objectURL joins the prefix and an object name, keeping any query string.
func (s *Store) objectURL(name string) (string, error) {
	u, err := url.Parse(s.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", errors.New("invalid URL: expected http(s)://host/prefix")
	}
	return u.JoinPath(name).String(), nil
}

// show names an object for errors and logs: a presigned or SAS URL carries
// its credentials in the query string, and a URL may carry a password.
// The rule is joinsecret.RedactURL's; it is not imported so that this
// package stays a leaf that joinsecret's sources and sinks can use.
func (s *Store) show(name string) string {
	u, err := url.Parse(s.URL)
	if err != nil {
		return "<invalid URL>"
	}
	u = u.JoinPath(name)
	u.User = nil
	if u.RawQuery != "" {
		u.RawQuery = "<redacted>"
	}
	u.Fragment = ""
	return u.String()
}
