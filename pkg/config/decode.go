package config

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// maxNodes bounds the work of one document, aliases included, so that a
// "billion laughs" document fails fast instead of eating memory.
const maxNodes = 100000

// strictDecoder decodes a YAML node tree into Go values the way
// encoding/json would, but fails on unknown and duplicate fields and
// reports every failure with its field path and line.
type strictDecoder struct {
	errs  *docErrors
	nodes int
	// lines records the line of every field path seen, for later validation errors.
	lines map[string]int
}

var jsonUnmarshaler = reflect.TypeOf((*json.Unmarshaler)(nil)).Elem()

func (d *strictDecoder) decode(n *yaml.Node, v reflect.Value, path string) bool {
	d.nodes++
	if d.nodes > maxNodes {
		d.errs.add(path, "document too large or too deeply aliased (more than %d nodes)", maxNodes)
		return false
	}
	if n.Kind == yaml.AliasNode {
		return d.decode(n.Alias, v, path)
	}
	if path != "" {
		if _, ok := d.lines[path]; !ok {
			d.lines[path] = n.Line
		}
	}
	if isNull(n) {
		v.Set(reflect.Zero(v.Type()))
		return true
	}
	if v.Kind() != reflect.Pointer && reflect.PointerTo(v.Type()).Implements(jsonUnmarshaler) {
		raw, err := d.toJSON(n)
		if err != nil {
			d.errs.add(path, "%v", err)
			return false
		}
		if err := v.Addr().Interface().(json.Unmarshaler).UnmarshalJSON(raw); err != nil {
			d.errs.add(path, "invalid value %s: %v", shortJSON(raw), err)
			return false
		}
		return true
	}
	switch v.Kind() {
	case reflect.Pointer:
		nv := reflect.New(v.Type().Elem())
		if !d.decode(n, nv.Elem(), path) {
			return false
		}
		v.Set(nv)
		return true
	case reflect.Struct:
		return d.decodeStruct(n, v, path)
	case reflect.Map:
		return d.decodeMap(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errs.add(path, "wrong type: expected a list, got %s", describe(n))
			return false
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		ok := true
		for i, item := range n.Content {
			ok = d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i)) && ok
		}
		v.Set(s)
		return ok
	case reflect.Interface:
		raw, err := d.toJSON(n)
		if err != nil {
			d.errs.add(path, "%v", err)
			return false
		}
		var x any
		if err := json.Unmarshal(raw, &x); err != nil {
			d.errs.add(path, "%v", err)
			return false
		}
		if x != nil {
			v.Set(reflect.ValueOf(x))
		}
		return true
	default:
		return d.decodeScalar(n, v, path)
	}
}

func (d *strictDecoder) decodeScalar(n *yaml.Node, v reflect.Value, path string) bool {
	if n.Kind != yaml.ScalarNode {
		d.errs.add(path, "wrong type: expected %s, got %s", kindName(v.Kind()), describe(n))
		return false
	}
	switch v.Kind() {
	case reflect.String:
		if n.Tag != "!!str" && n.Tag != "!!timestamp" {
			d.errs.add(path, "wrong type: expected a string, got %s (quote it)", describe(n))
			return false
		}
		v.SetString(n.Value)
	case reflect.Bool:
		if n.Tag != "!!bool" {
			d.errs.add(path, "wrong type: expected true or false, got %s", describe(n))
			return false
		}
		b, _ := strconv.ParseBool(strings.ToLower(n.Value))
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, err := strconv.ParseInt(n.Value, 0, 64)
		if n.Tag != "!!int" || err != nil {
			d.errs.add(path, "wrong type: expected an integer, got %s", describe(n))
			return false
		}
		if v.OverflowInt(i) {
			d.errs.add(path, "integer %s out of range", n.Value)
			return false
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		u, err := strconv.ParseUint(n.Value, 0, 64)
		if n.Tag != "!!int" || err != nil {
			d.errs.add(path, "wrong type: expected a non-negative integer, got %s", describe(n))
			return false
		}
		if v.OverflowUint(u) {
			d.errs.add(path, "integer %s out of range", n.Value)
			return false
		}
		v.SetUint(u)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(n.Value, 64)
		if (n.Tag != "!!float" && n.Tag != "!!int") || err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			d.errs.add(path, "wrong type: expected a number, got %s", describe(n))
			return false
		}
		v.SetFloat(f)
	default:
		d.errs.add(path, "unsupported field type %s", v.Type())
		return false
	}
	return true
}

func (d *strictDecoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) bool {
	if n.Kind != yaml.MappingNode {
		d.errs.add(path, "wrong type: expected a mapping, got %s", describe(n))
		return false
	}
	fields := structFields(v.Type())
	seen := map[string]bool{}
	ok := true
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key := k.Value
		fp := join(path, key)
		if seen[key] {
			d.errs.add(fp, "duplicate field")
			d.lines[fp] = k.Line
			ok = false
			continue
		}
		seen[key] = true
		idx, found := fields[key]
		if !found {
			d.lines[fp] = k.Line
			d.errs.add(fp, "unknown field")
			ok = false
			continue
		}
		f := fieldByIndex(v, idx)
		ok = d.decode(val, f, fp) && ok
	}
	return ok
}

func (d *strictDecoder) decodeMap(n *yaml.Node, v reflect.Value, path string) bool {
	if n.Kind != yaml.MappingNode {
		d.errs.add(path, "wrong type: expected a mapping, got %s", describe(n))
		return false
	}
	if v.Type().Key().Kind() != reflect.String {
		d.errs.add(path, "unsupported map key type %s", v.Type().Key())
		return false
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	ok := true
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		fp := join(path, k.Value)
		key := reflect.New(v.Type().Key()).Elem()
		key.SetString(k.Value)
		if m.MapIndex(key).IsValid() {
			d.errs.add(fp, "duplicate key")
			ok = false
			continue
		}
		elem := reflect.New(v.Type().Elem()).Elem()
		if d.decode(val, elem, fp) {
			m.SetMapIndex(key, elem)
		} else {
			ok = false
		}
	}
	v.Set(m)
	return ok
}

// toJSON converts a node to JSON for types that decode themselves
// (durations, times, quantities), keeping the node budget.
func (d *strictDecoder) toJSON(n *yaml.Node) ([]byte, error) {
	x, err := d.toValue(n)
	if err != nil {
		return nil, err
	}
	return json.Marshal(x)
}

func (d *strictDecoder) toValue(n *yaml.Node) (any, error) {
	d.nodes++
	if d.nodes > maxNodes {
		return nil, fmt.Errorf("document too large or too deeply aliased (more than %d nodes)", maxNodes)
	}
	switch n.Kind {
	case yaml.AliasNode:
		return d.toValue(n.Alias)
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			x, err := d.toValue(c)
			if err != nil {
				return nil, err
			}
			out = append(out, x)
		}
		return out, nil
	case yaml.MappingNode:
		out := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			if _, dup := out[key]; dup {
				return nil, fmt.Errorf("duplicate key %q", key)
			}
			x, err := d.toValue(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			out[key] = x
		}
		return out, nil
	}
	var x any
	if err := n.Decode(&x); err != nil {
		return nil, err
	}
	if f, ok := x.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
		return nil, fmt.Errorf("%s is not a valid number", n.Value)
	}
	return x, nil
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	kind := strings.TrimPrefix(n.Tag, "!!")
	switch kind {
	case "str":
		kind = "string"
	case "int":
		kind = "integer"
	}
	v := n.Value
	if len(v) > 40 {
		v = v[:40] + "..."
	}
	return fmt.Sprintf("%s %q", kind, v)
}

func kindName(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "an integer"
}

func shortJSON(raw []byte) string {
	s := string(raw)
	if len(s) > 60 {
		s = s[:60] + "..."
	}
	return s
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// structFields maps JSON names to field index paths, flattening inline and
// embedded structs as encoding/json does.
func structFields(t reflect.Type) map[string][]int {
	out := map[string][]int{}
	var walk func(t reflect.Type, prefix []int)
	walk = func(t reflect.Type, prefix []int) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			name, opts, _ := strings.Cut(tag, ",")
			if name == "-" && opts == "" {
				continue
			}
			idx := append(append([]int(nil), prefix...), i)
			ft := f.Type
			if f.Anonymous && name == "" && ft.Kind() == reflect.Struct || strings.Contains(opts, "inline") {
				walk(ft, idx)
				continue
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if _, taken := out[name]; !taken {
				out[name] = idx
			}
		}
	}
	walk(t, nil)
	return out
}

func fieldByIndex(v reflect.Value, idx []int) reflect.Value {
	for _, i := range idx {
		if v.Kind() == reflect.Pointer {
			if v.IsNil() {
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		v = v.Field(i)
	}
	return v
}
