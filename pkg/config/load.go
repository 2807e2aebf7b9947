package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v3"
)

// MaxSize bounds a configuration stream; real ones are a few KiB.
const MaxSize = 4 << 20

// initStream is what an init configuration stream may hold.
var initStream = stream{
	command: "init",
	kinds: map[string]string{
		KindInit:      KubeadmGroupVersion,
		KindCluster:   KubeadmGroupVersion,
		KindKubelet:   KubeletGroupVersion,
		KindKubeProxy: KubeProxyGroupVersion,
		KindBoot:      BootGroupVersion,
	},
	unused: map[string]string{KindJoin: "", KindReset: "", KindUpgrade: ""},
	list:   "InitConfiguration, ClusterConfiguration, KubeletConfiguration, KubeProxyConfiguration, BootConfiguration",
}

// Load decodes a configuration stream strictly, applies defaults and
// validates everything that does not depend on the host. Every error is a
// *Error naming source, document, kind and field.
func Load(source string, data []byte) (*Config, error) {
	cfg, err := Decode(source, data)
	if err != nil {
		return nil, err
	}
	SetDefaults(cfg)
	if err := Validate(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Decode only decodes: no defaults, no validation beyond types and names.
func Decode(source string, data []byte) (*Config, error) {
	if source == "" {
		source = "config"
	}
	cfg := &Config{Source: source}
	docs, err := initStream.decode(source, data, map[string]any{
		KindInit:      &cfg.Init,
		KindCluster:   &cfg.Cluster,
		KindKubelet:   &cfg.Kubelet,
		KindKubeProxy: &cfg.KubeProxy,
		KindBoot:      &cfg.Boot,
	})
	if err != nil {
		return nil, err
	}
	cfg.docs = docs
	return cfg, nil
}

// stream describes the documents one command accepts; decode is the loop
// of Decode with the command's kinds.
type stream struct {
	command string
	kinds   map[string]string // kind → apiVersion
	unused  map[string]string // kinds known but not used by this command → why
	list    string
}

// decode reads every document of data strictly into targets (kind →
// pointer) and returns where each kind came from.
func (s stream) decode(source string, data []byte, targets map[string]any) (map[string]docInfo, error) {
	fail := func(format string, args ...any) error {
		return &Error{Errs: []*FieldError{{Source: source, Msg: fmt.Sprintf(format, args...)}}}
	}
	if len(data) > MaxSize {
		return nil, fail("configuration is %d bytes, more than the limit of %d", len(data), MaxSize)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fail("empty configuration: expected at least one YAML document")
	}
	if !utf8.Valid(data) || bytes.IndexByte(data, 0) >= 0 {
		return nil, fail("not a text file: configuration must be UTF-8 YAML")
	}
	docs := map[string]docInfo{}
	firstDoc := map[string]int{}
	all := &Error{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for doc := 1; ; doc++ {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			all.Errs = append(all.Errs, &FieldError{Source: source, Doc: doc, Msg: "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")})
			break
		}
		root := &n
		if root.Kind == yaml.DocumentNode {
			if len(root.Content) == 0 {
				continue
			}
			root = root.Content[0]
		}
		if isNull(root) {
			continue
		}
		if root.Kind != yaml.MappingNode {
			all.Errs = append(all.Errs, &FieldError{Source: source, Doc: doc, Line: root.Line, Msg: "expected a mapping with apiVersion and kind, got " + describe(root)})
			continue
		}
		apiVersion, kind := typeMeta(root)
		errs := &docErrors{source: source, doc: doc, kind: kind, lines: map[string]int{}}
		why, known := s.unused[kind]
		switch {
		case kind == "":
			errs.add("kind", "missing: every document needs apiVersion and kind (one of %s)", s.list)
		case known:
			errs.add("kind", "%s is not used by kubeboot %s%s; remove this document", kind, s.command, why)
		case s.kinds[kind] == "":
			errs.add("kind", "unknown kind %q (expected one of %s)", kind, s.list)
		case apiVersion != s.kinds[kind]:
			hint := ""
			if strings.HasPrefix(apiVersion, "kubeadm.k8s.io/") {
				hint = "; older kubeadm versions are not accepted: convert the file with `kubeadm config migrate`"
			}
			errs.add("apiVersion", "unsupported apiVersion %q for %s (expected %s)%s", apiVersion, kind, s.kinds[kind], hint)
		case firstDoc[kind] != 0:
			errs.add("", "duplicate %s: already given in document %d", kind, firstDoc[kind])
		default:
			firstDoc[kind] = doc
			docs[kind] = docInfo{index: doc, lines: errs.lines}
			d := &strictDecoder{errs: errs, lines: errs.lines}
			d.decode(root, reflect.ValueOf(targets[kind]).Elem(), "")
		}
		all.Errs = append(all.Errs, errs.errs...)
	}
	if len(all.Errs) > 0 {
		return nil, all
	}
	if len(firstDoc) == 0 {
		return nil, fail("no configuration documents found")
	}
	return docs, nil
}

func typeMeta(n *yaml.Node) (apiVersion, kind string) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		switch n.Content[i].Value {
		case "apiVersion":
			apiVersion = n.Content[i+1].Value
		case "kind":
			kind = n.Content[i+1].Value
		}
	}
	return apiVersion, kind
}
