package matcher

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

func TestCanonicalizeAccept(t *testing.T) {
	for in, want := range map[string]string{
		"/":                                  "/",
		"//":                                 "/",
		"///":                                "/",
		"/api/v1//courses/1%2f2/":            "/api/v1/courses/1%2F2",
		"//api/v1/accounts":                  "/api/v1/accounts",
		"/api/v1/accounts/":                  "/api/v1/accounts",
		"/api/v1/accounts//":                 "/api/v1/accounts",
		"/api/v1/accounts":                   "/api/v1/accounts",
		"/a/.b":                              "/a/.b",
		"/a/..b":                             "/a/..b",
		"/a/b..":                             "/a/b..",
		"/a/...":                             "/a/...",
		"/a/%2e%2e%2e":                       "/a/%2E%2E%2E",
		"/api/v1/courses/sis_course_id:A.B":  "/api/v1/courses/sis_course_id:A.B",
		"/a/%aB":                             "/a/%AB",
		"/a/%Ab":                             "/a/%AB",
		"/a/%c3%a9":                          "/a/%C3%A9",
		"/a/%C3%A9":                          "/a/%C3%A9",
		"/a/%2F/b":                           "/a/%2F/b",
		"/a/b%2F.c":                          "/a/b%2F.c",
		"/a/...%2F":                          "/a/...%2F",
		"/a/%2F%2F":                          "/a/%2F%2F",
		"/a/x.%2F":                           "/a/x.%2F",
		"/a/%25zz":                           "/a/%25zz",
		"/a/%25":                             "/a/%25",
		"/a/%25%2F":                          "/a/%25%2F",
		"/a/%3F%20%2B":                       "/a/%3F%20%2B",
		"/x.json":                            "/x.json",
		"/a/b~c-d_e!$&'()*+,=:@":             "/a/b~c-d_e!$&'()*+,=:@",
		"/api/v1/users/self/custom_data/a/b": "/api/v1/users/self/custom_data/a/b",
	} {
		got, err := Canonicalize(in)
		if err != nil || got != want {
			t.Errorf("Canonicalize(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestCanonicalizeRefuse(t *testing.T) {
	cases := []struct {
		in     string
		reason Reason
		off    int
	}{
		{"", NotAbsolute, 0},
		{"*", NotAbsolute, 0},
		{"api/v1", NotAbsolute, 0},
		{"/a/./b", DotSegment, 3},
		{"/a/../b", DotSegment, 3},
		{"/a/.", DotSegment, 3},
		{"/a/..", DotSegment, 3},
		{"/.", DotSegment, 1},
		{"/a/%2e/b", DotSegment, 3},
		{"/a/%2E%2e", DotSegment, 3},
		{"/a/%2e%2E/b", DotSegment, 3},
		{"/a/.%2e", DotSegment, 3},
		{"/a/%2E.", DotSegment, 3},
		{"/a//../b", DotSegment, 4},
		{"/a/..%2Fb", DotSegment, 3},
		{"/a/b%2f..", DotSegment, 3},
		{"/a/b%2F%2e%2F", DotSegment, 3},
		{"/a/%2F.%2F", DotSegment, 3},
		{`/a\b`, Backslash, 2},
		{"/a%5Cb", Backslash, 2},
		{"/a%5cb", Backslash, 2},
		{"/a;b", Semicolon, 2},
		{"/a/%3Bb", Semicolon, 3},
		{"/a/%3bb", Semicolon, 3},
		{"/a\x00", ControlByte, 2},
		{"/a\nb", ControlByte, 2},
		{"/a\x7f", ControlByte, 2},
		{"/a%00", ControlByte, 2},
		{"/a%0a", ControlByte, 2},
		{"/a%1F", ControlByte, 2},
		{"/a%7f", ControlByte, 2},
		{"/a b", Space, 2},
		{"/a\xc3\xa9", NonASCII, 2},
		{"/a\xff", NonASCII, 2},
		{"/a#b", Fragment, 2},
		{"/a%23b", Fragment, 2},
		{"/a?b=1", QueryMark, 2},
		{"/a%", BadEscape, 2},
		{"/a%2", BadEscape, 2},
		{"/a%zz", BadEscape, 2},
		{"/a%2g", BadEscape, 2},
		{"/a%252F", DoubleEncoding, 2},
		{"/a%252f", DoubleEncoding, 2},
		{"/a%2541", DoubleEncoding, 2},
	}
	for _, c := range cases {
		got, err := Canonicalize(c.in)
		var pe *PathError
		if !errors.As(err, &pe) {
			t.Errorf("Canonicalize(%q) = %q, %v; want %v", c.in, got, err, c.reason)
			continue
		}
		if pe.Reason != c.reason || pe.Offset != c.off || pe.Path != c.in {
			t.Errorf("Canonicalize(%q): %+v; want reason %v offset %d", c.in, *pe, c.reason, c.off)
		}
		if !strings.Contains(pe.Error(), "refused") || pe.Reason.String() == "" {
			t.Errorf("bad message %q", pe.Error())
		}
	}
}

func TestCanonicalizeNoAlloc(t *testing.T) {
	p := "/api/v1/courses/1%2F2/assignments/3.json"
	n := testing.AllocsPerRun(100, func() {
		if _, err := Canonicalize(p); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Errorf("Canonicalize of a canonical path: %v allocs", n)
	}
}

var (
	reEscape      = regexp.MustCompile(`%[0-9A-Fa-f]{2}`)
	reCtlOrDouble = regexp.MustCompile(`(?i)%[01][0-9a-f]|%25[0-9a-f]{2}`)
)

// slowCanonicalize is an independent, simple reimplementation used by the
// fuzz target: split on "/", validate each segment, rejoin.
func slowCanonicalize(p string) (string, bool) {
	if !strings.HasPrefix(p, "/") {
		return "", false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`\;#?`, c) >= 0 {
			return "", false
		}
		if c == '%' {
			if i+2 >= len(p) || !reEscape.MatchString(p[i:i+3]) {
				return "", false
			}
		}
	}
	var keep []string
	for _, seg := range strings.Split(p, "/") {
		if seg == "" {
			continue
		}
		up := reEscape.ReplaceAllStringFunc(seg, strings.ToUpper)
		for _, piece := range strings.Split(strings.ReplaceAll(up, "%2E", "."), "%2F") {
			if piece == "." || piece == ".." {
				return "", false
			}
		}
		for _, bad := range []string{"%5C", "%3B", "%23", "%7F"} {
			if strings.Contains(up, bad) {
				return "", false
			}
		}
		if reCtlOrDouble.MatchString(up) {
			return "", false
		}
		keep = append(keep, up)
	}
	return "/" + strings.Join(keep, "/"), true
}

func TestSlowCanonicalizeAgrees(t *testing.T) {
	for _, p := range []string{"/", "//a//b/", "/a/%2e", "/a%2f%2F", "/a/%252F", "/a;b", "/.x", "/a/%aB"} {
		got, err := Canonicalize(p)
		want, ok := slowCanonicalize(p)
		if (err == nil) != ok || got != want {
			t.Errorf("%q: fast %q %v, slow %q %v", p, got, err, want, ok)
		}
	}
}
