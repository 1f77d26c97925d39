package matcher

import (
	"math/rand/v2"
	"slices"
	"testing"
)

type mcase struct {
	method, path string
	want         bool
}

func runCases(t *testing.T, scopes []string, cases []mcase) {
	t.Helper()
	s, err := Compile(scopes)
	if err != nil {
		t.Fatalf("Compile(%q): %v", scopes, err)
	}
	or := newOracle(scopes, oracleOpts{})
	for _, c := range cases {
		got, ok := s.Match(c.method, c.path)
		if ok != c.want {
			t.Errorf("scopes %q: Match(%s, %q) = %q, %v; want %v", scopes, c.method, c.path, got, ok, c.want)
			continue
		}
		if ok && !or.matchesScope(c.method, got, c.path) && !(got == AlwaysAllowedPath && c.path == AlwaysAllowedPath) {
			t.Errorf("Match(%s, %q) returned scope %q whose Canvas regex does not match", c.method, c.path, got)
		}
	}
}

// Cases from Canvas's spec/models/access_token_spec.rb (docs/canvas-semantics.md#scope-grammar).
func TestCanvasSpecRegexes(t *testing.T) {
	// url:GET|/api/v1/accounts -> ^/api/v1/accounts(?:\.[^/]+|)$
	runCases(t, []string{"url:GET|/api/v1/accounts"}, []mcase{
		{"GET", "/api/v1/accounts", true},
		{"GET", "/api/v1/accounts.json", true},
		{"HEAD", "/api/v1/accounts", true},
		{"POST", "/api/v1/accounts", false},
		{"GET", "/api/v1/accounts/1", false},
		{"GET", "/api/v1/accountsX", false},
		{"GET", "/api/v1/account", false},
	})
	// url:GET|/blah -> ^/blah(?:\.[^/]+|)$
	runCases(t, []string{"url:GET|/blah"}, []mcase{
		{"GET", "/blah", true}, {"GET", "/blah.xml", true}, {"GET", "/blah/x", false}, {"GET", "/bla", false},
	})
	// url:GET|/*blah -> ^/.+(?:\.[^/]+|)$
	runCases(t, []string{"url:GET|/*blah"}, []mcase{
		{"GET", "/a", true}, {"GET", "/a/b/c", true}, {"GET", "/", false}, {"GET", "/a.json", true}, {"PUT", "/a", false},
	})
	// url:GET|/courses/:id -> ^/courses/[^/]+(?:\.[^/]+|)$
	runCases(t, []string{"url:GET|/courses/:id"}, []mcase{
		{"GET", "/courses/1", true}, {"GET", "/courses/1.json", true}, {"GET", "/courses", false},
		{"GET", "/courses/1/x", false}, {"GET", "/courses/", false}, {"GET", "/courses/sis_course_id:A.B", true},
		{"GET", "/courses/1%2F2", true},
	})
	// url:GET|/courses(/:course_id)(/*blah) -> ^/courses(?:/[^/]+|)(?:/.+|)(?:\.[^/]+|)$
	runCases(t, []string{"url:GET|/courses(/:course_id)(/*blah)"}, []mcase{
		{"GET", "/courses", true}, {"GET", "/courses/1", true}, {"GET", "/courses/1/a/b", true},
		{"GET", "/courses.json", true}, {"GET", "/coursesX", false}, {"GET", "/courses/", false},
		{"GET", "/course", false},
	})
}

// access_token_spec "url scopes": only the GET scope survives for GET.
func TestAccessTokenSpecMethodFiltering(t *testing.T) {
	scopes := []string{"url:GET|/api/v1/accounts", "url:POST|/api/v1/courses",
		"url:PUT|/api/v1/courses/:id", "url:DELETE|/api/v1/courses/:course_id/assignments/:id"}
	runCases(t, scopes, []mcase{
		{"GET", "/api/v1/accounts", true},
		{"GET", "/api/v1/courses", false},
		{"GET", "/api/v1/courses/1", false},
		{"GET", "/api/v1/courses/1/assignments/2", false},
		{"POST", "/api/v1/courses", true},
		{"PUT", "/api/v1/courses/1", true},
		{"DELETE", "/api/v1/courses/1/assignments/2", true},
		{"PATCH", "/api/v1/courses/1", false},
	})
	// "blah/scope" is neither a URL scope nor a known non-URL scope.
	if _, err := Compile(append(scopes, "blah/scope")); err == nil {
		t.Error("Compile accepted blah/scope")
	}
}

func TestMethodsAndAlwaysAllowed(t *testing.T) {
	runCases(t, []string{"url:GET|/api/v1/accounts", "/auth/userinfo"}, []mcase{
		{"HEAD", "/api/v1/accounts", true},
		{"get", "/api/v1/accounts", false},
		{"head", "/api/v1/accounts", false},
		{"OPTIONS", "/api/v1/accounts", false},
		{"DELETE", "/login/oauth2/token", true},
		{"POST", "/login/oauth2/token", true},
		{"BREW", "/login/oauth2/token", true},
		{"GET", "/login/oauth2/token.json", false},
		{"GET", "/login/oauth2/tokens", false},
	})
	for _, sc := range [][]string{nil, {}, {"/auth/userinfo"}, {"cd2", "https://purl.imsglobal.org/spec/lti-ags/scope/score"}} {
		s, err := Compile(sc)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []string{"GET", "DELETE", "X"} {
			if got, ok := s.Match(m, "/login/oauth2/token"); !ok || got != "/login/oauth2/token" {
				t.Errorf("%q: %s /login/oauth2/token = %q %v", sc, m, got, ok)
			}
		}
		if _, ok := s.Match("GET", "/api/v1/users/self"); ok {
			t.Errorf("non-URL scopes %q granted a path", sc)
		}
	}
	var nilSet *Set
	if _, ok := nilSet.Match("DELETE", "/login/oauth2/token"); !ok {
		t.Error("nil set refused always-allowed path")
	}
	if _, ok := nilSet.Match("GET", "/api/v1/accounts"); ok {
		t.Error("nil set allowed a path")
	}
}

func TestEdgeCases(t *testing.T) {
	runCases(t, []string{"url:GET|/x"}, []mcase{
		{"GET", "/x.json", true}, {"GET", "/x.json.xml", true}, {"GET", "/x.", false},
		{"GET", "/x./", false}, {"GET", "/x.a/b", false}, {"GET", "/X", false},
	})
	runCases(t, []string{"url:GET|/api/v1/courses"}, []mcase{
		{"GET", "/api/v1/courses.", false}, {"GET", "/api/v1/Courses", false}, {"GET", "/API/v1/courses", false},
	})
	runCases(t, []string{"url:GET|/api/v1/jobs2/:bucket/by_:group", "url:GET|/api/v1/jobs2/:bucket/by_:group/search"}, []mcase{
		{"GET", "/api/v1/jobs2/running/by_tag", true},
		{"GET", "/api/v1/jobs2/running/by_tag.json", true},
		{"GET", "/api/v1/jobs2/running/by_", false},
		{"GET", "/api/v1/jobs2/running/by_tag/search", true},
		{"GET", "/api/v1/jobs2/running/byX/search", false},
		{"GET", "/api/v1/jobs2/running/tag", false},
	})
	runCases(t, []string{"url:GET|/api/v1/courses/:course_id"}, []mcase{
		{"GET", "/api/v1/courses/1%2F2", true},
		{"GET", "/api/v1/courses/1/2", false},
		{"GET", "/api/v1/courses/sis_course_id:A.B", true},
	})
	runCases(t, []string{"url:GET|/api/v1/accounts"}, []mcase{
		{"GET", "/api/v1/%61ccounts", false},
	})
	// glob needs at least one character
	runCases(t, []string{"url:GET|/api/v1/courses/:course_id/folders/by_path/*full_path"}, []mcase{
		{"GET", "/api/v1/courses/1/folders/by_path", false},
		{"GET", "/api/v1/courses/1/folders/by_path/", false},
		{"GET", "/api/v1/courses/1/folders/by_path/a", true},
		{"GET", "/api/v1/courses/1/folders/by_path/a/b/c.txt", true},
	})
	// glob inside an optional
	runCases(t, []string{"url:PUT|/api/v1/users/:user_id/custom_data(/*scope)"}, []mcase{
		{"PUT", "/api/v1/users/self/custom_data", true},
		{"PUT", "/api/v1/users/self/custom_data/a/b", true},
		{"PUT", "/api/v1/users/self/custom_data.json", true},
		{"PUT", "/api/v1/users/self/custom_dataX", false},
	})
	// nested optionals
	runCases(t, []string{"url:GET|/a(/b(/:c)(/d))"}, []mcase{
		{"GET", "/a", true}, {"GET", "/a/b", true}, {"GET", "/a/b/1", true}, {"GET", "/a/b/1/d", true},
		{"GET", "/a/b/d", true}, {"GET", "/a/b/1/e", false}, {"GET", "/a/1", false}, {"GET", "/a/b/1/d.json", true},
		{"GET", "/a/d", false},
	})
	// dynamic mid-segment followed by literal in the same segment via a group
	runCases(t, []string{"url:GET|/a/(:x)b"}, []mcase{
		{"GET", "/a/b", true}, {"GET", "/a/1b", true}, {"GET", "/a/1bb", true}, {"GET", "/a/1b.json", true},
		{"GET", "/a/1c", false}, {"GET", "/a/b.b", true},
	})
	// dynamic name with a dot is one name
	runCases(t, []string{"url:GET|/f/:id.json"}, []mcase{
		{"GET", "/f/1", true}, {"GET", "/f/1.json", true}, {"GET", "/f/1/x", false},
	})
}

// Deviation 1: a dot in a scope path is a literal dot for us.
func TestDotDeviation(t *testing.T) {
	sc := "url:GET|/api/v1/accounts/:account_id/bounced_communication_channels.csv"
	s, _ := Compile([]string{sc})
	canvas := newOracle([]string{sc}, oracleOpts{})
	for _, p := range []string{"/api/v1/accounts/1/bounced_communication_channels.csv", "/api/v1/accounts/1/bounced_communication_channels.csv.json"} {
		if _, ok := s.Match("GET", p); !ok {
			t.Errorf("%q refused", p)
		}
	}
	p := "/api/v1/accounts/1/bounced_communication_channelsXcsv"
	if _, ok := canvas.match("GET", p); !ok {
		t.Errorf("oracle should allow %q (unescaped dot)", p)
	}
	if _, ok := s.Match("GET", p); ok {
		t.Errorf("we allowed %q: the dot must be literal", p)
	}
}

// Deviation 2: the fork-only /download -> /preview rewrite is not applied.
func TestDownloadDeviation(t *testing.T) {
	sc := "url:GET|/files/:file_id/download"
	s, _ := Compile([]string{sc})
	fork := newOracle([]string{sc}, oracleOpts{step4: true})
	p := "/files/1/preview"
	if _, ok := fork.match("GET", p); !ok {
		t.Errorf("fork oracle should allow %q", p)
	}
	if _, ok := s.Match("GET", p); ok {
		t.Errorf("we allowed %q", p)
	}
	if _, ok := s.Match("GET", "/files/1/download"); !ok {
		t.Error("download refused")
	}
}

func TestMatchReturnsGivenScope(t *testing.T) {
	scopes := []string{"url:GET|/api/v1/courses/:id", "url:GET|/custom/:x", "url:GET|/api/v1/courses/:course_id/rubrics"}
	s, err := Compile(scopes)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{
		"/api/v1/courses/1":         "url:GET|/api/v1/courses/:id",
		"/custom/1":                 "url:GET|/custom/:x",
		"/api/v1/courses/1/rubrics": "url:GET|/api/v1/courses/:course_id/rubrics",
	} {
		if got, ok := s.Match("GET", p); !ok || got != want {
			t.Errorf("Match(%q) = %q %v, want %q", p, got, ok, want)
		}
	}
	if got := s.Scopes(); !slices.Equal(got, []string{"url:GET|/api/v1/courses/:course_id/rubrics", "url:GET|/api/v1/courses/:id", "url:GET|/custom/:x"}) {
		t.Errorf("Scopes() = %q", got)
	}
}

// Every catalogue scope, many generated paths: the catalogue set agrees
// exactly with the strict oracle, and sound against Canvas's own.
func TestCatalogueAgainstOracle(t *testing.T) {
	cat := Catalogue()
	set := CatalogueSet()
	strict := newOracle(cat, oracleOpts{escapeDots: true})
	canvas := newOracle(cat, oracleOpts{})
	r := rand.New(rand.NewPCG(1, 2))
	c := loadCatalogue()
	n := 0
	for i := range c.parsed {
		sc := &c.parsed[i]
		for k := 0; k < 8; k++ {
			p := pathFor(r, sc)
			if k >= 5 {
				p = mutate(r, p)
			}
			for _, m := range []string{sc.Verb, "GET", "HEAD", "POST"} {
				n++
				got, ok := set.Match(m, p)
				_, want := strict.match(m, p)
				if ok != want {
					t.Fatalf("Match(%s, %q) = %q %v; strict oracle %v", m, p, got, ok, want)
				}
				if ok && !canvas.matchesScope(m, got, p) {
					t.Fatalf("Match(%s, %q) = %q not allowed by that scope's Canvas regex", m, p, got)
				}
			}
		}
	}
	t.Logf("%d checks", n)
}

// Sets are immutable: concurrent Match, Compile and CatalogueSet are safe
// (run with -race).
func TestConcurrentUse(t *testing.T) {
	set, _ := Compile(append(vendorScopes, "url:GET|/custom/:x(/*y)"))
	reqs := vendorRequests()
	done := make(chan bool)
	for g := 0; g < 4; g++ {
		go func() {
			defer func() { done <- true }()
			var in Interner
			for i, q := range reqs {
				set.Match(q.method, q.path)
				CatalogueSet().Match(q.method, q.path)
				if i%200 == 0 {
					s, err := in.Compile(vendorScopes)
					if err != nil || s == nil {
						t.Error(err)
						return
					}
					Intern([]string{"url:GET|/custom"})
				}
			}
		}()
	}
	for g := 0; g < 4; g++ {
		<-done
	}
}
