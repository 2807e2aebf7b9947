package wait

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestWaitHealthyAfterFailures(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) < 3 {
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte("[+]ping ok\n[-]etcd failed: reason withheld\n"))
			return
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	var lines []string
	res, err := Waiter{Timeout: 10 * time.Second, Interval: 10 * time.Millisecond,
		Progress: func(name string, ok bool, d string, _ time.Duration) { lines = append(lines, name+": "+d) },
	}.Wait(context.Background(), []Check{{Name: "api", URL: srv.URL}})
	if err != nil || !res[0].Healthy {
		t.Fatalf("%v %+v", err, res)
	}
	if !strings.Contains(strings.Join(lines, "\n"), "[-]etcd failed") {
		t.Errorf("progress did not show the failing check: %q", lines)
	}
}

func TestTimeoutNamesEachComponent(t *testing.T) {
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte("[-]poststarthook/rbac/bootstrap-roles failed: not finished"))
	}))
	defer bad.Close()
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer good.Close()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := l.Addr().String()
	l.Close()
	logs := func(_ context.Context, c string, n int) (string, error) { return "E1129 " + c + " crashed\n", nil }
	_, err := Waiter{Timeout: 2 * time.Second, Interval: 20 * time.Millisecond, Logs: logs}.Wait(context.Background(), []Check{
		{Name: "kube-apiserver /readyz", URL: bad.URL, Container: "kube-apiserver"},
		{Name: "kube-scheduler", URL: "http://" + closed + "/livez", Container: "kube-scheduler"},
		{Name: "kube-controller-manager", URL: good.URL},
	})
	te, ok := err.(*TimeoutError)
	if !ok {
		t.Fatalf("error %T %v", err, err)
	}
	msg := te.Error()
	for _, want := range []string{"kube-apiserver /readyz: HTTP 503", "rbac/bootstrap-roles", "kube-scheduler: dial 127.0.0.1", "connection refused", "E1129 kube-scheduler crashed"} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "kube-controller-manager") {
		t.Errorf("healthy component reported:\n%s", msg)
	}
}
