package config

import (
	"fmt"
	"strings"
)

// FieldError is one problem in one document, located precisely enough for a
// user to fix it without guessing: source, document, kind, field, line.
type FieldError struct {
	Source string // file name or "-" for standard input
	Doc    int    // 1-based index of the YAML document in the stream
	Kind   string
	Path   string // field path, e.g. networking.podSubnet
	Line   int    // 0 when unknown
	Msg    string
}

func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.Source)
	b.WriteString(": ")
	if e.Doc > 0 {
		fmt.Fprintf(&b, "document %d", e.Doc)
		if e.Kind != "" {
			fmt.Fprintf(&b, " (%s)", e.Kind)
		}
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Line > 0 {
		fmt.Fprintf(&b, " (line %d)", e.Line)
	}
	return b.String()
}

// Error is a list of FieldErrors; every problem is reported at once so that
// a user fixes a file in one pass rather than one error per run.
type Error struct {
	Errs []*FieldError
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Errs))
	for i, fe := range e.Errs {
		lines[i] = fe.Error()
	}
	return strings.Join(lines, "\n")
}

// IsInvalid tells a configuration error (exit status 2) from other failures.
func IsInvalid(err error) bool {
	_, ok := err.(*Error)
	return ok
}

// docErrors collects errors for one document.
type docErrors struct {
	source string
	doc    int
	kind   string
	lines  map[string]int
	errs   []*FieldError
}

func (d *docErrors) add(path, format string, args ...any) {
	d.errs = append(d.errs, &FieldError{
		Source: d.source, Doc: d.doc, Kind: d.kind, Path: path,
		Line: d.lines[path], Msg: fmt.Sprintf(format, args...),
	})
}
