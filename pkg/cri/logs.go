package cri

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
)

// maxTail bounds how much of a log file TailLog reads from its end: enough
// for the last lines of any component, even with long klog lines.
const maxTail = 1 << 20

// TailLog returns the last n lines of a container log file in the CRI
// format ("2026-11-27T10:00:00.000000000Z stderr F message"), as the
// container wrote them: timestamps and stream tags removed, partial lines
// (tag P) joined.
func TailLog(path string, n int) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read log: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("read log: %w", err)
	}
	size := fi.Size()
	// Read backwards in chunks until there are enough complete lines.
	var buf []byte
	const chunk = 64 << 10
	off := size
	for off > 0 && len(buf) < maxTail {
		step := min(int64(chunk), off)
		off -= step
		b := make([]byte, step)
		if _, err := f.ReadAt(b, off); err != nil && err != io.EOF {
			return "", fmt.Errorf("read log %s: %w", path, err)
		}
		buf = append(b, buf...)
		// Partial entries make one line of several records; n+1 newlines is
		// a floor, checked again after decoding.
		if bytes.Count(buf, []byte{'\n'}) > n && len(decodeCRILog(buf, off > 0)) > n {
			break
		}
	}
	out := decodeCRILog(buf, off > 0)
	if len(out) > n {
		out = out[len(out)-n:]
	}
	if len(out) == 0 {
		return "", nil
	}
	return strings.Join(out, "\n") + "\n", nil
}

// decodeCRILog turns CRI log records into lines. When cut is set, the data
// starts mid-file and its first record is dropped as possibly incomplete.
func decodeCRILog(data []byte, cut bool) []string {
	recs := bytes.Split(data, []byte{'\n'})
	if cut && len(recs) > 0 {
		recs = recs[1:]
	}
	var out []string
	var partial strings.Builder
	for _, r := range recs {
		if len(r) == 0 {
			continue
		}
		// timestamp stream tag message
		f := bytes.SplitN(r, []byte{' '}, 4)
		if len(f) < 3 {
			// Not CRI format: keep the line as it is.
			out = append(out, string(r))
			continue
		}
		msg := []byte{}
		if len(f) == 4 {
			msg = f[3]
		}
		tag := string(f[2])
		partial.Write(msg)
		if strings.HasPrefix(tag, "P") {
			continue
		}
		out = append(out, partial.String())
		partial.Reset()
	}
	if partial.Len() > 0 {
		out = append(out, partial.String())
	}
	return out
}
