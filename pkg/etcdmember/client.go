package etcdmember

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Client reaches the cluster's etcd. Each call opens its own connection
// and closes it, so a Client is a plain value.
type Client struct {
	// Endpoints are client URLs of existing members. Learners among them
	// are skipped: they refuse membership calls.
	Endpoints []string
	// TLS authenticates to etcd; see ClientTLS.
	TLS *tls.Config
	// DialTimeout is how long one member may take to answer before it
	// counts as unreachable; 0 means 10 s.
	DialTimeout time.Duration
	// Log gets one line per membership change and the progress of
	// Promote; nil discards.
	Log *slog.Logger
}

const defaultDialTimeout = 10 * time.Second

// session is one connection to the cluster and what it learnt about which
// voters answer.
type session struct {
	cli     *clientv3.Client
	timeout time.Duration
	log     *slog.Logger
	// answered maps a voter's ID to a client URL where it answered as
	// itself.
	answered map[uint64]string
}

// connect dials the endpoints and keeps those where a voter answers.
func (c Client) connect(ctx context.Context) (*session, error) {
	eps := slices.Compact(slices.Sorted(slices.Values(c.Endpoints)))
	if len(eps) == 0 {
		return nil, errors.New("no etcd endpoints given")
	}
	s := &session{timeout: c.DialTimeout, log: c.Log, answered: map[uint64]string{}}
	if s.timeout <= 0 {
		s.timeout = defaultDialTimeout
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	var err error
	s.cli, err = clientv3.New(clientv3.Config{
		Endpoints:   eps,
		TLS:         c.TLS,
		DialTimeout: s.timeout,
		// The client's own log repeats every retry as a warning; what
		// matters reaches Log, and errors are returned.
		Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client for %s: %w", strings.Join(eps, ","), err)
	}
	var why []string
	answers := s.probe(ctx, eps)
	for _, ep := range eps {
		switch a := answers[ep]; {
		case a.err != nil:
			why = append(why, ep+": "+a.err.Error())
		case a.learner:
			why = append(why, ep+": a learner")
		default:
			s.answered[a.id] = ep
		}
	}
	if len(s.answered) == 0 {
		s.cli.Close()
		return nil, fmt.Errorf("no voting etcd member answers: %s", strings.Join(why, "; "))
	}
	s.useEndpoints(nil)
	return s, nil
}

func (s *session) close() { s.cli.Close() }

// useEndpoints points the client at the voters that answered, except
// those about to be removed: a member that removes itself may shut down
// before it replies.
func (s *session) useEndpoints(except map[uint64]bool) {
	var eps []string
	for id, ep := range s.answered {
		if !except[id] {
			eps = append(eps, ep)
		}
	}
	if len(eps) > 0 {
		slices.Sort(eps)
		s.cli.SetEndpoints(eps...)
	}
}

type answer struct {
	id      uint64
	learner bool
	err     error
}

// probe asks every URL for its member's status, in parallel.
func (s *session) probe(ctx context.Context, urls []string) map[string]answer {
	var mu sync.Mutex
	var wg sync.WaitGroup
	out := make(map[string]answer, len(urls))
	for _, u := range urls {
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, s.timeout)
			defer cancel()
			var a answer
			resp, err := s.cli.Status(pctx, u)
			if err != nil {
				a.err = err
			} else {
				a.id, a.learner = resp.Header.MemberId, resp.IsLearner
			}
			mu.Lock()
			out[u] = a
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// reachable probes the voters not yet heard from at their advertised
// client URLs and returns the voters that answered as themselves. A URL
// that now belongs to another member does not count.
func (s *session) reachable(ctx context.Context, members []MemberStatus) map[uint64]bool {
	var urls []string
	for _, m := range members {
		if _, ok := s.answered[m.ID]; !ok && !m.Learner {
			urls = append(urls, m.ClientURLs...)
		}
	}
	answers := s.probe(ctx, urls)
	out := map[uint64]bool{}
	for _, m := range members {
		if m.Learner {
			continue
		}
		if _, ok := s.answered[m.ID]; ok {
			out[m.ID] = true
			continue
		}
		for _, u := range m.ClientURLs {
			if a := answers[u]; a.err == nil && a.id == m.ID {
				s.answered[m.ID] = u
				out[m.ID] = true
				break
			}
		}
	}
	return out
}

// list returns the member list. A serializable list is the answering
// member's own view and needs no quorum; a linearizable one is current
// but waits for a leader.
func (s *session) list(ctx context.Context, serializable bool) ([]MemberStatus, error) {
	var opts []clientv3.OpOption
	if serializable {
		opts = append(opts, clientv3.WithSerializable())
	}
	resp, err := s.cli.MemberList(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("list members: %w", err)
	}
	return statuses(resp.Members), nil
}

// survey checks that a majority of voters answers before reading the
// current member list, so that a cluster without quorum fails fast with
// the names of the voters that are missing instead of at the deadline.
func (s *session) survey(ctx context.Context) ([]MemberStatus, map[uint64]bool, error) {
	local, err := s.list(ctx, true)
	if err != nil {
		return nil, nil, err
	}
	reachable := s.reachable(ctx, local)
	if err := quorate(local, reachable); err != nil {
		return nil, nil, err
	}
	members, err := s.list(ctx, false)
	return members, reachable, err
}

// remove takes rs out in order and returns the member list after it.
func (s *session) remove(ctx context.Context, members []MemberStatus, rs []removal) ([]MemberStatus, error) {
	except := map[uint64]bool{}
	for _, r := range rs {
		except[r.member.ID] = true
	}
	s.useEndpoints(except)
	for _, r := range rs {
		err := s.retry(ctx, unavailable, func() error {
			resp, err := s.cli.MemberRemove(ctx, r.member.ID)
			if errors.Is(err, rpctypes.ErrMemberNotFound) { // an earlier attempt went through
				members = without(members, r.member.ID)
				return nil
			}
			if err == nil {
				members = statuses(resp.Members)
			}
			return err
		}, "waiting to remove etcd member", r.member.attrs()...)
		if err != nil {
			return nil, fmt.Errorf("remove %s: %w", r.member, err)
		}
		s.log.Info("removed etcd member", append(r.member.attrs(), "reason", r.why)...)
	}
	return members, nil
}

// Members returns the cluster's current member list.
func (c Client) Members(ctx context.Context) ([]MemberStatus, error) {
	s, err := c.connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	defer s.close()
	members, err := s.list(ctx, false)
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	return members, nil
}
