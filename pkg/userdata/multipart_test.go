package userdata

import (
	"fmt"
	"strings"
	"testing"
)

func mimeMsg(boundary string, parts ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=%q\nMIME-Version: 1.0\n\n", boundary)
	for _, p := range parts {
		fmt.Fprintf(&b, "--%s\n%s\n", boundary, p)
	}
	fmt.Fprintf(&b, "--%s--\n", boundary)
	return b.String()
}

func part(contentType, body string, headers ...string) string {
	h := "Content-Type: " + contentType + "\n"
	for _, x := range headers {
		h += x + "\n"
	}
	return h + "\n" + body
}

func TestMultipart(t *testing.T) {
	cc := "#cloud-config\nwrite_files:\n- path: /etc/from-mime\n  content: hi\n"
	msg := mimeMsg("==BOUNDARY==",
		part("text/cloud-config", cc, `Content-Disposition: attachment; filename="cloud-config.txt"`),
		part("text/x-shellscript", "#!/bin/sh\necho hi\n"),
		part("text/plain", b64([]byte(testConfig)), "Content-Transfer-Encoding: base64"),
		part("application/x-gzip", b64(gz(t, []byte("#cloud-config\nhostname: gz-node\n"))), "Content-Transfer-Encoding: base64"),
		part("text/plain", "#cloud-config\nwrite_files:\n- path: /etc/qp\n  content: a=3Db\n", "Content-Transfer-Encoding: quoted-printable"),
	)
	r := decodeOK(t, msg)
	if r.Format != FormatMultipart {
		t.Errorf("Format = %q", r.Format)
	}
	if f := fileByPath(r, "/etc/from-mime"); f == nil || string(f.Data) != "hi" {
		t.Errorf("/etc/from-mime = %+v", f)
	}
	if f := fileByPath(r, "/etc/qp"); f == nil || string(f.Data) != "a=b" {
		t.Errorf("/etc/qp = %+v", f)
	}
	if string(r.Config) != testConfig {
		t.Errorf("Config = %q", r.Config)
	}
	if r.Hostname != "gz-node" {
		t.Errorf("Hostname = %q", r.Hostname)
	}
	if !hasWarning(r, "text/x-shellscript") {
		t.Errorf("warnings = %q", r.Warnings)
	}
}

// nested wraps a cloud-config in n multipart messages.
func nested(n int) string {
	body := part("text/cloud-config", "#cloud-config\nhostname: deep\n")
	for i := 0; i < n; i++ {
		b := fmt.Sprintf("b%d", i)
		inner := fmt.Sprintf("--%s\n%s\n--%s--\n", b, body, b)
		body = fmt.Sprintf("Content-Type: multipart/mixed; boundary=%q\n\n%s", b, inner)
	}
	return body
}

func TestMultipartNesting(t *testing.T) {
	r := decodeOK(t, nested(MaxMultipartDepth))
	if r.Hostname != "deep" {
		t.Errorf("Hostname = %q", r.Hostname)
	}
	if _, err := Decode(t.Context(), "test", []byte(nested(MaxMultipartDepth+1)), quickFetch, ""); err == nil ||
		!strings.Contains(err.Error(), "nested deeper than 4") {
		t.Errorf("depth %d: err = %v", MaxMultipartDepth+1, err)
	}
}
