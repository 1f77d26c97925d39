package params

import (
	"bytes"
	"strings"
)

// mpPart is one part of a scanned multipart body.
type mpPart struct {
	start   int    // offset of the part's delimiter line ("--boundary\r\n")
	name    string // the Content-Disposition name, literal (Rack does not decode it)
	content []byte
	hasFile bool // a filename appears in the Content-Disposition
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
//   - exactly one Content-Disposition, of type form-data, with exactly one
//     name parameter that Rack's regular expression and a MIME parser both
//     read the same way.
//
// It returns the parts and the offset of the close delimiter.
func scanMultipart(b []byte, boundary string) ([]mpPart, int, *Error) {
	bad := badRequest(MsgInvalidMultipart)
	if boundary == "" {
		return nil, 0, bad
	}
	delim := []byte("--" + boundary)
	crlfDelim := []byte("\r\n--" + boundary)
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
		hs := p + 2
		if bytes.HasPrefix(b[hs:], []byte("\r\n")) {
			return nil, 0, bad // no headers, so no name
		}
		he := bytes.Index(b[hs:], []byte("\r\n\r\n"))
		if he < 0 {
			return nil, 0, bad
		}
		head := b[hs : hs+he]
		cs := hs + he + 4
		ce := bytes.Index(b[cs:], crlfDelim)
		if ce < 0 {
			return nil, 0, bad
		}
		ce += cs
		content := b[cs:ce]
		if bytes.Contains(head, delim) || bytes.Contains(content, delim) {
			return nil, 0, bad
		}
		name, hasFile, ok := partName(head)
		if !ok {
			return nil, 0, bad
		}
		parts = append(parts, mpPart{start: pos, name: name, content: content, hasFile: hasFile})
		pos = ce + 2
		after := b[pos+len(delim):]
		if !bytes.HasPrefix(after, []byte("\r\n")) && !bytes.HasPrefix(after, []byte("--")) {
			return nil, 0, bad
		}
	}
}

// isTokenChar is a MIME parameter token byte (RFC 2045: tspecials out).
func isTokenChar(c byte) bool {
	return c > 0x20 && c < 0x7f && strings.IndexByte(`()<>@,;:\"/[]?=`, c) < 0
}

// isHeaderNameChar is an HTTP field-name byte (RFC 9110 tchar), which
// also leaves out '{' and '}': Go's MIME reader refuses a part header
// named with them, so a part the gate read could be one Go cannot.
func isHeaderNameChar(c byte) bool {
	return isTokenChar(c) && c != '{' && c != '}'
}

func indexFold(s, sub string, from int) int {
	for i := from; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return i
		}
	}
	return -1
}

func countFold(s, sub string) int {
	n := 0
	for i := indexFold(s, sub, 0); i >= 0; i = indexFold(s, sub, i+1) {
		n++
	}
	return n
}

// partName parses a part's header block and returns its form name.
func partName(head []byte) (name string, hasFile, ok bool) {
	h := string(head)
	if countFold(h, "content-disposition:") != 1 {
		return "", false, false
	}
	var cd string
	found := false
	for _, line := range strings.Split(h, "\r\n") {
		colon := strings.IndexByte(line, ':')
		if colon <= 0 {
			return "", false, false
		}
		for i := 0; i < colon; i++ {
			if !isHeaderNameChar(line[i]) {
				return "", false, false
			}
		}
		v := line[colon+1:]
		for i := 0; i < len(v); i++ {
			if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
				return "", false, false
			}
		}
		if strings.EqualFold(line[:colon], "Content-Disposition") {
			if found {
				return "", false, false
			}
			found = true
			cd = strings.Trim(v, " \t")
		}
	}
	if !found {
		return "", false, false
	}
	name, ok = dispositionName(cd)
	return name, indexFold(cd, "filename", 0) >= 0, ok
}

// dispositionName reads the name parameter of a form-data
// Content-Disposition value. Rack reads it with
// /Content-Disposition:[^:]*;\s*name=("(?:\\"|[^"])*"|TOKEN)/i and Go with
// mime.ParseMediaType; the value is accepted only when both agree.
func dispositionName(v string) (string, bool) {
	// Rack's reading: the match of ;\s*name= must be unique and come
	// before any ':'.
	at, n := -1, 0
	for i := 0; i < len(v); i++ {
		if v[i] != ';' {
			continue
		}
		j := i + 1
		for j < len(v) && (v[j] == ' ' || v[j] == '\t') {
			j++
		}
		if j+5 <= len(v) && strings.EqualFold(v[j:j+5], "name=") {
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
	if !strings.EqualFold(v[:i], "form-data") {
		return "", false
	}
	var name string
	gotName := false
	seen := map[string]bool{}
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
			break // a trailing ';' is ignored, as by Go
		}
		ks := i
		for i < len(v) && isTokenChar(v[i]) {
			i++
		}
		key := strings.ToLower(v[ks:i])
		if key == "" || i == len(v) || v[i] != '=' {
			return "", false
		}
		if seen[key] {
			return "", false
		}
		seen[key] = true
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
func multipartItems(parts []mpPart, lim Limits, count *int, c *container, creds bool) *Error {
	for i, p := range parts {
		*count++
		if *count > lim.MaxParams {
			return badRequest(MsgTooManyParams)
		}
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
// multipart/form-data body: parts are named by their Content-Disposition
// name and treated like query pairs. Removed parts are cut out; every other
// part (including file parts) and the close delimiter are kept byte for
// byte. Malformed or ambiguous bodies are refused with a *Error.
func FilterIncludesMultipart(body []byte, boundary string) (out []byte, removed int, err error) {
	if !validBoundary(boundary) {
		return nil, 0, badRequest(MsgInvalidMultipart)
	}
	parts, closeAt, e := scanMultipart(body, boundary)
	if e != nil {
		return nil, 0, e
	}
	var c container
	count := 0
	if e := multipartItems(parts, DefaultLimits(), &count, &c, false); e != nil {
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
