package config

import (
	"bytes"
	"testing"
)

func TestDefaultsRoundTrip(t *testing.T) {
	out, err := Defaults().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load("defaults.yaml", out)
	if err != nil {
		t.Fatalf("defaults do not validate:\n%v\n%s", err, out)
	}
	again, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, again) {
		t.Errorf("defaults are not a fixed point:\n%s\n---- vs ----\n%s", out, again)
	}
}
