package pki

import (
	"fmt"
	"strings"

	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

// Action is what Render did with one certificate or key pair.
type Action int

const (
	// Created: nothing usable existed; a new key and certificate were made.
	Created Action = iota
	// Reused: the existing files are returned unchanged.
	Reused
	// Reissued: a new certificate (and possibly key) replaces the existing
	// one, which is returned as a backup file.
	Reissued
	// Verified: provided for an external CA; checked and returned unchanged.
	Verified
)

func (a Action) String() string {
	switch a {
	case Created:
		return "created"
	case Reused:
		return "reused"
	case Reissued:
		return "reissued"
	case Verified:
		return "verified"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Outcome is what happened to one item, by kubeadm's name for it ("ca",
// "apiserver", "etcd-server", "sa", ...).
type Outcome struct {
	Name   string
	Action Action
	// Reason says why an item was re-issued, e.g.
	// "/etc/kubernetes/pki/apiserver.crt lacks SAN 10.0.0.5".
	Reason string
}

// Counts tallies outcomes by action.
type Counts struct {
	Created, Reused, Reissued, Verified int
}

// Total is the number of items counted.
func (c Counts) Total() int { return c.Created + c.Reused + c.Reissued + c.Verified }

func (c *Counts) add(a Action) {
	switch a {
	case Created:
		c.Created++
	case Reused:
		c.Reused++
	case Reissued:
		c.Reissued++
	case Verified:
		c.Verified++
	}
}

// String lists the non-zero counts: "2 created, 8 reused".
func (c Counts) String() string {
	var parts []string
	for _, p := range []struct {
		n    int
		what string
	}{{c.Created, "created"}, {c.Reused, "reused"}, {c.Reissued, "reissued"}, {c.Verified, "verified"}} {
		if p.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", p.n, p.what))
		}
	}
	return strings.Join(parts, ", ")
}

// Result is what Render returns.
type Result struct {
	// Files is the whole PKI, in kubeadm's order: new and re-issued files,
	// existing ones byte-for-byte, and backups of replaced ones. Keys and
	// key backups are Secret with mode 0600, the rest 0644.
	Files []rootfs.File
	// Outcomes has one entry per CA, leaf and key pair, in kubeadm's order.
	Outcomes []Outcome
	// Certificates counts CAs and leaf certificates; KeyPairs counts bare
	// key pairs (the service-account key).
	Certificates, KeyPairs Counts
	// Warnings need a human's attention but did not stop the render, e.g.
	// a CA that expires within a leaf's validity.
	Warnings []string
}

// Summary is a progress line: "10 certificates (10 created), 1 key pair (1 created)".
func (r Result) Summary() string {
	return fmt.Sprintf("%s (%s), %s (%s)",
		plural(r.Certificates.Total(), "certificate"), r.Certificates,
		plural(r.KeyPairs.Total(), "key pair"), r.KeyPairs)
}

// Lookup returns the data of the file at host path p, e.g.
// "/etc/kubernetes/pki/ca.crt".
func (r Result) Lookup(p string) ([]byte, bool) {
	p = rootfs.Clean(p)
	for _, f := range r.Files {
		if f.Path == p {
			return f.Data, true
		}
	}
	return nil, false
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
