package matcher

import (
	"math/rand/v2"
	"strings"
	"testing"
)

var vendorScopes = []string{
	"url:GET|/api/v1/courses",
	"url:GET|/api/v1/courses/:id",
	"url:GET|/api/v1/courses/:course_id/assignments",
	"url:GET|/api/v1/courses/:course_id/assignments/:id",
	"url:POST|/api/v1/courses/:course_id/assignments",
	"url:PUT|/api/v1/courses/:course_id/assignments/:id",
	"url:GET|/api/v1/courses/:course_id/assignments/:assignment_id/submissions",
	"url:GET|/api/v1/courses/:course_id/assignments/:assignment_id/submissions/:user_id",
	"url:PUT|/api/v1/courses/:course_id/assignments/:assignment_id/submissions/:user_id",
	"url:POST|/api/v1/courses/:course_id/assignments/:assignment_id/submissions",
	"url:GET|/api/v1/courses/:course_id/students/submissions",
	"url:GET|/api/v1/courses/:course_id/users",
	"url:GET|/api/v1/courses/:course_id/enrollments",
	"url:POST|/api/v1/courses/:course_id/enrollments",
	"url:GET|/api/v1/users/:id",
	"url:GET|/api/v1/users/:user_id/profile",
	"url:GET|/api/v1/users/:user_id/enrollments",
	"url:GET|/api/v1/courses/:course_id/sections",
	"url:GET|/api/v1/courses/:course_id/modules",
	"url:GET|/api/v1/courses/:course_id/modules/:module_id/items",
	"url:GET|/api/v1/courses/:course_id/assignment_groups",
	"url:GET|/api/v1/courses/:course_id/rubrics",
	"url:GET|/api/v1/accounts/:account_id/courses",
	"url:POST|/api/v1/accounts/:account_id/courses",
	"url:PUT|/api/v1/courses/:id",
}

type req struct{ method, path string }

var realisticIDs = []string{"12345", "self", "98765432", "sis_course_id:BIO-101.2026", "7", "sis_user_id:jdoe", "1%2F2"}

// realisticPath fills one alternative of sc with realistic ids.
func realisticPath(r *rand.Rand, sc *Scope) string {
	alt := sc.alts[r.IntN(len(sc.alts))]
	var b strings.Builder
	for _, t := range alt {
		switch t.kind {
		case tokLit:
			b.WriteString(t.text)
		case tokDyn:
			b.WriteString(realisticIDs[r.IntN(len(realisticIDs))])
		case tokGlob:
			b.WriteString("docs/2026/syllabus.pdf")
		}
	}
	if r.IntN(4) == 0 {
		b.WriteString(".json")
	}
	return b.String()
}

// benchRequests has one request per catalogue scope (its own verb).
func benchRequests() []req {
	r := rand.New(rand.NewPCG(7, 7))
	cat := loadCatalogue()
	out := make([]req, 0, len(cat.parsed))
	for i := range cat.parsed {
		sc := &cat.parsed[i]
		out = append(out, req{sc.Verb, realisticPath(r, sc)})
	}
	return out
}

// vendorRequests: all catalogue requests (mostly misses for the vendor
// set) plus 4 hits per vendor scope.
func vendorRequests() []req {
	out := benchRequests()
	r := rand.New(rand.NewPCG(8, 8))
	for _, s := range vendorScopes {
		sc, _ := ParseScope(s)
		for k := 0; k < 4; k++ {
			out = append(out, req{sc.Verb, realisticPath(r, &sc)})
		}
	}
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func benchMatch(b *testing.B, s *Set, reqs []req) {
	b.ReportAllocs()
	hits := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		q := &reqs[i%len(reqs)]
		if _, ok := s.Match(q.method, q.path); ok {
			hits++
		}
	}
	b.ReportMetric(float64(hits)/float64(b.N), "hit/op")
}

func benchOracle(b *testing.B, or *oracle, reqs []req) {
	b.ReportAllocs()
	hits := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		q := &reqs[i%len(reqs)]
		if _, ok := or.match(q.method, q.path); ok {
			hits++
		}
	}
	b.ReportMetric(float64(hits)/float64(b.N), "hit/op")
}

func BenchmarkMatchFullSet(b *testing.B) {
	s, _ := Compile(Catalogue())
	benchMatch(b, s, benchRequests())
}

func BenchmarkMatchVendorSet(b *testing.B) {
	s, _ := Compile(vendorScopes)
	benchMatch(b, s, vendorRequests())
}

func BenchmarkOracleFullSet(b *testing.B) {
	benchOracle(b, newOracle(Catalogue(), oracleOpts{}), benchRequests())
}

func BenchmarkOracleVendorSet(b *testing.B) {
	benchOracle(b, newOracle(vendorScopes, oracleOpts{}), vendorRequests())
}

func BenchmarkCompileFull(b *testing.B) {
	cat := Catalogue()
	Compile(cat)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Compile(cat); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCompileVendor(b *testing.B) {
	Compile(nil)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Compile(vendorScopes); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBuildCatalogueTrie parses all 1,311 scopes and builds the shared
// trie from scratch (done once per process, lazily).
func BenchmarkBuildCatalogueTrie(b *testing.B) {
	cat := Catalogue()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := buildCatalogue(cat); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCanonicalize(b *testing.B) {
	reqs := benchRequests()
	paths := make([]string, len(reqs))
	for i, q := range reqs {
		paths[i] = q.path
		if i%4 == 0 { // a quarter need rewriting
			paths[i] = strings.Replace(q.path, "/", "//", 2) + "/"
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		Canonicalize(paths[i%len(paths)])
	}
}

func TestMatchZeroAllocs(t *testing.T) {
	full, _ := Compile(Catalogue())
	vendor, _ := Compile(append(vendorScopes, "url:GET|/custom/:x(/*y)"))
	reqs := vendorRequests()
	for _, s := range []*Set{full, vendor, nil} {
		n := testing.AllocsPerRun(3, func() {
			for _, q := range reqs {
				s.Match(q.method, q.path)
			}
		})
		if n != 0 {
			t.Errorf("Match allocates: %v per %d requests", n, len(reqs))
		}
	}
}

// TestBytesPerSet measures the heap bytes allocated for one more compiled
// Set (the shared catalogue tree already exists).
func TestBytesPerSet(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	loadCatalogue()
	measure := func(scopes []string) int64 {
		r := testing.Benchmark(func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				Compile(scopes)
			}
		})
		return r.AllocedBytesPerOp()
	}
	full := measure(Catalogue())
	vendor := measure(vendorScopes)
	custom := measure([]string{"url:GET|/custom/:x", "url:GET|/api/v1/courses"})
	t.Logf("bytes per Set: full catalogue %d, 25-scope vendor %d, 1 catalogue + 1 non-catalogue scope %d", full, vendor, custom)
	if vendor > 256 || full > 256 {
		t.Errorf("a catalogue-only Set costs %d / %d bytes", vendor, full)
	}
}

func TestMaxSteps(t *testing.T) {
	// A pathological synthetic scope: the search fails closed, quickly.
	s, err := Compile([]string{"url:GET|/*a/*b/x(:c)y"})
	if err != nil {
		t.Fatal(err)
	}
	p := "/" + strings.Repeat("a/", 2000) + "z"
	if _, ok, exhausted := s.match("GET", p); ok || !exhausted {
		t.Errorf("ok=%v exhausted=%v", ok, exhausted)
	}
	// The catalogue never comes near the budget, even on long paths.
	full := CatalogueSet()
	long := strings.Repeat("/x", 4000)
	for _, q := range benchRequests() {
		for _, p := range []string{q.path, q.path + long, q.path + "/" + strings.Repeat("y", 8000)} {
			if _, _, exhausted := full.match(q.method, p); exhausted {
				t.Fatalf("catalogue search exhausted on %s %.80q", q.method, p)
			}
		}
	}
}
