package etcdmember

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// retryInterval is the pause between attempts; a learner catches up, and
// etcd settles after a change, within seconds.
var retryInterval = 2 * time.Second

// retry calls f until it succeeds, fails with an error again rejects, or
// ctx ends. While it waits it logs msg with attrs now and then.
func (s *session) retry(ctx context.Context, again func(error) bool, f func() error, msg string, attrs ...any) error {
	start := time.Now()
	var last error
	for try := 0; ; try++ {
		err := f()
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil && last != nil:
			return gaveUp(start, ctx.Err(), last)
		case !again(err):
			return err
		case try%15 == 0:
			s.log.Info(msg, append(attrs, "waited", time.Since(start).Round(time.Second), "reason", err.Error())...)
		}
		last = err
		select {
		case <-ctx.Done():
			return gaveUp(start, ctx.Err(), last)
		case <-time.After(retryInterval):
		}
	}
}

func gaveUp(start time.Time, ctxErr, last error) error {
	return fmt.Errorf("gave up after %s: %w (last answer: %w)", time.Since(start).Round(time.Second), ctxErr, last)
}

// unavailable says whether etcd cannot serve the request right now: it is
// between leaders, timed out, or, after a change, has not been connected
// to its peers long enough to allow another (etcdserver: unhealthy
// cluster).
func unavailable(err error) bool {
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return ee.Code() == codes.Unavailable
	}
	return status.Code(err) == codes.Unavailable
}

// promotable says whether a promotion that failed with err can succeed
// later: the learner has not caught up (or its etcd is not running yet),
// too few voters are started right now, or etcd is unavailable.
func promotable(err error) bool {
	return errors.Is(err, rpctypes.ErrMemberLearnerNotReady) ||
		errors.Is(err, rpctypes.ErrMemberNotEnoughStarted) || unavailable(err)
}
