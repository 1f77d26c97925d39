package policy

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/internal/jsontree"
)

// Named scope sets: the keys file's top-level "scope_sets" maps a name to
// a list of scopes, and any "scopes" list (a key's, a token's, a client's,
// a key's unconfined_scopes, or another set's) may name a set as
// "@name". Sets are expanded when the file is read, so every check that
// follows (catalogue, minting, confinement, token ⊆ key) sees the scopes
// themselves; errors in an expansion are located at the "@name" that
// brought the scope in.

// ScopeSetPrefix marks a reference to a named scope set in a scope list.
const ScopeSetPrefix = "@"

// readScopeSets resolves the file's scope_sets, when it has any. The lists
// are streamed in file order and may come before "scope_sets", so the
// sets are read in a pass of their own first: only for files that mention
// them.
func (p *parser) readScopeSets(data []byte) {
	if !bytes.Contains(data, []byte(`"scope_sets"`)) {
		return
	}
	root, err := jsontree.Parse(data, func(string, int, *jsontree.Node) {})
	if err != nil || root.Kind != jsontree.KindObject {
		return // the main pass reports it
	}
	var sets *jsontree.Member
	for i := range root.Object {
		if root.Object[i].Name == "scope_sets" {
			sets = &root.Object[i]
		}
	}
	if sets == nil {
		return
	}
	at := top("scope_sets")
	if sets.Value.Kind != jsontree.KindObject {
		p.errorf(sets.Value.Offset, at, "must be an object mapping a set's name to its scopes, not %s", sets.Value.KindName())
		return
	}
	p.setNodes = map[string]*jsontree.Member{}
	for i := range sets.Value.Object {
		m := &sets.Value.Object[i]
		if !validSetName(m.Name) {
			p.errorf(m.Offset, at.dot(m.Name), "a scope set's name must be letters, digits, '-', '_' or '.', and not empty (it is used as \"@name\")")
			continue
		}
		if _, dup := p.setNodes[m.Name]; dup {
			p.errorf(m.Offset, at.dot(m.Name), "duplicate scope set")
			continue
		}
		p.setNodes[m.Name] = m
		w := p.writtenFor()
		w.Sets = append(w.Sets, NamedScopeSet{Name: m.Name, Scopes: writtenStrings(m.Value)})
	}
	p.sets = map[string][]string{}
	names := make([]string, 0, len(p.setNodes))
	for name := range p.setNodes {
		names = append(names, name)
	}
	slices.Sort(names)
	p.setNames = names
	state := map[string]uint8{} // 1 expanding, 2 done
	var stack []string
	var resolve func(name string) []string
	resolve = func(name string) []string {
		switch state[name] {
		case 2:
			return p.sets[name]
		case 1:
			// A cycle: name it, from the set where it starts.
			cycle := append(slices.Clone(stack[slices.Index(stack, name):]), name)
			m := p.setNodes[name]
			p.errorf(m.Offset, at.dot(name), "scope sets form a cycle: %s", ScopeSetPrefix+strings.Join(cycle, " → "+ScopeSetPrefix))
			return nil
		}
		state[name] = 1
		stack = append(stack, name)
		m := p.setNodes[name]
		v := p.expandSets(m.Value, at.dot(name), resolve)
		list := p.scopes(v, at.dot(name))
		stack = stack[:len(stack)-1]
		state[name] = 2
		// Only the scopes that passed their checks: a bad one is reported
		// once, at the set, not again at every use.
		valid := make([]string, 0, len(list))
		for _, sc := range list {
			if p.validScopes[sc] && !slices.Contains(valid, sc) {
				valid = append(valid, sc)
			}
		}
		p.sets[name] = valid
		return valid
	}
	for _, name := range names {
		resolve(name)
	}
}

func validSetName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// expandSets returns the scope list n with each "@name" replaced by the
// set's scopes (string nodes at the reference's offset, so that errors
// about them name its line), without repeating a scope the list already
// holds. Without references, n itself. resolve gives a set's scopes (nil
// when it could not be resolved); unknown names are errors with the
// closest name.
func (p *parser) expandSets(n *jsontree.Node, at path, resolve func(string) []string) *jsontree.Node {
	if n == nil || n.Kind != jsontree.KindArray || !hasSetRef(n) {
		return n
	}
	if resolve == nil {
		resolve = func(name string) []string { return p.sets[name] }
	}
	explicit := map[string]bool{}
	for _, e := range n.Array {
		if e.Kind == jsontree.KindString && !strings.HasPrefix(e.Text, ScopeSetPrefix) {
			explicit[e.Text] = true
		}
	}
	added := map[string]bool{}
	out := &jsontree.Node{Offset: n.Offset, Kind: jsontree.KindArray}
	for i, e := range n.Array {
		name, isRef := strings.CutPrefix(e.Text, ScopeSetPrefix)
		if e.Kind != jsontree.KindString || !isRef {
			out.Array = append(out.Array, e)
			continue
		}
		if _, ok := p.setNodes[name]; !ok {
			msg := fmt.Sprintf("no scope set named %q", name)
			var sug []string
			if s := closest(name, p.setNames); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", ScopeSetPrefix+s)
				sug = []string{ScopeSetPrefix + s}
			} else if len(p.setNames) == 0 {
				msg += " (the file has no \"scope_sets\")"
			}
			p.errorf(e.Offset, at.index(i), "%s", msg)
			p.errs[len(p.errs)-1].Suggestions = sug
			continue
		}
		if p.usedSets != nil {
			p.usedSets[name] = true
		}
		for _, s := range resolve(name) {
			if explicit[s] || added[s] {
				continue
			}
			added[s] = true
			out.Array = append(out.Array, &jsontree.Node{Offset: e.Offset, Kind: jsontree.KindString, Text: s})
		}
	}
	return out
}

func hasSetRef(n *jsontree.Node) bool {
	for _, e := range n.Array {
		if e.Kind == jsontree.KindString && strings.HasPrefix(e.Text, ScopeSetPrefix) {
			return true
		}
	}
	return false
}

// keyScopeSets are the sets a key's scopes named, with their expansion.
func (p *parser) keyScopeSets() map[string][]string {
	if len(p.usedSets) == 0 {
		return nil
	}
	m := make(map[string][]string, len(p.usedSets))
	for name := range p.usedSets {
		m[name] = p.sets[name]
	}
	return m
}

// WrittenScopes are a keys file's scope sets and the scope lists that
// name a set, as written. The lists are indexed by the entry's position
// in its section; lists without a reference are not kept (their expanded
// form is the written one).
type WrittenScopes struct {
	Sets           []NamedScopeSet // in file order
	Keys           map[int][]string
	KeysUnconfined map[int][]string
	Tokens         map[int][]string
	Clients        map[int][]string
}

// NamedScopeSet is one entry of "scope_sets", as written.
type NamedScopeSet struct {
	Name   string
	Scopes []string
}

// writtenFor returns p.written, made on first use: a file without sets
// and references never allocates one.
func (p *parser) writtenFor() *WrittenScopes {
	if p.written == nil {
		p.written = &WrittenScopes{Keys: map[int][]string{}, KeysUnconfined: map[int][]string{},
			Tokens: map[int][]string{}, Clients: map[int][]string{}}
	}
	return p.written
}

// Which list noteWritten keeps.
const (
	writtenKey = iota
	writtenKeyUnconfined
	writtenToken
	writtenClient
)

// noteWritten keeps list n of entry i as written, when it names a set.
func (p *parser) noteWritten(list int, i int, n *jsontree.Node) {
	if n == nil || n.Kind != jsontree.KindArray || !hasSetRef(n) {
		return
	}
	w := p.writtenFor()
	m := map[int]map[int][]string{writtenKey: w.Keys, writtenKeyUnconfined: w.KeysUnconfined, writtenToken: w.Tokens, writtenClient: w.Clients}[list]
	m[i] = writtenStrings(n)
}

// writtenStrings copies the strings of array n (other kinds are reported
// by the checks that read it).
func writtenStrings(n *jsontree.Node) []string {
	if n == nil || n.Kind != jsontree.KindArray {
		return nil
	}
	out := make([]string, 0, len(n.Array))
	for _, e := range n.Array {
		if e.Kind == jsontree.KindString {
			out = append(out, strings.Clone(e.Text))
		}
	}
	return out
}
