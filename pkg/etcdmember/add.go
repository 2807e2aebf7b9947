package etcdmember

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// Add makes sure self is a member, adding it as a learner when it is not,
// after repairing what an interrupted earlier run left behind (see the
// package documentation). It returns the --initial-cluster value for
// self's etcd, which then starts with --initial-cluster-state=existing.
// localDataEmpty says that self's etcd data directory holds no data.
func (c Client) Add(ctx context.Context, self Member, localDataEmpty bool) (string, error) {
	if err := self.validate(); err != nil {
		return "", fmt.Errorf("etcd: add member: %w", err)
	}
	fail := func(err error) (string, error) {
		return "", fmt.Errorf("etcd: add member %q (%s): %w", self.Name, self.PeerURL, err)
	}
	s, err := c.connect(ctx)
	if err != nil {
		return fail(err)
	}
	defer s.close()
	members, reachable, err := s.survey(ctx)
	if err != nil {
		return fail(err)
	}
	p, err := planAdd(members, reachable, self, localDataEmpty)
	if err != nil {
		return fail(err)
	}
	if members, err = s.remove(ctx, members, p.remove); err != nil {
		return fail(err)
	}
	if p.add {
		if members, err = s.addLearner(ctx, self); err != nil {
			return fail(err)
		}
	}
	return initialCluster(members, self), nil
}

// addLearner adds self as a learner and returns the member list after it.
func (s *session) addLearner(ctx context.Context, self Member) ([]MemberStatus, error) {
	var members []MemberStatus
	err := s.retry(ctx, unavailable, func() error {
		resp, err := s.cli.MemberAddAsLearner(ctx, []string{self.PeerURL})
		if err == nil {
			members = statuses(resp.Members)
			s.log.Info("added etcd learner", "member", self.Name, "peerURL", self.PeerURL,
				"id", strconv.FormatUint(resp.Member.ID, 16))
		}
		return err
	}, "waiting to add etcd learner", "member", self.Name)
	switch {
	case errors.Is(err, rpctypes.ErrPeerURLExist):
		// An attempt that timed out went through after all, or another
		// run added it meanwhile: either way it is there now.
		return s.list(ctx, false)
	case errors.Is(err, rpctypes.ErrTooManyLearners):
		return nil, fmt.Errorf("add as learner: %w: another node is joining; retry once it has been promoted", err)
	case err != nil:
		return nil, fmt.Errorf("add as learner: %w", err)
	}
	return members, nil
}
