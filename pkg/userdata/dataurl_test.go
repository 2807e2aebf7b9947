package userdata

import (
	"testing"
)

func TestParseDataURL(t *testing.T) {
	for _, tc := range []struct {
		in, want, media string
		b64, ok         bool
	}{
		{"data:,hello%20world", "hello world", "", false, true},
		{"data:,", "", "", false, true},
		{"data:text/plain;charset=utf-8,a%2Cb", "a,b", "text/plain;charset=utf-8", false, true},
		{"data:;base64,aGVsbG8=", "hello", "", true, true},
		{"data:;base64,aGVsbG8", "hello", "", true, true},
		{"DATA:application/octet-stream;BASE64,aGk=", "hi", "application/octet-stream", true, true},
		{"data:;base64,aGVs%0AbG8=", "hello", "", true, true},
		{"data:base64,aGk=", "aGk=", "base64", false, true},
		{"data:hello", "", "", false, false},
		{"http://x", "", "", false, false},
		{"data:,%zz", "", "", false, false},
		{"data:;base64,###", "", "", true, false},
		{"data:text/ plain,x", "", "", false, false},
	} {
		d, err := ParseDataURL(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseDataURL(%q): err = %v, want ok %v", tc.in, err, tc.ok)
			continue
		}
		if err != nil {
			continue
		}
		if string(d.Data) != tc.want || d.MediaType != tc.media || d.Base64 != tc.b64 {
			t.Errorf("ParseDataURL(%q) = %+v", tc.in, d)
		}
		if back, err := ParseDataURL(d.String()); err != nil || string(back.Data) != string(d.Data) {
			t.Errorf("round trip of %q: %v, %v", tc.in, back, err)
		}
	}
}
