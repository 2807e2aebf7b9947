package userdata

import (
	"context"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

func ignConfigFile(version, source, extra string) string {
	return fmt.Sprintf(`{"ignition":{"version":%q},"storage":{"files":[{"path":"/etc/kubeboot/config.yaml","mode":384,"contents":{"source":%q%s}}]}}`,
		version, source, extra)
}

func TestIgnitionSpecVersions(t *testing.T) {
	src := "data:," + url.PathEscape(testConfig)
	for _, v := range []string{"3.0.0", "3.1.0", "3.2.0", "3.3.0", "3.4.0", "3.5.0", "3.6.0"} {
		t.Run(v, func(t *testing.T) {
			r := decodeOK(t, ignConfigFile(v, src, ""))
			if want := "ignition-" + v[:3]; r.Format != want {
				t.Errorf("Format = %q, want %q", r.Format, want)
			}
			if string(r.Config) != testConfig {
				t.Errorf("Config = %q", r.Config)
			}
			f := fileByPath(r, ConfigPath)
			if f == nil || !f.Secret || f.Mode != 0o600 || !f.HasContents {
				t.Errorf("config file = %+v", f)
			}
		})
	}
}

func TestIgnitionConfigEncodings(t *testing.T) {
	for _, tc := range []struct{ name, source, extra string }{
		{"plain", "data:," + url.PathEscape(testConfig), ""},
		{"plain with media type", "data:text/plain;charset=utf-8," + url.PathEscape(testConfig), ""},
		{"base64", "data:;base64," + b64([]byte(testConfig)), ""},
		{"gzip", "data:;base64," + b64(gz(t, []byte(testConfig))), `,"compression":"gzip"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := decodeOK(t, ignConfigFile("3.4.0", tc.source, tc.extra))
			if string(r.Config) != testConfig {
				t.Errorf("Config = %q", r.Config)
			}
		})
	}
}

func TestIgnitionStorageSystemdPasswd(t *testing.T) {
	payload := []byte("remote file\n")
	sum := sha512.Sum512(payload)
	var gotHeader string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHeader = r.Header.Get("X-Token")
		w.Write(payload)
	}))
	defer srv.Close()
	cfg := `{
  "ignition": {"version": "3.4.0"},
  "storage": {
    "files": [
      {"path": "/etc/hello", "mode": 493, "user": {"id": 1000}, "group": {"name": "wheel"}, "overwrite": true,
       "contents": {"source": "data:,hello%0A"}, "append": [{"source": "data:;base64,` + b64([]byte("more\n")) + `"}]},
      {"path": "/etc/remote", "contents": {"source": "` + srv.URL + `/f?token=secret",
       "httpHeaders": [{"name": "X-Token", "value": "t0k"}],
       "verification": {"hash": "sha512-` + hex.EncodeToString(sum[:]) + `"}}},
      {"path": "/etc/only-append", "append": [{"source": "data:,x"}]},
      {"path": "/usr/local/bin/suid", "mode": 2541, "user": {"name": "etcd"}, "contents": {"source": "data:,"}}
    ],
    "directories": [{"path": "/var/lib/data", "mode": 448, "user": {"id": 2379}, "group": {"id": 2379}}],
    "links": [
      {"path": "/etc/localtime", "target": "../usr/share/zoneinfo/UTC", "overwrite": true},
      {"path": "/etc/hello-hard", "target": "/etc/hello", "hard": true}
    ],
    "disks": [{"device": "/dev/vdb", "wipeTable": true}],
    "filesystems": [{"device": "/dev/vdb1", "format": "ext4", "path": "/var"}],
    "raid": [{"name": "md0", "level": "raid1", "devices": ["/dev/vdc", "/dev/vdd"]}],
    "luks": [{"name": "data", "device": "/dev/vde"}]
  },
  "systemd": {"units": [
    {"name": "hello.service", "enabled": true, "contents": "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n",
     "dropins": [{"name": "10-env.conf", "contents": "[Service]\nEnvironment=A=1\n"}]},
    {"name": "docker.service", "mask": true},
    {"name": "sshd.service", "enabled": false}
  ]},
  "passwd": {"users": [{"name": "core", "sshAuthorizedKeys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFakeFakeFakeFakeFakeFakeFakeFakeFake core@example"], "passwordHash": "$6$x"}]},
  "kernelArguments": {"shouldExist": ["quiet"]}
}`
	r := decodeOK(t, cfg)
	if r.Format != "ignition-3.4" {
		t.Errorf("Format = %q", r.Format)
	}
	hello := fileByPath(r, "/etc/hello")
	if hello == nil || string(hello.Data) != "hello\n" || string(hello.Append) != "more\n" || !hello.Overwrite ||
		hello.Mode != 0o755 || *hello.Owner != (rootfs.Owner{UID: 1000, GID: 10}) {
		t.Errorf("/etc/hello = %+v", hello)
	}
	remote := fileByPath(r, "/etc/remote")
	if remote == nil || string(remote.Data) != string(payload) || remote.Overwrite || remote.Mode != 0o644 {
		t.Errorf("/etc/remote = %+v", remote)
	}
	if gotHeader != "t0k" {
		t.Errorf("http header = %q", gotHeader)
	}
	if f := fileByPath(r, "/etc/only-append"); f == nil || f.HasContents || string(f.Append) != "x" {
		t.Errorf("/etc/only-append = %+v", f)
	}
	// Specs before 3.6 drop special mode bits, as Ignition does.
	if f := fileByPath(r, "/usr/local/bin/suid"); f == nil || f.Mode != 0o755 || f.Owner.UID != 2379 {
		t.Errorf("/usr/local/bin/suid = %+v", f)
	}
	if len(r.Directories) != 1 || r.Directories[0].Mode != 0o700 || *r.Directories[0].Owner != (rootfs.Owner{UID: 2379, GID: 2379}) {
		t.Errorf("directories = %+v", r.Directories)
	}
	if len(r.Links) != 2 || r.Links[0].Target != "../usr/share/zoneinfo/UTC" || !r.Links[1].Hard {
		t.Errorf("links = %+v", r.Links)
	}
	if len(r.Units) != 3 || !*r.Units[0].Enabled || len(r.Units[0].Dropins) != 1 || !r.Units[1].Mask || *r.Units[2].Enabled {
		t.Errorf("units = %+v", r.Units)
	}
	enable, disable := r.UnitStates()
	if strings.Join(enable, ",") != "hello.service" || strings.Join(disable, ",") != "sshd.service" {
		t.Errorf("UnitStates = %v, %v", enable, disable)
	}
	if len(r.SSHAuthorizedKeys["core"]) != 1 {
		t.Errorf("ssh keys = %v", r.SSHAuthorizedKeys)
	}
	for _, w := range []string{"kernelArguments", "passwd.users[core].{passwordHash}", "storage.disks", "storage.filesystems", "storage.luks", "storage.raid"} {
		if !hasWarning(r, w) {
			t.Errorf("no warning naming %s in %q", w, r.Warnings)
		}
	}
	if len(r.Config) != 0 {
		t.Errorf("Config = %q, want none", r.Config)
	}
}

func TestIgnitionSpecialModeBits36(t *testing.T) {
	r := decodeOK(t, `{"ignition":{"version":"3.6.0"},"storage":{"files":[{"path":"/usr/local/bin/suid","mode":2541,"contents":{"source":"data:,"}}]}}`)
	if f := fileByPath(r, "/usr/local/bin/suid"); f == nil || f.Mode != fs.ModeSetuid|0o755 {
		t.Errorf("/usr/local/bin/suid = %+v", f)
	}
}

func TestIgnitionMergeReplace(t *testing.T) {
	child := `{"ignition":{"version":"3.2.0"},"storage":{"files":[{"path":"/etc/child","contents":{"source":"data:,child"}}]}}`
	merge := `{"ignition":{"version":"3.4.0","config":{"merge":[{"source":"data:;base64,` + b64([]byte(child)) + `"}]}},
	  "storage":{"files":[{"path":"/etc/parent","contents":{"source":"data:,parent"}}]}}`
	r := decodeOK(t, merge)
	if fileByPath(r, "/etc/parent") == nil || fileByPath(r, "/etc/child") == nil {
		t.Errorf("merge: files = %+v", r.Files)
	}
	replace := `{"ignition":{"version":"3.4.0","config":{"replace":{"source":"data:;base64,` + b64([]byte(child)) + `"}}},
	  "storage":{"files":[{"path":"/etc/parent","contents":{"source":"data:,parent"}}]}}`
	r = decodeOK(t, replace)
	if fileByPath(r, "/etc/parent") != nil || fileByPath(r, "/etc/child") == nil {
		t.Errorf("replace: files = %+v", r.Files)
	}
}

func TestIgnitionEmptyConfigIsValid(t *testing.T) {
	r, err := Decode(context.Background(), "test", []byte(`{"ignition":{"version":"3.3.0"}}`), quickFetch, "")
	if err != nil || r.Format != "ignition-3.3" || len(r.Files) != 0 {
		t.Fatalf("Decode = %+v, %v", r, err)
	}
}
