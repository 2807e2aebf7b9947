package rendezvous

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Claim is the claim object: which node runs init, and until when it may
// before another node may take over. A published claim never expires:
// its cluster exists and every other node joins it.
type Claim struct {
	Node      string    `json:"node"`
	Expires   time.Time `json:"expires"`
	Published bool      `json:"published"`
}

// Expired reports whether another node may take the claim over at now.
func (c Claim) Expired(now time.Time) bool {
	return !c.Published && !now.Before(c.Expires)
}

// Claim tries to make node the one that runs init and reports whether it
// is. A node that finds its own claim (it rebooted during init) is still
// the winner and renews the lease; a node that finds a claim that expired
// unpublished takes it over. Otherwise the returned Claim names the holder.
func (s *Store) Claim(ctx context.Context, node string, lease time.Duration) (Claim, bool, error) {
	if err := checkArgs(node, lease); err != nil {
		return Claim{}, false, fmt.Errorf("rendezvous: claim init: %w", err)
	}
	var held Claim
	var won bool
	err := s.update(ctx, func() error {
		mine := Claim{Node: node, Expires: s.now().Add(lease)}
		err := s.put(ctx, claimObject, encode(mine), "application/json", ifAbsent())
		if err == nil {
			held, won = mine, true
			s.log().Info("rendezvous: claimed init", "node", node, "url", s.show(claimObject), "until", mine.Expires)
			return nil
		}
		if !errors.Is(err, errPrecondition) {
			return err
		}
		cur, etag, err := s.readClaim(ctx)
		switch {
		case err != nil:
			return err
		case etag == "":
			return errPrecondition // deleted since: try to create it again
		case cur.Node == node && cur.Published:
			held, won = cur, true
			return nil
		case cur.Node == node || cur.Expired(s.now()):
			// A 412 here means another node renewed or took over first: the
			// next step reads who.
			if err := s.put(ctx, claimObject, encode(mine), "application/json", ifUnchanged(etag)); err != nil {
				return err
			}
			if cur.Node == node {
				s.log().Info("rendezvous: still holds the init claim after a restart", "node", node, "until", mine.Expires)
			} else {
				s.log().Warn("rendezvous: took over an init claim that expired unpublished",
					"node", node, "from", cur.Node, "expired", cur.Expires)
			}
			held, won = mine, true
			return nil
		default:
			held, won = cur, false
			s.log().Info("rendezvous: another node runs init", "node", node, "holder", cur.Node, "published", cur.Published)
			return nil
		}
	})
	if err != nil {
		return Claim{}, false, fmt.Errorf("rendezvous: claim init for %s at %s: %w", node, s.show(claimObject), err)
	}
	return held, won, nil
}

// Renew extends node's lease, for a winner whose init runs long. It fails
// with ErrClaimLost when another node holds the claim; a published claim
// needs no renewing and is returned as it is.
func (s *Store) Renew(ctx context.Context, node string, lease time.Duration) (Claim, error) {
	if err := checkArgs(node, lease); err != nil {
		return Claim{}, fmt.Errorf("rendezvous: renew claim: %w", err)
	}
	var held Claim
	err := s.update(ctx, func() error {
		cur, etag, err := s.ownClaim(ctx, node)
		if err != nil || cur.Published {
			held = cur
			return err
		}
		mine := Claim{Node: node, Expires: s.now().Add(lease)}
		if err := s.put(ctx, claimObject, encode(mine), "application/json", ifUnchanged(etag)); err != nil {
			return err
		}
		held = mine
		return nil
	})
	if err != nil {
		return Claim{}, fmt.Errorf("rendezvous: renew the init claim of %s at %s: %w", node, s.show(claimObject), err)
	}
	return held, nil
}

// Publish makes node's cluster the one everybody joins. In this order,
// each step conditional on the one before having landed:
//  1. the claim is marked published, if node still holds it: from then on
//     no one can take init over, so no second cluster can start;
//  2. node is recorded as the first control-plane member, so that Enrol,
//     which runs after the secret is seen, counts it;
//  3. the join secret is written.
//
// A node that dies between steps reclaims (its claim never expires once
// published) and publishes again on reboot; every step is idempotent.
func (s *Store) Publish(ctx context.Context, node string, secret []byte) error {
	if err := s.publish(ctx, node, secret); err != nil {
		return fmt.Errorf("rendezvous: publish the join secret of %s at %s: %w", node, s.show(""), err)
	}
	s.log().Info("rendezvous: published the join secret", "node", node, "url", s.show(secretObject))
	return nil
}

func (s *Store) publish(ctx context.Context, node string, secret []byte) error {
	switch {
	case node == "":
		return errors.New("empty node name")
	case len(secret) == 0:
		return errors.New("empty join secret")
	case len(secret) > maxBody:
		return fmt.Errorf("join secret is %d bytes, more than %d", len(secret), maxBody)
	}
	err := s.update(ctx, func() error {
		cur, etag, err := s.ownClaim(ctx, node)
		if err != nil || cur.Published {
			return err
		}
		cur.Published = true
		return s.put(ctx, claimObject, encode(cur), "application/json", ifUnchanged(etag))
	})
	if err != nil {
		return fmt.Errorf("claim: %w", err)
	}
	if err := s.update(ctx, func() error { return s.enrolInit(ctx, node) }); err != nil {
		return fmt.Errorf("members: %w", err)
	}
	err = s.update(ctx, func() error {
		return s.put(ctx, secretObject, secret, "application/octet-stream", always)
	})
	if err != nil {
		return fmt.Errorf("join secret: %w", err)
	}
	return nil
}

// readClaim returns the claim and its ETag; an empty ETag: no claim.
func (s *Store) readClaim(ctx context.Context) (Claim, string, error) {
	obj, err := s.get(ctx, claimObject)
	if err != nil || !obj.found {
		return Claim{}, "", err
	}
	if obj.etag == "" {
		return Claim{}, "", errNoETag
	}
	var c Claim
	if err := json.Unmarshal(obj.data, &c); err != nil {
		return Claim{}, "", fmt.Errorf("the claim is not a claim document: %w", err)
	}
	return c, obj.etag, nil
}

// ownClaim reads the claim and fails unless node holds it.
func (s *Store) ownClaim(ctx context.Context, node string) (Claim, string, error) {
	cur, etag, err := s.readClaim(ctx)
	switch {
	case err != nil:
		return Claim{}, "", err
	case etag == "":
		return Claim{}, "", fmt.Errorf("%w: there is no claim", ErrClaimLost)
	case cur.Node != node:
		return Claim{}, "", fmt.Errorf("%w: %s holds it", ErrClaimLost, cur.Node)
	}
	return cur, etag, nil
}

var errNoETag = errors.New("the store answered without an ETag: it must support conditional writes (RFC 9110 If-Match)")

func checkArgs(node string, lease time.Duration) error {
	switch {
	case node == "":
		return errors.New("empty node name")
	case lease <= 0:
		return fmt.Errorf("lease %s: must be positive", lease)
	}
	return nil
}

// encode marshals a document of this package; they always marshal.
func encode(v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("rendezvous: encoding %T: %v", v, err))
	}
	return data
}
