// Package rendezvoustest is an in-memory object store with RFC 9110
// conditional writes, for testing pkg/rendezvous against something that
// behaves like S3, GCS or Azure Blob without one at hand.
package rendezvoustest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// maxObject bounds a stored object; the documents kept here are tiny.
const maxObject = 1 << 20

// Server serves objects keyed by URL path (the query string is ignored,
// as a presigned URL's signature is). Every write gives the object a new
// strong ETag, even when the bytes are the same, so a writer that read
// before someone else's write always loses its If-Match.
type Server struct {
	mu       sync.Mutex
	objects  map[string]object
	version  uint64
	requests int
	failNext int
	fault    func(*http.Request) int
}

type object struct {
	data        []byte
	etag        string
	contentType string
}

// NewStore returns an empty store.
func NewStore() *Server {
	return &Server{objects: map[string]object{}}
}

// Serve listens on addr ("127.0.0.1:0" for any free port) and returns the
// store's base URL and a function that stops it.
func (s *Server) Serve(addr string) (url string, stop func(), err error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("rendezvous test store: listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: s}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(l)
	}()
	return "http://" + l.Addr().String(), func() { srv.Close(); <-done }, nil
}

// Requests counts the requests served so far, failed ones included.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// FailNext makes the next n requests answer 503 Service Unavailable, as a
// store under load or a flaky network path does.
func (s *Server) FailNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext = n
}

// Fault sets a function asked about every request before it is served; a
// non-zero status it returns is the answer (403 for refused credentials,
// 409 for S3's ConditionalRequestConflict, ...). nil removes it.
func (s *Server) Fault(f func(*http.Request) int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = f
}

// Object returns a stored object's bytes by path ("/prefix/claim").
func (s *Server) Object(path string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objects[path]
	return append([]byte(nil), o.data...), ok
}

// Put stores an object unconditionally, to set up a test's starting state.
func (s *Server) Put(path string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.store(path, data, "application/octet-stream")
}

// Delete removes an object, as an operator resetting the store would.
func (s *Server) Delete(path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.objects, path)
}

func (s *Server) store(path string, data []byte, contentType string) string {
	s.version++
	etag := `"` + strconv.FormatUint(s.version, 10) + `"`
	s.objects[path] = object{data: append([]byte(nil), data...), etag: etag, contentType: contentType}
	return etag
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Read the body before taking the lock so a slow client does not stall
	// everyone else.
	var body []byte
	if r.Method == http.MethodPut {
		var err error
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, maxObject))
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			http.Error(w, "object too large", http.StatusRequestEntityTooLarge)
			return
		case err != nil:
			http.Error(w, "reading the body: "+err.Error(), http.StatusBadRequest)
			return
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	if s.failNext > 0 {
		s.failNext--
		http.Error(w, "injected failure", http.StatusServiceUnavailable)
		return
	}
	if s.fault != nil {
		if code := s.fault(r); code != 0 {
			http.Error(w, "injected fault", code)
			return
		}
	}

	cur, exists := s.objects[r.URL.Path]
	if code := preconditions(r.Method, r.Header, cur.etag, exists); code != 0 {
		if code == http.StatusNotModified {
			w.Header().Set("ETag", cur.etag)
		}
		w.WriteHeader(code)
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if !exists {
			http.Error(w, "no such object", http.StatusNotFound)
			return
		}
		w.Header().Set("ETag", cur.etag)
		w.Header().Set("Content-Type", cur.contentType)
		w.Header().Set("Content-Length", strconv.Itoa(len(cur.data)))
		if r.Method == http.MethodGet {
			w.Write(cur.data)
		}
	case http.MethodPut:
		w.Header().Set("ETag", s.store(r.URL.Path, body, r.Header.Get("Content-Type")))
		if exists {
			w.WriteHeader(http.StatusOK)
		} else {
			w.WriteHeader(http.StatusCreated)
		}
	case http.MethodDelete:
		if !exists {
			http.Error(w, "no such object", http.StatusNotFound)
			return
		}
		delete(s.objects, r.URL.Path)
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Header().Set("Allow", "GET, HEAD, PUT, DELETE")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// preconditions evaluates If-Match and If-None-Match as RFC 9110 section
// 13.2.2 orders them; it returns 0 when the request may go ahead.
func preconditions(method string, h http.Header, etag string, exists bool) int {
	if im := h.Get("If-Match"); im != "" {
		if !exists || !matches(im, etag, true) {
			return http.StatusPreconditionFailed
		}
	}
	if inm := h.Get("If-None-Match"); inm != "" && exists && matches(inm, etag, false) {
		if method == http.MethodGet || method == http.MethodHead {
			return http.StatusNotModified
		}
		return http.StatusPreconditionFailed
	}
	return 0
}

// matches reports whether a list of entity tags (or "*") names etag.
// If-Match compares strongly, so a weak tag never matches there.
func matches(list, etag string, strong bool) bool {
	if strings.TrimSpace(list) == "*" {
		return true
	}
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimSpace(t)
		if strings.HasPrefix(t, "W/") {
			if strong {
				continue
			}
			t = t[2:]
		}
		if t == etag {
			return true
		}
	}
	return false
}
