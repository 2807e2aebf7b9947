package config

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestInvalid runs every file in testdata/invalid and expects an error that
// names the document and field (want.tsv holds the expected text).
func TestInvalid(t *testing.T) {
	f, err := os.Open("testdata/invalid/want.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, want, ok := strings.Cut(sc.Text(), "\t")
		if !ok {
			continue
		}
		n++
		t.Run(strings.TrimSuffix(name, ".yaml"), func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata/invalid", name))
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_, err = Load(name, data)
			if err == nil {
				t.Fatalf("Load accepted invalid input")
			}
			if !IsInvalid(err) {
				t.Errorf("error is not a configuration error: %T", err)
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error does not say %q:\n%v", want, err)
			}
			if !strings.HasPrefix(err.Error(), name+": ") {
				t.Errorf("error does not start with the source name %q: %v", name, err)
			}
			// Bombs must fail fast, not after expanding.
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %s", d)
			}
		})
	}
	if n < 40 {
		t.Fatalf("only %d invalid cases", n)
	}
}

func TestErrorLine(t *testing.T) {
	data := []byte("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking:\n  podSubnet: 10.244.0.0/33\n")
	_, err := Load("config.yaml", data)
	want := `config.yaml: document 1 (ClusterConfiguration): networking.podSubnet: invalid CIDR "10.244.0.0/33" (line 4)`
	if err == nil || err.Error() != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
}

func TestAllErrorsReported(t *testing.T) {
	data := []byte(`apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
networking:
  podSubnet: nope
  dnsDomain: "UPPER"
clusterName: "a b"
`)
	_, err := Load("c.yaml", data)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"networking.podSubnet", "networking.dnsDomain", "clusterName"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %s in %v", want, err)
		}
	}
}
