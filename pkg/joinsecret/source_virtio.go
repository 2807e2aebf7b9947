package joinsecret

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
	"time"

	"filippo.io/age/armor"
)

// VirtioSerialSource reads the document from a virtio-serial port, whose
// host side the hypervisor connects to a file or socket. A port has no
// end of file, so the reader takes what arrives until a whole document is
// there: a JSON object, or an age-armored block through its closing line.
// It waits for the port to appear (its driver may load late), and reads
// again while the host side is not connected, which a read reports as end
// of file. Timeout bounds the wait on top of the context; 0: the context
// alone.
type VirtioSerialSource struct {
	// Root is the root prefix under which /dev and /sys are looked up.
	Root    string
	Name    string
	Timeout time.Duration
}

func (v VirtioSerialSource) String() string { return "virtio-serial port " + v.Name }

// virtioRetry paces the waits: for the port to appear, and for data after
// a read found the host side unconnected.
const virtioRetry = 200 * time.Millisecond

func (v VirtioSerialSource) Read(ctx context.Context) ([]byte, error) {
	if v.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, v.Timeout)
		defer cancel()
	}
	start := time.Now()
	f, err := v.open(ctx)
	if err != nil {
		return nil, fmt.Errorf("join secret from %s: %w", v, err)
	}
	// A blocked read ends only when the file is closed.
	stop := context.AfterFunc(ctx, func() { f.Close() })
	defer func() {
		if stop() {
			f.Close()
		}
	}()
	r := &followReader{ctx: ctx, f: f}
	doc, err := readDocument(r)
	if err != nil && ctx.Err() != nil {
		return nil, fmt.Errorf("join secret from %s: gave up after %s with %d bytes read and no whole document: %w",
			v, time.Since(start).Round(time.Millisecond), r.n, ctx.Err())
	}
	if err != nil {
		return nil, fmt.Errorf("join secret from %s: %w", v, err)
	}
	return doc, nil
}

// open waits for the port to exist and opens it without blocking: the
// open of a FIFO (as in tests) would otherwise wait for a writer, and
// non-blocking reads go through Go's poller, so that closing the file
// ends a read that waits.
func (v VirtioSerialSource) open(ctx context.Context) (*os.File, error) {
	start := time.Now()
	backoff := virtioRetry
	for {
		dev, err := FindVirtioPort(v.Root, v.Name)
		if err == nil {
			f, oerr := os.OpenFile(dev, os.O_RDONLY|syscall.O_NONBLOCK, 0)
			// Gone since it was found, or open elsewhere (a port takes one
			// reader at a time): try again.
			if oerr == nil || !(errors.Is(oerr, fs.ErrNotExist) || errors.Is(oerr, syscall.EBUSY)) {
				return f, oerr
			}
			err = oerr
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("gave up after %s: %w", time.Since(start).Round(time.Millisecond), err)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

// followReader reads a port as a stream without end: end of file (host
// side not connected) means wait and read again. It counts what it read.
type followReader struct {
	ctx context.Context
	f   *os.File
	n   int
}

func (r *followReader) Read(p []byte) (int, error) {
	for {
		n, err := r.f.Read(p)
		r.n += n
		if n > 0 || (err != nil && err != io.EOF) {
			return n, err
		}
		select {
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		case <-time.After(virtioRetry):
		}
	}
}

// readDocument reads one whole document from a stream that does not end:
// a JSON object (its end found by a json.Decoder) or an age-armored block
// (up to the closing line), after optional white space. At most
// maxDocument bytes are read.
func readDocument(stream io.Reader) ([]byte, error) {
	tooLong := fmt.Errorf("no whole document in the first %d bytes", maxDocument)
	br := bufio.NewReader(io.LimitReader(stream, maxDocument))
	for {
		b, err := br.ReadByte()
		if err == io.EOF {
			return nil, tooLong
		}
		if err != nil {
			return nil, err
		}
		if b == ' ' || b == '\t' || b == '\r' || b == '\n' {
			continue
		}
		br.UnreadByte()
		break
	}
	first, _ := br.Peek(1)
	switch first[0] {
	case '{':
		var raw json.RawMessage
		if err := json.NewDecoder(br).Decode(&raw); err != nil {
			if err == io.ErrUnexpectedEOF || err == io.EOF {
				return nil, tooLong
			}
			var syn *json.SyntaxError
			if errors.As(err, &syn) {
				return nil, fmt.Errorf("not a JSON document: %w", err)
			}
			return nil, err
		}
		return raw, nil
	case armor.Header[0]:
		return readArmored(br, tooLong)
	}
	return nil, errors.New("neither a JSON document nor an age-armored one")
}

// readArmored reads up to and including armor.Footer.
func readArmored(r io.Reader, tooLong error) ([]byte, error) {
	var doc []byte
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		// Search only where the footer may newly end.
		from := max(0, len(doc)-len(armor.Footer))
		doc = append(doc, buf[:n]...)
		if len(doc) >= len(armor.Header) && !bytes.HasPrefix(doc, []byte(armor.Header)) {
			return nil, errors.New("neither a JSON document nor an age-armored one")
		}
		if i := bytes.Index(doc[from:], []byte(armor.Footer)); i >= 0 {
			return append(doc[:from+i+len(armor.Footer)], '\n'), nil
		}
		if err == io.EOF {
			return nil, tooLong
		}
		if err != nil {
			return nil, err
		}
	}
}
