package params

import (
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// Independent readings of a multipart part's header block as Rack names
// the part, written from Rack's source (2.2's regular expressions, and the
// parameter loop of 3.1 and later) without sharing code with partName. The
// fuzz target checks that every part the gate accepts is named the same way
// by the gate and by both readings.

// ruby8bit replaces bytes from 0x80 up with 0xFF, which Go's regexp reads
// as U+FFFD, so that (?i) folds ASCII letters only, as Ruby does for the
// binary strings Rack matches (Go would fold 'ſ' to 's' and 'K' to 'k').
// Lengths are kept, so indexes found in the result apply to the original.
func ruby8bit(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 0x80 {
			b[i] = 0xFF
		}
	}
	return string(b)
}

// rubyGroup returns group g of the first match of re in s (matched on
// ruby8bit(s)), and whether re matched.
func rubyGroup(re *regexp.Regexp, s string, g int) (string, bool) {
	m := re.FindStringSubmatchIndex(ruby8bit(s))
	if m == nil {
		return "", false
	}
	return s[m[2*g]:m[2*g+1]], true
}

const (
	rbSpace = `\t\n\v\f\r `                          // Ruby's \s
	rbToken = `[^` + rbSpace + `()<>,;:\\"/\[\]?=]+` // Rack::Multipart::TOKEN
	rbValue = `"(?:\\"|[^"])*"|` + rbToken           // Rack::Multipart::VALUE
	rbAttr  = `[^ \x00-\x1f\x7f)(><@,;:\\"/\[\]?='*%]`
	rbExtV  = `%[0-9a-fA-F]{2}|` + rbAttr
	// Rack::Multipart::DISPPARM
	rbDispParm = `;[` + rbSpace + `]*(?:(` + rbAttr + `+(?:\*[0-9]+)?)=(` + rbValue + `)|(` + rbAttr + `+(?:\*0)?\*)=([a-zA-Z0-9\-]*'[a-zA-Z0-9\-]*'(?:` + rbExtV + `)*)|(` + rbAttr + `+\*[1-9][0-9]*\*)=((?:` + rbExtV + `)*))[` + rbSpace + `]*`
	rbConDisp  = `Content-Disposition:[` + rbSpace + `]*` + rbToken + `[` + rbSpace + `]*`
)

var (
	rack2ContentType = regexp.MustCompile(`(?i)Content-Type: (.*)\r\n`)
	rack2Disposition = regexp.MustCompile(`(?i)Content-Disposition:[^:]*;[` + rbSpace + `]*name=(` + rbValue + `)`)
	rack2ContentID   = regexp.MustCompile(`(?i)Content-ID:[` + rbSpace + `]*([^\r\n]*)`)
	rack2RFC2183     = regexp.MustCompile(`(?im)^` + rbConDisp + `(?:` + rbDispParm + `)+$`)
	rack2DispParm    = regexp.MustCompile(rbDispParm)
	rack2Broken      = regexp.MustCompile(`(?im)^` + rbConDisp + `.*;[` + rbSpace + `]*filename=(` + rbValue + `)`)
	rubyQuoted       = regexp.MustCompile(`(?m)^"(.*)"$`)
	rubyBackslash    = regexp.MustCompile(`\\(.)`)
)

// refRack2Name names a part from its header block (without the CRLF that
// ends its last line) as Rack 2.2's Parser#handle_mime_head and
// get_filename do. filename is nil when Rack sees no filename.
func refRack2Name(head string) (name string, filename *string) {
	head += "\r\n" // Rack's head ends with the last line's CRLF
	ct, hasCT := rubyGroup(rack2ContentType, head, 1)
	name, ok := rubyGroup(rack2Disposition, head, 1)
	if ok {
		// Rack::Auth::Digest::Params.dequote
		if len(name) >= 2 && name[0] == '"' && strings.HasSuffix(name, `"`) && !strings.Contains(name[1:len(name)-1], "\n") {
			name = name[1 : len(name)-1]
		}
		name = rubyBackslash.ReplaceAllString(name, "$1")
	} else {
		name, _ = rubyGroup(rack2ContentID, head, 1)
	}
	filename = refRack2Filename(head)
	if name == "" {
		switch {
		case filename != nil:
			name = *filename
		case hasCT:
			name = ct + "[]"
		default:
			name = "text/plain[]"
		}
	}
	return name, filename
}

func refRack2Filename(head string) *string {
	var fn string
	if rack2RFC2183.MatchString(ruby8bit(head)) {
		params := map[string]string{}
		h8 := ruby8bit(head)
		for _, m := range rack2DispParm.FindAllStringSubmatchIndex(h8, -1) {
			for g := 1; g+1 < len(m)/2; g += 2 {
				if m[2*g] >= 0 {
					params[head[m[2*g]:m[2*g+1]]] = head[m[2*g+2]:m[2*g+3]]
				}
			}
		}
		if v, ok := params["filename"]; ok {
			fn = v
			if m := rubyQuoted.FindStringSubmatch(fn); m != nil {
				fn = m[1]
			}
		} else if v, ok := params["filename*"]; ok {
			parts := strings.SplitN(v, "'", 3)
			fn = parts[len(parts)-1]
			if len(parts) < 3 {
				fn = ""
			}
		} else {
			return nil
		}
	} else if v, ok := rubyGroup(rack2Broken, head, 1); ok {
		fn = v
		if m := rubyQuoted.FindStringSubmatch(fn); m != nil {
			fn = m[1]
		}
	} else {
		return nil
	}
	if u, err := url.PathUnescape(fn); err == nil {
		fn = u
	}
	if !regexp.MustCompile(`\\[^\\"]`).MatchString(fn) {
		fn = rubyBackslash.ReplaceAllString(fn, "$1")
	}
	return &fn
}

const (
	rbFWS         = `(?:[ \t]+(?:\r\n[ \t]+)?)`
	rbHeaderValue = `((?:[^\r\n]|\r\n[ \t])*)`
)

var (
	rack3ContentType = regexp.MustCompile(`(?im)^Content-Type:` + rbFWS + `?` + rbHeaderValue)
	rack3Disposition = regexp.MustCompile(`(?im)^Content-Disposition:` + rbFWS + `?` + rbHeaderValue)
	rack3ContentID   = regexp.MustCompile(`(?im)^Content-ID:` + rbFWS + `?` + rbHeaderValue)
	rack3Unfold      = regexp.MustCompile(`\r\n([ \t])`)
)

// refRack3Name names a part from its header block as Rack 3.1's and 3.2's
// Parser#handle_mime_head do. hasFilename says whether Rack sees a
// filename (or filename*) parameter.
func refRack3Name(head string) (name string, hasFilename bool) {
	head += "\r\n"
	ct, hasCT := rubyGroup(rack3ContentType, head, 1)
	ct = rack3Unfold.ReplaceAllString(ct, "$1")
	var filename, filenameStar *string
	d, ok := rubyGroup(rack3Disposition, head, 1)
	if ok && len(d) <= 1536 {
		d = rack3Unfold.ReplaceAllString(d, "$1")
		if i := strings.IndexByte(d, ';'); i >= 0 {
			d = d[i+1:]
		} else {
			d = ""
		}
		for n := 1; ; n++ {
			i := strings.IndexByte(d, '=')
			if i < 0 || n > 16 {
				break
			}
			param := strings.TrimLeft(d[:i], "\x00\t\n\v\f\r ")
			d = d[i+1:]
			var value string
			if strings.HasPrefix(d, `"`) {
				d = d[1:]
				var v strings.Builder
				for {
					j := strings.IndexAny(d, `"\`)
					if j < 0 {
						break
					}
					c := d[j]
					v.WriteString(d[:j])
					d = d[j+1:]
					if c == '"' {
						break
					}
					esc := ""
					if d != "" {
						esc, d = d[:1], d[1:]
					}
					if param == "filename" && esc != `"` {
						v.WriteByte(c)
					}
					v.WriteString(esc)
				}
				value = v.String()
			} else if j := strings.IndexByte(d, ';'); j >= 0 {
				value, d = d[:j], d[j:]
			} else {
				value, d = strings.Trim(d, "\x00\t\n\v\f\r "), ""
			}
			switch param {
			case "name":
				name = value
			case "filename":
				filename = &value
			case "filename*":
				filenameStar = &value
			}
			if j := strings.IndexByte(d, ';'); j >= 0 {
				d = d[j+1:]
			}
		}
	} else {
		name, _ = rubyGroup(rack3ContentID, head, 1)
	}
	normalize := func(fn string) string {
		if u, err := url.PathUnescape(fn); err == nil {
			fn = u
		}
		f := strings.FieldsFunc(fn, func(r rune) bool { return r == '/' || r == '\\' })
		if len(f) == 0 {
			return ""
		}
		return f[len(f)-1]
	}
	if filenameStar != nil {
		parts := strings.SplitN(*filenameStar, "'", 3)
		fn := ""
		if len(parts) == 3 {
			fn = parts[2]
		}
		fn = normalize(fn)
		filename = &fn
	} else if filename != nil {
		fn := normalize(*filename)
		filename = &fn
	}
	if name == "" {
		switch {
		case filename != nil:
			name = *filename
		case hasCT:
			name = ct + "[]"
		default:
			name = "text/plain[]"
		}
	}
	return name, filename != nil
}

// The readings above give what Rack 2.2.22 gave for these header blocks
// (run through Rack::Multipart.parse_multipart), so the fuzz target's
// comparison with them is a comparison with Rack.
func TestRackNameReferences(t *testing.T) {
	const empty = `Content-Disposition: form-data; name=""`
	tests := []struct {
		head         string
		rack2, rack3 string
		file2        bool
	}{
		{`Content-Disposition: form-data; name="a"`, "a", "a", false},
		{empty + "\r\nContent-Type: include", "include[]", "include[]", false},
		{empty + "\r\nX-Content-Type: include", "include[]", "text/plain[]", false},
		{empty + "\r\nContent-Type:include", "text/plain[]", "include[]", false},
		{empty + "\r\nContent-Type:  include", " include[]", "include[]", false},
		{empty, "text/plain[]", "text/plain[]", false},
		{empty + "\r\nContent-Type: include; charset=utf-8", "include; charset=utf-8[]", "include; charset=utf-8[]", false},
		{`Content-Disposition: form-data; NAME=include`, "include", "text/plain[]", false},
		{`Content-Disposition: form-data; name=include ; x=1`, "include", "include ", false},
		{`Content-Disposition: form-data; name="a"` + "\r\nX: a; filename=\"\"", "a", "a", true},
		{empty + "\r\nX: a; filename=include", "include", "text/plain[]", true},
		{empty + `; filename="include%5B%5D"`, "include[]", "include[]", true},
		{empty + `; filename="a/include"`, "a/include", "include", true},
		{"Content-Disposition: form-data; name=\"\"; filename*=UTF-8''include", "include", "include", true},
		{`Content-Disposition: form-data; filename="x"`, "x", "x", true},
		{"X-A: b\r\nContent-ID: include[]", "include[]", "include[]", false},
		{`Content-Disposition: form-data; name=include[]`, "include", "include[]", false},
	}
	for _, tc := range tests {
		n2, f2 := refRack2Name(tc.head)
		n3, _ := refRack3Name(tc.head)
		if n2 != tc.rack2 || (f2 != nil) != tc.file2 || n3 != tc.rack3 {
			t.Errorf("%q: Rack 2 %q (file %v), Rack 3 %q; want %q (file %v), %q", tc.head, n2, f2 != nil, n3, tc.rack2, tc.file2, tc.rack3)
		}
	}
}
