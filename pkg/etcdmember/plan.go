package etcdmember

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

var (
	// ErrNoQuorum is returned when too few voting members answer for a
	// membership change to commit, or when a removal would leave too few.
	ErrNoQuorum = errors.New("not enough reachable voting members")
	// ErrLastVoter is returned by Remove for the cluster's only voting
	// member: etcd cannot run without one.
	ErrLastVoter = errors.New("last voting member")
	// ErrNotMember is returned by Promote when self is not a member.
	ErrNotMember = errors.New("not a member")
)

// removal is one member to take out of the cluster, and why.
type removal struct {
	member MemberStatus
	why    string
}

// addPlan is what Add changes: the members it removes, in order, and
// whether it then adds self as a learner.
type addPlan struct {
	remove []removal
	add    bool
}

// planAdd applies the repair rules in the package documentation to the
// member list. reachable holds the voters that answered as themselves.
func planAdd(members []MemberStatus, reachable map[uint64]bool, self Member, localDataEmpty bool) (addPlan, error) {
	p := addPlan{add: true}
	for _, m := range members {
		switch {
		case m.hasPeerURL(self.PeerURL):
			switch {
			case !m.Started, m.Name == self.Name && !localDataEmpty:
				p.add = false
			case !localDataEmpty:
				return addPlan{}, fmt.Errorf("peer URL %s belongs to started member %s, and this node has etcd data: "+
					"remove that member, or empty this node's etcd data directory to join anew", self.PeerURL, m)
			case reachable[m.ID]:
				return addPlan{}, fmt.Errorf("member %s still answers at %s although this node's etcd data directory is empty: "+
					"stop it first", m, strings.Join(m.ClientURLs, ","))
			default:
				p.remove = append(p.remove, removal{m, "this node's etcd data directory is empty, so the member's data is gone"})
			}
		case m.Started && m.Name == self.Name:
			if reachable[m.ID] {
				return addPlan{}, fmt.Errorf("member %s has this node's name and still answers at %s: two nodes are named %q",
					m, strings.Join(m.ClientURLs, ","), self.Name)
			}
			p.remove = append(p.remove, removal{m, "this node's name at an old peer URL"})
		case !m.Started && m.Learner:
			p.remove = append(p.remove, removal{m, "learner that never started: an abandoned join"})
		}
	}
	learnersFirst(p.remove)
	return p, checkRemovals(members, reachable, p.remove)
}

// planRemove lists the members with self's name or peer URL.
func planRemove(members []MemberStatus, self Member) []removal {
	var rs []removal
	for _, m := range members {
		if m.hasPeerURL(self.PeerURL) || m.Started && m.Name == self.Name {
			rs = append(rs, removal{m, "removed on request"})
		}
	}
	learnersFirst(rs)
	return rs
}

// learnersFirst orders removals so that those that cannot change the
// quorum happen before those that can.
func learnersFirst(rs []removal) {
	slices.SortStableFunc(rs, func(a, b removal) int {
		switch {
		case a.member.Learner == b.member.Learner:
			return 0
		case a.member.Learner:
			return -1
		}
		return 1
	})
}

func majority(voters int) int { return voters/2 + 1 }

// quorate says whether a majority of the voters answers: only then can a
// membership change commit.
func quorate(members []MemberStatus, reachable map[uint64]bool) error {
	var voters, up int
	var down []string
	for _, m := range members {
		if m.Learner {
			continue
		}
		voters++
		if reachable[m.ID] {
			up++
		} else {
			down = append(down, m.String())
		}
	}
	if up >= majority(voters) {
		return nil
	}
	return fmt.Errorf("%w: %d of %d voting members answer, a membership change needs %d; not answering: %s "+
		"(start them again with their data; if that data is lost, the cluster must be restored from a survivor's snapshot)",
		ErrNoQuorum, up, voters, majority(voters), strings.Join(down, ", "))
}

// checkRemovals says whether removing rs in order keeps quorum: each
// removal must commit, so the voters before it need a majority that
// answers, and so do the voters after it, or the cluster stops.
func checkRemovals(members []MemberStatus, reachable map[uint64]bool, rs []removal) error {
	cur := members
	for _, r := range rs {
		if err := quorate(cur, reachable); err != nil {
			return fmt.Errorf("remove %s: %w", r.member, err)
		}
		cur = without(cur, r.member.ID)
		if r.member.Learner {
			continue
		}
		var voters, up int
		for _, m := range cur {
			if !m.Learner {
				voters++
				if reachable[m.ID] {
					up++
				}
			}
		}
		if voters == 0 {
			return fmt.Errorf("remove %s: %w", r.member, ErrLastVoter)
		}
		if up < majority(voters) {
			return fmt.Errorf("remove %s: %w: it would leave %d of %d voting members answering, quorum needs %d",
				r.member, ErrNoQuorum, up, voters, majority(voters))
		}
	}
	return nil
}
