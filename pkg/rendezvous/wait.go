package rendezvous

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// errNotYet says the secret is not published yet: poll again.
var errNotYet = errors.New("not published yet")

// WaitSecret polls until the init node has published the join secret and
// returns it. It fails with ErrClaimExpired when the claim lapses (or
// vanishes) unpublished, so that the caller claims again and may run init
// itself; 401 and 403 end it at once. Missing objects, empty answers,
// 5xx, 408, 429 and connection errors only mean "not yet"; polling backs
// off from 200 ms to 5 s. ctx bounds the wait.
func (s *Store) WaitSecret(ctx context.Context) ([]byte, error) {
	start := time.Now()
	backoff, most := s.backoff()
	var last error
	for attempt := 1; ; attempt++ {
		secret, err := s.pollSecret(ctx)
		switch {
		case err == nil:
			s.log().Info("rendezvous: got the join secret", "url", s.show(secretObject), "attempts", attempt)
			return secret, nil
		case ctx.Err() != nil:
			// Ended mid-request: report it as the end of the wait below.
		case errors.Is(err, errNotYet) || isTransient(err):
			last = err
			s.log().Debug("rendezvous: waiting for the join secret", "url", s.show(secretObject), "attempt", attempt, "reason", err)
		default:
			return nil, fmt.Errorf("rendezvous: wait for the join secret at %s: %w", s.show(secretObject), err)
		}
		if werr := sleep(ctx, backoff); werr != nil {
			return nil, fmt.Errorf("rendezvous: wait for the join secret at %s: gave up after %s (%d attempts): %w (last: %v)",
				s.show(secretObject), time.Since(start).Round(time.Millisecond), attempt, werr, last)
		}
		backoff = min(backoff*2, most)
	}
}

// pollSecret reads the claim first: the claim says whether to go on
// waiting at all, and a secret is only taken once the claim is published
// (Publish marks it before it writes the secret), so one left over from
// an unpublished attempt or written by hand is not.
func (s *Store) pollSecret(ctx context.Context) ([]byte, error) {
	c, etag, err := s.readClaim(ctx)
	switch {
	case err != nil:
		return nil, err
	case etag == "":
		return nil, fmt.Errorf("%w: the claim is gone", ErrClaimExpired)
	case c.Expired(s.now()):
		return nil, fmt.Errorf("%w: %s held it until %s", ErrClaimExpired, c.Node, c.Expires.Format(time.RFC3339))
	case !c.Published:
		return nil, fmt.Errorf("%w: %s is running init (lease until %s)", errNotYet, c.Node, c.Expires.Format(time.RFC3339))
	}
	obj, err := s.get(ctx, secretObject)
	switch {
	case err != nil:
		return nil, err
	case !obj.found:
		return nil, fmt.Errorf("%w: the claim of %s is published but the secret is not there yet", errNotYet, c.Node)
	case strings.TrimSpace(string(obj.data)) == "":
		return nil, fmt.Errorf("%w: the secret is empty", errNotYet)
	}
	return obj.data, nil
}
