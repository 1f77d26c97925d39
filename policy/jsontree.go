package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// node is one JSON value together with the byte offset where it starts, so
// that every configuration error can name a line of the keys file.
type node struct {
	offset  int64
	value   any      // string, bool, json.Number or nil for scalars
	object  []member // non-nil for objects (possibly empty)
	array   []*node  // non-nil for arrays (possibly empty)
	isObj   bool
	isArray bool
}

type member struct {
	name   string
	offset int64
	value  *node
}

func (n *node) kind() string {
	switch {
	case n.isObj:
		return "object"
	case n.isArray:
		return "array"
	}
	switch n.value.(type) {
	case string:
		return "string"
	case bool:
		return "boolean"
	case json.Number:
		return "number"
	}
	return "null"
}

// parseTree reads one JSON document. Duplicate member names are refused: in
// a security policy "the last one wins" is a silent misconfiguration.
func parseTree(data []byte) (*node, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	root, err := readNode(dec, data)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &syntaxError{offset: dec.InputOffset(), msg: "unexpected data after the top-level value"}
	}
	return root, nil
}

type syntaxError struct {
	offset int64
	msg    string
}

func (e *syntaxError) Error() string { return e.msg }

// valueStart returns the offset of the first non-space byte at or after off.
func valueStart(data []byte, off int64) int64 {
	for off < int64(len(data)) {
		switch data[off] {
		case ' ', '\t', '\r', '\n', ':', ',':
			off++
			continue
		}
		break
	}
	return off
}

func readNode(dec *json.Decoder, data []byte) (*node, error) {
	start := valueStart(data, dec.InputOffset())
	tok, err := dec.Token()
	if err != nil {
		return nil, wrapSyntax(err, dec.InputOffset())
	}
	n := &node{offset: start}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			n.isObj = true
			n.object = []member{}
			seen := map[string]bool{}
			for dec.More() {
				keyOff := valueStart(data, dec.InputOffset())
				kt, err := dec.Token()
				if err != nil {
					return nil, wrapSyntax(err, dec.InputOffset())
				}
				name, _ := kt.(string)
				if seen[name] {
					return nil, &syntaxError{offset: keyOff, msg: fmt.Sprintf("duplicate field %q", name)}
				}
				seen[name] = true
				v, err := readNode(dec, data)
				if err != nil {
					return nil, err
				}
				n.object = append(n.object, member{name: name, offset: keyOff, value: v})
			}
		case '[':
			n.isArray = true
			n.array = []*node{}
			for dec.More() {
				v, err := readNode(dec, data)
				if err != nil {
					return nil, err
				}
				n.array = append(n.array, v)
			}
		}
		if _, err := dec.Token(); err != nil { // closing delimiter
			return nil, wrapSyntax(err, dec.InputOffset())
		}
	default:
		n.value = t
	}
	return n, nil
}

func wrapSyntax(err error, off int64) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return &syntaxError{offset: se.Offset, msg: se.Error()}
	}
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return &syntaxError{offset: off, msg: "unexpected end of file"}
	}
	return &syntaxError{offset: off, msg: err.Error()}
}

// lineOf converts a byte offset into a 1-based line number.
func lineOf(data []byte, off int64) int {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	return bytes.Count(data[:off], []byte{'\n'}) + 1
}
