package joinsecret

import (
	"fmt"
	"io"
	"os"
	"strings"

	"filippo.io/age"
)

// maxIdentityFile bounds an identity file; a key line is 74 bytes.
const maxIdentityFile = 64 << 10

// ParseIdentities reads the age identities (AGE-SECRET-KEY-1...) that
// open a sealed join secret: inline (join.identity) and from file
// (join.identityFile), either or both; none configured is nil, nil. Both
// take age-keygen's format: one key a line, "#" comments. The file path is
// used as given, not under a root prefix. Errors name the setting, the
// file and the line, never a key.
func ParseIdentities(inline, file string) ([]age.Identity, error) {
	var ids []age.Identity
	if strings.TrimSpace(inline) != "" {
		got, err := parseIdentityLines("join.identity", inline)
		if err != nil {
			return nil, err
		}
		ids = append(ids, got...)
	}
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("join.identityFile: %w", err)
		}
		defer f.Close()
		data, err := io.ReadAll(io.LimitReader(f, maxIdentityFile+1))
		if err != nil {
			return nil, fmt.Errorf("join.identityFile: %w", err)
		}
		if len(data) > maxIdentityFile {
			return nil, fmt.Errorf("join.identityFile %s: more than %d bytes: not an age identity file", file, maxIdentityFile)
		}
		got, err := parseIdentityLines("join.identityFile "+file, string(data))
		if err != nil {
			return nil, err
		}
		ids = append(ids, got...)
	}
	return ids, nil
}

// parseIdentityLines parses line by line rather than with
// age.ParseIdentities on the whole text, so that an error can say which
// line without age's message, which may quote part of the line.
func parseIdentityLines(what, text string) ([]age.Identity, error) {
	var ids []age.Identity
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		got, err := age.ParseIdentities(strings.NewReader(line))
		if err != nil {
			return nil, fmt.Errorf("%s: line %d: not an age identity (expected AGE-SECRET-KEY-1...)", what, i+1)
		}
		ids = append(ids, got...)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("%s: no age identity in it (expected AGE-SECRET-KEY-1...)", what)
	}
	return ids, nil
}
