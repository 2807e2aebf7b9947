package userdata

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/textproto"
	"strings"
)

// maxParts bounds the parts of one multipart message.
const maxParts = 256

// isMIME tells whether text starts with MIME headers, as cloud-init's
// multipart user-data does.
func isMIME(text []byte) bool {
	return hasPrefixFold(text, "content-type:") || hasPrefixFold(text, "mime-version:")
}

// multipart decodes a MIME message (cloud-init's multipart user-data);
// depth counts this message and the ones around it.
func (d *decoder) multipart(text []byte, depth int) error {
	if depth > MaxMultipartDepth {
		return fmt.Errorf("multipart: nested deeper than %d", MaxMultipartDepth)
	}
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(text)))
	header, err := tp.ReadMIMEHeader()
	if err != nil && !(errors.Is(err, io.EOF) && len(header) > 0) {
		return fmt.Errorf("multipart: headers: %v", err)
	}
	body, err := io.ReadAll(tp.R)
	if err != nil {
		return fmt.Errorf("multipart: %v", err)
	}
	return d.entity(header, body, depth, "message")
}

// entity decodes one MIME entity by its content type.
func (d *decoder) entity(h textproto.MIMEHeader, body []byte, depth int, name string) error {
	ct := h.Get("Content-Type")
	mediaType, params := "text/plain", map[string]string{}
	if ct != "" {
		var err error
		if mediaType, params, err = mime.ParseMediaType(ct); err != nil {
			return fmt.Errorf("multipart: %s: Content-Type %q: %v", name, ct, err)
		}
	}
	body, err := transferDecode(h.Get("Content-Transfer-Encoding"), body)
	if err != nil {
		return fmt.Errorf("multipart: %s: %v", name, err)
	}
	switch {
	case strings.HasPrefix(mediaType, "multipart/"):
		if depth > MaxMultipartDepth {
			return fmt.Errorf("multipart: nested deeper than %d", MaxMultipartDepth)
		}
		boundary := params["boundary"]
		if boundary == "" {
			return fmt.Errorf("multipart: %s: %s without a boundary", name, mediaType)
		}
		return d.parts(body, boundary, depth, name)
	case mediaType == "message/rfc822":
		return d.multipart(body, depth+1)
	case mediaType == "text/cloud-config":
		return d.cloudConfig(body)
	case mediaType == "application/gzip", mediaType == "application/x-gzip":
		data, err := d.unzip.gunzip(body)
		if err != nil {
			return fmt.Errorf("multipart: %s: %v", name, err)
		}
		return d.detectPart(data, depth, name)
	case mediaType == "text/plain", mediaType == "text/x-not-multipart", mediaType == "application/octet-stream",
		mediaType == "application/json", mediaType == "application/vnd.coreos.ignition+json",
		strings.HasSuffix(mediaType, "/yaml"), strings.HasSuffix(mediaType, "/x-yaml"):
		return d.detectPart(body, depth, name)
	}
	d.warnf("multipart: %s (%s): not applied (kubeboot runs no scripts and handles only cloud-config, Ignition and kubeboot YAML)", name, mediaType)
	return nil
}

// detectPart decodes a part whose content type does not say its format.
func (d *decoder) detectPart(data []byte, depth int, name string) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if _, err := d.decode(data, depth); err != nil {
		return fmt.Errorf("multipart: %s: %w", name, err)
	}
	return nil
}

func (d *decoder) parts(body []byte, boundary string, depth int, name string) error {
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	for i := 1; ; i++ {
		if i > maxParts {
			return fmt.Errorf("multipart: %s: more than %d parts", name, maxParts)
		}
		p, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("multipart: %s: part %d: %v", name, i, err)
		}
		data, err := io.ReadAll(p)
		if err != nil {
			return fmt.Errorf("multipart: %s: part %d: %v", name, i, err)
		}
		partName := fmt.Sprintf("part %d", i)
		if name != "message" {
			partName = name + "." + partName
		}
		if fn := p.FileName(); fn != "" {
			partName += " (" + fn + ")"
		}
		if err := d.entity(p.Header, data, depth+1, partName); err != nil {
			return err
		}
	}
}

func transferDecode(enc string, body []byte) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(enc)) {
	case "", "7bit", "8bit", "binary":
		return body, nil
	case "base64":
		s := strings.Join(strings.Fields(string(body)), "")
		out, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("Content-Transfer-Encoding base64: %v", err)
		}
		return out, nil
	case "quoted-printable":
		out, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body)))
		if err != nil {
			return nil, fmt.Errorf("Content-Transfer-Encoding quoted-printable: %v", err)
		}
		return out, nil
	}
	return nil, fmt.Errorf("Content-Transfer-Encoding %q is not supported", enc)
}
