// Package oauth is the Caddy-free core of the gate's machine-to-machine
// access: self-contained HMAC-signed gateway tokens, OAuth2 client
// authentication (RFC 6749 §2.3.1), token request parsing, the revocation
// set and the per-address failure limiter. It uses the standard library
// only; the caddymodule package wires it to HTTP, the key store, metrics and
// logs.
package oauth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Prefix starts every gateway token. It names the format version and can
// never start a Canvas token (<digits>~<alnum>), so the gate can tell its
// own tokens apart without a lookup.
const Prefix = "cgw1."

// MinSigningKeyLen is the shortest accepted signing key, in bytes.
const MinSigningKeyLen = 32

// MaxTokenLen bounds the text the parser looks at. A token carries 8 bytes
// per scope, so even a client with 1000 scopes stays well below it.
const MaxTokenLen = 16 << 10

// Limits on the variable-length payload fields.
const (
	maxIDLen     = 255
	maxScopeRefs = 4096
)

const payloadVersion = 1

// ScopeRef is the 8-byte reference a token carries for one scope: a
// domain-separated SHA-256 prefix of the scope string. The scope text is
// recovered from the client's current scopes at verification time, which
// keeps tokens short and lets a removed scope revoke the token (Canvas's
// rule) instead of being silently trusted.
type ScopeRef [8]byte

// RefOf returns the reference of one scope string.
func RefOf(scope string) ScopeRef {
	h := sha256.New()
	h.Write([]byte("canvas-scopes gateway token scope\x00"))
	h.Write([]byte(scope))
	var r ScopeRef
	copy(r[:], h.Sum(nil))
	return r
}

// SecretGen is the client's secret generation: the first 8 bytes of its
// secret_sha256. Rotating the secret changes it and so revokes the tokens
// issued under the old secret.
type SecretGen [8]byte

// GenOf returns the secret generation of a secret_sha256.
func GenOf(secretSHA256 [32]byte) SecretGen {
	var g SecretGen
	copy(g[:], secretSHA256[:8])
	return g
}

// Claims is what a gateway token says. Everything in it is covered by the
// signature.
type Claims struct {
	ID        [16]byte // random token id (jti)
	KeyID     string   // developer key id
	ClientID  string
	Scopes    []ScopeRef // sorted, unique
	IssuedAt  time.Time  // whole seconds
	ExpiresAt time.Time  // whole seconds
	SecretGen SecretGen
	// SigningKey is the id of the signing key that signed the token
	// (filled in by Issue and Verify).
	SigningKey [4]byte
}

// JTI is the token id as 32 hex digits, as introspection reports it. It
// is not a secret: a token cannot be rebuilt from it.
func (c *Claims) JTI() string { return hex.EncodeToString(c.ID[:]) }

// ShortID is the loggable short id: the first 12 hex digits of the jti.
func (c *Claims) ShortID() string { return hex.EncodeToString(c.ID[:6]) }

// Errors from Verify. They are deliberately coarse: the HTTP answer for all
// of them is Canvas's "Invalid access token.".
var (
	ErrMalformed    = errors.New("malformed gateway token")
	ErrBadSignature = errors.New("gateway token signature does not verify")
	ErrUnknownKey   = errors.New("gateway token was signed with a key that is not configured")
)

var b64 = base64.RawURLEncoding.Strict()

type signingKey struct {
	id  [4]byte
	key []byte
}

// Signer issues and verifies gateway tokens. The first key signs; every key
// verifies, so keys rotate without downtime: configure [new, old], wait for
// the longest token_ttl, then drop old.
type Signer struct {
	keys []signingKey
}

// KeyID is the public id of a signing key: a domain-separated SHA-256
// prefix. It only selects which key to try.
func KeyID(key []byte) [4]byte {
	h := sha256.New()
	h.Write([]byte("canvas-scopes gateway signing key id\x00"))
	h.Write(key)
	var id [4]byte
	copy(id[:], h.Sum(nil))
	return id
}

// NewSigner checks the keys (at least one, each at least MinSigningKeyLen
// bytes). Errors name the key's position, never its value.
func NewSigner(keys [][]byte) (*Signer, error) {
	if len(keys) == 0 {
		return nil, errors.New("at least one signing key is required")
	}
	s := &Signer{}
	for i, k := range keys {
		if len(k) < MinSigningKeyLen {
			return nil, fmt.Errorf("signing key %d is %d bytes; at least %d are required", i+1, len(k), MinSigningKeyLen)
		}
		s.keys = append(s.keys, signingKey{id: KeyID(k), key: slices.Clone(k)})
	}
	return s, nil
}

// Issue signs c with the first key and returns the token text. c.Scopes
// is sorted and deduplicated first.
func (s *Signer) Issue(c Claims) (string, error) {
	if len(c.KeyID) == 0 || len(c.KeyID) > maxIDLen || len(c.ClientID) == 0 || len(c.ClientID) > maxIDLen {
		return "", errors.New("developer key and client ids must be 1 to 255 bytes")
	}
	if len(c.Scopes) > maxScopeRefs {
		return "", fmt.Errorf("a token may carry at most %d scopes", maxScopeRefs)
	}
	c.Scopes = sortRefs(c.Scopes)
	k := s.keys[0]
	c.SigningKey = k.id
	payload := encodePayload(&c)
	var sb strings.Builder
	sb.Grow(len(Prefix) + b64.EncodedLen(len(payload)) + 1 + b64.EncodedLen(sha256.Size))
	sb.WriteString(Prefix)
	sb.WriteString(b64.EncodeToString(payload))
	mac := sign(k.key, sb.String())
	sb.WriteByte('.')
	sb.WriteString(b64.EncodeToString(mac))
	return sb.String(), nil
}

// IsGatewayToken reports whether a credential is in the gateway format
// (it may still be invalid).
func IsGatewayToken(token string) bool { return strings.HasPrefix(token, Prefix) }

// Verify checks the token's form and signature and returns its claims. It
// does not check expiry, revocation or the client: see Check.
func (s *Signer) Verify(token string) (Claims, error) {
	c, signed, mac, err := parse(token)
	if err != nil {
		return Claims{}, err
	}
	found := false
	ok := false
	for _, k := range s.keys {
		if k.id != c.SigningKey {
			continue
		}
		found = true
		// hmac.Equal is constant-time.
		if hmac.Equal(sign(k.key, signed), mac) {
			ok = true
		}
	}
	switch {
	case !found:
		return Claims{}, ErrUnknownKey
	case !ok:
		return Claims{}, ErrBadSignature
	}
	return c, nil
}

func sign(key []byte, signed string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(signed))
	return m.Sum(nil)
}

// parse splits and decodes a token without verifying it. signed is the
// exact text the MAC covers (prefix and encoded payload).
func parse(token string) (c Claims, signed string, mac []byte, err error) {
	if len(token) > MaxTokenLen || !strings.HasPrefix(token, Prefix) {
		return Claims{}, "", nil, ErrMalformed
	}
	rest := token[len(Prefix):]
	// Go's base64 decoders skip '\r' and '\n', so without this check a
	// token with line breaks inserted would verify as the issued one:
	// one credential, one spelling (found by FuzzVerify).
	for i := 0; i < len(rest); i++ {
		if !isTokenByte(rest[i]) {
			return Claims{}, "", nil, ErrMalformed
		}
	}
	p, m, ok := strings.Cut(rest, ".")
	if !ok || p == "" || m == "" || strings.Contains(m, ".") {
		return Claims{}, "", nil, ErrMalformed
	}
	payload, err := b64.DecodeString(p)
	if err != nil {
		return Claims{}, "", nil, ErrMalformed
	}
	mac, err = b64.DecodeString(m)
	if err != nil || len(mac) != sha256.Size {
		return Claims{}, "", nil, ErrMalformed
	}
	c, err = decodePayload(payload)
	if err != nil {
		return Claims{}, "", nil, ErrMalformed
	}
	return c, token[:len(Prefix)+len(p)], mac, nil
}

// isTokenByte reports whether c may appear after the prefix: the
// base64url alphabet and the '.' between payload and MAC.
func isTokenByte(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.'
}

// Payload layout (version 1), all integers big-endian:
//
//	1  version
//	4  signing key id
//	16 token id
//	8  issued at (unix seconds)
//	8  expires at (unix seconds)
//	8  client secret generation
//	1+ client id (length byte, bytes)
//	1+ developer key id (length byte, bytes)
//	2  scope count n, then n × 8 scope references
func encodePayload(c *Claims) []byte {
	b := make([]byte, 0, 1+4+16+8+8+8+2+len(c.ClientID)+len(c.KeyID)+2+8*len(c.Scopes))
	b = append(b, payloadVersion)
	b = append(b, c.SigningKey[:]...)
	b = append(b, c.ID[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(c.IssuedAt.Unix()))
	b = binary.BigEndian.AppendUint64(b, uint64(c.ExpiresAt.Unix()))
	b = append(b, c.SecretGen[:]...)
	b = append(b, byte(len(c.ClientID)))
	b = append(b, c.ClientID...)
	b = append(b, byte(len(c.KeyID)))
	b = append(b, c.KeyID...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(c.Scopes)))
	for _, r := range c.Scopes {
		b = append(b, r[:]...)
	}
	return b
}

func decodePayload(b []byte) (Claims, error) {
	var c Claims
	bad := errors.New("bad payload")
	take := func(n int) []byte {
		if n > len(b) {
			return nil
		}
		v := b[:n]
		b = b[n:]
		return v
	}
	fixed := take(1 + 4 + 16 + 8 + 8 + 8)
	if fixed == nil || fixed[0] != payloadVersion {
		return c, bad
	}
	fixed = fixed[1:]
	copy(c.SigningKey[:], fixed[:4])
	copy(c.ID[:], fixed[4:20])
	iat := int64(binary.BigEndian.Uint64(fixed[20:28]))
	exp := int64(binary.BigEndian.Uint64(fixed[28:36]))
	copy(c.SecretGen[:], fixed[36:44])
	str := func() (string, bool) {
		l := take(1)
		if l == nil || l[0] == 0 {
			return "", false
		}
		v := take(int(l[0]))
		if v == nil {
			return "", false
		}
		return string(v), true
	}
	var ok bool
	if c.ClientID, ok = str(); !ok {
		return c, bad
	}
	if c.KeyID, ok = str(); !ok {
		return c, bad
	}
	nb := take(2)
	if nb == nil {
		return c, bad
	}
	n := int(binary.BigEndian.Uint16(nb))
	if n > maxScopeRefs || len(b) != 8*n {
		return c, bad
	}
	c.Scopes = make([]ScopeRef, n)
	for i := range c.Scopes {
		copy(c.Scopes[i][:], b[8*i:])
	}
	// Issue writes sorted, unique references; anything else was not
	// written by us.
	for i := 1; i < n; i++ {
		if string(c.Scopes[i-1][:]) >= string(c.Scopes[i][:]) {
			return c, bad
		}
	}
	if iat < 0 || exp <= iat {
		return c, bad
	}
	c.IssuedAt, c.ExpiresAt = time.Unix(iat, 0), time.Unix(exp, 0)
	return c, nil
}

func sortRefs(refs []ScopeRef) []ScopeRef {
	out := slices.Clone(refs)
	slices.SortFunc(out, CmpRef)
	return slices.Compact(out)
}
