package caddymodule

import (
	"math/rand/v2"
	"net/url"
	"testing"
)

// escapedPath must be net/url's EscapedPath for every path, with and
// without a RawPath: the gate matches and forwards what it returns.
func TestEscapedPathIsNetURLs(t *testing.T) {
	check := func(u *url.URL) {
		t.Helper()
		if got, want := escapedPath(u), u.EscapedPath(); got != want {
			t.Fatalf("escapedPath(Path %q, RawPath %q) = %q, want %q", u.Path, u.RawPath, got, want)
		}
	}
	for c := range 256 {
		b := string([]byte{byte(c)})
		check(&url.URL{Path: "/api/v1/" + b})
		check(&url.URL{Path: b})
		check(&url.URL{Path: "/api/v1/" + b, RawPath: "/api/v1/" + url.PathEscape(b)})
	}
	for _, p := range []string{"", "*", "/", "/api/v1/courses/1", "/api/v1/courses/a b", "/api/v1/é", "/a;b=c,d&e$f+g:h@i"} {
		check(&url.URL{Path: p})
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		b := make([]byte, 1+rng.IntN(12))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		u, err := url.Parse("/api/" + url.PathEscape(string(b)))
		if err == nil {
			check(u)
		}
		check(&url.URL{Path: "/api/" + string(b)})
	}
}
