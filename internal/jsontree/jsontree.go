// Package jsontree reads the keys file's JSON into a tree whose values keep
// their byte offsets, so that every configuration error can name a line.
package jsontree

import (
	"fmt"
	"strconv"
	"unicode/utf8"
	"unsafe"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/internal/jsonlex"
)

// The keys file is read by a small JSON scanner of our own instead of
// encoding/json's token stream. Every configuration error names a line, so
// each value must keep its offset; encoding/json's Decoder.Token gives
// offsets but allocated about 400 MB in 9.4 million objects for a file with
// 100,000 tokens, which left Caddy's resident memory at 343 MiB after a
// load. This scanner keeps string values as views of the file's bytes,
// allocates nodes in slabs, and allocates little else.

// Kind is the JSON type of a node.
type Kind uint8

const (
	KindNull Kind = iota
	KindBool
	KindNumber
	KindString
	KindObject
	KindArray
)

// node is one JSON value together with the byte offset where it starts.
//
// text is the value of a string (unescaped) or the literal of a number.
// It usually points into the file's bytes: whoever keeps it beyond the
// parse must copy it (parser.keep, parser.intern).
type Node struct {
	Offset int64
	Kind   Kind
	Bool   bool
	Text   string
	Object []Member
	Array  []*Node
}

// Member is one member of an object, with the offset of its name.
type Member struct {
	Name   string // a view of the file's bytes, like Node.Text
	Offset int64
	Value  *Node
}

// KindName names the node's kind for error messages.
func (n *Node) KindName() string {
	switch n.Kind {
	case KindObject:
		return "object"
	case KindArray:
		return "array"
	case KindString:
		return "string"
	case KindBool:
		return "boolean"
	case KindNumber:
		return "number"
	}
	return "null"
}

// SyntaxError is a JSON syntax error at a byte offset.
type SyntaxError struct {
	Offset int64
	msg    string
}

func (e *SyntaxError) Error() string { return e.msg }

// maxDepth bounds nesting, so a hostile or broken file cannot exhaust the
// stack. The keys file needs four levels.
const maxDepth = 64

// Slab hands out sub-slices of large backing arrays, so a file with a
// million values costs a few hundred allocations instead of a million.
// The slices are capped: appending to one copies it instead of writing
// into its neighbour.
type Slab[T any] struct{ buf []T }

func (s *Slab[T]) Take(items []T) []T {
	if len(items) == 0 {
		return []T{}
	}
	if len(items) > cap(s.buf)-len(s.buf) {
		s.buf = make([]T, 0, max(4096, len(items)))
	}
	start := len(s.buf)
	s.buf = append(s.buf, items...)
	return s.buf[start:len(s.buf):len(s.buf)]
}

// arena holds the nodes of a tree and the slices of their children.
type arena struct {
	nodes   []Node // current slab; never grown in place, so pointers stay valid
	members Slab[Member]
	arrays  Slab[*Node]
}

func (a *arena) newNode(kind Kind, off int) *Node {
	if len(a.nodes) == cap(a.nodes) {
		a.nodes = make([]Node, 0, 4096)
	}
	a.nodes = append(a.nodes, Node{Kind: kind, Offset: int64(off)})
	return &a.nodes[len(a.nodes)-1]
}

// reset makes the arena's memory reusable: every node it handed out is dead.
func (a *arena) reset() {
	clear(a.nodes)
	a.nodes = a.nodes[:0]
	clear(a.members.buf)
	a.members.buf = a.members.buf[:0]
	clear(a.arrays.buf)
	a.arrays.buf = a.arrays.buf[:0]
}

// ElementFunc receives one element of an array that is the value of a
// Member of the top-level object: the member's name, the element's index
// and the element. The element is only valid during the call.
type ElementFunc func(list string, i int, n *Node)

type treeReader struct {
	data  []byte
	pos   int
	arena *arena // where nodes go now: tree, or element while streaming
	tree  arena
	// element holds one streamed element at a time: a file with 100,000
	// tokens never has more than one token's nodes in memory.
	element   arena
	onElement ElementFunc
	// stacks of members and elements for the containers being read;
	// each container copies its part into a slab when it closes.
	memberStack  []Member
	elementStack []*Node
	unescaped    []byte
}

// Parse reads one JSON document (RFC 8259). Duplicate Member names are
// refused: in a security policy "the last one wins" is a silent
// misconfiguration.
//
// If onElement is not nil, the elements of arrays that are values of
// top-level members are handed to it one by one as they are read and are
// not kept: such arrays appear in the tree empty. On a syntax error,
// onElement may already have seen the elements before it.
func Parse(data []byte, onElement ElementFunc) (*Node, error) {
	if !utf8.Valid(data) {
		return nil, &SyntaxError{Offset: int64(firstInvalidUTF8(data)), msg: "invalid UTF-8 (the keys file must be UTF-8)"}
	}
	r := &treeReader{data: data, onElement: onElement}
	r.arena = &r.tree
	root, err := r.value(0)
	if err != nil {
		return nil, err
	}
	r.skipSpace()
	if r.pos < len(r.data) {
		return nil, r.errorf("unexpected data after the top-level value")
	}
	return root, nil
}

func (r *treeReader) newNode(kind Kind, off int) *Node { return r.arena.newNode(kind, off) }

func (r *treeReader) errorf(format string, args ...any) *SyntaxError {
	return &SyntaxError{Offset: int64(r.pos), msg: fmt.Sprintf(format, args...)}
}

func (r *treeReader) unexpected(context string) *SyntaxError {
	if r.pos >= len(r.data) {
		return r.errorf("unexpected end of file")
	}
	return r.errorf("invalid character %s %s", quoteByte(r.data[r.pos]), context)
}

func quoteByte(c byte) string {
	if c == '\'' {
		return `'\''`
	}
	if c == '"' {
		return `'"'`
	}
	s := strconv.Quote(string(rune(c)))
	if c >= utf8.RuneSelf {
		s = fmt.Sprintf(`"\x%02x"`, c)
	}
	return "'" + s[1:len(s)-1] + "'"
}

func (r *treeReader) skipSpace() { r.pos = jsonlex.Space(r.data, r.pos) }

// value reads one value.
func (r *treeReader) value(depth int) (*Node, error) {
	r.skipSpace()
	if r.pos >= len(r.data) {
		return nil, r.errorf("unexpected end of file")
	}
	start := r.pos
	switch c := r.data[r.pos]; {
	case (c == '{' || c == '[') && depth > maxDepth:
		return nil, r.errorf("nested more than %d levels deep", maxDepth+1)
	case c == '{':
		return r.object(depth)
	case c == '[':
		return r.array(depth, "", false)
	case c == '"':
		s, err := r.str()
		if err != nil {
			return nil, err
		}
		n := r.newNode(KindString, start)
		n.Text = s
		return n, nil
	case c == '-' || (c >= '0' && c <= '9'):
		end, bad := jsonlex.Number(r.data, r.pos)
		if end < 0 {
			r.pos = bad
			return nil, r.unexpected("in numeric literal")
		}
		r.pos = end
		n := r.newNode(KindNumber, start)
		n.Text = r.view(start, r.pos)
		return n, nil
	case c == 't':
		return r.literal("true", KindBool, true)
	case c == 'f':
		return r.literal("false", KindBool, false)
	case c == 'n':
		return r.literal("null", KindNull, false)
	}
	return nil, r.unexpected("looking for beginning of value")
}

func (r *treeReader) literal(word string, kind Kind, b bool) (*Node, error) {
	start := r.pos
	for i := 0; i < len(word); i++ {
		if r.pos >= len(r.data) || r.data[r.pos] != word[i] {
			return nil, r.unexpected("in literal " + word)
		}
		r.pos++
	}
	n := r.newNode(kind, start)
	n.Bool = b
	return n, nil
}

func (r *treeReader) object(depth int) (*Node, error) {
	n := r.newNode(KindObject, r.pos)
	r.pos++ // '{'
	base := len(r.memberStack)
	defer func() { r.memberStack = r.memberStack[:base] }()
	var names map[string]bool // for duplicate checks once the object is large
	r.skipSpace()
	if r.pos < len(r.data) && r.data[r.pos] == '}' {
		r.pos++
		n.Object = []Member{}
		return n, nil
	}
	for {
		r.skipSpace()
		if r.pos >= len(r.data) || r.data[r.pos] != '"' {
			return nil, r.unexpected("looking for beginning of object key string")
		}
		keyOff := r.pos
		name, err := r.str()
		if err != nil {
			return nil, err
		}
		if r.seen(&names, r.memberStack[base:], name) {
			return nil, &SyntaxError{Offset: int64(keyOff), msg: fmt.Sprintf("duplicate field %q", name)}
		}
		r.skipSpace()
		if r.pos >= len(r.data) || r.data[r.pos] != ':' {
			return nil, r.unexpected("after object key")
		}
		r.pos++
		var v *Node
		if r.skipSpace(); depth == 0 && r.onElement != nil && r.pos < len(r.data) && r.data[r.pos] == '[' {
			// A top-level member's array: streamed.
			v, err = r.array(depth+1, name, true)
		} else {
			v, err = r.value(depth + 1)
		}
		if err != nil {
			return nil, err
		}
		r.memberStack = append(r.memberStack, Member{Name: name, Offset: int64(keyOff), Value: v})
		done, err := r.separator('}', "after object key:value pair")
		if err != nil {
			return nil, err
		}
		if done {
			n.Object = r.arena.members.Take(r.memberStack[base:])
			return n, nil
		}
	}
}

// seen reports whether name is among the members read so far. Objects in
// a keys file have a handful of members, so a scan is cheapest; past 16 a
// map keeps a large object from costing quadratic time.
func (r *treeReader) seen(names *map[string]bool, members []Member, name string) bool {
	if *names == nil && len(members) <= 16 {
		for _, m := range members {
			if m.Name == name {
				return true
			}
		}
		return false
	}
	if *names == nil {
		*names = make(map[string]bool, 2*len(members))
		for _, m := range members {
			(*names)[m.Name] = true
		}
	}
	if (*names)[name] {
		return true
	}
	(*names)[name] = true
	return false
}

// array reads an array. If stream is set, its elements are read one at a
// time into the element arena and handed to onElement (with Member, the
// top-level member's name), and the arena is reused for the next.
func (r *treeReader) array(depth int, Member string, stream bool) (*Node, error) {
	n := r.newNode(KindArray, r.pos) // in the tree, also when streaming
	r.pos++                          // '['
	base := len(r.elementStack)
	defer func() { r.elementStack = r.elementStack[:base] }()
	if stream {
		r.arena = &r.element
		defer func() { r.arena = &r.tree }()
	}
	r.skipSpace()
	if r.pos < len(r.data) && r.data[r.pos] == ']' {
		r.pos++
		n.Array = []*Node{}
		return n, nil
	}
	for i := 0; ; i++ {
		v, err := r.value(depth + 1)
		if err != nil {
			return nil, err
		}
		if stream {
			r.onElement(Member, i, v)
			r.element.reset()
		} else {
			r.elementStack = append(r.elementStack, v)
		}
		done, err := r.separator(']', "after array element")
		if err != nil {
			return nil, err
		}
		if done {
			n.Array = r.arena.arrays.Take(r.elementStack[base:]) // empty when streamed
			return n, nil
		}
	}
}

// separator reads what follows a Member or an element: ',' when more
// follow, or the closing byte (done).
func (r *treeReader) separator(closing byte, context string) (done bool, err error) {
	r.skipSpace()
	if r.pos >= len(r.data) {
		return false, r.errorf("unexpected end of file")
	}
	switch r.data[r.pos] {
	case ',':
		r.pos++
		return false, nil
	case closing:
		r.pos++
		return true, nil
	}
	return false, r.unexpected(context)
}

// view returns data[a:b] as a string without copying.
func (r *treeReader) view(a, b int) string {
	if a == b {
		return ""
	}
	return unsafe.String(&r.data[a], b-a)
}

// str reads a string starting at the opening quote. Strings without escapes
// are views of the file; the rest are unescaped into a new string.
func (r *treeReader) str() (string, error) {
	start := r.pos
	end, escaped, bad := jsonlex.String(r.data, r.pos)
	if end < 0 {
		r.pos = bad
		if bad >= len(r.data) {
			return "", r.errorf("unexpected end of file in string literal")
		}
		return "", r.unexpected("in string literal")
	}
	r.pos = end
	raw := r.data[start+1 : end-1]
	if !escaped {
		return r.view(start+1, end-1), nil
	}
	r.unescaped = jsonlex.AppendUnquoted(r.unescaped[:0], raw)
	return string(r.unescaped), nil
}

// firstInvalidUTF8 is the offset of the first byte that is not part of a
// valid UTF-8 sequence.
func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return len(b)
}
