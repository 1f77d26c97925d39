// Package policy is the Caddy-free core of the gate: it turns a keys file
// into an immutable Store and decides, for one request, what Canvas would
// decide for the token that request carries. It does no I/O beyond what its
// callers hand it, so tests drive it without HTTP.
package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"time"
	"unsafe"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/matcher"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/oauth"
)

// Store is one compiled, immutable snapshot of a keys file. It is safe for
// concurrent use; a reload builds a new Store and swaps the pointer.
type Store struct {
	keys    []*Key
	keyByID map[string]*Key
	tokens  tokenTable
	clients map[string]*ClientEntry
}

// Key is a compiled developer key.
type Key struct {
	ID              string
	Name            string
	Scopes          []string
	RequireScopes   bool
	AllowIncludes   bool
	Enabled         bool
	AllowMasquerade bool
	Hosts           []string
	Mode            Mode
	TokenCount      int
	// Accounts confine the key to these account subtrees (empty: not
	// confined); UnconfinedScopes are let through without confinement.
	Accounts         []string
	UnconfinedScopes []string
	// ScopeSets are the named sets the key's scopes came from, with
	// their scopes (Scopes holds them expanded).
	ScopeSets map[string][]string

	set           *matcher.Set
	upstreamToken string
	idValue       any
	index         int
	// scopeRefs are the references (oauth.RefOf) of Scopes, for binding
	// gateway tokens, whose claims carry references, to the key.
	scopeRefs map[oauth.ScopeRef]struct{}
}

// HoldsScopeRef reports whether the key holds the scope a gateway token's
// reference names.
func (k *Key) HoldsScopeRef(r oauth.ScopeRef) bool {
	_, ok := k.scopeRefs[r]
	return ok
}

// Index is the key's position in Keys() of the store that compiled it.
func (k *Key) Index() int { return k.index }

// UpstreamToken returns the resolved Canvas token that replaces the client's
// credential, and whether the key substitutes credentials at all.
func (k *Key) UpstreamToken() (string, bool) { return k.upstreamToken, k.upstreamToken != "" }

// Set returns the compiled scope set of the key.
func (k *Key) Set() *matcher.Set { return k.set }

// IDValue returns ID as an interface value boxed once at compile time, for
// callers that store it as an any on every request (Caddy placeholders)
// without allocating.
func (k *Key) IDValue() any {
	if k.idValue == nil {
		return k.ID
	}
	return k.idValue
}

// TokenEntry is one registered (or, for OAuth, verified) gateway token.
type TokenEntry struct {
	ID        string // first 12 hex digits of the SHA-256: safe to log
	Key       *Key
	Label     string
	Scopes    []string // nil: the key's scopes
	ExpiresAt time.Time
	Revoked   bool
	// RevokedReason explains Revoked for logs.
	RevokedReason string

	set     *matcher.Set
	idValue any
}

// IDValue returns ID as an interface value, boxed once at compile time for
// entries from the keys file (see Key.IDValue).
func (t *TokenEntry) IDValue() any {
	if t.idValue == nil {
		return t.ID
	}
	return t.idValue
}

// HoldTo makes the entry use set (the compiled form of its Scopes) instead
// of its key's scopes. For entries built outside the keys file, such as
// verified OAuth gateway tokens.
func (t *TokenEntry) HoldTo(set *matcher.Set) { t.set = set }

// Set returns the scope set the token is held to.
func (t *TokenEntry) Set() *matcher.Set {
	if t.set != nil {
		return t.set
	}
	return t.Key.set
}

// ClientEntry is a compiled OAuth2 client.
type ClientEntry struct {
	ClientID     string
	SecretSHA256 [32]byte
	Key          *Key
	TokenTTL     time.Duration
	Scopes       []string // nil: the key's scopes

	// scopeRefs are the references of EffectiveScopes, in its order.
	scopeRefs []oauth.ScopeRef
	// sets caches the compiled sets of the scope lists its tokens carry,
	// by their references; it lives and dies with the store.
	setsMu sync.Mutex
	sets   map[string]*matcher.Set
}

// EffectiveScopes are the client's own scopes, or its key's.
func (c *ClientEntry) EffectiveScopes() []string {
	if c.Scopes != nil {
		return c.Scopes
	}
	return c.Key.Scopes
}

// ScopeRefs are the references of EffectiveScopes, in its order.
func (c *ClientEntry) ScopeRefs() []oauth.ScopeRef { return c.scopeRefs }

// maxCachedSets bounds the sets cached per client (one per distinct scope
// request).
const maxCachedSets = 64

// ScopeSet returns the compiled set of scopes (a token's, named by refs),
// cached per client so that a request with a gateway token compiles
// nothing.
func (c *ClientEntry) ScopeSet(refs []oauth.ScopeRef, scopes []string) (*matcher.Set, error) {
	b := make([]byte, 0, 8*len(refs))
	for _, r := range refs {
		b = append(b, r[:]...)
	}
	id := string(b)
	c.setsMu.Lock()
	set, ok := c.sets[id]
	c.setsMu.Unlock()
	if ok {
		return set, nil
	}
	set, err := matcher.Intern(scopes)
	if err != nil {
		return nil, err
	}
	c.setsMu.Lock()
	if c.sets == nil {
		c.sets = map[string]*matcher.Set{}
	}
	if len(c.sets) < maxCachedSets {
		c.sets[id] = set
	}
	c.setsMu.Unlock()
	return set, nil
}

// Errors about a secret field name the field and line, never its value.
const (
	msgSecretUnresolved = "could not be resolved: an unknown or failing placeholder such as {env.NAME} or {file.PATH} (the value is not shown)"
	msgSecretEmpty      = "resolved to an empty value (the value is not shown)"
)

// CompileOptions control how a parsed keys file becomes a Store.
type CompileOptions struct {
	// ResolveSecret expands placeholders such as {env.X} and {file.X} in
	// upstream_token. Nil leaves values as written.
	ResolveSecret func(string) (string, error)
}

// Load parses, validates and compiles a keys file in one step.
func Load(name string, data []byte, popts ParseOptions, copts CompileOptions) (*Store, error) {
	kf, err := ParseKeysFile(name, data, popts)
	if err != nil {
		return nil, err
	}
	return Compile(name, kf, copts)
}

// Compile builds a Store from a parsed keys file. content is the file's
// bytes, kept only as a digest to detect changes.
func Compile(name string, kf *KeysFile, opts CompileOptions) (*Store, error) {
	s := &Store{
		keyByID: make(map[string]*Key, len(kf.DeveloperKeys)),
		clients: make(map[string]*ClientEntry, len(kf.Clients)),
	}
	var errs ConfigErrors
	for i := range kf.DeveloperKeys {
		k := compileKey(name, top("developer_keys").at(i), &kf.DeveloperKeys[i], opts, &errs)
		k.index = len(s.keys)
		s.keys = append(s.keys, k)
		s.keyByID[k.ID] = k
	}
	// The entries and their ids live in two large allocations instead of
	// 200,000 small ones for a 100,000-token file: when a reload replaces
	// the store they are freed whole and go back to the OS, where small
	// objects scattered among the parse's garbage kept pages resident.
	entries := make([]TokenEntry, len(kf.Tokens))
	hashes := make([][32]byte, len(kf.Tokens))
	idText := make([]byte, 0, tokenIDLen*len(kf.Tokens))
	for _, t := range kf.Tokens {
		idText = hex.AppendEncode(idText, t.SHA256[:tokenIDLen/2])
	}
	ids := string(idText)
	for i := range kf.Tokens {
		t := &kf.Tokens[i]
		k := s.keyByID[t.DeveloperKey]
		e := &entries[i]
		compileToken(name, top("tokens").at(i), e, ids[i*tokenIDLen:(i+1)*tokenIDLen], k, t, &errs)
		k.TokenCount++
		hashes[i] = t.SHA256
	}
	s.tokens = newTokenTable(entries, hashes)
	for i, c := range kf.Clients {
		k := s.keyByID[c.DeveloperKey]
		if c.Scopes != nil && k.RequireScopes {
			if missing := notIn(c.Scopes, k.Scopes); missing != "" {
				errs = append(errs, ConfigError{File: name, Line: c.line, Field: top("clients").at(i).dot("scopes").String(), Msg: fmt.Sprintf("scope %q is not on developer key %q; a client may only hold a subset of its key's scopes", missing, k.ID)})
			}
		}
		s.clients[c.ClientID] = compileClient(&c, k)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return s, nil
}

// compileKey builds one Key (without its index) and records its problems,
// named by the key's path in the file (at).
func compileKey(name string, at path, dk *DeveloperKey, opts CompileOptions, errs *ConfigErrors) *Key {
	k := &Key{
		ID: dk.ID, Name: dk.Name, Scopes: dk.Scopes,
		RequireScopes: dk.RequireScopes, AllowIncludes: dk.AllowIncludes,
		Enabled: dk.Enabled, AllowMasquerade: dk.AllowMasquerade,
		Hosts: dk.Hosts, Mode: dk.Mode,
		Accounts: dk.Accounts, UnconfinedScopes: dk.UnconfinedScopes,
		ScopeSets: dk.ScopeSets,
	}
	set, err := matcher.Intern(dk.Scopes)
	if err != nil {
		*errs = append(*errs, ConfigError{File: name, Line: dk.line, Field: at.dot("scopes").String(), Msg: err.Error()})
	}
	k.set = set
	if dk.UpstreamToken != "" {
		tok := dk.UpstreamToken
		if opts.ResolveSecret != nil {
			// Neither the value as written nor the resolver's error
			// is echoed: a literal token may contain "{…}", which the
			// resolver then reports as an unknown placeholder, token
			// text and all. The field and file:line locate it.
			tok, err = opts.ResolveSecret(dk.UpstreamToken)
			if err != nil {
				*errs = append(*errs, ConfigError{File: name, Line: dk.line, Field: at.dot("upstream_token").String(), Msg: msgSecretUnresolved})
			}
		}
		if tok == "" && err == nil {
			*errs = append(*errs, ConfigError{File: name, Line: dk.line, Field: at.dot("upstream_token").String(), Msg: msgSecretEmpty})
		}
		k.upstreamToken = tok
	}
	k.scopeRefs = make(map[oauth.ScopeRef]struct{}, len(k.Scopes))
	for _, sc := range k.Scopes {
		k.scopeRefs[oauth.RefOf(sc)] = struct{}{}
	}
	k.idValue = k.ID
	return k
}

// compileToken fills e for token t of key k and records its problems,
// named by the token's path in the file (at).
func compileToken(name string, at path, e *TokenEntry, id string, k *Key, t *Token, errs *ConfigErrors) {
	*e = TokenEntry{
		ID: id, Key: k, Label: t.Label,
		ExpiresAt: t.ExpiresAt, Revoked: t.Revoked,
	}
	e.idValue = e.ID
	if t.Revoked {
		e.RevokedReason = "token marked revoked"
	}
	if t.HasScopes {
		e.Scopes = t.Scopes
		set, err := matcher.Intern(t.Scopes)
		if err != nil {
			*errs = append(*errs, ConfigError{File: name, Line: t.line, Field: at.dot("scopes").String(), Msg: err.Error()})
		}
		e.set = set
		// Canvas: removing a scope from a key revokes its tokens. A
		// token holding a scope its key no longer has is revoked.
		if k.RequireScopes && !e.Revoked {
			if missing := notIn(t.Scopes, k.Scopes); missing != "" {
				e.Revoked = true
				e.RevokedReason = fmt.Sprintf("token scope %q is no longer on developer key %q", missing, k.ID)
			}
		}
	}
}

// compileClient builds the entry of client c of key k.
func compileClient(c *Client, k *Key) *ClientEntry {
	ce := &ClientEntry{ClientID: c.ClientID, SecretSHA256: c.SecretSHA256, Key: k, TokenTTL: c.TokenTTL, Scopes: c.Scopes}
	ce.scopeRefs = oauth.RefsInOrder(ce.EffectiveScopes())
	return ce
}

func notIn(sub, super []string) string {
	for _, s := range sub {
		if !slices.Contains(super, s) {
			return s
		}
	}
	return ""
}

// Keys returns the developer keys in file order.
func (s *Store) Keys() []*Key { return s.keys }

// Key returns the developer key with the given id.
func (s *Store) Key(id string) *Key { return s.keyByID[id] }

// TokenCount is the number of registered tokens.
func (s *Store) TokenCount() int { return s.tokens.count }

// ClientCount is the number of registered OAuth2 clients.
func (s *Store) ClientCount() int { return len(s.clients) }

// Client returns the OAuth2 client with the given id.
func (s *Store) Client(id string) *ClientEntry { return s.clients[id] }

// Lookup finds a registered token by its full text.
func (s *Store) Lookup(token string) *TokenEntry {
	h := HashToken(token)
	return s.tokens.lookup(&h)
}

// LookupHash finds a registered token by its SHA-256.
func (s *Store) LookupHash(h [32]byte) *TokenEntry { return s.tokens.lookup(&h) }

// HashToken is the SHA-256 of the token's full text, the form in which
// tokens are stored.
func HashToken(token string) [32]byte {
	// Sum256 only reads its argument, so viewing the string's bytes in
	// place avoids copying a secret onto the heap.
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
}

// TokenID is the loggable short id of a token hash: its first 12 hex digits.
func TokenID(h [32]byte) string { return hex.EncodeToString(h[:tokenIDLen/2]) }

const tokenIDLen = 12
