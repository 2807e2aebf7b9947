package rendezvous

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// Role is how a node joins the cluster.
type Role string

const (
	ControlPlane Role = "control-plane"
	Worker       Role = "worker"
)

// Members is the members object: who joined as what, in the order they
// enrolled. The init node is ControlPlane[0].
type Members struct {
	ControlPlane []string `json:"controlPlane"`
	Workers      []string `json:"workers"`
}

// Role returns the role node enrolled with, if it did.
func (m Members) Role(node string) (Role, bool) {
	switch {
	case slices.Contains(m.ControlPlane, node):
		return ControlPlane, true
	case slices.Contains(m.Workers, node):
		return Worker, true
	}
	return "", false
}

// Members reads the members object; a missing one is empty.
func (s *Store) Members(ctx context.Context) (Members, error) {
	var m Members
	err := s.update(ctx, func() error {
		var err error
		m, _, err = s.readMembers(ctx)
		return err
	})
	if err != nil {
		return Members{}, fmt.Errorf("rendezvous: read members at %s: %w", s.show(membersObject), err)
	}
	return m, nil
}

// Enrol records node as a control-plane node while fewer than replicas
// are (the init node included), as a worker after that, and returns the
// role. The count is exact however many nodes enrol at once: each writes
// only over the version it counted. A node that enrolled before (and
// rebooted) gets the role it was given, and nothing is written.
//
// Call it after WaitSecret returned: Publish lists the init node before
// it writes the secret, so the count includes it by then.
func (s *Store) Enrol(ctx context.Context, node string, replicas int) (Role, error) {
	switch {
	case node == "":
		return "", errors.New("rendezvous: enrol: empty node name")
	case replicas < 1:
		return "", fmt.Errorf("rendezvous: enrol %s: control-plane replicas %d: must be at least 1", node, replicas)
	}
	var role Role
	err := s.update(ctx, func() error {
		m, etag, err := s.readMembers(ctx)
		if err != nil {
			return err
		}
		if r, ok := m.Role(node); ok {
			role = r
			return nil
		}
		r := Worker
		if len(m.ControlPlane) < replicas {
			r = ControlPlane
			m.ControlPlane = append(m.ControlPlane, node)
		} else {
			m.Workers = append(m.Workers, node)
		}
		if err := s.writeMembers(ctx, m, etag); err != nil {
			return err
		}
		role = r
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("rendezvous: enrol %s at %s: %w", node, s.show(membersObject), err)
	}
	s.log().Info("rendezvous: enrolled", "node", node, "role", role)
	return role, nil
}

// enrolInit puts the init node first among the control-plane nodes.
func (s *Store) enrolInit(ctx context.Context, node string) error {
	m, etag, err := s.readMembers(ctx)
	if err != nil {
		return err
	}
	if len(m.ControlPlane) > 0 && m.ControlPlane[0] == node {
		return nil
	}
	m.ControlPlane = slices.Insert(slices.DeleteFunc(m.ControlPlane, func(n string) bool { return n == node }), 0, node)
	m.Workers = slices.DeleteFunc(m.Workers, func(n string) bool { return n == node })
	return s.writeMembers(ctx, m, etag)
}

// readMembers returns the members and their ETag; an empty ETag: none yet.
func (s *Store) readMembers(ctx context.Context) (Members, string, error) {
	obj, err := s.get(ctx, membersObject)
	if err != nil || !obj.found {
		return Members{}, "", err
	}
	if obj.etag == "" {
		return Members{}, "", errNoETag
	}
	var m Members
	if err := json.Unmarshal(obj.data, &m); err != nil {
		return Members{}, "", fmt.Errorf("the members object is not a members document: %w", err)
	}
	return m, obj.etag, nil
}

// writeMembers replaces the version read (etag), or creates the object
// when there was none.
func (s *Store) writeMembers(ctx context.Context, m Members, etag string) error {
	pre := ifAbsent()
	if etag != "" {
		pre = ifUnchanged(etag)
	}
	return s.put(ctx, membersObject, encode(m), "application/json", pre)
}
