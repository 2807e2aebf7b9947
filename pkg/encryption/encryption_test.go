package encryption

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io/fs"
	"net"
	"strings"
	"testing"
	"testing/fstest"
	"testing/iotest"

	corev1 "k8s.io/api/core/v1"
	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
	"k8s.io/utils/ptr"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/kubeboot/kubeboot/pkg/config"
	"github.com/kubeboot/kubeboot/pkg/manifests"
)

func resolved(t *testing.T, provider string) *config.Config {
	t.Helper()
	cfg := config.Defaults()
	if err := config.Resolve(cfg, config.StaticFacts{Host: "node1", IPs: []net.IP{net.ParseIP("10.0.0.5")}}); err != nil {
		t.Fatal(err)
	}
	cfg.Boot.EncryptionAtRest.Provider = provider
	return cfg
}

// strictConfig decodes into the apiserver's v1 type, failing on unknown,
// duplicate or case-mismatched fields.
func strictConfig(t *testing.T, data []byte) *apiserverv1.EncryptionConfiguration {
	t.Helper()
	j, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		t.Fatal(err)
	}
	var c apiserverv1.EncryptionConfiguration
	strictErrs, err := kjson.UnmarshalStrict(j, &c)
	if err == nil {
		err = errors.Join(strictErrs...)
	}
	if err != nil {
		t.Fatalf("not a strict EncryptionConfiguration: %v", err)
	}
	if c.APIVersion != "apiserver.config.k8s.io/v1" || c.Kind != "EncryptionConfiguration" {
		t.Fatalf("apiVersion %q kind %q", c.APIVersion, c.Kind)
	}
	return &c
}

// layout describes the providers of the secrets entry: "secretbox:key1".
func layout(c *apiserverv1.EncryptionConfiguration) string {
	var out []string
	for _, p := range c.Resources[0].Providers {
		switch {
		case p.Secretbox != nil:
			out = append(out, "secretbox:"+p.Secretbox.Keys[0].Name)
		case p.AESCBC != nil:
			out = append(out, "aescbc:"+p.AESCBC.Keys[0].Name)
		case p.Identity != nil:
			out = append(out, "identity")
		default:
			out = append(out, "other")
		}
	}
	return strings.Join(out, ",")
}

func keyOf(t *testing.T, p apiserverv1.ProviderConfiguration) []byte {
	t.Helper()
	var k apiserverv1.Key
	switch {
	case p.Secretbox != nil:
		k = p.Secretbox.Keys[0]
	case p.AESCBC != nil:
		k = p.AESCBC.Keys[0]
	default:
		t.Fatalf("provider without keys")
	}
	b, err := base64.StdEncoding.DecodeString(k.Secret)
	if err != nil {
		t.Fatalf("key is not base64: %v", err)
	}
	return b
}

func existing(data []byte) fs.FS {
	return fstest.MapFS{ConfigPath[1:]: {Data: data, Mode: 0o600}}
}

func TestFresh(t *testing.T) {
	for _, provider := range []string{Secretbox, AESCBC} {
		t.Run(provider, func(t *testing.T) {
			cfg := resolved(t, provider)
			files, add, err := Render(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(files) != 1 {
				t.Fatalf("%d files", len(files))
			}
			f := files[0]
			if f.Path != ConfigPath || f.Mode != 0o600 || !f.Secret {
				t.Errorf("file %s mode %o secret %v", f.Path, f.Mode, f.Secret)
			}
			c := strictConfig(t, f.Data)
			if _, err := Parse(f.Data); err != nil {
				t.Errorf("Parse rejects the rendered config: %v", err)
			}
			if len(c.Resources) != 1 || strings.Join(c.Resources[0].Resources, ",") != "secrets" {
				t.Errorf("resources: %+v", c.Resources)
			}
			if got, want := layout(c), provider+":key1,identity"; got != want {
				t.Errorf("providers %s, want %s", got, want)
			}
			key := keyOf(t, c.Resources[0].Providers[0])
			if len(key) != 32 {
				t.Errorf("key has %d bytes, want 32", len(key))
			}
			if bytes.Equal(key, make([]byte, 32)) {
				t.Error("key is all zeros")
			}

			if len(add.Args) != 1 || add.Args[0] != (config.Arg{Name: "encryption-provider-config", Value: ConfigPath}) {
				t.Errorf("args %+v", add.Args)
			}
			wantVol := config.HostPathMount{Name: "encryption-config", HostPath: "/etc/kubernetes/encryption", MountPath: "/etc/kubernetes/encryption", ReadOnly: true, PathType: corev1.HostPathDirectory}
			if len(add.Volumes) != 1 || add.Volumes[0] != wantVol {
				t.Errorf("volumes %+v", add.Volumes)
			}

			// A re-run over the file it wrote returns it byte for byte.
			again, _, err := Render(cfg, existing(f.Data))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again[0].Data, f.Data) || !again[0].Secret || again[0].Mode != 0o600 {
				t.Error("re-render over the existing file changed it")
			}

			// Two fresh renders draw different keys.
			other, _, _ := Render(cfg, nil)
			if bytes.Equal(keyOf(t, strictConfig(t, other[0].Data).Resources[0].Providers[0]), key) {
				t.Error("two fresh renders produced the same key")
			}
		})
	}
}

func TestKeyFromRandom(t *testing.T) {
	want := bytes.Repeat([]byte{0xA5}, 32)
	files, _, err := render(resolved(t, Secretbox), nil, bytes.NewReader(want))
	if err != nil {
		t.Fatal(err)
	}
	if got := keyOf(t, strictConfig(t, files[0].Data).Resources[0].Providers[0]); !bytes.Equal(got, want) {
		t.Errorf("key %x, want the random source's %x", got, want)
	}
	if _, _, err := render(resolved(t, Secretbox), nil, iotest.ErrReader(errors.New("no entropy"))); err == nil || !strings.Contains(err.Error(), "no entropy") {
		t.Errorf("failing random source: %v", err)
	}
	if _, _, err := render(resolved(t, Secretbox), nil, bytes.NewReader(make([]byte, 31))); err == nil {
		t.Error("short random source: no error")
	}
}

// A hand-written file with the configured provider is kept as it is,
// comments, key names and all.
func TestReuseForeign(t *testing.T) {
	data := []byte(`# rotated 2031-01-01
kind: EncryptionConfiguration
apiVersion: apiserver.config.k8s.io/v1
resources:
  - resources: ["secrets", "configmaps"]
    providers:
      - aescbc:
          keys:
            - {name: new, secret: ` + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32)) + `}
            - {name: old, secret: ` + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 16)) + `}
      - identity: {}
`)
	files, _, err := Render(resolved(t, AESCBC), existing(data))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(files[0].Data, data) {
		t.Errorf("a valid file with the configured provider was rewritten:\n%s", files[0].Data)
	}
}

func TestProviderChange(t *testing.T) {
	first, _, err := Render(resolved(t, Secretbox), nil)
	if err != nil {
		t.Fatal(err)
	}
	oldKey := keyOf(t, strictConfig(t, first[0].Data).Resources[0].Providers[0])

	// secretbox -> aescbc: new aescbc key in front, the secretbox key kept.
	cfg := resolved(t, AESCBC)
	second, _, err := Render(cfg, existing(first[0].Data))
	if err != nil {
		t.Fatal(err)
	}
	c := strictConfig(t, second[0].Data)
	if got := layout(c); got != "aescbc:key1,secretbox:key1,identity" {
		t.Fatalf("after the switch: %s", got)
	}
	if !bytes.Equal(keyOf(t, c.Resources[0].Providers[1]), oldKey) {
		t.Error("the old secretbox key was not kept")
	}
	newKey := keyOf(t, c.Resources[0].Providers[0])
	if len(newKey) != 32 || bytes.Equal(newKey, oldKey) {
		t.Errorf("new aescbc key: %d bytes, same as old: %v", len(newKey), bytes.Equal(newKey, oldKey))
	}
	again, _, err := Render(cfg, existing(second[0].Data))
	if err != nil || !bytes.Equal(again[0].Data, second[0].Data) {
		t.Errorf("re-render after the switch differs (%v)", err)
	}

	// And back: the existing secretbox provider returns to the front with
	// its key; no key is generated or lost.
	third, _, err := render(resolved(t, Secretbox), existing(second[0].Data), iotest.ErrReader(errors.New("must not draw a key")))
	if err != nil {
		t.Fatal(err)
	}
	c = strictConfig(t, third[0].Data)
	if got := layout(c); got != "secretbox:key1,aescbc:key1,identity" {
		t.Fatalf("after switching back: %s", got)
	}
	if !bytes.Equal(keyOf(t, c.Resources[0].Providers[0]), oldKey) || !bytes.Equal(keyOf(t, c.Resources[0].Providers[1]), newKey) {
		t.Error("keys changed when switching back")
	}
}

// Other entries stay, and the entry the apiserver uses for secrets (the
// first covering them) is the one changed.
func TestProviderChangeKeepsOtherEntries(t *testing.T) {
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	data := []byte(`apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: [events]
  providers: [{identity: {}}]
- resources: ["*.*"]
  providers:
  - secretbox: {keys: [{name: k, secret: ` + key + `}]}
`)
	files, _, err := Render(resolved(t, AESCBC), existing(data))
	if err != nil {
		t.Fatal(err)
	}
	c := strictConfig(t, files[0].Data)
	if len(c.Resources) != 2 || c.Resources[0].Resources[0] != "events" || len(c.Resources[0].Providers) != 1 {
		t.Fatalf("first entry changed: %+v", c.Resources)
	}
	p := c.Resources[1].Providers
	if len(p) != 2 || p[0].AESCBC == nil || p[1].Secretbox == nil || p[1].Secretbox.Keys[0].Secret != key {
		t.Errorf("wildcard entry: %+v", p)
	}
}

func TestInvalidExisting(t *testing.T) {
	short := base64.StdEncoding.EncodeToString([]byte("sixteen-byte-key"))
	tests := map[string]string{
		"not YAML":      "\t: :",
		"wrong kind":    "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\nresources: []\n",
		"old version":   "apiVersion: apiserver.config.k8s.io/v1beta1\nkind: EncryptionConfiguration\nresources: [{resources: [secrets], providers: [{identity: {}}]}]\n",
		"unknown field": "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources: [{resources: [secrets], providers: [{identity: {}}], extra: 1}]\n",
		"no resources":  "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources: []\n",
		"no providers":  "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources: [{resources: [secrets], providers: []}]\n",
		"two in one":    "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources: [{resources: [secrets], providers: [{identity: {}, secretbox: {keys: [{name: a, secret: " + short + "}]}}]}]\n",
		"short key":     "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources: [{resources: [secrets], providers: [{secretbox: {keys: [{name: a, secret: " + short + "}]}}]}]\n",
		"not base64":    "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources: [{resources: [secrets], providers: [{aescbc: {keys: [{name: a, secret: '!!'}]}}]}]\n",
		"no key name":   "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources: [{resources: [secrets], providers: [{aescbc: {keys: [{name: '', secret: " + short + "}]}}]}]\n",
		"no secrets":    "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources: [{resources: [configmaps], providers: [{aescbc: {keys: [{name: a, secret: " + short + "}]}}]}]\n",
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			files, add, err := Render(resolved(t, Secretbox), existing([]byte(data)))
			if err == nil {
				t.Fatalf("no error; %d files, %d args", len(files), len(add.Args))
			}
			if len(files) != 0 || len(add.Args) != 0 {
				t.Error("files or flags returned with an error")
			}
			if !strings.Contains(err.Error(), ConfigPath) {
				t.Errorf("error does not name the file: %v", err)
			}
			if strings.Contains(err.Error(), short) {
				t.Errorf("error leaks key material: %v", err)
			}
		})
	}
}

func TestDisabled(t *testing.T) {
	cfg := resolved(t, Secretbox)
	cfg.Boot.EncryptionAtRest.Enabled = ptr.To(false)
	files, add, err := Render(cfg, nil)
	if err != nil || len(files) != 0 || len(add.Args) != 0 || len(add.Volumes) != 0 {
		t.Errorf("disabled: %d files, %+v, %v", len(files), add, err)
	}
	files, _, err = Render(cfg, fstest.MapFS{})
	if err != nil || len(files) != 0 {
		t.Errorf("disabled, nothing on disk: %d files, %v", len(files), err)
	}

	// Disabling over an existing configuration would lose the Secrets.
	prev, _, err := Render(resolved(t, Secretbox), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Render(cfg, existing(prev[0].Data)); err == nil || !strings.Contains(err.Error(), ConfigPath) {
		t.Errorf("disabled over an existing config: %v", err)
	}
}

func TestUnknownProvider(t *testing.T) {
	if _, _, err := Render(resolved(t, "aesgcm"), nil); err == nil {
		t.Error("aesgcm: no error")
	}
}

func TestManifest(t *testing.T) {
	cfg := resolved(t, Secretbox)
	_, add, err := Render(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	files, err := manifests.ControlPlane(cfg, manifests.Options{APIServer: []manifests.APIServerAdditions{add}})
	if err != nil {
		t.Fatal(err)
	}
	j, err := yaml.YAMLToJSONStrict(files[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	if strictErrs, err := kjson.UnmarshalStrict(j, &pod); err != nil || len(strictErrs) > 0 {
		t.Fatalf("%v %v", err, strictErrs)
	}
	c := pod.Spec.Containers[0]
	if !strings.Contains(strings.Join(c.Command, " "), "--encryption-provider-config="+ConfigPath) {
		t.Error("flag missing")
	}
	ok := false
	for _, m := range c.VolumeMounts {
		if m.Name == "encryption-config" && m.MountPath == "/etc/kubernetes/encryption" && m.ReadOnly {
			ok = true
		}
	}
	if !ok {
		t.Errorf("mount missing: %+v", c.VolumeMounts)
	}
}
