package preflight

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteTable prints the results as an aligned table (CHECK, STATUS,
// DETAIL), then a line counting each status.
func (r Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tSTATUS\tDETAIL")
	for _, res := range r.Results {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", res.Name, res.Status, strings.ReplaceAll(res.Detail, "\t", " "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, r.Summary())
	if err == nil && len(r.UnknownIgnores) > 0 {
		_, err = fmt.Fprintf(w, "The ignore list names no check called %s.\n", strings.Join(r.UnknownIgnores, ", "))
	}
	return err
}

// Summary counts the results: "24 checks: 17 ok, 3 warnings, 1 error, 3 skipped".
func (r Report) Summary() string {
	n := r.Count()
	return fmt.Sprintf("%d checks: %d ok, %d %s, %d %s, %d skipped", len(r.Results),
		n[StatusOK], n[StatusWarning], plural(n[StatusWarning], "warning", "warnings"),
		n[StatusError], plural(n[StatusError], "error", "errors"), n[StatusSkipped])
}

// jsonReport is the -o json document.
type jsonReport struct {
	Report
	Counts map[Status]int `json:"counts"`
	Passed bool           `json:"passed"`
}

// WriteJSON prints the report as one indented JSON document: the checks in
// order, the unknown ignore entries, a count per status and whether the
// preflight passed.
func (r Report) WriteJSON(w io.Writer) error {
	if r.Results == nil {
		r.Results = []Result{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(jsonReport{Report: r, Counts: r.Count(), Passed: len(r.Failed()) == 0})
}
