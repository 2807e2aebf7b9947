package etcdmember

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Member is this node's etcd as it runs it: --name and
// --initial-advertise-peer-urls.
type Member struct {
	Name    string
	PeerURL string
}

func (m Member) validate() error {
	if m.Name == "" {
		return errors.New("member name is empty")
	}
	u, err := url.Parse(m.PeerURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Hostname() == "" || u.Port() == "" ||
		(u.Path != "" && u.Path != "/") {
		return fmt.Errorf("peer URL %q: want scheme://host:port", m.PeerURL)
	}
	return nil
}

// MemberStatus is one entry of etcd's member list.
type MemberStatus struct {
	ID         uint64
	Name       string // empty until the member has started once
	PeerURLs   []string
	ClientURLs []string
	Learner    bool
	// Started is false for a member that was added but whose etcd never
	// ran: etcd learns a member's name and client URLs when it first starts.
	Started bool
}

// String names the member in messages: its name, or its ID when it has
// none yet, and its peer URLs.
func (m MemberStatus) String() string {
	name := strconv.Quote(m.Name)
	if !m.Started {
		name = "unstarted " + strconv.FormatUint(m.ID, 16)
	}
	return name + " (" + strings.Join(m.PeerURLs, ",") + ")"
}

// attrs describes the member in log lines.
func (m MemberStatus) attrs() []any {
	return []any{"id", strconv.FormatUint(m.ID, 16), "name", m.Name, "peerURLs", strings.Join(m.PeerURLs, ",")}
}

func (m MemberStatus) hasPeerURL(u string) bool { return slices.Contains(m.PeerURLs, u) }

func statuses(pbs []*etcdserverpb.Member) []MemberStatus {
	out := make([]MemberStatus, 0, len(pbs))
	for _, m := range pbs {
		out = append(out, MemberStatus{
			ID:         m.ID,
			Name:       m.Name,
			PeerURLs:   slices.Clone(m.PeerURLs),
			ClientURLs: slices.Clone(m.ClientURLs),
			Learner:    m.IsLearner,
			Started:    m.Name != "",
		})
	}
	return out
}

func without(members []MemberStatus, id uint64) []MemberStatus {
	return slices.DeleteFunc(slices.Clone(members), func(m MemberStatus) bool { return m.ID == id })
}

// withPeerURL returns the member that has peer URL u.
func withPeerURL(members []MemberStatus, u string) (MemberStatus, bool) {
	for _, m := range members {
		if m.hasPeerURL(u) {
			return m, true
		}
	}
	return MemberStatus{}, false
}

// initialCluster is the --initial-cluster value for self's etcd: every
// member, each peer URL as its own name=URL pair, sorted so that repeated
// runs render the same manifest. etcd checks it against the member list
// and refuses to start unless it names every member, started or not; one
// that has no name yet is listed under its ID, as kubeadm does.
func initialCluster(members []MemberStatus, self Member) string {
	var pairs []string
	for _, m := range members {
		name := m.Name
		switch {
		case m.hasPeerURL(self.PeerURL):
			name = self.Name
		case name == "":
			name = strconv.FormatUint(m.ID, 16)
		}
		for _, u := range m.PeerURLs {
			pairs = append(pairs, name+"="+u)
		}
	}
	slices.Sort(pairs)
	return strings.Join(pairs, ",")
}
