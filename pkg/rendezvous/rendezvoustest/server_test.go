package rendezvoustest

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
)

func TestConditionalWrites(t *testing.T) {
	url, stop, err := NewStore().Serve("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	// etags[i] is the ETag the i-th step answered with; "$n" in a header
	// stands for etags[n].
	var etags []string
	for i, step := range []struct {
		method, path, body string
		header             map[string]string
		want               int
		wantBody           string
	}{
		{method: "GET", path: "/p/a", want: 404},
		{method: "PUT", path: "/p/a", body: "v1", header: map[string]string{"If-Match": "*"}, want: 412},
		{method: "PUT", path: "/p/a", body: "v1", header: map[string]string{"If-None-Match": "*"}, want: 201},
		{method: "PUT", path: "/p/a", body: "v2", header: map[string]string{"If-None-Match": "*"}, want: 412},
		{method: "GET", path: "/p/a?sig=ignored", want: 200, wantBody: "v1"},
		{method: "PUT", path: "/p/a", body: "v2", header: map[string]string{"If-Match": "$4"}, want: 200},
		{method: "PUT", path: "/p/a", body: "v3", header: map[string]string{"If-Match": "$4"}, want: 412},
		{method: "PUT", path: "/p/a", body: "v3", header: map[string]string{"If-Match": "W/$5"}, want: 412},
		{method: "GET", path: "/p/a", header: map[string]string{"If-None-Match": "$5"}, want: 304},
		{method: "PUT", path: "/p/a", body: "v2", header: map[string]string{"If-Match": `"x", $5`}, want: 200},
		{method: "HEAD", path: "/p/a", want: 200},
		{method: "PUT", path: "/p/a", body: "v4", want: 200},
		{method: "DELETE", path: "/p/a", header: map[string]string{"If-Match": "$9"}, want: 412},
		{method: "DELETE", path: "/p/a", want: 204},
		{method: "DELETE", path: "/p/a", want: 404},
		{method: "POST", path: "/p/a", want: 405},
	} {
		req, _ := http.NewRequest(step.method, url+step.path, strings.NewReader(step.body))
		for k, v := range step.header {
			for n := len(etags) - 1; n >= 0; n-- {
				v = strings.ReplaceAll(v, "$"+strconv.Itoa(n), etags[n])
			}
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		etags = append(etags, resp.Header.Get("ETag"))
		if resp.StatusCode != step.want {
			t.Fatalf("step %d %s %s %v: %s, want %d", i, step.method, step.path, req.Header, resp.Status, step.want)
		}
		if step.wantBody != "" && string(body) != step.wantBody {
			t.Fatalf("step %d: body %q, want %q", i, body, step.wantBody)
		}
	}
	// A rewrite of the same bytes still changes the ETag.
	if etags[5] == etags[9] || etags[9] == etags[11] {
		t.Errorf("ETags did not change on every write: %q", etags)
	}
}

func TestOneCreatorAmongMany(t *testing.T) {
	s := NewStore()
	url, stop, err := s.Serve("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for range 30 {
		wg.Go(func() {
			req, _ := http.NewRequest("PUT", url+"/p/claim", strings.NewReader("x"))
			req.Header.Set("If-None-Match", "*")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			mu.Lock()
			defer mu.Unlock()
			codes[resp.StatusCode]++
		})
	}
	wg.Wait()
	if codes[201] != 1 || codes[412] != 29 {
		t.Errorf("answers %v, want one 201 and 29 412s", codes)
	}
	if s.Requests() != 30 {
		t.Errorf("Requests() = %d", s.Requests())
	}
}

func TestFaults(t *testing.T) {
	s := NewStore()
	s.Put("/p/a", []byte("v"))
	url, stop, err := s.Serve("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	get := func() int {
		resp, err := http.Get(url + "/p/a")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	s.FailNext(2)
	for i, want := range []int{503, 503, 200} {
		if got := get(); got != want {
			t.Errorf("request %d after FailNext(2): %d, want %d", i, got, want)
		}
	}
	s.Fault(func(r *http.Request) int { return http.StatusForbidden })
	if got := get(); got != 403 {
		t.Errorf("with a 403 fault: %d", got)
	}
	s.Fault(nil)
	if got := get(); got != 200 {
		t.Errorf("fault removed: %d", got)
	}
}
