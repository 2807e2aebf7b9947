package joinsecret

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"
)

// fakePort makes root/dev/vport0p1 a FIFO named name in sysfs, as
// FindVirtioPort finds a port without udev, after delay.
func fakePort(t *testing.T, root, name string, delay time.Duration) string {
	t.Helper()
	dev := filepath.Join(root, "dev/vport0p1")
	create := func() {
		sys := filepath.Join(root, "sys/class/virtio-ports/vport0p1")
		os.MkdirAll(sys, 0o755)
		os.MkdirAll(filepath.Dir(dev), 0o755)
		// The FIFO first: the name makes the port visible.
		if err := syscall.Mkfifo(dev, 0o600); err != nil {
			t.Error(err)
		}
		os.WriteFile(filepath.Join(sys, "name"), []byte(name+"\n"), 0o644)
	}
	if delay == 0 {
		create()
	} else {
		time.AfterFunc(delay, create)
	}
	return dev
}

// hostSide writes chunks to the port after connecting late by wait, with a
// pause between them, and never closes before the test ends: a port has no
// end of file.
func hostSide(t *testing.T, dev string, wait, pause time.Duration, chunks ...[]byte) {
	done := make(chan struct{})
	t.Cleanup(func() {
		close(done)
		// Unblock an open still waiting for a reader.
		if f, err := os.OpenFile(dev, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
	go func() {
		time.Sleep(wait)
		f, err := os.OpenFile(dev, os.O_WRONLY, 0) // blocks until a reader opens
		if err != nil {
			return
		}
		defer f.Close()
		for i, c := range chunks {
			if i > 0 {
				time.Sleep(pause)
			}
			if _, err := f.Write(c); err != nil {
				return
			}
		}
		<-done
	}()
}

func TestVirtioSerialSource(t *testing.T) {
	id := newIdentity(t)
	doc, _ := sample().Marshal()
	sealed, err := Seal(doc, []string{id.Recipient().String()})
	if err != nil {
		t.Fatal(err)
	}
	half := func(b []byte) [][]byte { return [][]byte{b[:len(b)/2], b[len(b)/2:]} }
	huge := append([]byte(`{"apiVersion":"`), bytes.Repeat([]byte("x"), maxDocument)...)
	const pause = 300 * time.Millisecond
	for _, tc := range []struct {
		name      string
		portAfter time.Duration // the port appears late
		hostAfter time.Duration // the host side connects late
		chunks    [][]byte
		ids       []age.Identity
		timeout   time.Duration
		says      []string // the error says; none: success
		within    time.Duration
	}{
		{name: "JSON in two chunks", chunks: half(doc)},
		{name: "sealed in two chunks", chunks: half(sealed), ids: []age.Identity{id}},
		{name: "white space before, more after", chunks: [][]byte{[]byte("\r\n \n"), doc, []byte("{\"next\":")}},
		{name: "sealed, footer in the last bytes", chunks: [][]byte{sealed[:len(sealed)-5], sealed[len(sealed)-5 : len(sealed)-1]}, ids: []age.Identity{id}},
		{name: "port appears late", portAfter: 500 * time.Millisecond, chunks: [][]byte{doc}},
		{name: "host connects late", hostAfter: 500 * time.Millisecond, chunks: half(doc)},
		{name: "sealed, no identity", chunks: [][]byte{sealed}, says: []string{"sealed (age), and no identity is configured"}},
		{name: "not a document", chunks: [][]byte{[]byte("<html>SECRET")}, says: []string{"neither a JSON document nor an age-armored one"}},
		{name: "not age armor", chunks: [][]byte{[]byte("-----BEGIN PGP MESSAGE-----\nSECRET\n")}, says: []string{"neither a JSON document nor an age-armored one"}},
		{name: "broken JSON", chunks: [][]byte{[]byte(`{"token": SECRET`)}, says: []string{"not a JSON document", "invalid character"}},
		{name: "too long", chunks: [][]byte{huge}, says: []string{"no whole document in the first 1048576 bytes"}},
		{name: "half a document", chunks: [][]byte{doc[:40]}, timeout: 800 * time.Millisecond,
			says: []string{"gave up after", "with 40 bytes read and no whole document", "deadline exceeded"}, within: 3 * time.Second},
		{name: "no port", portAfter: time.Hour, timeout: 600 * time.Millisecond,
			says: []string{"gave up after", `virtio-serial port "kubeboot.join" not found`}, within: 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if tc.portAfter < time.Hour {
				dev := fakePort(t, root, "kubeboot.join", tc.portAfter)
				hostSide(t, dev, tc.portAfter+tc.hostAfter+50*time.Millisecond, pause, tc.chunks...)
			}
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 20 * time.Second
			}
			start := time.Now()
			s, err := Load(context.Background(), VirtioSerialSource{Root: root, Name: "kubeboot.join", Timeout: timeout}, tc.ids)
			took := time.Since(start)
			if len(tc.says) == 0 {
				if err != nil || s.Token != sample().Token {
					t.Fatalf("%+v, %v", s.Redacted(), err)
				}
				if len(tc.chunks) > 1 && took < pause {
					t.Errorf("returned after %s, before the second chunk", took)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, want := range append(tc.says, "join secret from virtio-serial port kubeboot.join") {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not say %q: %v", want, err)
				}
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Errorf("error shows the document: %v", err)
			}
			if tc.within > 0 && took > tc.within {
				t.Errorf("returned after %s", took)
			}
			t.Log(err)
		})
	}
}

// TestVirtioSerialSourceCancel: cancelling the context ends a read that
// is blocked on a connected port with nothing to read.
func TestVirtioSerialSourceCancel(t *testing.T) {
	root := t.TempDir()
	dev := fakePort(t, root, "kubeboot.join", 0)
	hostSide(t, dev, 0, 0, []byte("  ")) // connected, then silent
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(500*time.Millisecond, cancel)
	start := time.Now()
	_, err := VirtioSerialSource{Root: root, Name: "kubeboot.join"}.Read(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("returned %s after the cancel", d)
	}
	t.Log(err)
}
