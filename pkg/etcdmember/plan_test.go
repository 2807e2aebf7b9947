package etcdmember

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// voter, learner and unstarted build member list entries; n is the ID
// and the last octet of the member's address.
func voter(n uint64, name string) MemberStatus {
	return MemberStatus{ID: n, Name: name, PeerURLs: []string{peer(n)},
		ClientURLs: []string{fmt.Sprintf("https://10.0.0.%d:2379", n)}, Started: true}
}

func learner(n uint64, name string) MemberStatus {
	m := voter(n, name)
	m.Learner = true
	return m
}

func unstarted(n uint64, isLearner bool) MemberStatus {
	return MemberStatus{ID: n, PeerURLs: []string{peer(n)}, Learner: isLearner}
}

func peer(n uint64) string { return fmt.Sprintf("https://10.0.0.%d:2380", n) }

func up(ids ...uint64) map[uint64]bool {
	m := map[uint64]bool{}
	for _, id := range ids {
		m[id] = true
	}
	return m
}

func ids(rs []removal) []uint64 {
	var out []uint64
	for _, r := range rs {
		out = append(out, r.member.ID)
	}
	return out
}

func TestPlanAdd(t *testing.T) {
	self := Member{Name: "b", PeerURL: peer(2)}
	oldB := voter(9, "b") // b before its address changed
	renamed := voter(2, "old-b")
	tests := []struct {
		name      string
		members   []MemberStatus
		reachable map[uint64]bool
		empty     bool
		add       bool
		remove    []uint64
		err       string // substring; "" means no error
		is        error
	}{
		{name: "first join", members: []MemberStatus{voter(1, "a")}, reachable: up(1), empty: true, add: true},
		{name: "added before, never started: reuse",
			members: []MemberStatus{voter(1, "a"), unstarted(2, true)}, reachable: up(1), empty: true},
		{name: "joined learner with data: keep",
			members: []MemberStatus{voter(1, "a"), learner(2, "b")}, reachable: up(1)},
		{name: "joined voter with data: keep",
			members: []MemberStatus{voter(1, "a"), voter(2, "b")}, reachable: up(1, 2)},
		{name: "wiped voter of three: remove and add",
			members: []MemberStatus{voter(1, "a"), voter(2, "b"), voter(3, "c")}, reachable: up(1, 3), empty: true,
			add: true, remove: []uint64{2}},
		{name: "wiped learner: remove and add",
			members: []MemberStatus{voter(1, "a"), learner(2, "b")}, reachable: up(1), empty: true,
			add: true, remove: []uint64{2}},
		{name: "wiped voter of two: no quorum to remove it",
			members: []MemberStatus{voter(1, "a"), voter(2, "b")}, reachable: up(1), empty: true,
			is: ErrNoQuorum, err: `1 of 2 voting members answer`},
		{name: "wiped but still answering",
			members: []MemberStatus{voter(1, "a"), voter(2, "b"), voter(3, "c")}, reachable: up(1, 2, 3), empty: true,
			err: "still answers"},
		{name: "own name at old peer URL: remove and add",
			members: []MemberStatus{voter(1, "a"), oldB, voter(3, "c")}, reachable: up(1, 3), empty: true,
			add: true, remove: []uint64{9}},
		{name: "own name at old peer URL, still answering",
			members: []MemberStatus{voter(1, "a"), oldB, voter(3, "c")}, reachable: up(1, 3, 9), empty: true,
			err: `two nodes are named "b"`},
		{name: "abandoned learner elsewhere: remove and add",
			members: []MemberStatus{voter(1, "a"), unstarted(7, true)}, reachable: up(1), empty: true,
			add: true, remove: []uint64{7}},
		{name: "unstarted voter elsewhere is not ours: keep",
			members: []MemberStatus{voter(1, "a"), voter(3, "c"), unstarted(7, false)}, reachable: up(1, 3), empty: true,
			add: true},
		{name: "peer URL held by another name, data here: refuse",
			members: []MemberStatus{voter(1, "a"), renamed, voter(3, "c")}, reachable: up(1, 3),
			err: `belongs to started member "old-b"`},
		{name: "peer URL held by another name, no data: previous incarnation",
			members: []MemberStatus{voter(1, "a"), renamed, voter(3, "c")}, reachable: up(1, 3), empty: true,
			add: true, remove: []uint64{2}},
		{name: "learners go first",
			members: []MemberStatus{voter(1, "a"), oldB, voter(3, "c"), unstarted(7, true)}, reachable: up(1, 3), empty: true,
			add: true, remove: []uint64{7, 9}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := planAdd(tt.members, tt.reachable, self, tt.empty)
			if tt.err != "" || tt.is != nil {
				if err == nil || !strings.Contains(err.Error(), tt.err) || tt.is != nil && !errors.Is(err, tt.is) {
					t.Fatalf("err = %v, want %q (is %v)", err, tt.err, tt.is)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.add != tt.add || !slices.Equal(ids(p.remove), tt.remove) {
				t.Errorf("add %v remove %v, want add %v remove %v", p.add, ids(p.remove), tt.add, tt.remove)
			}
		})
	}
}

func TestPlanRemove(t *testing.T) {
	self := Member{Name: "b", PeerURL: peer(2)}
	members := []MemberStatus{voter(1, "a"), voter(9, "b"), unstarted(2, true), voter(3, "c")}
	if got := ids(planRemove(members, self)); !slices.Equal(got, []uint64{2, 9}) {
		t.Errorf("got %v, want [2 9]: by peer URL and by name, learners first", got)
	}
	if got := planRemove([]MemberStatus{voter(1, "a")}, self); len(got) != 0 {
		t.Errorf("got %v for an absent member", ids(got))
	}
}

func TestCheckRemovals(t *testing.T) {
	a, b, c, d := voter(1, "a"), voter(2, "b"), voter(3, "c"), voter(4, "d")
	tests := []struct {
		name      string
		members   []MemberStatus
		reachable map[uint64]bool
		remove    []MemberStatus
		is        error
	}{
		{name: "healthy voter of two", members: []MemberStatus{a, b}, reachable: up(1, 2), remove: []MemberStatus{b}},
		// Removing the dead one would leave 1 of 1, but the removal must
		// first commit with 2 of 2.
		{name: "dead voter of two", members: []MemberStatus{a, b}, reachable: up(1), remove: []MemberStatus{b}, is: ErrNoQuorum},
		{name: "dead voter of three", members: []MemberStatus{a, b, c}, reachable: up(1, 3), remove: []MemberStatus{b}},
		{name: "healthy voter of three, another dead", members: []MemberStatus{a, b, c}, reachable: up(1, 2),
			remove: []MemberStatus{b}, is: ErrNoQuorum},
		{name: "last voter", members: []MemberStatus{a}, reachable: up(1), remove: []MemberStatus{a}, is: ErrLastVoter},
		{name: "learner with quorum", members: []MemberStatus{a, learner(5, "e")}, reachable: up(1),
			remove: []MemberStatus{learner(5, "e")}},
		{name: "learner without quorum", members: []MemberStatus{a, b, learner(5, "e")}, reachable: up(1),
			remove: []MemberStatus{learner(5, "e")}, is: ErrNoQuorum},
		{name: "two in a row", members: []MemberStatus{a, b, c, d}, reachable: up(1, 2, 3),
			remove: []MemberStatus{d, c}},
		{name: "second one breaks it", members: []MemberStatus{a, b, c, d}, reachable: up(1, 2, 3),
			remove: []MemberStatus{c, b}, is: ErrNoQuorum},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rs []removal
			for _, m := range tt.remove {
				rs = append(rs, removal{member: m})
			}
			err := checkRemovals(tt.members, tt.reachable, rs)
			if tt.is == nil && err != nil || tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("err = %v, want %v", err, tt.is)
			}
		})
	}
}

func TestInitialCluster(t *testing.T) {
	self := Member{Name: "b", PeerURL: peer(2)}
	twoURLs := voter(3, "c")
	twoURLs.PeerURLs = append(twoURLs.PeerURLs, "https://[fd00::3]:2380")
	tests := []struct {
		name    string
		members []MemberStatus
		want    string
	}{
		{name: "self unstarted gets its name", members: []MemberStatus{unstarted(2, true), voter(1, "a")},
			want: "a=https://10.0.0.1:2380,b=https://10.0.0.2:2380"},
		{name: "another unstarted member under its ID", members: []MemberStatus{voter(1, "a"), unstarted(2, true), unstarted(31, false)},
			want: "1f=https://10.0.0.31:2380,a=https://10.0.0.1:2380,b=https://10.0.0.2:2380"},
		{name: "each peer URL listed", members: []MemberStatus{twoURLs, learner(2, "b")},
			want: "b=https://10.0.0.2:2380,c=https://10.0.0.3:2380,c=https://[fd00::3]:2380"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := initialCluster(tt.members, self); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestMemberValidate(t *testing.T) {
	tests := []struct {
		m   Member
		err string
	}{
		{m: Member{Name: "b", PeerURL: "https://10.0.0.2:2380"}},
		{m: Member{Name: "b", PeerURL: "https://[fd00::2]:2380"}},
		{m: Member{PeerURL: "https://10.0.0.2:2380"}, err: "name is empty"},
		{m: Member{Name: "b", PeerURL: "10.0.0.2:2380"}, err: `peer URL "10.0.0.2:2380"`},
		{m: Member{Name: "b", PeerURL: "https://10.0.0.2"}, err: "want scheme://host:port"},
		{m: Member{Name: "b", PeerURL: "https://10.0.0.2:2380/x"}, err: "want scheme://host:port"},
	}
	for _, tt := range tests {
		err := tt.m.validate()
		if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("%+v: err = %v, want %q", tt.m, err, tt.err)
		}
	}
}

func TestPromotable(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{rpctypes.ErrMemberLearnerNotReady, true},
		{fmt.Errorf("promote: %w", rpctypes.ErrMemberLearnerNotReady), true},
		{rpctypes.ErrMemberNotEnoughStarted, true},
		{rpctypes.ErrLeaderChanged, true},
		{rpctypes.ErrTimeout, true},
		{rpctypes.ErrMemberNotFound, false},
		{ErrNotMember, false},
		{errors.New("list members: context deadline exceeded"), false},
	}
	for _, tt := range tests {
		if got := promotable(tt.err); got != tt.want {
			t.Errorf("promotable(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
