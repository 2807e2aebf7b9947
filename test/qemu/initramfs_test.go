package qemu

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
)

func writeModDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		write(t, filepath.Join(dir, name), []byte(data))
	}
	return dir
}

func TestClosure(t *testing.T) {
	dir := writeModDir(t, map[string]string{
		"modules.dep": `kernel/net/netfilter/ipvs/ip_vs.ko: kernel/net/netfilter/nf_conntrack.ko kernel/lib/libcrc32c.ko
kernel/net/netfilter/nf_conntrack.ko: kernel/lib/libcrc32c.ko
kernel/lib/libcrc32c.ko:
kernel/crypto/crc32c_generic.ko:
kernel/arch/x86/crypto/crc32c-intel.ko:
kernel/fs/overlayfs/overlay.ko.xz:
kernel/unrelated.ko:
`,
		"modules.alias": `alias crc32c crc32c_intel
alias crc32c crc32c_generic
alias fs-overlay overlay
alias pci:v00001AF4d* virtio_pci
`,
		"modules.softdep": "# comment\nsoftdep libcrc32c pre: crc32c\n",
		"modules.builtin": "kernel/net/bridge/br_netfilter.ko\n",
	})
	ix, err := readModIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		names   []string
		want    []string
		wantErr bool
	}{
		{[]string{"ip_vs"}, []string{
			"kernel/arch/x86/crypto/crc32c-intel.ko", "kernel/crypto/crc32c_generic.ko", "kernel/lib/libcrc32c.ko",
			"kernel/net/netfilter/ipvs/ip_vs.ko", "kernel/net/netfilter/nf_conntrack.ko"}, false},
		{[]string{"fs-overlay", "br_netfilter"}, []string{"kernel/fs/overlayfs/overlay.ko.xz"}, false},
		{[]string{"crc32c-intel"}, []string{"kernel/arch/x86/crypto/crc32c-intel.ko"}, false},
		{[]string{"nosuch"}, nil, true},
	} {
		got, err := ix.closure(tc.names)
		if (err != nil) != tc.wantErr || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("closure(%v) = %v, %v; want %v (error %v)", tc.names, got, err, tc.want, tc.wantErr)
		}
	}
}

// readNewc parses a newc archive: name → (mode, data).
func readNewc(t *testing.T, r io.Reader) map[string][2]string {
	t.Helper()
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][2]string{}
	field := func(hdr []byte, i int) int {
		v, err := strconv.ParseUint(string(hdr[6+8*i:14+8*i]), 16, 32)
		if err != nil {
			t.Fatalf("header field %d: %v", i, err)
		}
		return int(v)
	}
	align := func(n int) int { return (n + 3) &^ 3 }
	for off := 0; ; {
		hdr := data[off : off+110]
		if string(hdr[:6]) != "070701" {
			t.Fatalf("offset %d: magic %q", off, hdr[:6])
		}
		size, nameSize := field(hdr, 6), field(hdr, 11)
		name := string(data[off+110 : off+110+nameSize-1])
		dataOff := align(off + 110 + nameSize)
		if name == "TRAILER!!!" {
			return out
		}
		out[name] = [2]string{strconv.FormatInt(int64(field(hdr, 1)), 8) + ":" + strconv.Itoa(field(hdr, 9)) + "," + strconv.Itoa(field(hdr, 10)), string(data[dataOff : dataOff+size])}
		off = align(dataOff + size)
	}
}

func TestWriteInitramfs(t *testing.T) {
	stage := t.TempDir()
	write(t, filepath.Join(stage, "init"), []byte("#!init"))
	write(t, filepath.Join(stage, "usr/bin/kubeboot"), []byte("kubeboot binary, 27 bytes.."))
	if err := os.Chmod(filepath.Join(stage, "init"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("usr/bin", filepath.Join(stage, "bin")); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "initramfs.cpio.gz")
	if err := WriteInitramfs(stage, out); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	got := readNewc(t, gz)
	want := map[string][2]string{
		"init":             {"100755:0,0", "#!init"},
		"usr":              {"40755:0,0", ""},
		"usr/bin":          {"40755:0,0", ""},
		"usr/bin/kubeboot": {"100644:0,0", "kubeboot binary, 27 bytes.."},
		"bin":              {"120777:0,0", "usr/bin"},
		"dev":              {"40755:0,0", ""},
		"dev/console":      {"20600:5,1", ""},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("archive:\n got %v\nwant %v", got, want)
	}
}

func TestBzImagePayloadRejects(t *testing.T) {
	if _, err := bzImagePayload(bytes.Repeat([]byte{0}, 4096)); err == nil {
		t.Error("accepted a file that is no bzImage")
	}
}
