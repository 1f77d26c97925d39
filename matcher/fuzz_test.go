package matcher

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

// FuzzMatchVsOracle checks the trie against Canvas's regexes, built by the
// oracle exactly as Canvas builds them:
//
//   - soundness, always: a scope returned by Match must be matched by that
//     scope's unmodified Canvas regex (no dot escaping, no step 4);
//   - exactness against the strict oracle (dots escaped, step 4 off): the
//     trie allows exactly what the strict oracle allows. The only other
//     accepted difference is a search that ran out of its step budget
//     (it denies; reported by Set.match).
//
// Since the strict oracle differs from Canvas's regex only by the escaped
// dots, every completeness gap vs Canvas is exactly deviation 1 (and 2 for
// the fork), and the check cannot hide any other miss.
func FuzzMatchVsOracle(f *testing.F) {
	f.Add(uint64(1), uint8(3), "/api/v1/courses/1")
	f.Add(uint64(2), uint8(15), "/api/v1/accounts/1/bounced_communication_channels.csv")
	f.Add(uint64(3), uint8(200), "/api/v1/users/self/custom_data/a/b.json")
	f.Add(uint64(4), uint8(7), "/api/v1/jobs2/x/by_tag/search")
	f.Add(uint64(5), uint8(99), "/a/by_1/x.y.json")
	f.Add(uint64(6), uint8(1), "/login/oauth2/token")
	f.Add(uint64(7), uint8(130), "/a\nb/c")
	cat := loadCatalogue()
	f.Fuzz(func(t *testing.T, seed uint64, knobs uint8, raw string) {
		r := rand.New(rand.NewPCG(seed, uint64(knobs)))
		n := 1 + int(knobs%12)
		synthShare := int(knobs>>4) % 4 // 0..3 of 4 scopes synthetic
		var scopes []string
		var parsed []Scope
		for len(parsed) < n {
			var s string
			if r.IntN(4) < synthShare {
				s = synthScope(r)
			} else {
				s = cat.scopes[r.IntN(len(cat.scopes))]
			}
			ps, err := ParseScope(s)
			if err != nil {
				continue // the generator also makes invalid scopes
			}
			scopes = append(scopes, s)
			parsed = append(parsed, ps)
		}
		if r.IntN(8) == 0 {
			scopes = append(scopes, "/auth/userinfo")
		}
		set, err := Compile(scopes)
		if err != nil {
			t.Fatalf("Compile(%q): %v", scopes, err)
		}
		strict := newOracle(scopes, oracleOpts{escapeDots: true})
		canvas := newOracle(scopes, oracleOpts{})
		paths := []string{raw}
		if c, err := Canonicalize(raw); err == nil {
			paths = append(paths, c)
		}
		for i := range parsed {
			for k := 0; k < 3; k++ {
				p := pathFor(r, &parsed[i])
				if k == 2 {
					p = mutate(r, p)
				}
				paths = append(paths, p)
				if c, err := Canonicalize(p); err == nil && c != p {
					paths = append(paths, c)
				}
			}
		}
		for _, p := range paths {
			for _, m := range []string{parsed[r.IntN(len(parsed))].Verb, "GET", "HEAD", "POST", "get"} {
				got, ok, exhausted := set.match(m, p)
				if ok && !canvas.matchesScope(m, got, p) {
					t.Fatalf("UNSOUND: scopes %q: Match(%s, %q) = %q, which Canvas's regex does not match", scopes, m, p, got)
				}
				if ok && !strict.matchesScope(m, got, p) {
					t.Fatalf("scopes %q: Match(%s, %q) = %q, which the strict oracle does not match", scopes, m, p, got)
				}
				_, want := strict.match(m, p)
				if ok != want && !(exhausted && !ok) {
					t.Fatalf("INCOMPLETE: scopes %q: Match(%s, %q) = %v; strict oracle %v", scopes, m, p, ok, want)
				}
			}
		}
	})
}

// FuzzCanonicalize checks Canonicalize against slowCanonicalize and its
// output invariants.
func FuzzCanonicalize(f *testing.F) {
	for _, s := range []string{"/", "//a//b/", "/api/v1//courses/1%2f2/", "/a/%2e%2E", "/a/.%2e/b", "/a/.b",
		"/a\\b", "/a%5c", "/a;b", "/a%3b", "/a%00", "/a b", "/a\xc3\xa9", "/a#b", "/a%23", "/a?b", "/a%",
		"/a%2", "/a%252F", "/a%25", "/sis_course_id:A.B", "", "*", "/%aB/%Ab/%ab"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		out, err := Canonicalize(p)
		slow, ok := slowCanonicalize(p)
		if (err == nil) != ok {
			t.Fatalf("Canonicalize(%q) = %q, %v; slow reimplementation ok=%v (%q)", p, out, err, ok, slow)
		}
		if err != nil {
			var pe *PathError
			if !errors.As(err, &pe) || pe.Path != p || pe.Offset < 0 || pe.Offset > len(p) || pe.Reason.String() == "" {
				t.Fatalf("bad error %#v", err)
			}
			return
		}
		if out != slow {
			t.Fatalf("Canonicalize(%q) = %q; slow reimplementation %q", p, out, slow)
		}
		if again, err := Canonicalize(out); err != nil || again != out {
			t.Fatalf("not a fixed point: %q -> %q -> %q, %v", p, out, again, err)
		}
		if strings.Contains(out, "//") || (len(out) > 1 && strings.HasSuffix(out, "/")) || out[0] != '/' {
			t.Fatalf("bad slashes in %q", out)
		}
		for _, seg := range strings.Split(out, "/") {
			if isDotSeg(seg) {
				t.Fatalf("dot segment in %q", out)
			}
		}
		for i := 0; i < len(out); i++ {
			if out[i] <= ' ' || out[i] >= 0x7f {
				t.Fatalf("byte %#x in %q", out[i], out)
			}
		}
	})
}
