package preflight

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// Three checks: one passes, one fails, one fails and warns.
var sampleChecks = []Check{
	{Name: "NumCPU", Run: func(context.Context, *Env) Finding { return okf("2 CPUs (2 required)") }},
	{Name: "Swap", Run: func(context.Context, *Env) Finding { return errorf("swap is on") }},
	{Name: "Port-6443", Run: func(context.Context, *Env) Finding {
		return Finding{Errors: []string{"Port 6443 is in use"}, Warnings: []string{"when closing port 6443, encountered EBADF"}}
	}},
	{Name: "ExternalEtcdVersion", Run: func(context.Context, *Env) Finding { return skipf("etcd is local") }},
}

func TestIgnore(t *testing.T) {
	tests := []struct {
		name    string
		ignore  []string
		want    map[string]Status
		failed  []string
		unknown []string
		err     string
	}{
		{name: "nothing ignored", want: map[string]Status{"NumCPU": StatusOK, "Swap": StatusError, "Port-6443": StatusError, "ExternalEtcdVersion": StatusSkipped},
			failed: []string{"Swap", "Port-6443"}},
		{name: "one ignored, case-insensitive", ignore: []string{"swap"},
			want:   map[string]Status{"Swap": StatusWarning, "Port-6443": StatusError},
			failed: []string{"Port-6443"}},
		{name: "both ignored, with spaces and duplicates", ignore: []string{" SWAP", "port-6443", "Swap"},
			want: map[string]Status{"Swap": StatusWarning, "Port-6443": StatusWarning, "NumCPU": StatusOK}},
		{name: "all", ignore: []string{"all"},
			want: map[string]Status{"Swap": StatusWarning, "Port-6443": StatusWarning, "NumCPU": StatusOK, "ExternalEtcdVersion": StatusSkipped}},
		{name: "ALL", ignore: []string{"ALL"}, want: map[string]Status{"Swap": StatusWarning}},
		{name: "unknown names are reported", ignore: []string{"Swap", "ImagePull", "NumCPUs"},
			want: map[string]Status{"Swap": StatusWarning}, failed: []string{"Port-6443"}, unknown: []string{"imagepull", "numcpus"}},
		{name: "all with others", ignore: []string{"all", "Swap"}, err: "don't name individual checks when 'all' is used"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := RunChecks(context.Background(), sampleChecks, Env{}, tt.ignore)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
				if ValidateIgnore(tt.ignore) == nil {
					t.Error("ValidateIgnore accepted it")
				}
				return
			}
			for name, st := range tt.want {
				if got := find(rep, name); got.Status != st {
					t.Errorf("%s: %s %q, want %s", name, got.Status, got.Detail, st)
				}
			}
			var failed []string
			for _, r := range rep.Failed() {
				failed = append(failed, r.Name)
			}
			if strings.Join(failed, ",") != strings.Join(tt.failed, ",") {
				t.Errorf("failed %v, want %v", failed, tt.failed)
			}
			if (err != nil) != (len(tt.failed) > 0) {
				t.Errorf("err %v with failed %v", err, failed)
			}
			if strings.Join(rep.UnknownIgnores, ",") != strings.Join(tt.unknown, ",") {
				t.Errorf("unknown %v, want %v", rep.UnknownIgnores, tt.unknown)
			}
		})
	}
}

// An ignored error keeps its text, marked, and comes before the warnings.
func TestIgnoredDetail(t *testing.T) {
	rep, err := RunChecks(context.Background(), sampleChecks, Env{}, []string{"Port-6443"})
	var pe *Error
	if !errors.As(err, &pe) || len(pe.Failed) != 1 || pe.Failed[0].Name != "Swap" {
		t.Fatalf("err %v", err)
	}
	r := find(rep, "Port-6443")
	if !r.Ignored || r.Detail != "ignored: Port 6443 is in use; when closing port 6443, encountered EBADF" || len(r.Errors) != 0 || len(r.Warnings) != 2 {
		t.Errorf("%+v", r)
	}
}

// The configuration's ignorePreflightErrors add to the command line's.
func TestRunMergesConfigIgnores(t *testing.T) {
	cfg := testConfig(t)
	cfg.Init.NodeRegistration.IgnorePreflightErrors = []string{"NumCPU"}
	env := fakeEnv(t, map[string]string{"/proc/swaps": "Filename Type Size Used Priority\n/swapfile file 1 0 -2\n"})
	env.NumCPU = func() int { return 1 }
	rep, err := Run(context.Background(), cfg, env, []string{"Swap"})
	if err != nil {
		t.Fatalf("%v\n%+v", err, rep.Failed())
	}
	if find(rep, "NumCPU").Status != StatusWarning || find(rep, "Swap").Status != StatusWarning {
		t.Errorf("NumCPU %+v, Swap %+v", find(rep, "NumCPU"), find(rep, "Swap"))
	}
	cfg.Init.NodeRegistration.IgnorePreflightErrors = []string{"all"}
	if _, err := Run(context.Background(), cfg, env, []string{"Swap"}); err == nil || !strings.Contains(err.Error(), "'all'") {
		t.Errorf("all from the configuration with Swap from the flag: %v", err)
	}
}

func TestErrorMessage(t *testing.T) {
	_, err := RunChecks(context.Background(), sampleChecks, Env{}, nil)
	want := "preflight: 2 checks failed:\n" +
		"\t[ERROR Swap]: swap is on\n" +
		"\t[ERROR Port-6443]: Port 6443 is in use\n" +
		"If you know what you are doing, make them non-fatal with --ignore-preflight-errors=Swap,Port-6443 (or all)"
	if err == nil || err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}
}

func TestTable(t *testing.T) {
	rep, _ := RunChecks(context.Background(), sampleChecks, Env{}, []string{"Swap", "NoSuchCheck"})
	var b bytes.Buffer
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	want := `CHECK                STATUS   DETAIL
NumCPU               ok       2 CPUs (2 required)
Swap                 warning  ignored: swap is on
Port-6443            error    Port 6443 is in use; when closing port 6443, encountered EBADF
ExternalEtcdVersion  skipped  etcd is local
4 checks: 1 ok, 1 warning, 1 error, 1 skipped
The ignore list names no check called nosuchcheck.
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

// Every row's STATUS and DETAIL columns start at the same offset, however
// long the names.
func TestTableAlignment(t *testing.T) {
	rep, _ := Run(context.Background(), testConfig(t), fakeEnv(t, nil), nil)
	var b bytes.Buffer
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	header := lines[0]
	statusCol, detailCol := strings.Index(header, "STATUS"), strings.Index(header, "DETAIL")
	rows := lines[1 : len(lines)-1]
	if len(rows) != len(rep.Results) {
		t.Fatalf("%d rows for %d results", len(rows), len(rep.Results))
	}
	for i, line := range rows {
		r := rep.Results[i]
		if !strings.HasPrefix(line, r.Name+" ") || line[statusCol:statusCol+len(r.Status)] != string(r.Status) ||
			line[detailCol:] != r.Detail || line[statusCol-1] != ' ' || line[detailCol-1] != ' ' {
			t.Errorf("row %d misaligned: %q", i, line)
		}
	}
}

func TestJSON(t *testing.T) {
	rep, _ := RunChecks(context.Background(), sampleChecks, Env{}, []string{"Swap", "ImagePull"})
	var b bytes.Buffer
	if err := rep.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"checks": []any{
			map[string]any{"name": "NumCPU", "status": "ok", "detail": "2 CPUs (2 required)"},
			map[string]any{"name": "Swap", "status": "warning", "detail": "ignored: swap is on", "warnings": []any{"swap is on"}, "ignored": true},
			map[string]any{"name": "Port-6443", "status": "error", "detail": "Port 6443 is in use; when closing port 6443, encountered EBADF",
				"errors": []any{"Port 6443 is in use"}, "warnings": []any{"when closing port 6443, encountered EBADF"}},
			map[string]any{"name": "ExternalEtcdVersion", "status": "skipped", "detail": "etcd is local"},
		},
		"unknownIgnores": []any{"imagepull"},
		"counts":         map[string]any{"ok": 1.0, "warning": 1.0, "error": 1.0, "skipped": 1.0},
		"passed":         false,
	}
	gotJSON, _ := json.Marshal(doc)
	wantJSON, _ := json.Marshal(want)
	if string(gotJSON) != string(wantJSON) {
		t.Errorf("got:\n%s\nwant:\n%s", gotJSON, wantJSON)
	}

	// An empty report is still a complete document.
	b.Reset()
	if err := (Report{}).WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `"checks": []`) || !strings.Contains(b.String(), `"passed": true`) {
		t.Errorf("empty report: %s", b.String())
	}
}

// A check that panics fails alone; the others still run.
func TestPanickingCheck(t *testing.T) {
	checks := []Check{
		{Name: "Boom", Run: func(context.Context, *Env) Finding { panic("nil map") }},
		sampleChecks[0],
	}
	rep, err := RunChecks(context.Background(), checks, Env{}, nil)
	if err == nil || find(rep, "Boom").Detail != "check panicked: nil map" || find(rep, "NumCPU").Status != StatusOK {
		t.Errorf("%v %+v", err, rep)
	}
}

func TestCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep, err := RunChecks(ctx, sampleChecks, Env{}, nil)
	if err == nil || find(rep, "NumCPU").Detail != "not run: context canceled" {
		t.Errorf("%v %+v", err, rep)
	}
}

// The runtime and the kubelet are asked once per run, whatever the number
// of checks that need them.
func TestAnswersCached(t *testing.T) {
	env := fakeEnv(t, nil)
	var cri, kubelet int
	criFn, kubeletFn := env.CRI, env.KubeletVersion
	env.CRI = func(ctx context.Context, ep string) (*CRIInfo, error) { cri++; return criFn(ctx, ep) }
	env.KubeletVersion = func(ctx context.Context) (string, error) { kubelet++; return kubeletFn(ctx) }
	if _, err := Run(context.Background(), testConfig(t), env, nil); err != nil {
		t.Fatal(err)
	}
	if cri != 1 || kubelet != 1 {
		t.Errorf("CRI asked %d times, kubelet %d times", cri, kubelet)
	}
}
