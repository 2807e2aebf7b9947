package userdata

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// fuzzDecode checks what must hold for any input: no panic, an error is a
// *Error naming the source and comes with no Result, and a Result holds
// only paths and link targets inside the root.
func fuzzDecode(t *testing.T, root string, data []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	r, err := Decode(ctx, "fuzz", data, offlineFetch, root)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("decoding took %s: a hang", d)
	}
	if err != nil {
		var ue *Error
		if r != nil || !errors.As(err, &ue) || !strings.HasPrefix(err.Error(), "userdata: fuzz: ") {
			t.Fatalf("error %v with result %v", err, r)
		}
		return
	}
	if r == nil {
		t.Fatal("no result and no error")
	}
	for _, f := range r.Files {
		if err := checkPath(f.Path); err != nil {
			t.Fatalf("file %v", err)
		}
	}
	for _, d := range r.Directories {
		if err := checkPath(d.Path); err != nil {
			t.Fatalf("directory %v", err)
		}
	}
	for _, l := range r.Links {
		if err := checkPath(l.Path); err != nil {
			t.Fatalf("link %v", err)
		}
		if err := checkLinkTarget(l.Path, l.Target, l.Hard); err != nil {
			t.Fatalf("link %v", err)
		}
	}
	for _, u := range r.Units {
		if checkUnitName(u.Name) != nil {
			t.Fatalf("unit name %q", u.Name)
		}
	}
	if len(r.Config) > 0 && checkKubebootYAML(r.Config) != nil {
		t.Fatalf("config %q", r.Config)
	}
	_ = r.Redacted()
}

func FuzzIgnition(f *testing.F) {
	f.Add([]byte(ignConfigFile("3.4.0", "data:,a", "")))
	f.Add([]byte(`{"ignition":{"version":"3.0.0"}}`))
	f.Add([]byte(`{"ignition":{"version":"3.6.0"},"storage":{"links":[{"path":"/a/b","target":"../c"}],"directories":[{"path":"/d","mode":493}]}}`))
	f.Add([]byte(`{"ignition":{"version":"3.3.0"},"systemd":{"units":[{"name":"a.service","enabled":true,"dropins":[{"name":"x.conf","contents":"y"}]}]},"passwd":{"users":[{"name":"core","sshAuthorizedKeys":["ssh-rsa AAA"]}]}}`))
	f.Add([]byte(ignConfigFile("3.5.0", "data:;base64,"+b64(gz(f, []byte(testConfig))), `,"compression":"gzip"`)))
	root := testRoot(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzDecode(t, root, data)
	})
}

func FuzzCloudConfig(f *testing.F) {
	f.Add([]byte("#cloud-config\nwrite_files:\n- path: /etc/x\n  content: aGk=\n  encoding: b64\n  permissions: '0600'\n  owner: core:wheel\n"))
	f.Add([]byte("#cloud-config\nkubeboot: |\n" + indent(testConfig, "  ")))
	f.Add([]byte("#cloud-config\nusers:\n- default\n- name: core\n  ssh_authorized_keys: [ssh-ed25519 AAAA]\nruncmd: [ls]\n"))
	f.Add([]byte("#cloud-config\na: &a [x, x]\nb: &b [*a, *a]\nwrite_files:\n- path: /etc/y\n  encoding: gz+b64\n  content: " + b64(gz(f, []byte("z"))) + "\n"))
	root := testRoot(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzDecode(t, root, data)
	})
}

func FuzzMultipart(f *testing.F) {
	f.Add([]byte(mimeMsg("b", part("text/cloud-config", "#cloud-config\nhostname: a\n"), part("text/x-shellscript", "#!/bin/sh\n"))))
	f.Add([]byte(nested(3)))
	f.Add([]byte(mimeMsg("==x==", part("text/plain", b64([]byte(testConfig)), "Content-Transfer-Encoding: base64"))))
	f.Add([]byte(mimeMsg("q", part("application/x-gzip", b64(gz(f, []byte("#cloud-config\n"))), "Content-Transfer-Encoding: base64"))))
	root := testRoot(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzDecode(t, root, data)
	})
}

func FuzzDataURL(f *testing.F) {
	for _, s := range []string{"data:,hello", "data:;base64,aGVsbG8=", "data:text/plain;charset=utf-8,%41", "data:;base64,aGk", "data:,%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDataURL(s)
		if err != nil {
			if d != nil {
				t.Fatal("result with error")
			}
			return
		}
		back, err := ParseDataURL(d.String())
		if err != nil {
			t.Fatalf("re-encoded %q does not parse: %v", d.String(), err)
		}
		if string(back.Data) != string(d.Data) {
			t.Fatalf("round trip changed data: %q -> %q", d.Data, back.Data)
		}
	})
}
