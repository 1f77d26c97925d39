package params

import (
	"bytes"
	"strings"
)

// mpPart is one part of a scanned multipart body.
type mpPart struct {
	start    int    // offset of the part's delimiter line ("--boundary\r\n")
	name     string // the parameter name Rack gives the part (see partName); literal, Rack does not decode it
	formName string // the Content-Disposition name parameter ("" when empty), as a MIME parser reads it
	content  []byte
	hasFile  bool // "filename" appears somewhere in the part's header block
}

// scanMultipart reads a multipart body strictly. Anything Rack and Go could
// split or name differently is refused:
//   - the body must start with the first delimiter (no preamble);
//   - every delimiter line is exactly "--boundary" + CRLF (no transport
//     padding, no bare LF) and the close delimiter is "--boundary--";
//   - the delimiter string must not occur anywhere else (Rack ends a part at
//     "--boundary" even without the CRLF before it; Go does not);
//   - header lines are "name: value" with an HTTP field name (RFC 9110
//     tchar: Go refuses others), CRLF, no folding, no control bytes;
//   - each part is named as partName says, or the body is refused.
//
// It stops with MsgTooManyParams at the part after the first maxParts, so
// a body of many small parts costs no more than its first maxParts + 1
// parts. It returns the parts and the offset of the close delimiter.
func scanMultipart(b []byte, boundary string, maxParts int) ([]mpPart, int, *Error) {
	bad := badRequest(MsgInvalidMultipart)
	if boundary == "" {
		return nil, 0, bad
	}
	delim := []byte("--" + boundary)
	if !bytes.HasPrefix(b, delim) {
		return nil, 0, bad
	}
	var parts []mpPart
	pos := 0
	for {
		p := pos + len(delim)
		if bytes.HasPrefix(b[p:], []byte("--")) {
			// The close delimiter ends the body or its line; the epilogue
			// must not mention the boundary again.
			epi := b[p+2:]
			if len(epi) > 0 && !bytes.HasPrefix(epi, []byte("\r\n")) || bytes.Contains(epi, delim) {
				return nil, 0, bad
			}
			return parts, pos, nil
		}
		if !bytes.HasPrefix(b[p:], []byte("\r\n")) {
			return nil, 0, bad
		}
		if len(parts) == maxParts {
			return nil, 0, badRequest(MsgTooManyParams)
		}
		hs := p + 2
		if bytes.HasPrefix(b[hs:], []byte("\r\n")) {
			return nil, 0, bad // no headers, so no name
		}
		// The next occurrence of the delimiter string must be the next
		// delimiter line, preceded by CRLF; the header block ends at the
		// first blank line before it. One search covers the header block
		// and the content.
		next := bytes.Index(b[hs:], delim)
		if next < 0 {
			return nil, 0, bad
		}
		next += hs
		ce := next - 2
		if ce < hs || b[ce] != '\r' || b[ce+1] != '\n' {
			return nil, 0, bad
		}
		he := bytes.Index(b[hs:ce], []byte("\r\n\r\n"))
		if he < 0 {
			return nil, 0, bad
		}
		head := b[hs : hs+he]
		cs := hs + he + 4
		formName, name, hasFile, ok := partName(head)
		if !ok {
			return nil, 0, bad
		}
		parts = append(parts, mpPart{start: pos, name: name, formName: formName, content: b[cs:ce], hasFile: hasFile})
		pos = ce + 2
		after := b[pos+len(delim):]
		if !bytes.HasPrefix(after, []byte("\r\n")) && !bytes.HasPrefix(after, []byte("--")) {
			return nil, 0, bad
		}
	}
}

// isTokenChar is a MIME parameter token byte (RFC 2045: tspecials out).
func isTokenChar(c byte) bool { return tokenChars[c] }

var tokenChars = func() (t [256]bool) {
	for c := 0x21; c < 0x7f; c++ {
		t[c] = strings.IndexByte(`()<>@,;:\"/[]?=`, byte(c)) < 0
	}
	return t
}()

// isHeaderNameChar is an HTTP field-name byte (RFC 9110 tchar), which
// also leaves out '{' and '}': Go's MIME reader refuses a part header
// named with them, so a part the gate read could be one Go cannot.
func isHeaderNameChar(c byte) bool {
	return isTokenChar(c) && c != '{' && c != '}'
}

// indexFold is the index of the first ASCII case-insensitive occurrence
// of sub (lower case, starting with a letter) in s at or after from, or -1.
func indexFold(s, sub string, from int) int {
	first := sub[0]
	for i := from; i+len(sub) <= len(s); i++ {
		if s[i]|0x20 == first && equalFoldASCII(s[i+1:i+len(sub)], sub[1:]) {
			return i
		}
	}
	return -1
}

// equalFoldASCII compares s with lower-case t, ignoring ASCII case only.
func equalFoldASCII(s, t string) bool {
	if len(s) != len(t) {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != t[i] {
			return false
		}
	}
	return true
}

func countFold(s, sub string) int {
	n := 0
	for i := indexFold(s, sub, 0); i >= 0; i = indexFold(s, sub, i+1) {
		n++
	}
	return n
}

// Rack 3.1 and later do not parse a Content-Disposition value longer than
// this (the part is then named from a Content-ID or its Content-Type), and
// read no more than this many of its parameters.
const (
	rack3MaxDispositionBytes  = 1536
	rack3MaxDispositionParams = 16
)

// partName parses a part's header block and returns the parameter name
// Rack gives the part, or ok = false when Rack 2.2, Rack 3.x and a MIME
// parser could name it differently. formName is the Content-Disposition
// name parameter.
//
// Rack 2.2 looks for "Content-Disposition:...; name=" anywhere in the
// block (not only at a line start, any case, the first "name=" before a
// ':'), else for "Content-ID:" anywhere; a part whose name is then missing
// or empty is named after its filename (searched for in every header line)
// or, without one, its Content-Type (the first "Content-Type: " anywhere)
// followed by "[]": name="" with Content-Type: include is include[]. Rack
// 3.1+ reads only headers at a line start, compares parameter names
// exactly, and stops at the limits above. So a block is accepted only when
// it has:
//   - exactly one "content-disposition:" in any case, and it is the
//     Content-Disposition header, at most rack3MaxDispositionBytes long;
//   - no "content-id:" anywhere;
//   - a form-data value whose name parameter both readings find (see
//     dispositionName);
//   - when that name is empty: no "filename" anywhere (the readings
//     normalise filenames differently), and a Content-Type both read alike
//     (see contentTypeForName).
func partName(head []byte) (formName, name string, hasFile, ok bool) {
	h := string(head)
	if countFold(h, "content-disposition:") != 1 || indexFold(h, "content-id:", 0) >= 0 {
		return "", "", false, false
	}
	var cd string
	found := false
	for rest := h; ; {
		line, more, moreLines := strings.Cut(rest, "\r\n")
		colon := strings.IndexByte(line, ':')
		if colon <= 0 {
			return "", "", false, false
		}
		for i := 0; i < colon; i++ {
			if !isHeaderNameChar(line[i]) {
				return "", "", false, false
			}
		}
		v := line[colon+1:]
		for i := 0; i < len(v); i++ {
			if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
				return "", "", false, false
			}
		}
		if colon == len("Content-Disposition") && equalFoldASCII(line[:colon], "content-disposition") {
			if found || len(v) > rack3MaxDispositionBytes {
				return "", "", false, false
			}
			found = true
			cd = strings.Trim(v, " \t")
		}
		if !moreLines {
			break
		}
		rest = more
	}
	if !found {
		return "", "", false, false
	}
	formName, ok = dispositionName(cd)
	if !ok {
		return "", "", false, false
	}
	hasFile = indexFold(h, "filename", 0) >= 0
	if formName != "" {
		return formName, formName, hasFile, true
	}
	if hasFile {
		return "", "", false, false
	}
	ct, ok := contentTypeForName(h)
	if !ok {
		return "", "", false, false
	}
	return "", ct + "[]", false, true
}

// contentTypeForName returns the Content-Type a part without a name is
// named after. Rack 2.2 takes the rest of the line after the first
// "Content-Type: " (exactly one space, any case) anywhere in the block;
// Rack 3.1+ the value of the first line starting with "Content-Type:",
// after any spaces or tabs; both use text/plain when they find none. ok is
// false unless the two agree: no "content-type:" at all, or exactly one, at
// a line start, followed by one space and a non-empty value that does not
// start with a space or tab.
func contentTypeForName(h string) (string, bool) {
	const key = "content-type:"
	i := indexFold(h, key, 0)
	if i < 0 {
		return "text/plain", true
	}
	if indexFold(h, key, i+1) >= 0 || i > 0 && (i < 2 || h[i-2:i] != "\r\n") {
		return "", false
	}
	v := h[i+len(key):]
	if e := strings.Index(v, "\r\n"); e >= 0 {
		v = v[:e]
	}
	if len(v) < 2 || v[0] != ' ' || v[1] == ' ' || v[1] == '\t' {
		return "", false // an empty value also makes Rack 2.2 fail
	}
	return v[1:], true
}

// dispositionName reads the name parameter of a form-data
// Content-Disposition value (trimmed). Rack 2.2 reads it with
// /Content-Disposition:[^:]*;\s*name=("(?:\\"|[^"])*"|TOKEN)/i, Rack 3.1+
// with its own parameter loop (exact lower-case names, an unquoted value
// running to the next ';', at most rack3MaxDispositionParams parameters)
// and Go with mime.ParseMediaType; the value is accepted only when all
// agree: one name parameter, parameter names in lower case, an unquoted
// value followed directly by ';' or the end, no backslash in the name. The
// name may be empty (name="").
func dispositionName(v string) (string, bool) {
	// Rack 2.2's reading: the match of ;\s*name= (any case) must be unique
	// and come before any ':'.
	at, n := -1, 0
	for i := 0; i < len(v); i++ {
		if v[i] != ';' {
			continue
		}
		j := i + 1
		for j < len(v) && (v[j] == ' ' || v[j] == '\t') {
			j++
		}
		if j+5 <= len(v) && equalFoldASCII(v[j:j+5], "name=") {
			n++
			at = j + 5
		}
	}
	if n != 1 || strings.IndexByte(v[:at], ':') >= 0 {
		return "", false
	}
	// Strict reading, close to mime.ParseMediaType.
	i := 0
	for i < len(v) && isTokenChar(v[i]) {
		i++
	}
	if !equalFoldASCII(v[:i], "form-data") {
		return "", false
	}
	var name string
	gotName := false
	var seen [rack3MaxDispositionParams]string
	nParams := 0
	for {
		for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
			i++
		}
		if i == len(v) {
			break
		}
		if v[i] != ';' {
			return "", false
		}
		i++
		for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
			i++
		}
		if i == len(v) {
			break // a trailing ';' is ignored, as by Go and Rack
		}
		ks := i
		for i < len(v) && isTokenChar(v[i]) {
			if 'A' <= v[i] && v[i] <= 'Z' {
				return "", false // Rack 2.2 ignores case here, Rack 3.1+ does not
			}
			i++
		}
		key := v[ks:i]
		if key == "" || i == len(v) || v[i] != '=' {
			return "", false
		}
		if nParams == len(seen) {
			return "", false // Rack 3.1+ would not read the next one
		}
		for _, k := range seen[:nParams] {
			if k == key {
				return "", false
			}
		}
		seen[nParams] = key
		nParams++
		base, _, star := strings.Cut(key, "*")
		if base == "name" && star {
			return "", false // Go prefers name*=; Rack ignores it
		}
		i++
		vs := i
		var val string
		if i < len(v) && v[i] == '"' {
			i++
			for i < len(v) && v[i] != '"' {
				if v[i] == '\\' {
					if key == "name" {
						return "", false // Rack and Go unescape differently
					}
					i++
				}
				i++
			}
			if i >= len(v) {
				return "", false
			}
			val = v[vs+1 : i]
			i++
		} else {
			for i < len(v) && isTokenChar(v[i]) {
				i++
			}
			if i == vs {
				return "", false
			}
			// Rack 3.1+ reads an unquoted value up to the next ';'.
			if i < len(v) && v[i] != ';' {
				return "", false
			}
			val = v[vs:i]
		}
		if key == "name" {
			if vs != at {
				return "", false
			}
			name, gotName = val, true
		}
	}
	return name, gotName
}

// rewriteMultipart cuts the removed parts out of b; each part runs from its
// delimiter line up to the CRLF before the next delimiter, inclusive.
func rewriteMultipart(b []byte, parts []mpPart, closeAt int, remove []bool) []byte {
	out := make([]byte, 0, len(b))
	for i, p := range parts {
		if remove[i] {
			continue
		}
		end := closeAt
		if i+1 < len(parts) {
			end = parts[i+1].start
		}
		out = append(out, b[p.start:end]...)
	}
	return append(out, b[closeAt:]...)
}

// multipartItems classifies the parts of a scanned body.
// scanMultipart has already refused more parts than the limit allows.
func multipartItems(parts []mpPart, lim Limits, count *int, c *container, creds bool) *Error {
	*count += len(parts)
	for i, p := range parts {
		if len(p.name) > lim.MaxKeyBytes {
			return badRequest(MsgKeyTooLong)
		}
		name, form := classifyKey(p.name)
		switch name {
		case nmInclude, nmIncludes:
			c.add(item{start: i, end: i, name: name, form: form, uuid: !p.hasFile && string(p.content) == "uuid"})
		case nmAccessToken:
			if !creds {
				break
			}
			if p.name != "access_token" || p.hasFile {
				return badRequest(MsgAmbiguousAccessToken)
			}
			if err := c.setToken(string(p.content)); err != nil {
				return err
			}
			c.add(item{start: i, end: i, name: name, form: form})
		case nmMethod:
			c.method = true
		case nmAsUserID:
			c.asUser = true
		}
	}
	return nil
}

// FilterIncludesMultipart applies Canvas's include/includes rule to a
// multipart/form-data body: parts are named as Rack names them (see
// partName) and treated like query pairs. Removed parts are cut out; every
// other part (including file parts) and the close delimiter are kept byte
// for byte. Malformed or ambiguous bodies, and bodies of more parts than
// DefaultLimits().MaxParams, are refused with a *Error.
func FilterIncludesMultipart(body []byte, boundary string) (out []byte, removed int, err error) {
	if !validBoundary(boundary) {
		return nil, 0, badRequest(MsgInvalidMultipart)
	}
	lim := DefaultLimits()
	parts, closeAt, e := scanMultipart(body, boundary, lim.MaxParams)
	if e != nil {
		return nil, 0, e
	}
	var c container
	count := 0
	if e := multipartItems(parts, lim, &count, &c, false); e != nil {
		return nil, 0, e
	}
	if e := c.checkIncludeForms(); e != nil {
		return nil, 0, e
	}
	removed = decideIncludes(c.items, nmInclude, false) + decideIncludes(c.items, nmIncludes, false)
	if !anyRemoved(c.items) {
		return body, removed, nil
	}
	return rewriteMultipart(body, parts, closeAt, removeMask(c.items, len(parts))), removed, nil
}

func removeMask(items []item, n int) []bool {
	m := make([]bool, n)
	for _, it := range items {
		if it.remove {
			m[it.end] = true
		}
	}
	return m
}
