package joinsecret

import (
	"errors"
	"fmt"
	"time"

	"filippo.io/age"

	"github.com/kubeboot/kubeboot/pkg/config"
)

// DefaultJoinTimeout bounds the wait for the secret when join.timeout is
// not set (config defaulting sets the same).
const DefaultJoinTimeout = 15 * time.Minute

// FromConfig turns the userdata's join section into the source to read
// (join.secret inline, or join.source) and the identities that open it
// (see Load). root is the root prefix under which a virtio-serial port is
// looked up; file paths are used as given. join.timeout bounds the wait of
// the sources that wait (http, virtio-serial).
func FromConfig(js config.JoinSource, root string) (Source, []age.Identity, error) {
	ids, err := ParseIdentities(js.Identity, js.IdentityFile)
	if err != nil {
		return nil, nil, err
	}
	timeout := DefaultJoinTimeout
	if js.Timeout != nil && js.Timeout.Duration > 0 {
		timeout = js.Timeout.Duration
	}
	switch {
	case js.Secret != "" && js.Source != "":
		return nil, nil, errors.New("join: set either join.source or join.secret, not both")
	case js.Secret != "":
		return InlineSource{Data: []byte(js.Secret)}, ids, nil
	case js.Source == "":
		return nil, nil, errors.New("join: neither join.source nor join.secret is set: nothing says where the join secret is")
	}
	src, err := ParseSource(js.Source)
	if err != nil {
		return nil, nil, fmt.Errorf("join.source: %w", err)
	}
	switch s := src.(type) {
	case HTTPSource:
		s.Timeout = timeout
		src = s
	case VirtioSerialSource:
		s.Root, s.Timeout = root, timeout
		src = s
	}
	return src, ids, nil
}
