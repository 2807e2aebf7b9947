package firstboot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/kubeboot/kubeboot/pkg/config"
	"github.com/kubeboot/kubeboot/pkg/rendezvous"
)

// rendezvousStore is the store the configuration names.
func rendezvousStore(cfg *config.Config, log *slog.Logger) *rendezvous.Store {
	return &rendezvous.Store{URL: cfg.Boot.Cluster.Rendezvous.URL, Log: log}
}

// Role is what the rendezvous decided for this machine.
type Role struct {
	// Init is set for the machine that won the claim.
	Init bool
	// Join is the join configuration of a machine that lost it, with the
	// join secret inline; ControlPlane says which kind of node it joins as.
	Join         *config.JoinConfig
	ControlPlane bool
}

// Rendezvous decides whether this machine runs init or joins, when the
// configuration names a rendezvous: the first to create the claim runs
// init (and keeps the claim alive with renew until it publishes the join
// secret, see Renew); the others wait for the secret and join, as control
// planes until controlPlaneReplicas are counted, then as workers. A claim
// whose holder died before publishing expires with its lease, and the
// waiting machines try to take it over. Every step is idempotent, so a
// machine that reboots mid-way gets the same role again.
func Rendezvous(ctx context.Context, opts Options, cfg *config.Config) (Role, error) {
	rv := cfg.Boot.Cluster.Rendezvous
	store := rendezvousStore(cfg, opts.Log)
	node := cfg.Init.NodeRegistration.Name
	ctx, cancel := context.WithTimeout(ctx, rv.Timeout.Duration)
	defer cancel()
	say := func(format string, args ...any) {
		if opts.Out != nil {
			fmt.Fprintf(opts.Out, "[rendezvous] "+format+"\n", args...)
		}
	}
	for {
		claim, won, err := store.Claim(ctx, node, rv.LeaseDuration.Duration)
		if err != nil {
			return Role{}, fmt.Errorf("rendezvous: %w", err)
		}
		if won {
			say("%s holds the claim until %s: running init", node, claim.Expires.UTC().Format(time.RFC3339))
			return Role{Init: true}, nil
		}
		// Check now that this configuration can join at all, before a
		// control-plane slot is taken for a machine that cannot fill it.
		if _, err := joinFromRendezvous(cfg, true, nil); err != nil {
			return Role{}, err
		}
		say("%s holds the claim: waiting for the join secret", claim.Node)
		secret, err := store.WaitSecret(ctx)
		if errors.Is(err, rendezvous.ErrClaimExpired) {
			say("the claim of %s expired before it published: trying to take over", claim.Node)
			continue
		}
		if err != nil {
			return Role{}, fmt.Errorf("rendezvous: %w", err)
		}
		role, err := store.Enrol(ctx, node, int(*rv.ControlPlaneReplicas))
		if err != nil {
			return Role{}, fmt.Errorf("rendezvous: %w", err)
		}
		cp := role == rendezvous.ControlPlane
		say("joining as %s", role)
		j, err := joinFromRendezvous(cfg, cp, secret)
		if err != nil {
			return Role{}, err
		}
		return Role{Join: j, ControlPlane: cp}, nil
	}
}

// joinFromRendezvous is the join configuration of a machine that lost the
// claim, with the join secret inline (nil: a placeholder, to validate).
func joinFromRendezvous(cfg *config.Config, controlPlane bool, secret []byte) (*config.JoinConfig, error) {
	j := config.JoinFromInit(cfg, controlPlane)
	j.Boot.Join.Source = ""
	j.Boot.Join.Secret = string(secret)
	if secret == nil {
		j.Boot.Join.Secret = "pending"
	}
	config.SetJoinDefaults(j)
	if err := config.ValidateJoin(j); err != nil {
		return nil, err
	}
	return j, nil
}

// KeepClaim renews the init claim until ctx ends, so that a slow init is
// not taken over; renewal stops mattering once the claim is published. If
// the claim is lost all the same (this machine was cut off for a whole
// lease, and another took over), lost is called: this init must stop
// rather than form a second cluster.
func KeepClaim(ctx context.Context, opts Options, cfg *config.Config, lost func()) {
	rv := cfg.Boot.Cluster.Rendezvous
	store := rendezvousStore(cfg, opts.Log)
	every := rv.LeaseDuration.Duration / 3
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
		c, err := store.Renew(ctx, cfg.Init.NodeRegistration.Name, rv.LeaseDuration.Duration)
		if errors.Is(err, rendezvous.ErrClaimLost) {
			if opts.Log != nil {
				opts.Log.Error("rendezvous: the init claim was taken over; stopping init", "err", err)
			}
			lost()
			return
		}
		if err != nil && ctx.Err() == nil {
			if opts.Log != nil {
				opts.Log.Warn("rendezvous: renewing the claim failed", "err", err)
			}
			continue
		}
		if c.Published {
			return
		}
	}
}
