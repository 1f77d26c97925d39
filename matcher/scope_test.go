package matcher

import (
	"errors"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseScopeOK(t *testing.T) {
	sc, err := ParseScope("url:GET|/api/v1/courses(/:course_id)(/*blah)")
	if err != nil {
		t.Fatal(err)
	}
	if sc.Kind != KindURL || sc.Verb != "GET" || sc.Path != "/api/v1/courses(/:course_id)(/*blah)" || len(sc.alts) != 4 {
		t.Errorf("got %+v", sc)
	}
	sc, err = ParseScope("/auth/userinfo")
	if err != nil || sc.Kind != KindNonURL || sc.Verb != "" {
		t.Errorf("userinfo: %+v %v", sc, err)
	}
	for _, s := range NonURLScopes() {
		if sc, err := ParseScope(s); err != nil || sc.Kind != KindNonURL {
			t.Errorf("%q: %v", s, err)
		}
	}
	for _, s := range []string{"url:OPTIONS|/x", "url:PATCH|/x", "url:DELETE|/x", "url:PUT|/x", "url:POST|/x",
		"url:GET|/", "url:GET|/a()", "url:GET|/by_:group", "url:GET|/f/:id.json", "url:GET|/a(/b(/c))"} {
		if _, err := ParseScope(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
}

func TestParseScopeErrors(t *testing.T) {
	cases := []struct {
		in     string
		off    int
		expect string
	}{
		{"blah/scope", 0, `"url:`},
		{"URL:GET|/x", 0, `"url:`},
		{"url:get|/x", 4, "one of GET"},
		{"url:HEAD|/x", 4, "one of GET"},
		{"url:GET/x", 4, "one of GET"},
		{"url:GET|x", 8, `"/"`},
		{"url:GET|", 8, `"/"`},
		{"url:GET|/api/v1/(courses", 24, `")" to close the group opened at offset 16`},
		{"url:GET|/a)", 10, `without a matching "("`},
		{"url:GET|/a/:", 12, `a name after ":"`},
		{"url:GET|/a/:/b", 12, `a name after ":"`},
		{"url:GET|/a/*", 12, `a name after "*"`},
		{"url:GET|(/a/:x)", 8, `"/"`},
		{"url:GET|/a(/:x)/*)", 17, `a name after "*"`},
		{"url:GET|/a/:c(/d)", 13, "name character"},
		{"url:GET|/a/*:x", 12, "name character"},
		{"url:GET|/a+", 10, "literal path character"},
		{"url:GET|/a?", 10, "literal path character"},
		{"url:GET|/a[0]", 10, "literal path character"},
		{"url:GET|/a{2}", 10, "literal path character"},
		{"url:GET|/a^", 10, "literal path character"},
		{"url:GET|/a$", 10, "literal path character"},
		{"url:GET|/a|b", 10, "literal path character"},
		{`url:GET|/a\d`, 10, "literal path character"},
		{"url:GET|/a%2F", 10, "literal path character"},
		{"url:GET|/a b", 10, "literal path character"},
		{"url:GET|/a/:id+", 14, "name character"},
	}
	for _, c := range cases {
		_, err := ParseScope(c.in)
		var se *ScopeError
		if !errors.As(err, &se) {
			t.Errorf("ParseScope(%q) = %v; want a *ScopeError", c.in, err)
			continue
		}
		if se.Offset != c.off || !strings.Contains(se.Expected, c.expect) || se.Scope != c.in {
			t.Errorf("ParseScope(%q): offset %d expected %q; want offset %d containing %q", c.in, se.Offset, se.Expected, c.off, c.expect)
		}
		if !strings.HasPrefix(se.Error(), "scope ") || !strings.Contains(se.Error(), "offset") {
			t.Errorf("message %q", se.Error())
		}
	}
	if _, err := Compile([]string{"url:GET|/x", "url:GET|/api/v1/(courses"}); err == nil {
		t.Error("Compile accepted a bad scope")
	}
}

func TestTooManyAlternatives(t *testing.T) {
	if _, err := ParseScope("url:GET|/a" + strings.Repeat("(/b)", 7)); err == nil {
		t.Error("128 alternatives accepted")
	}
	if _, err := ParseScope("url:GET|/a" + strings.Repeat("(/b)", 6)); err != nil {
		t.Error(err)
	}
}

func TestCatalogue(t *testing.T) {
	cat := Catalogue()
	if len(cat) != 1311 {
		t.Errorf("catalogue has %d scopes", len(cat))
	}
	if !slices.IsSorted(cat) {
		t.Error("catalogue not sorted")
	}
	if n := len(NonURLScopes()); n != 31 {
		t.Errorf("%d non-URL scopes", n)
	}
	if ok, _ := CheckCatalogue("url:GET|/api/v1/courses/:course_id/rubrics"); !ok {
		t.Error("rubrics not in catalogue")
	}
	if ok, _ := CheckCatalogue("cd2"); !ok {
		t.Error("cd2 not known")
	}
	ok, sug := CheckCatalogue("url:GET|/api/v1/course/:course_id/rubric")
	if ok || len(sug) == 0 || sug[0] != "url:GET|/api/v1/courses/:course_id/rubrics" || len(sug) > 3 {
		t.Errorf("suggestions %q", sug)
	}
	if ok, sug := CheckCatalogue("/auth/userinf"); ok || len(sug) != 1 || sug[0] != "/auth/userinfo" {
		t.Errorf("non-URL suggestions %q", sug)
	}
	s := CatalogueSet()
	if s != CatalogueSet() {
		t.Error("CatalogueSet not shared")
	}
	if got, ok := s.Match("GET", "/api/v1/courses/7/rubrics"); !ok || got != "url:GET|/api/v1/courses/:course_id/rubrics" {
		t.Errorf("needed scope %q %v", got, ok)
	}
}

func TestCheckScope(t *testing.T) {
	for _, good := range []string{"url:GET|/api/v1/accounts", "cd2"} {
		if p := CheckScope(good, false); p != nil {
			t.Errorf("%s: %s", good, p.Message())
		}
	}
	for _, c := range []struct{ scope, has, suggestion string }{
		{"url:GET|/api/v1/course/:course_id/rubric", "not in the Canvas scope catalogue", "url:GET|/api/v1/courses/:course_id/rubrics"},
		{"bogus", `"bogus"`, ""},
		{"url:GET|/api/v1/(x", "offset", ""},
		{"GET|/api/v1/courses", "GET|/api/v1/courses", "url:GET|/api/v1/courses"},
		{"GET|/api/v1/course", "GET|/api/v1/course", "url:GET|/api/v1/courses"},
	} {
		p := CheckScope(c.scope, false)
		if p == nil {
			t.Errorf("%s: no problem found", c.scope)
			continue
		}
		if msg := p.Message(); !strings.Contains(msg, c.has) {
			t.Errorf("%s: message %q lacks %q", c.scope, msg, c.has)
		}
		if c.suggestion != "" && (len(p.Suggestions) == 0 || p.Suggestions[0] != c.suggestion) {
			t.Errorf("%s: suggestions %q, want %q first", c.scope, p.Suggestions, c.suggestion)
		}
	}
	if p := CheckScope("url:GET|/api/v1/course/:course_id/rubric", true); p != nil {
		t.Errorf("allowUnknown: %s", p.Message())
	}
	if p := CheckScope("bogus", true); p == nil {
		t.Error("allowUnknown accepted a malformed scope")
	}
}

func TestInterner(t *testing.T) {
	var in Interner
	a, err := in.Compile([]string{"url:GET|/api/v1/accounts", "url:GET|/custom"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := in.Compile([]string{"url:GET|/custom", "url:GET|/api/v1/accounts", "url:GET|/custom"})
	if a != b {
		t.Error("equal lists not interned")
	}
	// The key is order- and duplicate-blind, and elements are
	// length-prefixed: lists that concatenate to the same text differ.
	if internKeyOf([]string{"b", "a", "b"}) != internKeyOf([]string{"a", "b"}) {
		t.Error("permuted list with a duplicate has a different key")
	}
	if internKeyOf([]string{"ab", "c"}) == internKeyOf([]string{"a", "bc"}) ||
		internKeyOf([]string{"a\x00b"}) == internKeyOf([]string{"a", "b"}) {
		t.Error("lists that differ only in how they split share a key")
	}
	c, _ := Intern([]string{"url:GET|/api/v1/accounts"})
	d, _ := Intern([]string{"url:GET|/api/v1/accounts"})
	if c != d {
		t.Error("Intern not shared")
	}
	if _, err := in.Compile([]string{"nope"}); err == nil {
		t.Error("bad scope interned")
	}
	// Entries are weak: once nobody holds the Sets, they go away.
	a, b, c, d = nil, nil, nil, nil
	for i := 0; i < 50 && in.Len() > 0; i++ {
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	if n := in.Len(); n != 0 {
		t.Errorf("%d live entries after GC", n)
	}
	in.mu.Lock()
	n := len(in.m)
	in.mu.Unlock()
	if n != 0 {
		t.Errorf("%d map entries left after cleanup", n)
	}
}

func TestCompileFullFast(t *testing.T) {
	cat := Catalogue()
	Compile(cat) // warm up
	start := time.Now()
	const n = 20
	for i := 0; i < n; i++ {
		if _, err := Compile(cat); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start) / n; d > 5*time.Millisecond {
		t.Errorf("Compile(catalogue) took %v", d)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start = time.Now()
	c, err := buildCatalogue(cat)
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&after)
	t.Logf("catalogue build from scratch: %v, %d trie nodes, about %d KB retained (trie, parsed scopes, index)",
		elapsed, c.trie.nodes, (int64(after.HeapAlloc)-int64(before.HeapAlloc))/1024)
	runtime.KeepAlive(c)
}
