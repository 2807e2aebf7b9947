package userdata

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
)

// DataURL is a decoded RFC 2397 data: URL.
type DataURL struct {
	MediaType string // as given, "" when omitted (text/plain by the RFC)
	Base64    bool
	Data      []byte
}

// ParseDataURL decodes a data: URL: "data:[<mediatype>][;base64],<data>",
// the data percent-encoded or base64 (padded or not).
func ParseDataURL(s string) (*DataURL, error) {
	if len(s) > MaxUserdata*2 {
		return nil, fmt.Errorf("data URL is larger than %d MiB", MaxUserdata*2>>20)
	}
	if len(s) < 5 || !strings.EqualFold(s[:5], "data:") {
		return nil, fmt.Errorf("not a data URL")
	}
	header, payload, ok := strings.Cut(s[5:], ",")
	if !ok {
		return nil, fmt.Errorf("data URL: no comma before the data")
	}
	d := &DataURL{}
	params := strings.Split(header, ";")
	if last := params[len(params)-1]; len(params) > 1 && strings.EqualFold(last, "base64") {
		d.Base64 = true
		params = params[:len(params)-1]
	}
	d.MediaType = strings.Join(params, ";")
	if strings.ContainsAny(d.MediaType, " \t\r\n") {
		return nil, fmt.Errorf("data URL: white space in the media type")
	}
	raw, err := url.PathUnescape(payload)
	if err != nil {
		return nil, fmt.Errorf("data URL: %w", err)
	}
	if !d.Base64 {
		d.Data = []byte(raw)
		return d, nil
	}
	raw = strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, raw)
	enc := base64.StdEncoding
	if len(raw)%4 != 0 {
		enc = base64.RawStdEncoding
	}
	if d.Data, err = enc.DecodeString(raw); err != nil {
		return nil, fmt.Errorf("data URL: base64: %w", err)
	}
	return d, nil
}

func isDataURL(s string) bool {
	return len(s) >= 5 && strings.EqualFold(s[:5], "data:")
}

// String encodes d again, base64 or percent-encoded as d.Base64 says.
func (d *DataURL) String() string {
	if d.Base64 {
		return "data:" + d.MediaType + ";base64," + base64.StdEncoding.EncodeToString(d.Data)
	}
	return "data:" + d.MediaType + "," + url.PathEscape(string(d.Data))
}
