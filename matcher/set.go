package matcher

import (
	"crypto/sha256"
	"encoding/binary"
	"runtime"
	"slices"
	"strings"
	"sync"
	"weak"
)

// AlwaysAllowedPath is allowed for every method by every Set, including an
// empty or nil one (Canvas's AccessToken.always_allowed_scopes,
// ^/login/oauth2/token$, with no format suffix).
const AlwaysAllowedPath = "/login/oauth2/token"

// Set is a compiled, immutable set of scopes. It is safe for concurrent
// use. A nil *Set behaves like an empty set.
//
// Catalogue scopes are stored as a bitset over the shared catalogue trie;
// only URL scopes that are not in the catalogue get a (small) private trie.
type Set struct {
	bits  *[catalogueWords]uint64 // catalogue scopes granted; nil if none
	extra *extraScopes            // non-catalogue URL scopes; nil if none
}

type extraScopes struct {
	t      *trie
	scopes []string // leaf id -> scope text
}

// Compile compiles scope strings into a Set. URL scopes must parse (see
// ParseScope); non-URL scopes from the non-URL catalogue are accepted and
// grant nothing; anything else is an error (*ScopeError). Compile does not
// require URL scopes to be in the catalogue (see CheckScope).
func Compile(scopes []string) (*Set, error) {
	cat := loadCatalogue()
	s := &Set{}
	var extra []Scope
	for _, sc := range scopes {
		if i, ok := cat.index[sc]; ok {
			if s.bits == nil {
				s.bits = new([catalogueWords]uint64)
			}
			s.bits[i>>6] |= 1 << (uint(i) & 63)
			continue
		}
		ps, err := ParseScope(sc)
		if err != nil {
			return nil, err
		}
		if ps.Kind != KindURL {
			continue
		}
		extra = append(extra, ps)
	}
	if len(extra) > 0 {
		slices.SortFunc(extra, func(a, b Scope) int { return strings.Compare(a.Text, b.Text) })
		extra = slices.CompactFunc(extra, func(a, b Scope) bool { return a.Text == b.Text })
		e := &extraScopes{t: newTrie(), scopes: make([]string, len(extra))}
		for i := range extra {
			e.scopes[i] = extra[i].Text
			e.t.add(&extra[i], int32(i))
		}
		e.t.finish()
		s.extra = e
	}
	return s, nil
}

func methodIndex(m string) int {
	if m == "HEAD" {
		return 0
	}
	return verbIndex(m)
}

// Match reports whether the set allows method on canonicalPath (see
// Canonicalize) and which scope allowed it. HEAD is checked as GET; other
// methods are compared exactly. AlwaysAllowedPath is allowed for every
// method and then returned as the scope. Match does not allocate.
func (s *Set) Match(method, canonicalPath string) (scope string, ok bool) {
	scope, ok, _ = s.match(method, canonicalPath)
	return scope, ok
}

// match also reports whether a search ran out of its step budget.
func (s *Set) match(method, path string) (scope string, ok bool, exhausted bool) {
	if path == AlwaysAllowedPath {
		return AlwaysAllowedPath, true, false
	}
	if s == nil {
		return "", false, false
	}
	mi := methodIndex(method)
	if mi < 0 {
		return "", false, false
	}
	if s.bits != nil {
		cat := catalogueData
		sr := search{bits: s.bits[:]}
		if l := cat.trie.roots[mi].match(path, &sr); l >= 0 {
			return cat.scopes[l], true, false
		}
		exhausted = sr.exhausted()
	}
	if s.extra != nil {
		sr := search{}
		if l := s.extra.t.roots[mi].match(path, &sr); l >= 0 {
			return s.extra.scopes[l], true, false
		}
		exhausted = exhausted || sr.exhausted()
	}
	return "", false, exhausted
}

// Scopes returns the URL scopes of the set, sorted (non-URL scopes grant
// nothing and are not kept).
func (s *Set) Scopes() []string {
	if s == nil {
		return nil
	}
	var out []string
	if s.bits != nil {
		cat := loadCatalogue()
		for i, sc := range cat.scopes {
			if s.bits[i>>6]&(1<<(uint(i)&63)) != 0 {
				out = append(out, sc)
			}
		}
	}
	if s.extra != nil {
		out = append(out, s.extra.scopes...)
		slices.Sort(out)
	}
	return out
}

// Interner returns the same *Set for equal scope lists (compared after
// sorting and de-duplication). Entries are held weakly: a Set that nobody
// references any more is collected and its entry removed. The zero value is
// ready to use; an Interner is safe for concurrent use.
type Interner struct {
	mu sync.Mutex
	m  map[internKey]weak.Pointer[Set]
}

// internKey identifies a scope list by the SHA-256 of its sorted,
// de-duplicated, length-prefixed elements. A digest rather than the joined
// text: a keys file with 30,000 distinct token scope lists held 8.5 MB of
// keys as text, 1 MB as digests.
type internKey [sha256.Size]byte

// Compile is like the package-level Compile but returns a shared *Set when
// an equal scope list was compiled before and is still referenced.
func (in *Interner) Compile(scopes []string) (*Set, error) {
	key := internKeyOf(scopes)
	in.mu.Lock()
	if wp, ok := in.m[key]; ok {
		if s := wp.Value(); s != nil {
			in.mu.Unlock()
			return s, nil
		}
	}
	in.mu.Unlock()
	s, err := Compile(scopes)
	if err != nil {
		return nil, err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if wp, ok := in.m[key]; ok {
		if old := wp.Value(); old != nil {
			return old, nil
		}
	}
	if in.m == nil {
		in.m = make(map[internKey]weak.Pointer[Set])
	}
	wp := weak.Make(s)
	in.m[key] = wp
	runtime.AddCleanup(s, in.cleanup, key)
	return s, nil
}

func (in *Interner) cleanup(key internKey) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if wp, ok := in.m[key]; ok && wp.Value() == nil {
		delete(in.m, key)
	}
}

// Len returns the number of live entries (for metrics and tests).
func (in *Interner) Len() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	n := 0
	for _, wp := range in.m {
		if wp.Value() != nil {
			n++
		}
	}
	return n
}

func internKeyOf(scopes []string) internKey {
	c := slices.Clone(scopes)
	slices.Sort(c)
	c = slices.Compact(c)
	n := 0
	for _, s := range c {
		n += 8 + len(s)
	}
	buf := make([]byte, 0, n)
	for _, s := range c {
		buf = binary.BigEndian.AppendUint64(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	return sha256.Sum256(buf)
}

var defaultInterner Interner

// Intern compiles scopes with a package-level Interner: equal scope lists
// (in any order, with duplicates) share one *Set while it is referenced.
func Intern(scopes []string) (*Set, error) { return defaultInterner.Compile(scopes) }
