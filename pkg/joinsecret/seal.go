package joinsecret

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"
)

// Open refuses a document for one of these reasons; callers may tell them
// apart with errors.Is.
var (
	// ErrSealed: the document is sealed and no identity is configured.
	ErrSealed = errors.New("sealed (age), and no identity is configured: set join.identity or join.identityFile to open it")
	// ErrNoIdentityMatch: the document is sealed, but not to any
	// configured identity.
	ErrNoIdentityMatch = errors.New("sealed, but no configured identity opens it (is this machine's public key among the init side's joinSecret.recipients?)")
	// ErrNotSealed: an identity is configured, so a plain document is
	// refused: whoever can write the source (the metadata service, a
	// shared bucket) could otherwise hand out their own API endpoint and
	// CA hash, and the machine would join their cluster.
	ErrNotSealed = errors.New("not sealed, but an identity is configured: refusing a plain document, which anyone able to write the source could forge (seal it with joinSecret.recipients on the init side)")
)

// Seal encrypts doc to age X25519 recipients (age1...) and armors it, so
// that sinks which only carry text (userdata, serial ports) can hold it.
// Every call gives different bytes: age picks a fresh file key each time.
func Seal(doc []byte, recipients []string) ([]byte, error) {
	if len(recipients) == 0 {
		return nil, errors.New("seal the join secret: no recipients")
	}
	rs := make([]age.Recipient, 0, len(recipients))
	for i, r := range recipients {
		rcpt, err := age.ParseX25519Recipient(strings.TrimSpace(r))
		if err != nil {
			// Not quoted: a private key pasted by mistake must not be logged.
			return nil, fmt.Errorf("seal the join secret: recipient %d: not an age X25519 public key (age1...)", i)
		}
		rs = append(rs, rcpt)
	}
	var buf bytes.Buffer
	aw := armor.NewWriter(&buf)
	w, err := age.Encrypt(aw, rs...)
	if err != nil {
		return nil, fmt.Errorf("seal the join secret: %w", err)
	}
	if _, err := w.Write(doc); err != nil {
		return nil, fmt.Errorf("seal the join secret: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("seal the join secret: %w", err)
	}
	if err := aw.Close(); err != nil {
		return nil, fmt.Errorf("seal the join secret: %w", err)
	}
	return buf.Bytes(), nil
}

// IsSealed tells whether data is an age-armored document.
func IsSealed(data []byte) bool {
	return bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte(armor.Header))
}

// Open decrypts a sealed document with ids and parses it; a plain
// document is parsed as it is, but only when no identity is configured
// (see ErrNotSealed). source names where data came from, for errors.
func Open(source string, data []byte, ids []age.Identity) (Secret, error) {
	if !IsSealed(data) {
		if len(ids) > 0 {
			return Secret{}, fmt.Errorf("join secret from %s: %w", source, ErrNotSealed)
		}
		return Parse(source, data)
	}
	if len(ids) == 0 {
		return Secret{}, fmt.Errorf("join secret from %s: %w", source, ErrSealed)
	}
	plain, err := decrypt(data, ids)
	if err != nil {
		return Secret{}, fmt.Errorf("join secret from %s: %w", source, err)
	}
	return Parse(source, plain)
}

// decrypt opens armored age data. age's own errors may quote lines of the
// sealed document, so they are replaced by what went wrong, in words.
func decrypt(data []byte, ids []age.Identity) ([]byte, error) {
	r, err := age.Decrypt(armor.NewReader(bytes.NewReader(data)), ids...)
	if err != nil {
		var noMatch *age.NoIdentityMatchError
		var armorErr *armor.Error
		switch {
		case errors.As(err, &noMatch):
			return nil, ErrNoIdentityMatch
		case errors.As(err, &armorErr):
			return nil, errors.New("sealed document: invalid age armor (damaged in transit?)")
		}
		return nil, errors.New("sealed document: unreadable age header (damaged or tampered with)")
	}
	plain, err := io.ReadAll(io.LimitReader(r, maxDocument+1))
	if err != nil {
		var armorErr *armor.Error
		if errors.As(err, &armorErr) {
			return nil, errors.New("sealed document: invalid age armor (damaged in transit?)")
		}
		return nil, errors.New("sealed document: the payload does not authenticate (damaged or tampered with)")
	}
	if len(plain) > maxDocument {
		return nil, fmt.Errorf("sealed document: opens to more than %d bytes", maxDocument)
	}
	return plain, nil
}

// sealStateHeader starts the state SealStable keeps; the version is in it
// so that a change of the hashed input makes old state merely stale.
const sealStateHeader = "kubeboot-sealed-join-secret-v1 sha256:"

// SealStable is Seal for a publisher that runs again and again (init
// re-runs converge): sealing is randomized, so sealing afresh each time
// would rewrite every sink, and change the digests the runner compares,
// although nothing changed. prev is the state a previous call returned
// (nil the first time); while doc and recipients are those it was made
// from, its sealing is returned again. The state is the sealed document
// behind one line holding a SHA-256 of the plain document and the
// recipients; it is no more secret than the state directory it belongs in
// (which holds the token itself), and the token and certificate key are
// far too long to guess from the hash.
func SealStable(doc []byte, recipients []string, prev []byte) (sealed, state []byte, err error) {
	sum := sealInputSum(doc, recipients)
	if line, rest, ok := bytes.Cut(prev, []byte("\n")); ok && string(line) == sealStateHeader+sum && IsSealed(rest) {
		return rest, prev, nil
	}
	sealed, err = Seal(doc, recipients)
	if err != nil {
		return nil, nil, err
	}
	state = append([]byte(sealStateHeader+sum+"\n"), sealed...)
	return sealed, state, nil
}

func sealInputSum(doc []byte, recipients []string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%d\n", len(doc))
	h.Write(doc)
	for _, r := range recipients {
		fmt.Fprintf(h, "\n%s", strings.TrimSpace(r))
	}
	return hex.EncodeToString(h.Sum(nil))
}
