package policy

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/matcher"
)

// KeysFile is the parsed form of the keys file. Its JSON shape is documented
// field by field in the README ("Keys file").
type KeysFile struct {
	DeveloperKeys []DeveloperKey
	Tokens        []Token
	Clients       []Client
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
	Mode            Mode
	line            int
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
	Msg   string
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
}

// line is the 1-based line of byte offset off. Every entry records its line,
// so counting newlines from the start each time (lineOf) made loading
// quadratic: 62 s for a file with 100,000 tokens. This indexes them once.
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

func (p *parser) errorf(off int64, field, format string, args ...any) {
	p.errs = append(p.errs, ConfigError{File: p.file, Line: p.line(off), Field: field, Msg: fmt.Sprintf(format, args...)})
}

// ParseKeysFile parses and validates a keys file. name is used in error
// messages only. All problems are returned together as ConfigErrors.
func ParseKeysFile(name string, data []byte, opts ParseOptions) (*KeysFile, error) {
	p := &parser{file: name, data: data, opts: opts}
	root, err := parseTree(data)
	if err != nil {
		off := int64(0)
		if se, ok := err.(*syntaxError); ok {
			off = se.offset
		}
		p.errorf(off, "", "invalid JSON: %v", err)
		return nil, p.errs
	}
	kf := &KeysFile{}
	p.object(root, "", map[string]func(member){
		"developer_keys": func(m member) {
			p.array(m.value, "developer_keys", func(i int, n *node) {
				kf.DeveloperKeys = append(kf.DeveloperKeys, p.developerKey(n, fmt.Sprintf("developer_keys[%d]", i)))
			})
		},
		"tokens": func(m member) {
			p.array(m.value, "tokens", func(i int, n *node) {
				kf.Tokens = append(kf.Tokens, p.token(n, fmt.Sprintf("tokens[%d]", i)))
			})
		},
		"clients": func(m member) {
			p.array(m.value, "clients", func(i int, n *node) {
				kf.Clients = append(kf.Clients, p.client(n, fmt.Sprintf("clients[%d]", i)))
			})
		},
	})
	p.crossCheck(kf, root)
	if len(p.errs) > 0 {
		sort.SliceStable(p.errs, func(i, j int) bool { return p.errs[i].Line < p.errs[j].Line })
		return nil, p.errs
	}
	return kf, nil
}

// object walks an object's members, reporting unknown ones with the list of
// known field names as the suggestion.
func (p *parser) object(n *node, path string, fields map[string]func(member)) {
	if !n.isObj {
		p.errorf(n.offset, path, "must be an object, not %s", n.kind())
		return
	}
	for _, m := range n.object {
		f, ok := fields[m.name]
		if !ok {
			known := make([]string, 0, len(fields))
			for k := range fields {
				known = append(known, k)
			}
			sort.Strings(known)
			p.errorf(m.offset, join(path, m.name), "unknown field (known fields: %s)", strings.Join(known, ", "))
			continue
		}
		f(m)
	}
}

func (p *parser) array(n *node, path string, each func(int, *node)) {
	if !n.isArray {
		p.errorf(n.offset, path, "must be an array, not %s", n.kind())
		return
	}
	for i, e := range n.array {
		each(i, e)
	}
}

func (p *parser) str(n *node, path string) string {
	s, ok := n.value.(string)
	if !ok || n.isObj || n.isArray {
		p.errorf(n.offset, path, "must be a string, not %s", n.kind())
	}
	return s
}

func (p *parser) boolean(n *node, path string) bool {
	b, ok := n.value.(bool)
	if !ok || n.isObj || n.isArray {
		p.errorf(n.offset, path, "must be true or false, not %s", n.kind())
	}
	return b
}

func (p *parser) strings(n *node, path string) []string {
	out := []string{}
	p.array(n, path, func(i int, e *node) {
		out = append(out, p.str(e, fmt.Sprintf("%s[%d]", path, i)))
	})
	return out
}

// scopes validates a scope list: grammar always, catalogue unless allowed.
func (p *parser) scopes(n *node, path string) []string {
	list := p.strings(n, path)
	seen := make(map[string]bool, len(list))
	for i, s := range list {
		// The field name and the checks are paid for once per distinct
		// scope, not once per occurrence: a file with 100,000 tokens
		// repeats the same scopes hundreds of thousands of times.
		field := func() string { return fmt.Sprintf("%s[%d]", path, i) }
		off := n.array[i].offset
		if seen[s] {
			p.errorf(off, field(), "duplicate scope %q", s)
			continue
		}
		seen[s] = true
		if p.validScopes[s] {
			continue
		}
		if _, err := matcher.ParseScope(s); err != nil {
			p.errorf(off, field(), "%v", err)
			continue
		}
		if !p.opts.AllowUnknownScopes {
			if ok, sugg := matcher.CheckCatalogue(s); !ok {
				msg := fmt.Sprintf("scope %q is not in the Canvas scope catalogue", s)
				if len(sugg) > 0 {
					msg += "; did you mean " + quoteList(sugg) + "?"
				}
				msg += " (allow_unknown_scopes accepts scopes from newer Canvas versions or plugins)"
				p.errorf(off, field(), "%s", msg)
				continue
			}
		}
		if p.validScopes == nil {
			p.validScopes = map[string]bool{}
		}
		p.validScopes[s] = true
	}
	return list
}

func (p *parser) sha256(n *node, path string) [32]byte {
	var h [32]byte
	s := p.str(n, path)
	if len(s) != 64 || strings.ToLower(s) != s {
		p.errorf(n.offset, path, "must be 64 lower-case hex characters (the SHA-256 of the secret; see `caddy canvas-scopes hash-token`)")
		return h
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		p.errorf(n.offset, path, "must be 64 lower-case hex characters: %v", err)
	}
	return h
}

func (p *parser) developerKey(n *node, path string) DeveloperKey {
	k := DeveloperKey{RequireScopes: true, Enabled: true, line: p.line(n.offset)}
	var hasScopes bool
	p.object(n, path, map[string]func(member){
		"id":   func(m member) { k.ID = p.str(m.value, path+".id") },
		"name": func(m member) { k.Name = p.str(m.value, path+".name") },
		"scopes": func(m member) {
			hasScopes = true
			k.Scopes = p.scopes(m.value, path+".scopes")
		},
		"require_scopes":   func(m member) { k.RequireScopes = p.boolean(m.value, path+".require_scopes") },
		"allow_includes":   func(m member) { k.AllowIncludes = p.boolean(m.value, path+".allow_includes") },
		"enabled":          func(m member) { k.Enabled = p.boolean(m.value, path+".enabled") },
		"allow_masquerade": func(m member) { k.AllowMasquerade = p.boolean(m.value, path+".allow_masquerade") },
		"hosts": func(m member) {
			k.Hosts = p.strings(m.value, path+".hosts")
			for i, h := range k.Hosts {
				if h == "" || strings.ContainsAny(h, "/ ") || strings.ToLower(h) != h {
					p.errorf(m.value.array[i].offset, fmt.Sprintf("%s.hosts[%d]", path, i), "must be a lower-case host name (optionally with :port), got %q", h)
				}
			}
		},
		"upstream_token": func(m member) {
			k.UpstreamToken = p.str(m.value, path+".upstream_token")
			if k.UpstreamToken == "" {
				p.errorf(m.value.offset, path+".upstream_token", "must not be empty; leave the field out to forward the client's own Canvas token")
			}
		},
		"mode": func(m member) {
			switch s := p.str(m.value, path+".mode"); s {
			case "enforce", "":
				k.Mode = ModeEnforce
			case "report":
				k.Mode = ModeReport
			default:
				p.errorf(m.value.offset, path+".mode", "must be \"enforce\" or \"report\", got %q", s)
			}
		},
	})
	if n.isObj && k.ID == "" {
		p.errorf(n.offset, path+".id", "is required")
	}
	if n.isObj && !hasScopes && k.RequireScopes {
		p.errorf(n.offset, path+".scopes", "is required when require_scopes is true (an empty list allows nothing but /login/oauth2/token)")
	}
	return k
}

func (p *parser) token(n *node, path string) Token {
	t := Token{line: p.line(n.offset)}
	var hasHash bool
	p.object(n, path, map[string]func(member){
		"sha256": func(m member) {
			hasHash = true
			t.SHA256 = p.sha256(m.value, path+".sha256")
		},
		"developer_key": func(m member) { t.DeveloperKey = p.str(m.value, path+".developer_key") },
		"label":         func(m member) { t.Label = p.str(m.value, path+".label") },
		"scopes": func(m member) {
			t.HasScopes = true
			t.Scopes = p.scopes(m.value, path+".scopes")
		},
		"expires_at": func(m member) {
			s := p.str(m.value, path+".expires_at")
			ts, err := time.Parse(time.RFC3339, s)
			if err != nil {
				p.errorf(m.value.offset, path+".expires_at", "must be an RFC 3339 time such as 2027-06-30T00:00:00Z, got %q", s)
			}
			t.ExpiresAt = ts
		},
		"revoked": func(m member) { t.Revoked = p.boolean(m.value, path+".revoked") },
	})
	if n.isObj && !hasHash {
		p.errorf(n.offset, path+".sha256", "is required")
	}
	if n.isObj && t.DeveloperKey == "" {
		p.errorf(n.offset, path+".developer_key", "is required")
	}
	return t
}

func (p *parser) client(n *node, path string) Client {
	c := Client{TokenTTL: DefaultClientTokenTTL, line: p.line(n.offset)}
	var hasSecret bool
	p.object(n, path, map[string]func(member){
		"client_id": func(m member) { c.ClientID = p.str(m.value, path+".client_id") },
		"secret_sha256": func(m member) {
			hasSecret = true
			c.SecretSHA256 = p.sha256(m.value, path+".secret_sha256")
		},
		"developer_key": func(m member) { c.DeveloperKey = p.str(m.value, path+".developer_key") },
		"token_ttl": func(m member) {
			s := p.str(m.value, path+".token_ttl")
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 || d > 24*time.Hour {
				p.errorf(m.value.offset, path+".token_ttl", "must be a duration between 1s and 24h such as \"1h\", got %q", s)
			}
			c.TokenTTL = d
		},
		"scopes": func(m member) { c.Scopes = p.scopes(m.value, path+".scopes") },
	})
	if n.isObj && c.ClientID == "" {
		p.errorf(n.offset, path+".client_id", "is required")
	}
	if n.isObj && !hasSecret {
		p.errorf(n.offset, path+".secret_sha256", "is required")
	}
	if n.isObj && c.DeveloperKey == "" {
		p.errorf(n.offset, path+".developer_key", "is required")
	}
	return c
}

// crossCheck validates references between sections: unique ids, tokens and
// clients naming existing keys.
func (p *parser) crossCheck(kf *KeysFile, root *node) {
	keyLine := map[string]int{}
	for _, k := range kf.DeveloperKeys {
		if k.ID == "" {
			continue
		}
		if first, dup := keyLine[k.ID]; dup {
			p.errs = append(p.errs, ConfigError{File: p.file, Line: k.line, Field: "developer_keys.id", Msg: fmt.Sprintf("duplicate developer key id %q (first defined on line %d)", k.ID, first)})
			continue
		}
		keyLine[k.ID] = k.line
	}
	ids := make([]string, 0, len(keyLine))
	for id := range keyLine {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	unknownKey := func(line int, field, id string) {
		msg := fmt.Sprintf("no developer key has id %q", id)
		if s := closest(id, ids); s != "" {
			msg += fmt.Sprintf("; did you mean %q?", s)
		}
		p.errs = append(p.errs, ConfigError{File: p.file, Line: line, Field: field, Msg: msg})
	}
	tokenLine := map[[32]byte]int{}
	for _, t := range kf.Tokens {
		if t.DeveloperKey != "" {
			if _, ok := keyLine[t.DeveloperKey]; !ok {
				unknownKey(t.line, "tokens.developer_key", t.DeveloperKey)
			}
		}
		if t.SHA256 == ([32]byte{}) {
			continue
		}
		if first, dup := tokenLine[t.SHA256]; dup {
			p.errs = append(p.errs, ConfigError{File: p.file, Line: t.line, Field: "tokens.sha256", Msg: fmt.Sprintf("duplicate token hash (first on line %d)", first)})
			continue
		}
		tokenLine[t.SHA256] = t.line
	}
	clientLine := map[string]int{}
	for _, c := range kf.Clients {
		if c.DeveloperKey != "" {
			if _, ok := keyLine[c.DeveloperKey]; !ok {
				unknownKey(c.line, "clients.developer_key", c.DeveloperKey)
			}
		}
		if c.ClientID == "" {
			continue
		}
		if first, dup := clientLine[c.ClientID]; dup {
			p.errs = append(p.errs, ConfigError{File: p.file, Line: c.line, Field: "clients.client_id", Msg: fmt.Sprintf("duplicate client_id %q (first on line %d)", c.ClientID, first)})
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

func quoteList(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = fmt.Sprintf("%q", v)
	}
	return strings.Join(q, " or ")
}

// closest returns the candidate with the smallest edit distance to s when it
// is close enough to be a plausible typo.
func closest(s string, candidates []string) string {
	best, bestD := "", len(s)/2+2
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
