package params

import (
	"bytes"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/internal/jsonlex"
)

// jsonScanner validates RFC 8259 JSON and records the byte span of every
// top-level object member. It never re-encodes anything.
type jsonScanner struct {
	b        []byte
	pos      int
	maxDepth int
	err      *Error
}

func (s *jsonScanner) fail(msg string) bool {
	if s.err == nil {
		s.err = badRequest(msg)
	}
	return false
}

func (s *jsonScanner) ws() { s.pos = jsonlex.Space(s.b, s.pos) }

// value scans one value starting at s.pos; depth is the nesting depth of
// the container the value is in (0 at top level).
func (s *jsonScanner) value(depth int) bool {
	if s.pos >= len(s.b) {
		return s.fail(MsgInvalidJSON)
	}
	switch c := s.b[s.pos]; {
	case c == '{':
		if depth+1 > s.maxDepth {
			return s.fail(MsgJSONTooDeep)
		}
		s.pos++
		s.ws()
		if s.pos < len(s.b) && s.b[s.pos] == '}' {
			s.pos++
			return true
		}
		for {
			if _, ok := s.str(); !ok {
				return false
			}
			s.ws()
			if s.pos >= len(s.b) || s.b[s.pos] != ':' {
				return s.fail(MsgInvalidJSON)
			}
			s.pos++
			s.ws()
			if !s.value(depth + 1) {
				return false
			}
			if more, ok := s.next('}'); !more {
				return ok
			}
		}
	case c == '[':
		if depth+1 > s.maxDepth {
			return s.fail(MsgJSONTooDeep)
		}
		s.pos++
		s.ws()
		if s.pos < len(s.b) && s.b[s.pos] == ']' {
			s.pos++
			return true
		}
		for {
			if !s.value(depth + 1) {
				return false
			}
			if more, ok := s.next(']'); !more {
				return ok
			}
		}
	case c == '"':
		_, ok := s.str()
		return ok
	case c == 't':
		return s.lit("true")
	case c == 'f':
		return s.lit("false")
	case c == 'n':
		return s.lit("null")
	case c == '-' || ('0' <= c && c <= '9'):
		return s.num()
	}
	return s.fail(MsgInvalidJSON)
}

// next reads what follows a member or an element: ',' when more follow
// (more), or the closing byte. ok is false on anything else.
func (s *jsonScanner) next(closing byte) (more, ok bool) {
	s.ws()
	if s.pos >= len(s.b) {
		return false, s.fail(MsgInvalidJSON)
	}
	switch s.b[s.pos] {
	case ',':
		s.pos++
		s.ws()
		return true, true
	case closing:
		s.pos++
		return false, true
	}
	return false, s.fail(MsgInvalidJSON)
}

func (s *jsonScanner) lit(w string) bool {
	if !bytes.HasPrefix(s.b[s.pos:], []byte(w)) {
		return s.fail(MsgInvalidJSON)
	}
	s.pos += len(w)
	return true
}

func (s *jsonScanner) num() bool {
	end, _ := jsonlex.Number(s.b, s.pos)
	if end < 0 {
		return s.fail(MsgInvalidJSON)
	}
	s.pos = end
	return true
}

// str scans a string at s.pos and returns its raw span (including quotes).
func (s *jsonScanner) str() (span [2]int, ok bool) {
	if s.pos >= len(s.b) || s.b[s.pos] != '"' {
		return span, s.fail(MsgInvalidJSON)
	}
	end, _, _ := jsonlex.StringUTF8(s.b, s.pos)
	if end < 0 {
		return span, s.fail(MsgInvalidJSON)
	}
	span = [2]int{s.pos, end}
	s.pos = end
	return span, true
}

// decodeJSONString decodes a validated raw JSON string (with quotes),
// replacing invalid surrogates with U+FFFD as encoding/json does.
func decodeJSONString(raw []byte) string {
	raw = raw[1 : len(raw)-1]
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw)
	}
	return string(jsonlex.AppendUnquoted(make([]byte, 0, len(raw)), raw))
}

// jsonTop is the result of scanning a JSON body.
type jsonTop struct {
	isObject bool
	members  []span
	names    []string
}

// scanJSON validates b and, when the top level is an object, records each
// member's span and decoded name. Duplicate member names are refused.
func scanJSON(b []byte, maxDepth int) (jsonTop, *Error) {
	return scanJSONInto(b, maxDepth, -1, jsonTop{})
}

// scanJSONInto is scanJSON appending to t's slices (emptied first), so a
// pooled Inspection reuses them. With maxMembers >= 0 it stops with
// MsgTooManyParams at the top-level member after the first maxMembers, so
// a body of a million members is neither read past the limit nor split
// into a million names. (UTF-8 is checked string by string for the same
// reason: nothing but a string may hold bytes from 0x80 up.)
func scanJSONInto(b []byte, maxDepth, maxMembers int, t jsonTop) (jsonTop, *Error) {
	t = jsonTop{members: t.members[:0], names: t.names[:0]}
	s := &jsonScanner{b: b, maxDepth: maxDepth}
	s.ws()
	if s.pos < len(s.b) && s.b[s.pos] == '{' {
		t.isObject = true
		if maxDepth < 1 {
			return t, badRequest(MsgJSONTooDeep)
		}
		s.pos++
		s.ws()
		if s.pos < len(s.b) && s.b[s.pos] == '}' {
			s.pos++
		} else {
			for {
				if len(t.members) == maxMembers {
					return t, badRequest(MsgTooManyParams)
				}
				ks, ok := s.str()
				if !ok {
					return t, s.err
				}
				s.ws()
				if s.pos >= len(s.b) || s.b[s.pos] != ':' {
					return t, badRequest(MsgInvalidJSON)
				}
				s.pos++
				s.ws()
				vs := s.pos
				if !s.value(1) {
					return t, s.err
				}
				t.members = append(t.members, span{start: ks[0], end: s.pos, valStart: vs, valEnd: s.pos})
				t.names = append(t.names, decodeJSONString(b[ks[0]:ks[1]]))
				more, ok := s.next('}')
				if !ok {
					return t, s.err
				}
				if !more {
					break
				}
			}
		}
	} else if !s.value(0) {
		return t, s.err
	}
	s.ws()
	if s.pos != len(s.b) {
		return t, badRequest(MsgInvalidJSON)
	}
	if len(t.names) > 1 {
		if len(t.names) <= 16 {
			for i := range t.names {
				for j := 0; j < i; j++ {
					if t.names[i] == t.names[j] {
						return t, badRequest(MsgDuplicateJSONMember)
					}
				}
			}
		} else {
			seen := make(map[string]struct{}, len(t.names))
			for _, n := range t.names {
				if _, dup := seen[n]; dup {
					return t, badRequest(MsgDuplicateJSONMember)
				}
				seen[n] = struct{}{}
			}
		}
	}
	return t, nil
}

// jsonIncludeArray inspects a validated include/includes value.
func jsonIncludeArray(v []byte) (isArray bool, n int, hasUUID, uuidOnly bool) {
	if len(v) == 0 || v[0] != '[' {
		return false, 0, false, false
	}
	s := &jsonScanner{b: v, maxDepth: 1 << 30, pos: 1}
	s.ws()
	if s.pos < len(v) && v[s.pos] == ']' {
		return true, 0, false, false
	}
	for {
		st := s.pos
		s.value(1)
		n++
		if v[st] == '"' && decodeJSONString(v[st:s.pos]) == "uuid" {
			hasUUID = true
		}
		s.ws()
		if v[s.pos] == ']' {
			break
		}
		s.pos++
		s.ws()
	}
	return true, n, hasUUID, n == 1 && hasUUID
}

// rewriteJSON rebuilds an object body without the removed members and with
// replaced include values. Kept members, and the separator that followed
// each of them, are copied byte for byte: a removed member is cut from its
// first byte up to the first byte of the next member (or, when it is last,
// from the end of the last kept member to its own end).
func rewriteJSON(b []byte, members []span, remove []bool, replace [][]byte) []byte {
	out := make([]byte, 0, len(b))
	out = append(out, b[:members[0].start]...)
	last := -1 // the last kept member
	for i, m := range members {
		if remove[i] {
			continue
		}
		if last >= 0 {
			// The separator that followed the previous kept member.
			out = append(out, b[members[last].end:members[last+1].start]...)
		}
		last = i
		if replace[i] != nil {
			out = append(out, b[m.start:m.valStart]...)
			out = append(out, replace[i]...)
			out = append(out, b[m.valEnd:m.end]...)
		} else {
			out = append(out, b[m.start:m.end]...)
		}
	}
	out = append(out, b[members[len(members)-1].end:]...)
	return out
}

var (
	jsonUUIDArray  = []byte(`["uuid"]`)
	jsonEmptyArray = []byte(`[]`)
)

// jsonMember describes one top-level member this package cares about.
type jsonMember struct {
	idx  int
	name uint8
	// include/includes
	isArray, hasUUID, uuidOnly bool
	nElems                     int
}

// planJSON decides, for each include/includes member, whether to remove it
// or replace its value, and returns the number of values removed.
func planJSON(ms []jsonMember, n int, removeAll [2]bool, strip bool, remove []bool, replace [][]byte) int {
	removed := 0
	for _, m := range ms {
		switch m.name {
		case nmAccessToken:
			if strip {
				remove[m.idx] = true
			}
		case nmInclude, nmIncludes:
			if removeAll[0] && m.name == nmInclude || removeAll[1] && m.name == nmIncludes || !m.isArray {
				remove[m.idx] = true
				if m.isArray {
					removed += m.nElems
				} else {
					removed++
				}
				continue
			}
			if m.uuidOnly || m.nElems == 0 {
				continue
			}
			if m.hasUUID {
				replace[m.idx] = jsonUUIDArray
				removed += m.nElems - 1
			} else {
				replace[m.idx] = jsonEmptyArray
				removed += m.nElems
			}
		}
	}
	return removed
}

// FilterIncludesJSON applies Canvas's include/includes rule to a JSON body:
// a top-level include/includes member that is not an array is removed; an
// array keeps only one "uuid" string. Everything else is preserved byte for
// byte. Invalid JSON, duplicate top-level members and nesting deeper than
// the default MaxJSONDepth are refused with a *Error. A top-level value that
// is not an object is returned unchanged.
func FilterIncludesJSON(body []byte) (out []byte, removed int, err error) {
	t, e := scanJSON(body, DefaultLimits().MaxJSONDepth)
	if e != nil {
		return nil, 0, e
	}
	ms := jsonMembersOf(body, t, false)
	if len(ms) == 0 {
		return body, 0, nil
	}
	remove := make([]bool, len(t.members))
	replace := make([][]byte, len(t.members))
	removed = planJSON(ms, len(t.members), [2]bool{}, false, remove, replace)
	if !changedJSON(remove, replace) {
		return body, removed, nil
	}
	return rewriteJSON(body, t.members, remove, replace), removed, nil
}

func changedJSON(remove []bool, replace [][]byte) bool {
	for i := range remove {
		if remove[i] || replace[i] != nil {
			return true
		}
	}
	return false
}

// jsonMembersOf lists the include/includes (and, with creds, access_token)
// members of a scanned object.
func jsonMembersOf(b []byte, t jsonTop, creds bool) []jsonMember {
	return appendJSONMembers(nil, b, t, creds)
}

// appendJSONMembers is jsonMembersOf appending to ms.
func appendJSONMembers(ms []jsonMember, b []byte, t jsonTop, creds bool) []jsonMember {
	for i, name := range t.names {
		switch name {
		case "include", "includes":
			m := jsonMember{idx: i, name: nmInclude}
			if name == "includes" {
				m.name = nmIncludes
			}
			sp := t.members[i]
			m.isArray, m.nElems, m.hasUUID, m.uuidOnly = jsonIncludeArray(b[sp.valStart:sp.valEnd])
			ms = append(ms, m)
		case "access_token":
			if creds {
				ms = append(ms, jsonMember{idx: i, name: nmAccessToken})
			}
		}
	}
	return ms
}
