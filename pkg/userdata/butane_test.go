package userdata

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"

	butane "github.com/coreos/ignition/v2/butane/config"
	"github.com/coreos/ignition/v2/butane/config/common"

	"github.com/kubeboot/kubeboot/pkg/config"
)

var update = flag.Bool("update", false, "rewrite ignition/*.ign from the Butane sources")

// TestButane transpiles every ignition/*.bu with Butane (the butane
// packages of the Ignition module) and checks that the committed .ign is
// what it gives, then finds the .ign as --userdata and loads the kubeboot
// configuration it carries.
func TestButane(t *testing.T) {
	sources, err := filepath.Glob("../../ignition/*.bu")
	if err != nil || len(sources) == 0 {
		t.Fatalf("no Butane files in ignition/: %v", err)
	}
	for _, bu := range sources {
		t.Run(filepath.Base(bu), func(t *testing.T) {
			in, err := os.ReadFile(bu)
			if err != nil {
				t.Fatal(err)
			}
			out, rpt, err := butane.TranslateBytes(in, common.TranslateBytesOptions{Pretty: true})
			if err != nil {
				t.Fatalf("butane: %v\n%s", err, rpt)
			}
			if len(rpt.Entries) > 0 {
				t.Errorf("butane report:\n%s", rpt)
			}
			out = append(bytes.TrimRight(out, "\n"), '\n')
			ign := bu[:len(bu)-len(".bu")] + ".ign"
			if *update {
				if err := os.WriteFile(ign, out, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			committed, err := os.ReadFile(ign)
			if err != nil {
				t.Fatalf("%v (run go test ./pkg/userdata -run TestButane -args -update)", err)
			}
			if !bytes.Equal(committed, out) {
				t.Errorf("%s differs from what butane makes of %s (run go test ./pkg/userdata -run TestButane -args -update):\n%s", ign, bu, out)
			}
			r, err := Find(context.Background(), Sources{Root: t.TempDir(), File: ign})
			if err != nil {
				t.Fatal(err)
			}
			if r.Format != "ignition-3.6" || len(r.Warnings) != 0 || len(r.Config) == 0 {
				t.Errorf("Result = %+v", r)
			}
			if f := fileByPath(r, ConfigPath); f == nil || f.Mode != 0o600 || !f.Secret {
				t.Errorf("config file = %+v", f)
			}
			if _, err := config.Load(ign, r.Config); err != nil {
				t.Errorf("kubeboot configuration in %s: %v", ign, err)
			}
		})
	}
}
