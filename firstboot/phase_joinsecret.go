package firstboot

import (
	"context"
	"fmt"
	"strings"

	"github.com/kubeboot/kubeboot/pkg/joinsecret"
	"github.com/kubeboot/kubeboot/pkg/pki"
	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

// secret assembles the join secret from what earlier phases wrote.
func (r *Run) secret() (joinsecret.Secret, error) {
	s := joinsecret.New()
	ca, err := r.caCert()
	if err != nil {
		return s, err
	}
	hash, err := pki.CAHash(ca)
	if err != nil {
		return s, err
	}
	tokens, err := r.tokens()
	if err != nil {
		return s, err
	}
	if len(tokens) == 0 {
		return s, fmt.Errorf("no bootstrap token")
	}
	s.ClusterName = r.Cfg.Cluster.ClusterName
	s.APIServerEndpoint = r.controlPlaneEndpoint()
	s.Token, s.TokenExpires = tokens[0].Value(), tokens[0].Expires
	s.CACertHashes = []string{hash}
	s.KubernetesVersion = r.Cfg.Cluster.KubernetesVersion
	if uploadCertsWanted(r) {
		key, err := r.readFile(r.statePath(certificateKeyFile))
		if err != nil {
			return s, fmt.Errorf("read the certificate key: %w (run the upload-certs phase first)", err)
		}
		s.CertificateKey = strings.TrimSpace(string(key))
	}
	return s, nil
}

// sealedJoinSecretFile keeps the sealed join secret between runs. Sealing
// is randomized, so sealing afresh on every re-run would rewrite the file
// sinks (changing the digests the runner compares) and send new bytes to
// the others although nothing changed; joinsecret.SealStable reuses the
// kept sealing while the plain document and the recipients are unchanged.
const sealedJoinSecretFile = "join-secret.sealed"

// publishedJoinSecret is what the sinks get: doc itself, or, when
// joinSecret.recipients is set, its sealing, with the state file that
// keeps it.
func (r *Run) publishedJoinSecret(doc []byte) ([]byte, []rootfs.File, error) {
	recipients := r.Cfg.Boot.JoinSecret.Recipients
	if len(recipients) == 0 {
		return doc, nil, nil
	}
	prev, err := r.readOptional(r.statePath(sealedJoinSecretFile))
	if err != nil {
		return nil, nil, fmt.Errorf("read the kept sealed join secret: %w", err)
	}
	sealed, state, err := joinsecret.SealStable(doc, recipients, prev)
	if err != nil {
		return nil, nil, err
	}
	return sealed, []rootfs.File{{Path: r.statePath(sealedJoinSecretFile), Mode: 0o600, Data: state, Secret: true}}, nil
}

var joinSecretPhase = Phase{
	Name:  "join-secret",
	Short: "Publish the join secret (endpoint, token, CA hash, certificate key) to the configured sinks",
	Inputs: func(r *Run) (any, error) {
		s, err := r.secret()
		return []any{s, r.Cfg.Boot.JoinSecret}, err
	},
	// File sinks are files like any other: written in dry runs too.
	Render: func(_ context.Context, r *Run) (Output, error) {
		s, err := r.secret()
		if err != nil {
			return Output{}, err
		}
		s.Created = r.now().UTC().Truncate(1e9)
		if old, _ := r.readOptional(r.statePath("join-secret.created")); len(old) > 0 {
			// Keep the first creation time so the document, and thus the
			// sinks, do not change on re-runs.
			s.Created.UnmarshalText(old)
		}
		doc, err := s.Marshal()
		if err != nil {
			return Output{}, err
		}
		created, _ := s.Created.MarshalText()
		files := []rootfs.File{{Path: r.statePath("join-secret.created"), Mode: 0o600, Data: created}}
		doc, kept, err := r.publishedJoinSecret(doc)
		if err != nil {
			return Output{}, err
		}
		files = append(files, kept...)
		var names []string
		for _, sink := range r.Cfg.Boot.JoinSecret.Sinks {
			if sink.File != nil {
				files = append(files, rootfs.File{Path: sink.File.Path, Mode: 0o600, Data: doc, Secret: true})
				names = append(names, "file "+sink.File.Path)
			}
		}
		worker, cp := s.JoinCommands(false)
		if r.Out != nil {
			fmt.Fprintf(r.Out, "[join-secret] join a worker:        %s\n", worker)
			if cp != "" {
				fmt.Fprintf(r.Out, "[join-secret] join a control plane: %s\n", cp)
			}
		}
		summary := ""
		if len(names) > 0 {
			summary = "written to " + strings.Join(names, ", ")
		}
		return Output{Files: files, Summary: summary}, nil
	},
	Apply: func(ctx context.Context, r *Run) (string, error) {
		s, err := r.secret()
		if err != nil {
			return "", err
		}
		created, _ := r.readOptional(r.statePath("join-secret.created"))
		s.Created.UnmarshalText(created)
		doc, err := s.Marshal()
		if err != nil {
			return "", err
		}
		// Render kept the sealing in the state dir: the same bytes again.
		doc, _, err = r.publishedJoinSecret(doc)
		if err != nil {
			return "", err
		}
		var sinks []joinsecret.Sink
		for _, sink := range r.Cfg.Boot.JoinSecret.Sinks {
			switch {
			case sink.VirtioSerial != nil:
				sinks = append(sinks, joinsecret.VirtioSerialSink{Root: r.Root, Name: sink.VirtioSerial.Name})
			case sink.HTTP != nil:
				sinks = append(sinks, joinsecret.HTTPSink{URL: sink.HTTP.URL, Timeout: sink.HTTP.Timeout.Duration})
			}
		}
		var names []string
		for _, sink := range sinks {
			if err := sink.Put(ctx, doc); err != nil {
				return "", err
			}
			names = append(names, sink.String())
		}
		if rv := r.Cfg.Boot.Cluster.Rendezvous; rv != nil {
			store := rendezvousStore(r.Cfg, r.Log)
			if err := store.Publish(ctx, r.Cfg.Init.NodeRegistration.Name, doc); err != nil {
				return "", err
			}
			names = append(names, "the rendezvous")
		}
		if len(names) == 0 {
			return "", nil
		}
		return "sent to " + strings.Join(names, ", "), nil
	},
}
