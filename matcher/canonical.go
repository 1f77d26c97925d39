package matcher

import "fmt"

// Reason says why Canonicalize refused a path.
type Reason uint8

const (
	NotAbsolute    Reason = iota + 1 // empty, or does not start with "/"
	DotSegment                       // "." or ".." segment, also percent-encoded or between %2F
	Backslash                        // "\" or %5C
	Semicolon                        // ";" or %3B (matrix parameters)
	ControlByte                      // raw or encoded 0x00-0x1F or 0x7F
	Space                            // raw space (0x20)
	NonASCII                         // raw byte >= 0x80
	Fragment                         // "#" or %23
	QueryMark                        // raw "?" (the query must be split off first)
	BadEscape                        // "%" not followed by two hex digits
	DoubleEncoding                   // %25 followed by two hex digits
)

var reasonNames = [...]string{
	NotAbsolute:    "NotAbsolute",
	DotSegment:     "DotSegment",
	Backslash:      "Backslash",
	Semicolon:      "Semicolon",
	ControlByte:    "ControlByte",
	Space:          "Space",
	NonASCII:       "NonASCII",
	Fragment:       "Fragment",
	QueryMark:      "QueryMark",
	BadEscape:      "BadEscape",
	DoubleEncoding: "DoubleEncoding",
}

var reasonText = [...]string{
	NotAbsolute:    "the path does not start with \"/\"",
	DotSegment:     "a \".\" or \"..\" segment (possibly percent-encoded, or next to an encoded slash)",
	Backslash:      "a backslash (raw or %5C)",
	Semicolon:      "a semicolon (raw or %3B)",
	ControlByte:    "a control character (raw or percent-encoded)",
	Space:          "a raw space",
	NonASCII:       "a raw non-ASCII byte (it must be percent-encoded)",
	Fragment:       "a \"#\" (raw or %23)",
	QueryMark:      "a raw \"?\" in the path",
	BadEscape:      "a \"%\" that is not followed by two hex digits",
	DoubleEncoding: "a double-encoded escape (%25 followed by two hex digits)",
}

func (r Reason) String() string {
	if int(r) < len(reasonNames) && reasonNames[r] != "" {
		return reasonNames[r]
	}
	return fmt.Sprintf("Reason(%d)", uint8(r))
}

// PathError is returned by Canonicalize for a path it refuses.
type PathError struct {
	Path   string // the escaped path as given
	Reason Reason
	Offset int // byte offset into Path of the offending byte, escape or segment
}

func (e *PathError) Error() string {
	what := "an unacceptable path"
	if int(e.Reason) < len(reasonText) && reasonText[e.Reason] != "" {
		what = reasonText[e.Reason]
	}
	return fmt.Sprintf("path %q refused: %s at offset %d", e.Path, what, e.Offset)
}

// plainByte marks the bytes Canonicalize passes through without a look:
// printable ASCII except "/", "%", "\\", ";", "#", "?" and ".". A segment
// with no "." and no "%" cannot be a dot segment, so only segments that
// had one are checked.
var plainByte = func() (t [256]bool) {
	for c := 0x21; c <= 0x7e; c++ {
		t[c] = true
	}
	for _, c := range "/%\\;#?." {
		t[c] = false
	}
	return t
}()

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// isDotSeg reports whether seg is ".", ".." or a percent-encoded spelling
// of them (%2e / %2E for either dot), or contains such a piece delimited
// by an encoded slash (%2F, e.g. "..%2Fx"): a component that decodes %2F
// would see a dot segment there.
func isDotSeg(seg string) bool {
	n := 0 // dots in the current piece; -1 once it has another byte
	for i := 0; i < len(seg); {
		if seg[i] == '%' && i+2 < len(seg) && seg[i+1] == '2' && (seg[i+2] == 'f' || seg[i+2] == 'F') {
			if n == 1 || n == 2 {
				return true
			}
			n = 0
			i += 3
			continue
		}
		switch {
		case n < 0:
		case seg[i] == '.':
			n++
		case seg[i] == '%' && i+2 < len(seg) && seg[i+1] == '2' && (seg[i+2] == 'e' || seg[i+2] == 'E'):
			n++
			i += 3
			continue
		default:
			n = -1
		}
		i++
	}
	return n == 1 || n == 2
}

// Canonicalize turns an escaped request path into the form Canvas matches
// scopes against (Rails normalize_path): runs of "/" are squeezed, a
// trailing "/" is dropped (except for "/"), and percent-escapes written
// with a lower-case hex letter are upper-cased. Rails upper-cases only
// escapes made of digits and lower-case letters (%2f) and leaves mixed case
// (%aB) alone; we upper-case those too. That cannot change a match, because
// scope paths may not contain "%" (ParseScope refuses it), so escapes are
// only ever matched by dynamic segments, globs and the format suffix,
// which accept either spelling. Nothing is decoded; %2F stays inside its
// segment.
//
// Paths that Canvas's stack could read differently from us are refused
// with a *PathError (see Reason). That includes a dot segment hidden
// behind an encoded slash ("/a/..%2Fb", "/a/x%2F."), which a component
// that decodes %2F would see as a traversal. An already canonical path is returned
// as is, without allocating.
func Canonicalize(escapedPath string) (canonical string, err error) {
	p := escapedPath
	if len(p) == 0 || p[0] != '/' {
		return "", &PathError{Path: p, Reason: NotAbsolute, Offset: 0}
	}
	change := false
	seg := 0        // start of the current segment
	mayDot := false // the segment has a "." or a "%" (a dot may be encoded)
	for i := 0; i < len(p); i++ {
		c := p[i]
		if plainByte[c] {
			continue
		}
		var r Reason
		switch {
		case c == '/':
			if mayDot && isDotSeg(p[seg:i]) {
				return "", &PathError{Path: p, Reason: DotSegment, Offset: seg}
			}
			if i > 0 && p[i-1] == '/' {
				change = true
			}
			seg, mayDot = i+1, false
			continue
		case c == '.':
			mayDot = true
			continue
		case c == '%':
			mayDot = true
			if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
				return "", &PathError{Path: p, Reason: BadEscape, Offset: i}
			}
			if p[i+1] >= 'a' || p[i+2] >= 'a' {
				change = true
			}
			switch v := unhex(p[i+1])<<4 | unhex(p[i+2]); {
			case v < 0x20 || v == 0x7f:
				r = ControlByte
			case v == '\\':
				r = Backslash
			case v == ';':
				r = Semicolon
			case v == '#':
				r = Fragment
			case v == '%':
				if i+4 < len(p) && isHex(p[i+3]) && isHex(p[i+4]) {
					r = DoubleEncoding
				}
			}
			if r != 0 {
				return "", &PathError{Path: p, Reason: r, Offset: i}
			}
			i += 2
			continue
		case c < 0x20 || c == 0x7f:
			r = ControlByte
		case c == ' ':
			r = Space
		case c >= 0x80:
			r = NonASCII
		case c == '\\':
			r = Backslash
		case c == ';':
			r = Semicolon
		case c == '#':
			r = Fragment
		case c == '?':
			r = QueryMark
		default:
			continue
		}
		return "", &PathError{Path: p, Reason: r, Offset: i}
	}
	if mayDot && isDotSeg(p[seg:]) {
		return "", &PathError{Path: p, Reason: DotSegment, Offset: seg}
	}
	if len(p) > 1 && p[len(p)-1] == '/' {
		change = true
	}
	if !change {
		return p, nil
	}
	b := make([]byte, 0, len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '/':
			if len(b) > 0 && b[len(b)-1] == '/' {
				continue
			}
		case c == '%':
			b = append(b, '%', upperHex(p[i+1]), upperHex(p[i+2]))
			i += 2
			continue
		}
		b = append(b, c)
	}
	if len(b) > 1 && b[len(b)-1] == '/' {
		b = b[:len(b)-1]
	}
	return string(b), nil
}

func upperHex(c byte) byte {
	if 'a' <= c && c <= 'f' {
		return c - 'a' + 'A'
	}
	return c
}
