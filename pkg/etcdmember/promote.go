package etcdmember

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// Promote waits until self's learner has caught up with the leader and
// makes it a voting member. It returns nil when self already votes, and
// keeps trying until ctx ends while etcd answers that the learner is not
// in sync yet, which is also the answer while its etcd is not running.
func (c Client) Promote(ctx context.Context, self Member) error {
	if err := self.validate(); err != nil {
		return fmt.Errorf("etcd: promote member: %w", err)
	}
	s, err := c.connect(ctx)
	if err == nil {
		defer s.close()
		err = s.retry(ctx, promotable, func() error { return s.promote(ctx, self) },
			"waiting for etcd learner to catch up", "member", self.Name)
	}
	if err != nil {
		return fmt.Errorf("etcd: promote member %q (%s): %w", self.Name, self.PeerURL, err)
	}
	return nil
}

// promote makes one attempt; nil means self votes. It looks self up by
// peer URL only: a member with self's name elsewhere is not what Add added.
func (s *session) promote(ctx context.Context, self Member) error {
	members, err := s.list(ctx, false)
	if err != nil {
		return err
	}
	m, ok := withPeerURL(members, self.PeerURL)
	if !ok {
		return ErrNotMember
	}
	if !m.Learner {
		return nil
	}
	_, err = s.cli.MemberPromote(ctx, m.ID)
	switch {
	case err == nil:
		s.log.Info("promoted etcd learner", m.attrs()...)
		return nil
	case errors.Is(err, rpctypes.ErrMemberNotLearner): // promoted meanwhile
		return nil
	}
	return err
}
