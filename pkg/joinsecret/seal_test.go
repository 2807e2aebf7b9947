package joinsecret

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
)

func newIdentity(t *testing.T) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// secretsIn are the strings no error may show: the token's secret part,
// the certificate key and the identities.
func secretsIn(ids ...*age.X25519Identity) []string {
	s := []string{"0123456789abcdef", strings.Repeat("ab", 32)}
	for _, id := range ids {
		s = append(s, id.String())
	}
	return s
}

func TestSealOpen(t *testing.T) {
	alice, bob, eve := newIdentity(t), newIdentity(t), newIdentity(t)
	doc, _ := sample().Marshal()
	seal := func(doc []byte, ids ...*age.X25519Identity) []byte {
		var rs []string
		for _, id := range ids {
			rs = append(rs, id.Recipient().String())
		}
		sealed, err := Seal(doc, rs)
		if err != nil {
			t.Fatal(err)
		}
		return sealed
	}
	toAlice := seal(doc, alice)
	// Flip one base64 character in the middle of the payload: armor stays
	// valid, the payload no longer authenticates.
	tampered := bytes.Clone(toAlice)
	lines := bytes.Split(tampered, []byte("\n"))
	mid := lines[len(lines)-4] // a full line of the payload
	if mid[10] == 'A' {
		mid[10] = 'B'
	} else {
		mid[10] = 'A'
	}
	badArmor := bytes.Replace(toAlice, []byte("\n"), []byte("\n!!"), 2)
	future := seal([]byte(strings.Replace(string(doc), APIVersion, "kubeboot.dev/v9", 1)), alice)

	for _, tc := range []struct {
		name   string
		data   []byte
		ids    []age.Identity
		is     error  // errors.Is, when set
		says   string // in the error, when set
		wantOK bool
	}{
		{name: "one recipient", data: toAlice, ids: []age.Identity{alice}, wantOK: true},
		{name: "two recipients, first opens", data: seal(doc, alice, bob), ids: []age.Identity{alice}, wantOK: true},
		{name: "two recipients, second opens", data: seal(doc, alice, bob), ids: []age.Identity{bob}, wantOK: true},
		{name: "one of several identities opens", data: toAlice, ids: []age.Identity{eve, alice}, wantOK: true},
		{name: "leading white space", data: append([]byte("\n  \n"), toAlice...), ids: []age.Identity{alice}, wantOK: true},
		{name: "plain, no identity", data: doc, wantOK: true},
		{name: "wrong identity", data: toAlice, ids: []age.Identity{eve}, is: ErrNoIdentityMatch, says: "no configured identity opens it"},
		{name: "sealed, no identity", data: toAlice, is: ErrSealed, says: "set join.identity or join.identityFile"},
		{name: "identity, plain document", data: doc, ids: []age.Identity{alice}, is: ErrNotSealed, says: "not sealed"},
		{name: "tampered payload", data: tampered, ids: []age.Identity{alice}, says: "tampered"},
		{name: "damaged armor", data: badArmor, ids: []age.Identity{alice}, says: "invalid age armor"},
		{name: "truncated", data: toAlice[:len(toAlice)/2], ids: []age.Identity{alice}, says: "sealed document"},
		{name: "unknown version once opened", data: future, ids: []age.Identity{alice}, says: "unsupported document kubeboot.dev/v9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open("test", tc.data, tc.ids)
			if tc.wantOK {
				if err != nil || s.Token != sample().Token || s.CertificateKey != sample().CertificateKey {
					t.Fatalf("%+v, %v", s.Redacted(), err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error is not %v: %v", tc.is, err)
			}
			if !strings.Contains(err.Error(), tc.says) || !strings.Contains(err.Error(), "join secret from test") {
				t.Errorf("error does not say %q and name the source: %v", tc.says, err)
			}
			for _, secret := range append(secretsIn(alice, bob, eve), string(tc.data[len(tc.data)/2:][:20])) {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error shows %q: %v", secret, err)
				}
			}
			t.Log(err)
		})
	}
}

func TestSealRefuses(t *testing.T) {
	id := newIdentity(t)
	for _, tc := range []struct {
		name       string
		recipients []string
		says       string
	}{
		{"none", nil, "no recipients"},
		{"not a key", []string{id.Recipient().String(), "ssh-ed25519 AAAA"}, "recipient 1: not an age X25519 public key"},
		{"a private key", []string{id.String()}, "recipient 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Seal([]byte("{}"), tc.recipients)
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("got %v, want %q", err, tc.says)
			}
			if strings.Contains(err.Error(), id.String()) {
				t.Errorf("error shows the private key: %v", err)
			}
		})
	}
}

// TestSealStable: the sealing is kept while the document and recipients
// are unchanged, and made again when either changes.
func TestSealStable(t *testing.T) {
	a, b := newIdentity(t), newIdentity(t)
	doc, _ := sample().Marshal()
	other := sample()
	other.Token = "abcdef.fedcba9876543210"
	doc2, _ := other.Marshal()
	one := []string{a.Recipient().String()}
	two := []string{a.Recipient().String(), b.Recipient().String()}

	sealed, state, err := SealStable(doc, one, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := Open("state", sealed, []age.Identity{a}); err != nil || s.Token != sample().Token {
		t.Fatalf("first sealing: %+v, %v", s.Redacted(), err)
	}
	for _, tc := range []struct {
		name       string
		doc        []byte
		recipients []string
		prev       []byte
		same       bool
	}{
		{"unchanged", doc, one, state, true},
		{"document changed", doc2, one, state, false},
		{"recipient added", doc, two, state, false},
		{"no state", doc, one, nil, false},
		{"damaged state", doc, one, state[:40], false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, next, err := SealStable(tc.doc, tc.recipients, tc.prev)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(got, sealed) != tc.same || bytes.Equal(next, state) != tc.same {
				t.Errorf("kept the sealing: %v, want %v", bytes.Equal(got, sealed), tc.same)
			}
			if !bytes.HasSuffix(next, got) {
				t.Errorf("state does not end with the sealing")
			}
			s, err := Open("state", got, []age.Identity{a})
			if err != nil || s.Token != func() string { p, _ := Parse("doc", tc.doc); return p.Token }() {
				t.Errorf("sealing opens to %+v, %v", s.Redacted(), err)
			}
		})
	}
}

func TestParseIdentities(t *testing.T) {
	a, b := newIdentity(t), newIdentity(t)
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keygen := write("keygen.txt", "# created: 2025-01-01T00:00:00Z\n# public key: "+a.Recipient().String()+"\n"+a.String()+"\n")
	broken := write("broken.txt", "# comment\n"+b.String()[:30]+"\n")
	empty := write("empty.txt", "# nothing\n\n")
	for _, tc := range []struct {
		name         string
		inline, file string
		want         int
		says         string
	}{
		{name: "none", want: 0},
		{name: "inline", inline: a.String(), want: 1},
		{name: "inline with white space", inline: "\n  " + a.String() + "  \n", want: 1},
		{name: "inline, two", inline: a.String() + "\n" + b.String(), want: 2},
		{name: "age-keygen file", file: keygen, want: 1},
		{name: "inline and file", inline: b.String(), file: keygen, want: 2},
		{name: "inline not a key", inline: "AGE-SECRET-KEY-1NOTAKEY" + b.String()[23:], says: "join.identity: line 1: not an age identity"},
		{name: "file line 2 broken", file: broken, says: "join.identityFile " + broken + ": line 2: not an age identity"},
		{name: "file without keys", file: empty, says: "no age identity in it"},
		{name: "missing file", file: filepath.Join(dir, "missing.txt"), says: "join.identityFile: open " + filepath.Join(dir, "missing.txt")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ids, err := ParseIdentities(tc.inline, tc.file)
			if tc.says == "" {
				if err != nil || len(ids) != tc.want {
					t.Fatalf("%d identities, %v; want %d", len(ids), err, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("got %v, want %q", err, tc.says)
			}
			for _, key := range []string{a.String()[16:40], b.String()[16:40]} {
				if strings.Contains(err.Error(), key) {
					t.Errorf("error shows key material: %v", err)
				}
			}
		})
	}
}
