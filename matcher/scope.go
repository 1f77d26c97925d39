package matcher

import (
	"fmt"
	"strings"
)

// Kind says whether a scope string is a URL scope or a non-URL scope.
type Kind uint8

const (
	// KindURL is a `url:<VERB>|<path>` scope.
	KindURL Kind = iota + 1
	// KindNonURL is a scope from the non-URL catalogue (`/auth/userinfo`,
	// `cd2`, LTI scope URLs). It is valid but grants no path.
	KindNonURL
)

func (k Kind) String() string {
	switch k {
	case KindURL:
		return "url"
	case KindNonURL:
		return "non-url"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Scope is a parsed scope string.
type Scope struct {
	Text string // the scope string exactly as given
	Kind Kind
	Verb string // URL scopes only: GET, POST, PUT, PATCH, DELETE or OPTIONS
	Path string // URL scopes only: the route path after the "|"

	alts [][]token // the path with optional groups expanded
}

// ScopeError reports a scope string that cannot be parsed.
type ScopeError struct {
	Scope    string // the scope text
	Offset   int    // byte offset into Scope where the problem is
	Expected string // what was expected at Offset, in plain words
}

func (e *ScopeError) Error() string {
	return fmt.Sprintf("scope %q: offset %d: expected %s", e.Scope, e.Offset, e.Expected)
}

type tokKind uint8

const (
	tokLit  tokKind = iota // literal bytes
	tokDyn                 // :name, matches [^/]+
	tokGlob                // *name, matches .+
)

type token struct {
	kind tokKind
	text string // literal text, or the name for tokDyn/tokGlob
}

// item is one element of a parsed scope path: a token or an optional group.
type item struct {
	tok   token
	group []item
	isGrp bool
}

// Verbs lists the HTTP verbs a URL scope may name.
var verbs = [...]string{"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

const (
	// maxAlternatives bounds the number of alternatives the optional
	// groups of one scope may expand to.
	maxAlternatives = 64
	// maxScopeLen bounds the length of a URL scope string.
	maxScopeLen = 2048
)

func verbIndex(v string) int {
	switch v {
	case "GET":
		return 0
	case "POST":
		return 1
	case "PUT":
		return 2
	case "PATCH":
		return 3
	case "DELETE":
		return 4
	case "OPTIONS":
		return 5
	}
	return -1
}

// ParseScope parses one scope string. A string that does not start with
// "url:" is accepted only if it is in the non-URL catalogue.
func ParseScope(s string) (Scope, error) {
	if !strings.HasPrefix(s, "url:") {
		if _, ok := nonURLIndex[s]; ok {
			return Scope{Text: s, Kind: KindNonURL}, nil
		}
		return Scope{}, &ScopeError{Scope: s, Offset: 0, Expected: `"url:<VERB>|<path>" or a known non-URL scope (such as "/auth/userinfo", "cd2" or an LTI scope URL)`}
	}
	if len(s) > maxScopeLen {
		return Scope{}, &ScopeError{Scope: s, Offset: maxScopeLen, Expected: fmt.Sprintf("the end of the scope (at most %d bytes)", maxScopeLen)}
	}
	bar := strings.IndexByte(s[4:], '|')
	if bar < 0 || verbIndex(s[4:4+bar]) < 0 {
		return Scope{}, &ScopeError{Scope: s, Offset: 4, Expected: `one of GET, POST, PUT, PATCH, DELETE, OPTIONS (upper case) followed by "|"`}
	}
	verb := s[4 : 4+bar]
	base := 5 + bar
	if base >= len(s) || s[base] != '/' {
		return Scope{}, &ScopeError{Scope: s, Offset: base, Expected: `"/" (the path must be absolute)`}
	}
	p := parser{s: s, i: base}
	items, err := p.seq(-1)
	if err != nil {
		return Scope{}, err
	}
	alts, ok := expand(items)
	if !ok {
		return Scope{}, &ScopeError{Scope: s, Offset: base, Expected: fmt.Sprintf("at most %d alternatives from optional groups", maxAlternatives)}
	}
	return Scope{Text: s, Kind: KindURL, Verb: verb, Path: s[base:], alts: alts}, nil
}

type parser struct {
	s string
	i int
}

// forbiddenLiteral reports whether c may not appear in a scope path.
// Regex metacharacters other than "." "(" ")" ":" "*" are refused so that
// the trie never has to emulate regex syntax; "%", "#", ";" and bytes
// outside printable ASCII can never match a canonical path literally.
func forbiddenLiteral(c byte) bool {
	if c < 0x21 || c > 0x7e {
		return true
	}
	switch c {
	case '+', '?', '[', ']', '{', '}', '^', '$', '|', '\\', '%', '#', ';':
		return true
	}
	return false
}

const literalExpect = `a literal path character (regex metacharacters + ? [ ] { } ^ $ | \, and %, #, ;, spaces, control and non-ASCII bytes are not allowed in a scope path)`

func (p *parser) seq(open int) ([]item, error) {
	out := make([]item, 0, 8)
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch c {
		case '(':
			o := p.i
			p.i++
			g, err := p.seq(o)
			if err != nil {
				return nil, err
			}
			out = append(out, item{group: g, isGrp: true})
		case ')':
			if open < 0 {
				return nil, &ScopeError{Scope: p.s, Offset: p.i, Expected: `a path character, not ")" without a matching "("`}
			}
			p.i++
			return out, nil
		case ':', '*':
			kind := tokDyn
			what := "dynamic segment"
			if c == '*' {
				kind = tokGlob
				what = "glob"
			}
			p.i++
			start := p.i
			for p.i < len(p.s) && p.s[p.i] != '/' && p.s[p.i] != ')' {
				n := p.s[p.i]
				if n == '(' || n == ':' || n == '*' || forbiddenLiteral(n) {
					return nil, &ScopeError{Scope: p.s, Offset: p.i, Expected: fmt.Sprintf(`a name character for the %s that starts at offset %d (a name runs to the next "/" or ")" and may not contain "(", ":", "*" or %s)`, what, start-1, "characters refused in literals")}
				}
				p.i++
			}
			if p.i == start {
				return nil, &ScopeError{Scope: p.s, Offset: start, Expected: fmt.Sprintf("a name after %q", string(c))}
			}
			out = append(out, item{tok: token{kind: kind, text: p.s[start:p.i]}})
		default:
			start := p.i
			for p.i < len(p.s) {
				n := p.s[p.i]
				if n == '(' || n == ')' || n == ':' || n == '*' {
					break
				}
				if forbiddenLiteral(n) {
					return nil, &ScopeError{Scope: p.s, Offset: p.i, Expected: literalExpect}
				}
				p.i++
			}
			out = append(out, item{tok: token{kind: tokLit, text: p.s[start:p.i]}})
		}
	}
	if open >= 0 {
		return nil, &ScopeError{Scope: p.s, Offset: len(p.s), Expected: fmt.Sprintf(`")" to close the group opened at offset %d`, open)}
	}
	return out, nil
}

// expand turns optional groups into alternatives. Adjacent literals are
// merged. It reports false if there would be more than maxAlternatives.
func expand(items []item) ([][]token, bool) {
	alts := [][]token{make([]token, 0, 8)}
	for _, it := range items {
		if !it.isGrp {
			for i := range alts {
				alts[i] = appendTok(alts[i], it.tok)
			}
			continue
		}
		sub, ok := expand(it.group)
		if !ok {
			return nil, false
		}
		if len(alts)*(len(sub)+1) > maxAlternatives {
			return nil, false
		}
		next := make([][]token, 0, len(alts)*(len(sub)+1))
		for _, a := range alts {
			next = append(next, a)
			for _, g := range sub {
				c := make([]token, len(a), len(a)+len(g))
				copy(c, a)
				for _, t := range g {
					c = appendTok(c, t)
				}
				next = append(next, c)
			}
		}
		alts = next
	}
	return alts, true
}

// appendTok appends t to ts, merging adjacent literals. Every alternative
// built by expand owns its backing array, so appending in place is safe.
func appendTok(ts []token, t token) []token {
	if t.kind == tokLit {
		if t.text == "" {
			return ts
		}
		if n := len(ts); n > 0 && ts[n-1].kind == tokLit {
			ts[n-1].text += t.text
			return ts
		}
	}
	return append(ts, t)
}
