package userdata

import (
	"bytes"
	"context"
	"fmt"
	"strings"
)

// decoder turns the bytes of one userdata into a Result. One decoder
// serves one source; its budgets span everything that source leads to
// (multipart parts, Ignition merges, fetched file contents).
type decoder struct {
	ctx    context.Context
	source string
	fetch  Fetch
	owners *owners

	unzip   *budget // decompressed bytes
	fetched *budget // bytes of remote file contents

	res     *Result
	ignored map[string]bool // cloud-config keys not applied
}

func newDecoder(ctx context.Context, source string, fetch Fetch, root string) *decoder {
	return &decoder{
		ctx:     ctx,
		source:  source,
		fetch:   fetch,
		owners:  &owners{root: root},
		unzip:   newBudget(),
		fetched: newBudget(),
		res:     &Result{Source: source},
		ignored: map[string]bool{},
	}
}

// Decode decodes userdata of any supported format without a source:
// for tests, fuzzing and `userdata show FILE`. Remote resources are
// fetched with f; owner names are looked up under root.
func Decode(ctx context.Context, source string, data []byte, f Fetch, root string) (*Result, error) {
	d := newDecoder(ctx, source, f, root)
	if err := d.top(data); err != nil {
		return nil, err
	}
	return d.finish()
}

// top decodes a whole userdata and records its format.
func (d *decoder) top(data []byte) error {
	if len(data) > MaxUserdata {
		return badf(d.source, "userdata is larger than %d MiB", MaxUserdata>>20)
	}
	format, err := d.decode(data, 0)
	if err != nil {
		return bad(d.source, err)
	}
	d.res.Format = format
	return nil
}

func (d *decoder) finish() (*Result, error) {
	if len(d.ignored) > 0 {
		keys := sortedKeys(d.ignored)
		d.res.Warnings = append(d.res.Warnings,
			"cloud-config keys not applied by kubeboot: "+strings.Join(keys, ", "))
	}
	if len(d.res.Config) > 0 {
		if err := checkKubebootYAML(d.res.Config); err != nil {
			return nil, badf(d.source, "kubeboot configuration: %v", err)
		}
	}
	return d.res, nil
}

// decode detects the format of data and decodes it; depth counts
// enclosing multipart messages.
func (d *decoder) decode(data []byte, depth int) (string, error) {
	if isGzip(data) {
		var err error
		if data, err = d.unzip.gunzip(data); err != nil {
			return "", err
		}
	}
	text := bytes.TrimLeft(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")), " \t\r\n")
	switch {
	case len(text) == 0:
		return "", fmt.Errorf("userdata is empty")
	case hasPrefixFold(text, "#cloud-config"):
		return FormatCloudConfig, d.cloudConfig(text)
	case text[0] == '{':
		version, err := d.ignition(text, 0)
		return FormatIgnition + "-" + version, err
	case isMIME(text):
		return FormatMultipart, d.multipart(text, depth+1)
	case hasPrefixFold(text, "#!"):
		return "", fmt.Errorf("shell script userdata is not supported (kubeboot runs no scripts)")
	case hasPrefixFold(text, "#include"), hasPrefixFold(text, "#cloud-boothook"),
		hasPrefixFold(text, "#part-handler"), hasPrefixFold(text, "#upstart-job"),
		hasPrefixFold(text, "## template:"), hasPrefixFold(text, "#cloud-config-archive"):
		line, _, _ := bytes.Cut(text, []byte("\n"))
		return "", fmt.Errorf("userdata type %q is not supported", strings.TrimSpace(string(line)))
	}
	if err := checkKubebootYAML(text); err != nil {
		return "", fmt.Errorf("unrecognized userdata format (not Ignition JSON, #cloud-config, MIME multipart or kubeboot YAML): %v", err)
	}
	d.addConfig(text)
	return FormatKubebootYAML, nil
}

// addConfig appends a kubeboot configuration; several (multipart parts)
// form one multi-document stream.
func (d *decoder) addConfig(cfg []byte) {
	if len(bytes.TrimSpace(cfg)) == 0 {
		return
	}
	if len(d.res.Config) > 0 {
		if !bytes.HasSuffix(d.res.Config, []byte("\n")) {
			d.res.Config = append(d.res.Config, '\n')
		}
		d.res.Config = append(d.res.Config, "---\n"...)
	}
	d.res.Config = append(d.res.Config, cfg...)
}

func (d *decoder) warnf(format string, args ...any) {
	d.res.Warnings = append(d.res.Warnings, fmt.Sprintf(format, args...))
}

func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && strings.EqualFold(string(b[:len(prefix)]), prefix)
}
