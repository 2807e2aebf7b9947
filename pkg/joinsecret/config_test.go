package joinsecret

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeboot/kubeboot/pkg/config"
)

func TestFromConfig(t *testing.T) {
	id := newIdentity(t)
	doc, _ := sample().Marshal()
	sealed, _ := Seal(doc, []string{id.Recipient().String()})
	dir := t.TempDir()
	idFile := filepath.Join(dir, "identity.txt")
	os.WriteFile(idFile, []byte(id.String()+"\n"), 0o600)
	sealedFile := filepath.Join(dir, "join-secret.age")
	os.WriteFile(sealedFile, sealed, 0o600)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(sealed) }))
	defer srv.Close()
	minute := &metav1.Duration{Duration: time.Minute}

	for _, tc := range []struct {
		name string
		js   config.JoinSource
		want Source // compared when set
		ids  int
		says string // FromConfig's error
		load bool   // Load must then succeed
	}{
		{name: "inline plain", js: config.JoinSource{Secret: string(doc)}, want: InlineSource{Data: doc}, load: true},
		{name: "inline sealed, inline identity", js: config.JoinSource{Secret: string(sealed), Identity: id.String()}, ids: 1, load: true},
		{name: "file sealed, identity file", js: config.JoinSource{Source: sealedFile, IdentityFile: idFile}, want: FileSource{Path: sealedFile}, ids: 1, load: true},
		{name: "http, default timeout", js: config.JoinSource{Source: srv.URL + "/join", Identity: id.String()},
			want: HTTPSource{URL: srv.URL + "/join", Timeout: DefaultJoinTimeout}, ids: 1, load: true},
		{name: "http, timeout", js: config.JoinSource{Source: srv.URL + "/join", Identity: id.String(), Timeout: minute},
			want: HTTPSource{URL: srv.URL + "/join", Timeout: time.Minute}, ids: 1},
		{name: "virtio-serial under the root", js: config.JoinSource{Source: "virtio-serial:kubeboot.join", Timeout: minute},
			want: VirtioSerialSource{Root: "/tmp/root", Name: "kubeboot.join", Timeout: time.Minute}},
		{name: "both", js: config.JoinSource{Source: sealedFile, Secret: string(doc)}, says: "either join.source or join.secret"},
		{name: "neither", js: config.JoinSource{Identity: id.String()}, says: "neither join.source nor join.secret"},
		{name: "bad source", js: config.JoinSource{Source: "ftp://host/x?sig=SECRET"}, says: "join.source: join secret source ftp://host/x?<redacted>: unsupported scheme"},
		{name: "bad identity", js: config.JoinSource{Secret: string(sealed), Identity: "AGE-SECRET-KEY-1LEAKME"}, says: "join.identity: line 1: not an age identity"},
		{name: "missing identity file", js: config.JoinSource{Secret: string(sealed), IdentityFile: filepath.Join(dir, "none")}, says: "join.identityFile: open " + filepath.Join(dir, "none")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, ids, err := FromConfig(tc.js, "/tmp/root")
			if tc.says != "" {
				if err == nil || !strings.Contains(err.Error(), tc.says) {
					t.Fatalf("got %v, want %q", err, tc.says)
				}
				if strings.Contains(err.Error(), "sig=SECRET") || strings.Contains(err.Error(), "LEAKME") {
					t.Errorf("error shows a secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(ids) != tc.ids {
				t.Errorf("%d identities, want %d", len(ids), tc.ids)
			}
			if tc.want != nil && src.String() != tc.want.String() {
				t.Errorf("source %s, want %s", src, tc.want)
			}
			if _, inline := tc.want.(InlineSource); tc.want != nil && !inline && src != tc.want {
				t.Errorf("source %#v, want %#v", src, tc.want)
			}
			if tc.load {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				s, err := Load(ctx, src, ids)
				if err != nil || s.Token != sample().Token {
					t.Errorf("load: %+v, %v", s.Redacted(), err)
				}
			}
		})
	}
}
