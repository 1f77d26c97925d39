package policy

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/internal/jsontree"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/matcher"
)

// KeysFile is the parsed form of the keys file. Its JSON shape is documented
// field by field in the README ("Keys file").
type KeysFile struct {
	DeveloperKeys []DeveloperKey
	Tokens        []Token
	Clients       []Client
	// ScopeSets are the named scope sets, expanded (see scopesets.go).
	ScopeSets map[string][]string
	// Written keeps the scope sets and the scope lists that name one as
	// they were written (nil when the file has neither), so that the file
	// can be written back with its sets (db export, the CLI's rewrites).
	Written *WrittenScopes
}

// DeveloperKey mirrors a Canvas developer key: the scopes its tokens may
// hold and the flags Canvas keeps on the key.
type DeveloperKey struct {
	ID              string
	Name            string
	Scopes          []string
	RequireScopes   bool // default true: we exist to scope
	AllowIncludes   bool
	Enabled         bool // default true
	Hosts           []string
	AllowMasquerade bool
	UpstreamToken   string // as written, usually a {env.*} or {file.*} placeholder
	// AllowUpstreamCredentialMinting acknowledges that a key with
	// UpstreamToken holds scopes that mint credentials of the upstream
	// user (see mintingRoutes), or has RequireScopes false.
	AllowUpstreamCredentialMinting bool
	Mode                           Mode
	// Accounts are the roots of the account subtrees the key is confined
	// to, in any form Canvas accepts for an account id ("42",
	// "sis_account_id:ENG", "self"). Empty: not confined.
	Accounts []string
	// UnconfinedScopes are scopes of the key let through without
	// confinement (see package confine).
	UnconfinedScopes []string
	// ScopeSets are the sets Scopes named ("@name"), with their scopes;
	// Scopes holds them expanded.
	ScopeSets map[string][]string
	line      int
}

// Token registers one gateway token by the SHA-256 of its full text.
type Token struct {
	SHA256       [32]byte
	DeveloperKey string
	Label        string
	Scopes       []string // nil: the key's scopes at request time
	HasScopes    bool
	ExpiresAt    time.Time // zero: never
	Revoked      bool
	line         int
}

// Client is an OAuth2 client_credentials client bound to one developer key.
type Client struct {
	ClientID     string
	SecretSHA256 [32]byte
	DeveloperKey string
	TokenTTL     time.Duration
	Scopes       []string // nil: all of the key's scopes
	line         int
}

// Mode says whether a key's denials are enforced or only reported.
type Mode uint8

const (
	ModeEnforce Mode = iota
	ModeReport
)

func (m Mode) String() string {
	if m == ModeReport {
		return "report"
	}
	return "enforce"
}

// ConfigError is one problem in a keys file, located by line and field.
type ConfigError struct {
	File  string
	Line  int
	Field string
	Msg   string // includes the suggestions, as "; did you mean …?"
	// Suggestions are what Msg proposes instead, when anything.
	Suggestions []string
}

func (e ConfigError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Field, e.Msg)
}

// ConfigErrors collects every problem found in one file, so an operator can
// fix them all in one pass.
type ConfigErrors []ConfigError

func (es ConfigErrors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

// ParseOptions control validation of a keys file.
type ParseOptions struct {
	// AllowUnknownScopes accepts well-formed scopes that are missing from
	// the embedded Canvas catalogue (newer Canvas versions, plugins).
	AllowUnknownScopes bool
	// Catalogue, when set, replaces the embedded catalogue for
	// validation (the catalogue_file directive).
	Catalogue *matcher.FileCatalogue
}

// DefaultClientTokenTTL is used when a client has no token_ttl.
const DefaultClientTokenTTL = time.Hour

type parser struct {
	file  string
	data  []byte
	opts  ParseOptions
	errs  ConfigErrors
	lines []int64 // offsets of the newlines in data, built on first use
	// validScopes are scopes that passed the grammar and catalogue checks.
	validScopes map[string]bool
	// interned holds one copy of each repeated string (scopes, key ids):
	// the tree's strings are views of the file's bytes and must not be
	// kept, and a file with 100,000 tokens repeats a few hundred values.
	interned map[string]string
	seen     map[string]bool // scratch for duplicate scopes within one list
	// lists holds the string lists (scopes, hosts) in large shared
	// arrays rather than one small allocation each; list is scratch.
	lists jsontree.Slab[string]
	list  []string
	text  []byte // current text block of keep
	// sets are the resolved scope sets (scopesets.go); setNodes their
	// members in the file, setNames their sorted names, and usedSets
	// collects the sets one key names.
	sets     map[string][]string
	setNodes map[string]*jsontree.Member
	setNames []string
	usedSets map[string]bool
	written  *WrittenScopes
}

// line is the 1-based line of byte offset off. Every entry records its line,
// so counting newlines from the start each time made loading quadratic:
// 62 s for a file with 100,000 tokens. This indexes them once.
func (p *parser) line(off int64) int {
	if p.lines == nil {
		p.lines = make([]int64, 0, bytes.Count(p.data, []byte{'\n'}))
		for i, c := range p.data {
			if c == '\n' {
				p.lines = append(p.lines, int64(i))
			}
		}
	}
	off = min(off, int64(len(p.data)))
	n, _ := slices.BinarySearch(p.lines, off)
	return n + 1
}

func (p *parser) errorf(off int64, at path, format string, args ...any) {
	p.errs = append(p.errs, ConfigError{File: p.file, Line: p.line(off), Field: strings.Clone(at.String()), Msg: fmt.Sprintf(format, args...)})
}

// keep copies a string out of the file's bytes (see jsontree.Node.Text). The copies
// share large text blocks (p.text) that are appended to and never
// rewritten, for the reason slabs exist: few allocations, freed whole.
func (p *parser) keep(s string) string {
	if s == "" {
		return ""
	}
	if len(s) > cap(p.text)-len(p.text) {
		p.text = make([]byte, 0, max(64<<10, len(s)))
	}
	start := len(p.text)
	p.text = append(p.text, s...)
	return unsafe.String(&p.text[start], len(s))
}

// intern is keep for values that repeat: one copy per distinct value.
func (p *parser) intern(s string) string {
	if v, ok := p.interned[s]; ok {
		return v
	}
	if p.interned == nil {
		p.interned = map[string]string{}
	}
	v := p.keep(s)
	p.interned[v] = v
	return v
}

// path names a field in error messages, such as tokens[12].scopes[3]. It is
// a value built without allocating and turned into text only when an
// error is reported: the parser visits a million fields in a large file.
type path struct {
	list  string // "tokens", or a top-level field name
	i     int    // index in list, or -1
	field string // "scopes", or ""
	j     int    // index in field, or -1
}

func top(name string) path           { return path{list: name, i: -1, j: -1} }
func (q path) at(i int) path         { q.i = i; return q }
func (q path) dot(field string) path { q.field = field; q.j = -1; return q }
func (q path) index(j int) path      { q.j = j; return q }
func (q path) String() string {
	s := q.list
	if q.i >= 0 {
		s += "[" + strconv.Itoa(q.i) + "]"
	}
	if q.field != "" {
		s = join(s, q.field)
	}
	if q.j >= 0 {
		s += "[" + strconv.Itoa(q.j) + "]"
	}
	return s
}

// ParseKeysFile parses and validates a keys file. name is used in error
// messages only. All problems are returned together as ConfigErrors. The
// result holds no reference to data.
func ParseKeysFile(name string, data []byte, opts ParseOptions) (*KeysFile, error) {
	p := &parser{file: name, data: data, opts: opts}
	// Each token has one "sha256" jsontree.Member (clients have "secret_sha256"):
	// counting them sizes the list once instead of growing it ~17 times.
	kf := &KeysFile{Tokens: make([]Token, 0, bytes.Count(data, []byte(`"sha256"`)))}
	p.readScopeSets(data)
	// The three lists are streamed: each entry is checked as soon as it is
	// read, so the tree of a large file is never in memory at once.
	root, err := jsontree.Parse(data, func(list string, i int, n *jsontree.Node) {
		at := top(list).at(i)
		switch list {
		case "developer_keys":
			kf.DeveloperKeys = append(kf.DeveloperKeys, p.developerKey(n, at))
		case "tokens":
			kf.Tokens = append(kf.Tokens, p.token(n, at))
		case "clients":
			kf.Clients = append(kf.Clients, p.client(n, at))
		}
	})
	if err != nil {
		off := int64(0)
		if se, ok := err.(*jsontree.SyntaxError); ok {
			off = se.Offset
		}
		p.errs = nil // only the syntax error: what came before may be cut short
		p.errorf(off, path{i: -1, j: -1}, "invalid JSON: %v", err)
		return nil, p.errs
	}
	// The lists' entries were seen while reading; what remains is the
	// top-level shape: unknown fields and lists that are not arrays.
	p.object(root, path{i: -1, j: -1}, topFields, func(m *jsontree.Member) bool {
		switch m.Name {
		case "developer_keys", "tokens", "clients":
			p.array(m.Value, top(m.Name), func(int, *jsontree.Node) {})
			return true
		case "scope_sets":
			return true // read by readScopeSets
		}
		return false
	})
	p.crossCheck(kf)
	kf.ScopeSets = p.sets
	kf.Written = p.written
	if len(p.errs) > 0 {
		sort.SliceStable(p.errs, func(i, j int) bool { return p.errs[i].Line < p.errs[j].Line })
		return nil, p.errs
	}
	return kf, nil
}

// The fields each object may have, sorted: the suggestion when a field is
// unknown.
var (
	topFields    = []string{"clients", "developer_keys", "scope_sets", "tokens"}
	keyFields    = []string{"accounts", "allow_includes", "allow_masquerade", AllowMintingField, "enabled", "hosts", "id", "mode", "name", "require_scopes", "scopes", "unconfined_scopes", "upstream_token"}
	tokenFields  = []string{"developer_key", "expires_at", "label", "revoked", "scopes", "sha256"}
	clientFields = []string{"client_id", "developer_key", "scopes", "secret_sha256", "token_ttl"}
)

// object walks an object's members; each reports whether it knew the
// jsontree.Member, and unknown ones are errors listing the known field names.
func (p *parser) object(n *jsontree.Node, at path, known []string, each func(m *jsontree.Member) bool) {
	if n.Kind != jsontree.KindObject {
		p.errorf(n.Offset, at, "must be an object, not %s", n.KindName())
		return
	}
	for i := range n.Object {
		m := &n.Object[i]
		if !each(m) {
			field := at.dot(m.Name)
			if at.list == "" {
				field = top(m.Name)
			}
			p.errorf(m.Offset, field, "unknown field (known fields: %s)", strings.Join(known, ", "))
		}
	}
}

func (p *parser) array(n *jsontree.Node, at path, each func(int, *jsontree.Node)) {
	if n.Kind != jsontree.KindArray {
		p.errorf(n.Offset, at, "must be an array, not %s", n.KindName())
		return
	}
	for i, e := range n.Array {
		each(i, e)
	}
}

// str returns a string value as a view of the file (see keep and intern).
func (p *parser) str(n *jsontree.Node, at path) string {
	if n.Kind != jsontree.KindString {
		p.errorf(n.Offset, at, "must be a string, not %s", n.KindName())
		return ""
	}
	return n.Text
}

func (p *parser) boolean(n *jsontree.Node, at path) bool {
	if n.Kind != jsontree.KindBool {
		p.errorf(n.Offset, at, "must be true or false, not %s", n.KindName())
	}
	return n.Bool
}

// strings returns a list of strings, each interned.
func (p *parser) strings(n *jsontree.Node, at path) []string {
	if n.Kind != jsontree.KindArray {
		p.errorf(n.Offset, at, "must be an array, not %s", n.KindName())
		return []string{}
	}
	p.list = p.list[:0]
	for i, e := range n.Array {
		p.list = append(p.list, p.intern(p.str(e, at.index(i))))
	}
	return p.lists.Take(p.list)
}

// scopes validates a scope list: grammar always, catalogue unless allowed.
func (p *parser) scopes(n *jsontree.Node, at path) []string {
	list := p.strings(n, at)
	if p.seen == nil {
		p.seen = map[string]bool{}
	}
	clear(p.seen)
	for i, s := range list {
		// The checks are paid for once per distinct scope, not once per
		// occurrence: a file with 100,000 tokens repeats the same scopes
		// hundreds of thousands of times.
		off := n.Array[i].Offset
		if n.Array[i].Kind != jsontree.KindString {
			continue // already reported by strings
		}
		if p.seen[s] {
			p.errorf(off, at.index(i), "duplicate scope %q", s)
			continue
		}
		p.seen[s] = true
		if p.validScopes[s] {
			continue
		}
		if prob := p.checkScope(s); prob != nil {
			msg := prob.Message()
			if errors.Is(prob.Err, matcher.ErrNotInCatalogue) {
				msg += " (allow_unknown_scopes accepts scopes from newer Canvas versions or plugins)"
			}
			p.errorf(off, at.index(i), "%s", msg)
			p.errs[len(p.errs)-1].Suggestions = prob.Suggestions
			continue
		}
		if p.validScopes == nil {
			p.validScopes = map[string]bool{}
		}
		p.validScopes[s] = true
	}
	return list
}

func (p *parser) checkScope(s string) *matcher.ScopeProblem {
	if p.opts.Catalogue != nil {
		return p.opts.Catalogue.CheckScope(s, p.opts.AllowUnknownScopes)
	}
	return matcher.CheckScope(s, p.opts.AllowUnknownScopes)
}

func (p *parser) sha256(n *jsontree.Node, at path) [32]byte {
	var h [32]byte
	s := p.str(n, at)
	if n.Kind != jsontree.KindString {
		return h
	}
	if len(s) != 64 || strings.ToLower(s) != s {
		p.errorf(n.Offset, at, "must be 64 lower-case hex characters (the SHA-256 of the secret; see `caddy canvas-scopes hash-token`)")
		return h
	}
	if _, err := hex.Decode(h[:], unsafe.Slice(unsafe.StringData(s), len(s))); err != nil {
		// Not %v: hex's error quotes the offending character, and a
		// token pasted here in place of its hash would leak through it.
		p.errorf(n.Offset, at, "must be 64 lower-case hex characters (the SHA-256 of the secret; see `caddy canvas-scopes hash-token`)")
	}
	return h
}

func (p *parser) developerKey(n *jsontree.Node, at path) DeveloperKey {
	k := DeveloperKey{RequireScopes: true, Enabled: true, line: p.line(n.Offset)}
	var hasScopes bool
	var scopesNode, requireNode, mintingNode *jsontree.Node
	var scopesMember, accountsNode, unconfinedNode *jsontree.Member
	p.object(n, at, keyFields, func(m *jsontree.Member) bool {
		v, f := m.Value, at.dot(m.Name)
		switch m.Name {
		case "id":
			k.ID = p.intern(p.str(v, f))
		case "name":
			k.Name = p.keep(p.str(v, f))
		case "scopes":
			hasScopes = true
			scopesMember = m
			p.usedSets = map[string]bool{}
			p.noteWritten(writtenKey, at.i, v)
			m.Value = p.expandSets(v, f, nil)
			v = m.Value
			k.ScopeSets = p.keyScopeSets()
			p.usedSets = nil
			k.Scopes = p.scopes(v, f)
			scopesNode = v
		case "accounts":
			accountsNode = m
			k.Accounts = p.strings(v, f)
		case "unconfined_scopes":
			unconfinedNode = m
			p.noteWritten(writtenKeyUnconfined, at.i, v)
			m.Value = p.expandSets(v, f, nil)
			k.UnconfinedScopes = p.strings(m.Value, f)
		case "require_scopes":
			k.RequireScopes = p.boolean(v, f)
			requireNode = v
		case AllowMintingField:
			k.AllowUpstreamCredentialMinting = p.boolean(v, f)
			mintingNode = v
		case "allow_includes":
			k.AllowIncludes = p.boolean(v, f)
		case "enabled":
			k.Enabled = p.boolean(v, f)
		case "allow_masquerade":
			k.AllowMasquerade = p.boolean(v, f)
		case "hosts":
			k.Hosts = p.strings(v, f)
			for i, h := range k.Hosts {
				if h == "" || strings.ContainsAny(h, "/ ") || strings.ToLower(h) != h {
					p.errorf(v.Array[i].Offset, f.index(i), "must be a lower-case host name (optionally with :port), got %q", h)
				}
			}
		case "upstream_token":
			k.UpstreamToken = p.keep(p.str(v, f))
			if k.UpstreamToken == "" {
				p.errorf(v.Offset, f, "must not be empty; leave the field out to forward the client's own Canvas token")
			}
		case "mode":
			switch s := p.str(v, f); s {
			case "enforce", "":
				k.Mode = ModeEnforce
			case "report":
				k.Mode = ModeReport
			default:
				p.errorf(v.Offset, f, "must be \"enforce\" or \"report\", got %q", s)
			}
		default:
			return false
		}
		return true
	})
	if n.Kind == jsontree.KindObject && k.ID == "" {
		p.errorf(n.Offset, at.dot("id"), "is required")
	}
	if n.Kind == jsontree.KindObject && !hasScopes && k.RequireScopes {
		p.errorf(n.Offset, at.dot("scopes"), "is required when require_scopes is true (an empty list allows nothing but /login/oauth2/token)")
	}
	if n.Kind == jsontree.KindObject {
		p.checkMinting(&k, at, scopesNode, requireNode, mintingNode)
		p.confinement(&k, at, scopesMember, accountsNode, unconfinedNode)
	}
	return k
}

// checkMinting refuses a key with upstream_token whose scopes mint
// credentials of the upstream user (or that requires no scopes at all)
// unless it sets allow_upstream_credential_minting, and refuses that field
// set to true on a key without upstream_token, where it would mean nothing.
func (p *parser) checkMinting(k *DeveloperKey, at path, scopesNode, requireNode, mintingNode *jsontree.Node) {
	if k.UpstreamToken == "" {
		if k.AllowUpstreamCredentialMinting {
			p.errorf(mintingNode.Offset, at.dot(AllowMintingField), "has no effect without upstream_token (the client's own Canvas token is forwarded); remove it")
		}
		return
	}
	if k.AllowUpstreamCredentialMinting {
		return
	}
	const consequence = "with upstream_token the vendor could use it outside the gate, with that user's whole power"
	const remedy = `set "` + AllowMintingField + `": true on the key to accept that`
	if !k.RequireScopes {
		p.errorf(requireNode.Offset, at.dot("require_scopes"), "false with upstream_token lets the vendor call every Canvas endpoint as the upstream user, including ones that mint credentials of that user for use outside the gate (such as %q: %s); list scopes, or %s",
			mintingRoutes[0].scope, mintingRoutes[0].why, remedy)
		return
	}
	if scopesNode == nil || scopesNode.Kind != jsontree.KindArray {
		return
	}
	for i, s := range k.Scopes {
		route, why, ok := mintingRoute(s)
		if !ok {
			continue
		}
		what := fmt.Sprintf("scope %q mints a credential of the upstream user (%s)", s, why)
		if route != s {
			what = fmt.Sprintf("scope %q also matches %q, as Canvas matches scopes, which mints a credential of the upstream user (%s)", s, route, why)
		}
		p.errorf(scopesNode.Array[i].Offset, at.dot("scopes").index(i), "%s; %s. Remove the scope, or %s", what, consequence, remedy)
	}
}

func (p *parser) token(n *jsontree.Node, at path) Token {
	t := Token{line: p.line(n.Offset)}
	var hasHash bool
	p.object(n, at, tokenFields, func(m *jsontree.Member) bool {
		v, f := m.Value, at.dot(m.Name)
		switch m.Name {
		case "sha256":
			hasHash = true
			t.SHA256 = p.sha256(v, f)
		case "developer_key":
			t.DeveloperKey = p.intern(p.str(v, f))
		case "label":
			t.Label = p.keep(p.str(v, f))
		case "scopes":
			t.HasScopes = true
			p.noteWritten(writtenToken, at.i, v)
			t.Scopes = p.scopes(p.expandSets(v, f, nil), f)
		case "expires_at":
			s := p.str(v, f)
			ts, err := time.Parse(time.RFC3339, s)
			if err != nil {
				p.errorf(v.Offset, f, "must be an RFC 3339 time such as 2027-06-30T00:00:00Z, got %q", s)
			}
			t.ExpiresAt = ts
		case "revoked":
			t.Revoked = p.boolean(v, f)
		default:
			return false
		}
		return true
	})
	if n.Kind == jsontree.KindObject && !hasHash {
		p.errorf(n.Offset, at.dot("sha256"), "is required")
	}
	if n.Kind == jsontree.KindObject && t.DeveloperKey == "" {
		p.errorf(n.Offset, at.dot("developer_key"), "is required")
	}
	return t
}

func (p *parser) client(n *jsontree.Node, at path) Client {
	c := Client{TokenTTL: DefaultClientTokenTTL, line: p.line(n.Offset)}
	var hasSecret bool
	p.object(n, at, clientFields, func(m *jsontree.Member) bool {
		v, f := m.Value, at.dot(m.Name)
		switch m.Name {
		case "client_id":
			c.ClientID = p.keep(p.str(v, f))
		case "secret_sha256":
			hasSecret = true
			c.SecretSHA256 = p.sha256(v, f)
		case "developer_key":
			c.DeveloperKey = p.intern(p.str(v, f))
		case "token_ttl":
			s := p.str(v, f)
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 || d > 24*time.Hour {
				p.errorf(v.Offset, f, "must be a duration between 1s and 24h such as \"1h\", got %q", s)
			}
			c.TokenTTL = d
		case "scopes":
			p.noteWritten(writtenClient, at.i, v)
			c.Scopes = p.scopes(p.expandSets(v, f, nil), f)
		default:
			return false
		}
		return true
	})
	if n.Kind == jsontree.KindObject && c.ClientID == "" {
		p.errorf(n.Offset, at.dot("client_id"), "is required")
	}
	if n.Kind == jsontree.KindObject && !hasSecret {
		p.errorf(n.Offset, at.dot("secret_sha256"), "is required")
	}
	if n.Kind == jsontree.KindObject && c.DeveloperKey == "" {
		p.errorf(n.Offset, at.dot("developer_key"), "is required")
	}
	return c
}

// crossCheck validates references between sections: unique ids, tokens and
// clients naming existing keys.
func (p *parser) crossCheck(kf *KeysFile) {
	keyLine := map[string]int{}
	for i, k := range kf.DeveloperKeys {
		if k.ID == "" {
			continue
		}
		if first, dup := keyLine[k.ID]; dup {
			p.errs = append(p.errs, ConfigError{File: p.file, Line: k.line, Field: top("developer_keys").at(i).dot("id").String(), Msg: fmt.Sprintf("duplicate developer key id %q (first defined on line %d)", k.ID, first)})
			continue
		}
		keyLine[k.ID] = k.line
	}
	ids := make([]string, 0, len(keyLine))
	for id := range keyLine {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	unknownKey := func(line int, field path, id string) {
		msg := fmt.Sprintf("no developer key has id %q", id)
		if s := closest(id, ids); s != "" {
			msg += fmt.Sprintf("; did you mean %q?", s)
		}
		p.errs = append(p.errs, ConfigError{File: p.file, Line: line, Field: field.String(), Msg: msg})
	}
	tokenLine := map[[32]byte]int{}
	for i, t := range kf.Tokens {
		if t.DeveloperKey != "" {
			if _, ok := keyLine[t.DeveloperKey]; !ok {
				unknownKey(t.line, top("tokens").at(i).dot("developer_key"), t.DeveloperKey)
			}
		}
		if t.SHA256 == ([32]byte{}) {
			continue
		}
		if first, dup := tokenLine[t.SHA256]; dup {
			p.errs = append(p.errs, ConfigError{File: p.file, Line: t.line, Field: top("tokens").at(i).dot("sha256").String(), Msg: fmt.Sprintf("duplicate token hash (first on line %d)", first)})
			continue
		}
		tokenLine[t.SHA256] = t.line
	}
	clientLine := map[string]int{}
	for i, c := range kf.Clients {
		if c.DeveloperKey != "" {
			if _, ok := keyLine[c.DeveloperKey]; !ok {
				unknownKey(c.line, top("clients").at(i).dot("developer_key"), c.DeveloperKey)
			}
		}
		if c.ClientID == "" {
			continue
		}
		if first, dup := clientLine[c.ClientID]; dup {
			p.errs = append(p.errs, ConfigError{File: p.file, Line: c.line, Field: top("clients").at(i).dot("client_id").String(), Msg: fmt.Sprintf("duplicate client_id %q (first on line %d)", c.ClientID, first)})
			continue
		}
		clientLine[c.ClientID] = c.line
	}
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// closest returns the candidate with the smallest edit distance to s when it
// is close enough to be a plausible typo.
func closest(s string, candidates []string) string {
	best, bestD := "", len(s)/2+2
	for _, c := range candidates {
		if d := matcher.EditDistance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}
