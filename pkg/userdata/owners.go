package userdata

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// owners looks up user and group names in the root's /etc/passwd and
// /etc/group (read once, on first use). Numeric names are IDs.
type owners struct {
	root   string
	loaded bool
	users  map[string]passwdEntry
	groups map[string]int
}

type passwdEntry struct {
	UID, GID int
	Home     string
}

func (o *owners) load() {
	if o.loaded {
		return
	}
	o.loaded = true
	o.users = map[string]passwdEntry{"root": {0, 0, "/root"}}
	o.groups = map[string]int{"root": 0}
	root := o.root
	if root == "" {
		root = "/"
	}
	if data, err := os.ReadFile(filepath.Join(root, "etc/passwd")); err == nil {
		eachLine(data, func(f []string) {
			if len(f) >= 6 {
				uid, err1 := strconv.Atoi(f[2])
				gid, err2 := strconv.Atoi(f[3])
				if err1 == nil && err2 == nil {
					o.users[f[0]] = passwdEntry{uid, gid, f[5]}
				}
			}
		})
	}
	if data, err := os.ReadFile(filepath.Join(root, "etc/group")); err == nil {
		eachLine(data, func(f []string) {
			if len(f) >= 3 {
				if gid, err := strconv.Atoi(f[2]); err == nil {
					o.groups[f[0]] = gid
				}
			}
		})
	}
}

func eachLine(data []byte, fn func([]string)) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		fn(strings.Split(line, ":"))
	}
}

// user returns the passwd entry of a name or numeric ID.
func (o *owners) user(name string) (passwdEntry, error) {
	if id, err := strconv.Atoi(name); err == nil {
		if err := checkID("user", id); err != nil {
			return passwdEntry{}, err
		}
		return passwdEntry{UID: id, GID: id}, nil
	}
	o.load()
	e, ok := o.users[name]
	if !ok {
		return passwdEntry{}, fmt.Errorf("user %q: not in the image's /etc/passwd", name)
	}
	return e, nil
}

// group returns the ID of a group name or numeric ID.
func (o *owners) group(name string) (int, error) {
	if id, err := strconv.Atoi(name); err == nil {
		return id, checkID("group", id)
	}
	o.load()
	id, ok := o.groups[name]
	if !ok {
		return 0, fmt.Errorf("group %q: not in the image's /etc/group", name)
	}
	return id, nil
}

// home returns a user's home directory from the root's /etc/passwd.
func (o *owners) home(name string) (passwdEntry, bool) {
	o.load()
	e, ok := o.users[name]
	return e, ok
}
