package matcher

import "strings"

// node is one node of a byte-level radix tree. Entering a static node
// consumes its label; entering a param node consumes [^/]+; entering a glob
// node consumes .+ (any bytes except '\n', crossing '/'). A node with leaves
// accepts the rest of the path if it is empty or a format suffix \.[^/]+.
type node struct {
	label    string
	indices  string  // first byte of each static child's label
	children []*node // static children, parallel to indices
	param    *node
	glob     *node
	leaves   []int32 // leaf ids ending here, ascending

	// splitVar: a variable piece ending at this node may be followed by a
	// byte other than '/', so all split points must be tried.
	splitVar bool
	// leafOnly: no children; after a glob only full consumption matters.
	leafOnly bool
	// table maps a first byte to 1+index into children (nodes with many
	// static children only).
	table *[256]uint8
}

// trie holds one root per verb.
type trie struct {
	roots [len(verbs)]*node
	nodes int
}

func newTrie() *trie {
	t := &trie{}
	for i := range t.roots {
		t.roots[i] = &node{}
	}
	return t
}

// add inserts every alternative of the URL scope sc under leaf id.
func (t *trie) add(sc *Scope, leaf int32) {
	root := t.roots[verbIndex(sc.Verb)]
	for _, alt := range sc.alts {
		t.insert(root, alt, leaf)
	}
}

func (t *trie) insert(n *node, toks []token, leaf int32) {
	for len(toks) > 0 {
		tk := toks[0]
		switch tk.kind {
		case tokDyn:
			if n.param == nil {
				n.param = &node{}
				t.nodes++
			}
			n, toks = n.param, toks[1:]
		case tokGlob:
			if n.glob == nil {
				n.glob = &node{}
				t.nodes++
			}
			n, toks = n.glob, toks[1:]
		default:
			n = t.insertLit(n, tk.text)
			toks = toks[1:]
		}
	}
	for _, l := range n.leaves {
		if l == leaf {
			return
		}
	}
	// keep ascending order
	i := len(n.leaves)
	n.leaves = append(n.leaves, leaf)
	for i > 0 && n.leaves[i-1] > leaf {
		n.leaves[i] = n.leaves[i-1]
		i--
	}
	n.leaves[i] = leaf
}

// insertLit walks/creates static nodes consuming s and returns the node
// where s ends.
func (t *trie) insertLit(n *node, s string) *node {
	for len(s) > 0 {
		i := strings.IndexByte(n.indices, s[0])
		if i < 0 {
			c := &node{label: s}
			t.nodes++
			n.indices += s[:1]
			n.children = append(n.children, c)
			return c
		}
		c := n.children[i]
		k := 0
		for k < len(s) && k < len(c.label) && s[k] == c.label[k] {
			k++
		}
		if k < len(c.label) {
			// split c at k
			mid := &node{label: c.label[:k], indices: c.label[k : k+1], children: []*node{c}}
			t.nodes++
			c.label = c.label[k:]
			n.children[i] = mid
			c = mid
		}
		n, s = c, s[k:]
	}
	return n
}

// finish computes the derived flags of every node.
func (t *trie) finish() {
	for _, r := range t.roots {
		r.finish()
	}
}

func (n *node) finish() {
	n.splitVar = n.param != nil || n.glob != nil || strings.Trim(n.indices, "/") != ""
	n.leafOnly = n.param == nil && n.glob == nil && len(n.children) == 0
	n.table = nil
	if len(n.children) > 8 {
		n.table = new([256]uint8)
		for i := 0; i < len(n.indices); i++ {
			n.table[n.indices[i]] = uint8(i + 1)
		}
	}
	for _, c := range n.children {
		c.finish()
	}
	if n.param != nil {
		n.param.finish()
	}
	if n.glob != nil {
		n.glob.finish()
	}
}

// maxSteps bounds the work of one search. A search that would need more
// steps fails closed (denies). No catalogue scope comes near it.
const maxSteps = 1 << 14

type search struct {
	bits  []uint64 // allowed leaves; nil means all leaves are allowed
	steps int
}

func (s *search) allowed(n *node) int32 {
	if s.bits == nil {
		return n.leaves[0]
	}
	for _, l := range n.leaves {
		if s.bits[l>>6]&(1<<(uint(l)&63)) != 0 {
			return l
		}
	}
	return -1
}

// formatSuffix reports whether rest is "" or \.[^/]+ (the implicit format).
func formatSuffix(rest string) bool {
	if rest == "" {
		return true
	}
	if len(rest) < 2 || rest[0] != '.' {
		return false
	}
	for i := 1; i < len(rest); i++ {
		if rest[i] == '/' {
			return false
		}
	}
	return true
}

// child returns the static child whose label starts with b, or nil.
func (n *node) child(b byte) *node {
	if n.table != nil {
		if i := n.table[b]; i != 0 {
			return n.children[i-1]
		}
		return nil
	}
	for i := 0; i < len(n.indices); i++ {
		if n.indices[i] == b {
			return n.children[i]
		}
	}
	return nil
}

// hasLabel reports whether path starts with label, whose first byte is
// already known to match.
func hasLabel(path, label string) bool {
	if len(path) < len(label) {
		return false
	}
	if len(label) > 16 {
		return path[:len(label)] == label
	}
	for i := 1; i < len(label); i++ {
		if path[i] != label[i] {
			return false
		}
	}
	return true
}

// match searches below n for path (n's own label already consumed).
// It returns the allowed leaf id or -1.
func (n *node) match(path string, s *search) int32 {
	for {
		s.steps++
		if s.steps > maxSteps {
			return -1
		}
		if len(n.leaves) > 0 && formatSuffix(path) {
			if l := s.allowed(n); l >= 0 {
				return l
			}
		}
		if path == "" {
			return -1
		}
		c := n.child(path[0])
		if c != nil && !hasLabel(path, c.label) {
			c = nil
		}
		if n.param == nil && n.glob == nil {
			// only a static way on: iterate instead of recursing
			if c == nil {
				return -1
			}
			n, path = c, path[len(c.label):]
			continue
		}
		if c != nil {
			if l := c.match(path[len(c.label):], s); l >= 0 {
				return l
			}
		}
		return n.matchVar(path, s)
	}
}

// matchVar tries n's dynamic and glob children.
func (n *node) matchVar(path string, s *search) int32 {
	if p := n.param; p != nil {
		end := 0
		for end < len(path) && path[end] != '/' {
			end++
		}
		if end > 0 {
			if l := p.match(path[end:], s); l >= 0 {
				return l
			}
			if p.splitVar {
				for k := end - 1; k >= 1; k-- {
					if l := p.match(path[k:], s); l >= 0 {
						return l
					}
				}
			}
		}
	}
	if g := n.glob; g != nil {
		limit := strings.IndexByte(path, '\n')
		if limit < 0 {
			limit = len(path)
			if g.leafOnly {
				return g.match("", s)
			}
		}
		for k := limit; k >= 1; k-- {
			if l := g.match(path[k:], s); l >= 0 {
				return l
			}
		}
	}
	return -1
}

// exhausted reports whether the last search ran out of steps.
func (s *search) exhausted() bool { return s.steps > maxSteps }
