package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad feeds arbitrary bytes to the decoder: it may reject them, but
// must not panic, hang or return something that fails validation.
func FuzzLoad(f *testing.F) {
	if out, err := Defaults().Marshal(); err == nil {
		f.Add(out)
	}
	files, _ := filepath.Glob("testdata/invalid/*.yaml")
	for _, p := range files {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Load("fuzz.yaml", data)
		if err != nil {
			if !IsInvalid(err) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		if err := Validate(c); err != nil {
			t.Fatalf("Load returned a configuration that does not validate: %v", err)
		}
		if _, err := c.Marshal(); err != nil {
			t.Fatalf("cannot marshal an accepted configuration: %v", err)
		}
	})
}
