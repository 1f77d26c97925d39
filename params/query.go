package params

import "strings"

// item records one occurrence of include, includes or access_token in a
// container (query, form body, multipart body or JSON body).
type item struct {
	start, end int // query/form: the '&'-separated segment; multipart: part index in end; JSON: member index in end
	name, form uint8
	uuid       bool // the value is exactly "uuid" (and, for multipart, not a file)
	remove     bool // scratch for Rewrite
	// JSON include/includes members only:
	isArray  bool
	nElems   int
	hasUUID  bool // some element is the string "uuid"
	uuidOnly bool // the array is exactly one element, the string "uuid"
}

// container is the parsed state of the query or the body.
type container struct {
	items  []item
	tok    string // access_token value ("" if absent or empty)
	tokSet bool   // an access_token occurrence was seen
	method bool   // _method seen
	asUser bool   // as_user_id seen
	has    [2]bool
	// JSON bodies: the span of every top-level member (key start to value end).
	members []span
	// multipart bodies: start offset of each part's delimiter line, followed
	// by the offset of the close delimiter.
	parts []int
}

type span struct{ start, end, valStart, valEnd int }

func (c *container) hasName(nm uint8) bool {
	switch nm {
	case nmInclude:
		return c.has[0]
	case nmIncludes:
		return c.has[1]
	}
	return false
}

func (c *container) add(it item) {
	switch it.name {
	case nmInclude:
		c.has[0] = true
	case nmIncludes:
		c.has[1] = true
	}
	c.items = append(c.items, it)
}

// setToken records one access_token value; differing values are ambiguous.
func (c *container) setToken(v string) *Error {
	if c.tokSet && c.tok != v {
		return badRequest(MsgAmbiguousAccessToken)
	}
	c.tok, c.tokSet = v, true
	return nil
}

// checkIncludeForms refuses what Rack refuses with a ParameterTypeError: the
// same name given both as a scalar and as an array. (Rack only raises when
// the scalar comes first; this refuses both orders.)
func (c *container) checkIncludeForms() *Error {
	for _, nm := range [2]uint8{nmInclude, nmIncludes} {
		if !c.hasName(nm) {
			continue
		}
		var scalar, array bool
		for i := range c.items {
			if c.items[i].name != nm {
				continue
			}
			switch c.items[i].form {
			case fmScalar:
				scalar = true
			case fmArray:
				array = true
			}
		}
		if scalar && array {
			return badRequest(MsgIncludeTypeConflict)
		}
	}
	return nil
}

// validatePairs refuses the bytes Rack and Go read differently in a query
// string or a form body, and counts its pairs (non-empty '&'-separated
// segments) as it goes: it stops with MsgTooManyParams at the pair after
// the first maxPairs, so a body of a million pairs is not read past the
// limit (nor, for a form body, copied: it takes the body's bytes as they
// are).
func validatePairs[T string | []byte](raw T, isQuery bool, maxPairs int) *Error {
	pairs := 0
	segStart := true
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c == '&' {
			if i+1 < len(raw) && raw[i+1] == ' ' {
				// Rack splits on /& */ and drops the spaces; Go keeps them
				// in the key. Cutting the pair before such a segment would
				// also change how Rack reads it.
				return badRequest(MsgSpaceAfterAmpersand)
			}
			segStart = true
			continue
		}
		if segStart {
			segStart = false
			if pairs++; pairs > maxPairs {
				return badRequest(MsgTooManyParams)
			}
		}
		switch {
		case c == ';':
			return badRequest(MsgSemicolon)
		case c == '%':
			if i+2 >= len(raw) {
				return badRequest(MsgBadEscape)
			}
			if _, ok := unhex(raw[i+1]); !ok {
				return badRequest(MsgBadEscape)
			}
			if _, ok := unhex(raw[i+2]); !ok {
				return badRequest(MsgBadEscape)
			}
			i += 2
		case c < 0x20 || c == 0x7f:
			return badRequest(MsgBadQueryByte)
		case c >= 0x80 && isQuery:
			return badRequest(MsgBadQueryByte)
		}
	}
	return nil
}

// pairKey returns the key and value of one '&'-separated segment. ok is
// false for an empty segment, which Rack ignores. (Rack also skips spaces
// right after a '&'; validatePairs refuses those.)
func pairKey(seg string) (key, val string, hasEq, ok bool) {
	if seg == "" {
		return "", "", false, false
	}
	key, val, hasEq = strings.Cut(seg, "=")
	return key, val, hasEq, true
}

// scanPairs parses a validated query string or form body into c. count is
// the running number of pairs across query and body.
func (c *container) scanPairs(raw string, lim Limits, count *int, scratch *[]byte, creds bool) *Error {
	for s := 0; s <= len(raw); {
		e := strings.IndexByte(raw[s:], '&')
		if e < 0 {
			e = len(raw)
		} else {
			e += s
		}
		key, val, hasEq, ok := pairKey(raw[s:e])
		if ok {
			*count++
			if *count > lim.MaxParams {
				return badRequest(MsgTooManyParams)
			}
			if decodedLen(key) > lim.MaxKeyBytes {
				return badRequest(MsgKeyTooLong)
			}
			var name, form uint8
			var dk []byte
			if needsDecode(key) {
				dk = decodeAppend((*scratch)[:0], key)
				*scratch = dk
				name, form = classifyKey(dk)
			} else {
				name, form = classifyKey(key)
			}
			switch name {
			case nmInclude, nmIncludes:
				c.add(item{start: s, end: e, name: name, form: form, uuid: hasEq && valueIsUUID(val)})
			case nmAccessToken:
				if !creds {
					break
				}
				exact := false
				if dk != nil {
					exact = isExactly(dk, "access_token")
				} else {
					exact = isExactly(key, "access_token")
				}
				if !exact {
					return badRequest(MsgAmbiguousAccessToken)
				}
				v := val
				if needsDecode(v) {
					v = string(decodeAppend(nil, v))
				}
				if err := c.setToken(v); err != nil {
					return err
				}
				c.add(item{start: s, end: e, name: name, form: form})
			case nmMethod:
				c.method = true
			case nmAsUserID:
				c.asUser = true
			}
		}
		s = e + 1
	}
	return nil
}

func valueIsUUID(v string) bool {
	if v == "uuid" {
		return true
	}
	if decodedLen(v) != 4 || !needsDecode(v) {
		return false
	}
	var b [4]byte
	return string(decodeAppend(b[:0], v)) == "uuid"
}

// decideIncludes marks the items of name nm to remove under Canvas's rule
// (docs/canvas-semantics.md#include-rules), or all of them when removeAll (the other container wins the
// merge). It returns the number of values removed.
//
// When every occurrence is name[] the value is an Array: Canvas intersects
// it with ["uuid"], so one name[]=uuid pair is kept and the rest removed.
// If none is uuid Canvas keeps an empty array, which on the wire is
// indistinguishable from an absent parameter, so all pairs are removed.
// Any other form makes the value a non-Array (or, for include[][a]=x, an
// array of hashes, treated the same way on purpose), which Canvas deletes.
func decideIncludes(items []item, nm uint8, removeAll bool) int {
	allArray, any := true, false
	for i := range items {
		if items[i].name == nm {
			any = true
			if items[i].form != fmArray {
				allArray = false
			}
		}
	}
	if !any {
		return 0
	}
	removed, kept := 0, false
	for i := range items {
		if items[i].name != nm {
			continue
		}
		if !removeAll && allArray && !kept && items[i].uuid {
			kept = true
			continue
		}
		items[i].remove = true
		removed++
	}
	return removed
}

func markCredentials(items []item) {
	for i := range items {
		if items[i].name == nmAccessToken {
			items[i].remove = true
		}
	}
}

func anyRemoved(items []item) bool {
	for i := range items {
		if items[i].remove {
			return true
		}
	}
	return false
}

// rewritePairs cuts the removed segments out of raw. The kept segments are
// joined with '&' in their original order and bytes, so no empty pair
// appears that was not there before.
func rewritePairs(raw string, items []item) (string, bool) {
	if !anyRemoved(items) {
		return raw, false
	}
	var b strings.Builder
	b.Grow(len(raw))
	first := true
	k := 0
	for s := 0; s <= len(raw); {
		e := strings.IndexByte(raw[s:], '&')
		if e < 0 {
			e = len(raw)
		} else {
			e += s
		}
		for k < len(items) && items[k].start < s {
			k++
		}
		if k < len(items) && items[k].start == s && items[k].remove {
			s = e + 1
			continue
		}
		if !first {
			b.WriteByte('&')
		}
		b.WriteString(raw[s:e])
		first = false
		s = e + 1
	}
	return b.String(), true
}

// FilterIncludesQuery applies Canvas's include/includes rule to a query
// string (or a form body): see the package rules. It refuses what Inspect
// refuses in a query string (raw ';', bad escapes, control bytes, bytes
// >= 0x80, too many pairs, too-long keys, scalar and array forms of the same
// name) with a *Error.
func FilterIncludesQuery(raw string) (out string, removed int, err error) {
	return filterPairs(raw, true)
}

func filterPairs(raw string, isQuery bool) (string, int, error) {
	if e := validatePairs(raw, isQuery, DefaultLimits().MaxParams); e != nil {
		return "", 0, e
	}
	// One allocation holds the parse state and its small buffers.
	st := new(struct {
		c    container
		buf  [8]item
		sbuf [64]byte
	})
	c := &st.c
	c.items = st.buf[:0]
	scratch := st.sbuf[:0]
	count := 0
	if e := c.scanPairs(raw, DefaultLimits(), &count, &scratch, false); e != nil {
		return "", 0, e
	}
	if e := c.checkIncludeForms(); e != nil {
		return "", 0, e
	}
	removed := decideIncludes(c.items, nmInclude, false) + decideIncludes(c.items, nmIncludes, false)
	out, _ := rewritePairs(raw, c.items)
	return out, removed, nil
}
