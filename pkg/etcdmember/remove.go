package etcdmember

import (
	"context"
	"fmt"
)

// Remove takes the members with self's name or peer URL out of the
// cluster, as `kubeboot reset` does on a control-plane node. It does
// nothing when there is none, and refuses (ErrNoQuorum, ErrLastVoter)
// when the removal would leave the cluster unable to commit.
func (c Client) Remove(ctx context.Context, self Member) error {
	if err := self.validate(); err != nil {
		return fmt.Errorf("etcd: remove member: %w", err)
	}
	fail := func(err error) error {
		return fmt.Errorf("etcd: remove member %q (%s): %w", self.Name, self.PeerURL, err)
	}
	s, err := c.connect(ctx)
	if err != nil {
		return fail(err)
	}
	defer s.close()
	// Absent in the answering member's own view is absent: no quorum is
	// needed to find out there is nothing to do.
	local, err := s.list(ctx, true)
	if err != nil {
		return fail(err)
	}
	if len(planRemove(local, self)) == 0 {
		s.log.Info("etcd member already absent", "member", self.Name, "peerURL", self.PeerURL)
		return nil
	}
	members, reachable, err := s.survey(ctx)
	if err != nil {
		return fail(err)
	}
	rs := planRemove(members, self)
	if err := checkRemovals(members, reachable, rs); err != nil {
		return fail(err)
	}
	if _, err := s.remove(ctx, members, rs); err != nil {
		return fail(err)
	}
	return nil
}
