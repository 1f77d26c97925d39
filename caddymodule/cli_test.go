package caddymodule

import (
	"bytes"
	"strings"
	"testing"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/policy"
)

func TestRunHashToken(t *testing.T) {
	const tok = "test-only-unit-token"
	want := policy.HashToken(tok)
	for _, in := range []string{tok, tok + "\n", tok + "\r\n"} {
		var out, errOut bytes.Buffer
		if code := runHashToken(strings.NewReader(in), &out, &errOut); code != exitOK {
			t.Fatalf("%q: exit %d: %s", in, code, errOut.String())
		}
		if got := strings.TrimSpace(out.String()); len(got) != 64 || got != hexOf(want) {
			t.Errorf("%q: printed %q", in, got)
		}
		if strings.Contains(out.String()+errOut.String(), tok) {
			t.Error("the token was echoed")
		}
	}
	for _, in := range []string{"", "\n", "a\nb", "\t" + tok, strings.Repeat("x", maxTokenBytes+1)} {
		var out, errOut bytes.Buffer
		if code := runHashToken(strings.NewReader(in), &out, &errOut); code != exitUsage || out.Len() != 0 {
			t.Errorf("%.20q: exit %d, stdout %q", in, code, out.String())
		}
	}
}

func hexOf(h [32]byte) string {
	const digits = "0123456789abcdef"
	b := make([]byte, 64)
	for i, c := range h {
		b[2*i], b[2*i+1] = digits[c>>4], digits[c&15]
	}
	return string(b)
}

func TestRedactQuery(t *testing.T) {
	cases := map[string]string{
		"access_token=s3cret&per_page=5":       "access_token=REDACTED&per_page=5",
		"per_page=5&access_token%5B%5D=s3cret": "per_page=5&access_token%5B%5D=REDACTED",
		"ACCESS_TOKEN=s3cret":                  "ACCESS_TOKEN=REDACTED",
		"include[]=teachers":                   "include[]=teachers",
	}
	for q, want := range cases {
		if got := redactQuery("/p", q); got != "/p?"+want {
			t.Errorf("%s: %s", q, got)
		}
	}
	if got := redactQuery("/p", ""); got != "/p" {
		t.Errorf("empty query: %s", got)
	}
}

func TestSplitTarget(t *testing.T) {
	cases := []struct{ in, path, query, host string }{
		{"/api/v1//courses?x=1#frag", "/api/v1//courses", "x=1", ""},
		{"https://canvas.example.edu:8443/api/v1/courses%2F7?a=b", "/api/v1/courses%2F7", "a=b", "canvas.example.edu:8443"},
		{"https://canvas.example.edu", "/", "", "canvas.example.edu"},
	}
	for _, c := range cases {
		p, q, h, err := splitTarget(c.in)
		if err != nil || p != c.path || q != c.query || h != c.host {
			t.Errorf("%s: %q %q %q %v", c.in, p, q, h, err)
		}
	}
	if _, _, _, err := splitTarget("api/v1/courses"); err == nil {
		t.Error("a relative target was accepted")
	}
}
