package userdata

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseCmdline(t *testing.T) {
	p := ParseCmdline(`BOOT_IMAGE=/vmlinuz root=UUID=x ro quiet ignition.config.url=https://h/c.ign?a=1 ds="nocloud;s=http://10.0.2.2/seed/" console=ttyS0 console=tty0` + "\n")
	if p["ignition.config.url"] != "https://h/c.ign?a=1" || p["ds"] != "nocloud;s=http://10.0.2.2/seed/" || p["console"] != "tty0" {
		t.Errorf("ParseCmdline = %v", p)
	}
	if _, ok := p["quiet"]; !ok {
		t.Errorf("flag without value missing: %v", p)
	}
	ds, ok := ParseDatasource(`nocloud\;s=file:///var/seed/\;h=node-a;i=iid-1`)
	if !ok || ds.SeedFrom != "file:///var/seed/" || ds.Hostname != "node-a" || ds.InstanceID != "iid-1" {
		t.Errorf("ParseDatasource = %+v, %v", ds, ok)
	}
	if _, ok := ParseDatasource("ec2"); ok {
		t.Error("ds=ec2 taken for nocloud")
	}
}

// sourcesRoot builds a fake host: /proc/cmdline, a fw_cfg tree, a NoCloud
// seed directory and a baked configuration, each only if given.
func sourcesRoot(t *testing.T, cmdline, fwcfg, baked string, seed map[string]string) (Sources, string) {
	root := testRoot(t)
	files := map[string]string{}
	if cmdline != "" {
		files["proc/cmdline"] = cmdline + "\n"
	}
	if fwcfg != "" {
		files["sys/firmware/qemu_fw_cfg/by_name/opt/com.coreos/config/raw"] = fwcfg
	}
	if baked != "" {
		files["etc/kubeboot/config.yaml"] = baked
	}
	for name, data := range seed {
		files["seed/"+name] = data
	}
	writeTree(t, root, files)
	s := Sources{Root: root, Fetch: quickFetch}
	if seed != nil {
		s.NoCloud = DirSeed{Path: filepath.Join(root, "seed"), Name: "/seed"}
	}
	return s, root
}

func TestFindPrecedence(t *testing.T) {
	ignCfg := func(marker string) string {
		return `{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"/etc/` + marker + `","contents":{"source":"data:,x"}}]}}`
	}
	fileArg := filepath.Join(t.TempDir(), "userdata")
	os.WriteFile(fileArg, []byte(ignCfg("from-file")), 0o644)
	dataURL := "data:;base64," + b64([]byte(ignCfg("from-cmdline")))
	seed := map[string]string{"user-data": "#cloud-config\nwrite_files:\n- path: /etc/from-nocloud\n", "meta-data": "instance-id: iid-1\nlocal-hostname: node-1\n"}

	for _, tc := range []struct {
		name                 string
		file, cmdline, fwcfg string
		baked                string
		seed                 map[string]string
		wantSource, wantFile string
	}{
		{"file wins", fileArg, "ignition.config.url=" + dataURL, ignCfg("from-fwcfg"), testConfig, seed, "file " + fileArg, "/etc/from-file"},
		{"cmdline over fw_cfg", "", "ro ignition.config.url=" + dataURL, ignCfg("from-fwcfg"), testConfig, seed, "kernel command line ignition.config.url=data: URL", "/etc/from-cmdline"},
		{"fw_cfg over nocloud", "", "ro quiet", ignCfg("from-fwcfg"), testConfig, seed, "fw_cfg opt/com.coreos/config", "/etc/from-fwcfg"},
		{"nocloud over baked", "", "ro quiet", "", testConfig, seed, "nocloud /seed", "/etc/from-nocloud"},
		{"baked last", "", "ro quiet", "", testConfig, nil, "baked configuration /etc/kubeboot/config.yaml", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := sourcesRoot(t, tc.cmdline, tc.fwcfg, tc.baked, tc.seed)
			s.File = tc.file
			r, err := Find(context.Background(), s)
			if err != nil || r == nil {
				t.Fatalf("Find = %+v, %v", r, err)
			}
			if !strings.HasPrefix(r.Source, tc.wantSource) {
				t.Errorf("Source = %q, want %q", r.Source, tc.wantSource)
			}
			if tc.wantFile != "" && fileByPath(r, tc.wantFile) == nil {
				t.Errorf("no %s in %+v", tc.wantFile, r.Files)
			}
			if tc.wantFile == "" && string(r.Config) != testConfig {
				t.Errorf("Config = %q", r.Config)
			}
		})
	}
}

func TestFindNothing(t *testing.T) {
	s, _ := sourcesRoot(t, "ro quiet", "", "", nil)
	r, err := Find(context.Background(), s)
	if r != nil || err != nil {
		t.Fatalf("Find = %+v, %v; want nil, nil", r, err)
	}
	// No /proc/cmdline at all is no userdata either.
	r, err = Find(context.Background(), Sources{Root: t.TempDir()})
	if r != nil || err != nil {
		t.Fatalf("Find on an empty root = %+v, %v", r, err)
	}
}

func TestFindMissingFileIsAnError(t *testing.T) {
	r, err := Find(context.Background(), Sources{Root: t.TempDir(), File: "/nonexistent/userdata"})
	if r != nil || err == nil || !strings.Contains(err.Error(), "file /nonexistent/userdata: no such file") {
		t.Fatalf("Find = %+v, %v", r, err)
	}
}

func TestFindFwCfgLoadsModule(t *testing.T) {
	s, root := sourcesRoot(t, "ro", "", "", nil)
	called := 0
	s.LoadFwCfgModule = func() error {
		called++
		// What loading qemu_fw_cfg does: the tree appears.
		writeTree(t, root, map[string]string{
			"sys/firmware/qemu_fw_cfg/by_name/opt/org.flatcar-linux/config/raw": ignConfigFile("3.3.0", "data:,"+url.PathEscape(testConfig), ""),
		})
		return nil
	}
	r, err := Find(context.Background(), s)
	if err != nil || r == nil {
		t.Fatalf("Find = %+v, %v", r, err)
	}
	if called != 1 || r.Source != "fw_cfg opt/org.flatcar-linux/config" || string(r.Config) != testConfig {
		t.Errorf("called %d, Result %+v", called, r)
	}
	// With the tree present the module is not loaded again.
	if _, err := Find(context.Background(), s); err != nil || called != 1 {
		t.Errorf("second Find: called %d, err %v", called, err)
	}
}

func TestFindBadSourceStops(t *testing.T) {
	// Bad fw_cfg userdata is an error even though a baked config exists.
	s, _ := sourcesRoot(t, "ro", `{"ignition":{"version":"9.9.9"}}`, testConfig, nil)
	r, err := Find(context.Background(), s)
	if r != nil || err == nil || !strings.HasPrefix(err.Error(), "userdata: fw_cfg opt/com.coreos/config: ") {
		t.Fatalf("Find = %+v, %v", r, err)
	}
}

func TestFindCmdlineURL(t *testing.T) {
	payload := []byte(ignConfigFile("3.4.0", "data:;base64,"+b64(gz(t, []byte(testConfig))), `,"compression":"gzip"`))
	srv := flakyServer(t, 3, payload)
	s, _ := sourcesRoot(t, "ro ignition.config.url="+srv.URL+"/node.ign?sig=s3cr3t ds=nocloud;s=http://127.0.0.1:1/", "", "", nil)
	s.Fetch.AttemptTimeout = 500 * time.Millisecond
	r, err := Find(context.Background(), s)
	if err != nil {
		t.Fatalf("Find: %v", err)
	}
	if want := "kernel command line ignition.config.url=" + srv.URL + "/node.ign (query redacted)"; r.Source != want {
		t.Errorf("Source = %q, want %q", r.Source, want)
	}
	if string(r.Config) != testConfig || !hasWarning(r, "ds=nocloud") {
		t.Errorf("Result = %+v", r)
	}
	if srv.count() != 4 {
		t.Errorf("%d requests", srv.count())
	}
}

func TestFindCmdlineURLFails(t *testing.T) {
	srv := flakyServer(t, 0, nil)
	s, _ := sourcesRoot(t, "ignition.config.url="+srv.URL+"/missing?token=s3cr3t", "", testConfig, nil)
	r, err := Find(context.Background(), s)
	if r != nil || err == nil {
		t.Fatalf("Find = %+v, %v", r, err)
	}
	if strings.Contains(err.Error(), "s3cr3t") || !strings.Contains(err.Error(), srv.URL+"/missing (query redacted)") {
		t.Errorf("err = %v", err)
	}
}

func TestFindCmdlineNoCloud(t *testing.T) {
	userData := "#cloud-config\nkubeboot: |\n" + indent(testConfig, "  ")
	t.Run("file", func(t *testing.T) {
		s, root := sourcesRoot(t, `ds=nocloud;s=file:///var/lib/seed/;h=cmdline-host`, "", "", nil)
		writeTree(t, root, map[string]string{"var/lib/seed/user-data": userData, "var/lib/seed/meta-data": "instance-id: iid-7\nlocal-hostname: md-host\n"})
		r, err := Find(context.Background(), s)
		if err != nil {
			t.Fatalf("Find: %v", err)
		}
		if r.Source != "kernel command line ds=nocloud;s=file:///var/lib/seed/" || r.Hostname != "cmdline-host" || r.InstanceID != "iid-7" || string(r.Config) != testConfig {
			t.Errorf("Result = %+v", r)
		}
	})
	t.Run("http", func(t *testing.T) {
		srv := flakyServer(t, 1, []byte(userData))
		s, _ := sourcesRoot(t, "ds=nocloud-net;s="+srv.URL+"/seed/", "", "", nil)
		r, err := Find(context.Background(), s)
		if err != nil {
			t.Fatalf("Find: %v", err)
		}
		if string(r.Config) != testConfig {
			t.Errorf("Result = %+v", r)
		}
	})
}

func TestFindNoCloudMetaData(t *testing.T) {
	seed := map[string]string{
		"user-data":      "#cloud-config\nhostname: cc-host\n",
		"meta-data":      "instance-id: iid-abc\nlocal-hostname: md-host\npublic-keys: [x]\n",
		"network-config": "version: 2\n",
	}
	s, _ := sourcesRoot(t, "ro", "", "", seed)
	r, err := Find(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if r.InstanceID != "iid-abc" || r.Hostname != "cc-host" || !hasWarning(r, "public-keys") || !hasWarning(r, "network-config") {
		t.Errorf("Result = %+v", r)
	}
	// meta-data only.
	s, _ = sourcesRoot(t, "ro", "", "", map[string]string{"meta-data": "instance-id: i-1\nlocal-hostname: only-md\n"})
	if r, err = Find(context.Background(), s); err != nil || r.Hostname != "only-md" || r.Format != "" {
		t.Errorf("meta-data only: %+v, %v", r, err)
	}
	// Bad meta-data.
	s, _ = sourcesRoot(t, "ro", "", "", map[string]string{"meta-data": "local-hostname: bad_host!\n"})
	if r, err = Find(context.Background(), s); err == nil || r != nil || !strings.Contains(err.Error(), "nocloud /seed: meta-data: local-hostname") {
		t.Errorf("bad meta-data: %+v, %v", r, err)
	}
}
