package host

import (
	"strings"
	"testing"
)

func TestHostsWithNode(t *testing.T) {
	for _, tc := range []struct {
		name, current string
		change        bool
	}{
		{"absent", "127.0.0.1 localhost\n", true},
		{"no final newline", "127.0.0.1 localhost", true},
		{"present", "127.0.0.1 localhost\n192.0.2.10 cp-1\n", false},
		{"present as alias, any case", "192.0.2.10 cp-1.example.com CP-1\n", false},
		{"only in a comment", "# cp-1 used to be here\n", true},
		{"empty", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, changed := HostsWithNode([]byte(tc.current), "192.0.2.10", "cp-1")
			if changed != tc.change {
				t.Fatalf("changed=%v, want %v", changed, tc.change)
			}
			if changed {
				got := string(f.Data)
				if !strings.HasPrefix(got, strings.TrimSuffix(tc.current, "\n")) || !strings.Contains(got, "\n192.0.2.10 cp-1 #") && !strings.HasPrefix(got, "192.0.2.10 cp-1 #") {
					t.Errorf("got %q", got)
				}
				if again, changed := HostsWithNode(f.Data, "192.0.2.10", "cp-1"); changed {
					t.Errorf("not idempotent: %q", again.Data)
				}
			}
		})
	}
}

func TestHostsWithoutNode(t *testing.T) {
	orig := "127.0.0.1 localhost\n"
	f, _ := HostsWithNode([]byte(orig), "192.0.2.10", "cp-1")
	data, changed, empty := HostsWithoutNode(f.Data)
	if !changed || empty || string(data) != orig {
		t.Errorf("got %q changed=%v empty=%v", data, changed, empty)
	}
	f, _ = HostsWithNode(nil, "192.0.2.10", "cp-1")
	if _, changed, empty := HostsWithoutNode(f.Data); !changed || !empty {
		t.Errorf("kubeboot-only file: changed=%v empty=%v", changed, empty)
	}
	if _, changed, _ := HostsWithoutNode([]byte(orig)); changed {
		t.Error("changed a file without kubeboot's line")
	}
}
