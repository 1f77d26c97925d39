package confine

import (
	"slices"
	"strings"
	"testing"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/matcher"
)

// TestCatalogueClassified goes through the whole scope catalogue: every
// route either has a context parameter the confinement step reads, or is
// listed in NoAccountContext. A new catalogue scope that fits neither, a
// context name reused after another literal, or an ":id" after a context
// collection that is in neither IDRoutes nor IDNotContext fails here.
func TestCatalogueClassified(t *testing.T) {
	listed := map[string]bool{}
	for _, s := range NoAccountContext {
		if listed[s] {
			t.Errorf("NoAccountContext lists %q twice", s)
		}
		listed[s] = true
	}
	cat := matcher.Catalogue()
	inCat := map[string]bool{}
	confinable := 0
	for _, s := range cat {
		inCat[s] = true
		r, err := ClassifyScope(s)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case r.Confinable() && listed[s]:
			t.Errorf("%s has context parameters %v but is listed in NoAccountContext", s, r.Params)
		case !r.Confinable() && !listed[s]:
			t.Errorf("%s has no account context (%s) and is not listed in NoAccountContext", s, r.NoContext)
		case r.Confinable():
			confinable++
		}
		_, path, _ := strings.Cut(s, "|")
		segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
		for i, seg := range segs {
			if !strings.HasPrefix(seg, ":") {
				continue
			}
			name := seg[1:]
			if k, ok := ParamKinds[name]; ok {
				if i == 0 || !slices.Contains(k.After, segs[i-1]) {
					t.Errorf("%s: :%s follows %q, not one of %v", s, name, segs[max(i-1, 0)], k.After)
				}
				if !slices.ContainsFunc(r.Params, func(p ContextParam) bool { return p.Segment == i }) && r.Confinable() {
					t.Errorf("%s: context parameter :%s not read", s, name)
				}
			}
			if name == "id" && i > 0 {
				switch segs[i-1] {
				case "accounts", "sub_accounts", "courses", "sections", "groups", "group_categories":
					prefix := "/" + strings.Join(segs[:i+1], "/")
					_, ctx := IDRoutes[prefix]
					_, not := IDNotContext[prefix]
					if ctx == not {
						t.Errorf("%s: :id after %q must be in exactly one of IDRoutes and IDNotContext", s, segs[i-1])
					}
				}
			}
		}
	}
	for s := range listed {
		if !inCat[s] {
			t.Errorf("NoAccountContext lists %q, which is not in the catalogue", s)
		}
	}
	for p := range NotConfinable {
		if !slices.ContainsFunc(cat, func(s string) bool { return strings.HasSuffix(s, "|"+p) }) {
			t.Errorf("NotConfinable lists %q, which is no catalogue route", p)
		}
	}
	if confinable+len(NoAccountContext) != len(cat) {
		t.Errorf("%d confinable + %d without context != %d catalogue scopes", confinable, len(NoAccountContext), len(cat))
	}
	t.Logf("%d catalogue scopes: %d confinable, %d without account context", len(cat), confinable, len(NoAccountContext))
}

func TestClassifyExamples(t *testing.T) {
	cases := []struct {
		scope string
		want  []ContextParam
	}{
		{"url:GET|/api/v1/courses/:course_id/enrollments", []ContextParam{{"course_id", KindCourse, 3}}},
		{"url:GET|/api/v1/courses/:id", []ContextParam{{"id", KindCourse, 3}}},
		{"url:PUT|/api/v1/accounts/:id", []ContextParam{{"id", KindAccount, 3}}},
		{"url:GET|/api/v1/sections/:id", []ContextParam{{"id", KindSection, 3}}},
		{"url:POST|/api/v1/sections/:id/crosslist/:new_course_id", []ContextParam{{"id", KindSection, 3}, {"new_course_id", KindCourse, 5}}},
		{"url:GET|/api/v1/group_categories/:group_category_id", []ContextParam{{"group_category_id", KindGroupCategory, 3}}},
		{"url:GET|/api/v1/groups/:group_id/users", []ContextParam{{"group_id", KindGroup, 3}}},
		{"url:GET|/api/v1/courses/:course_id/quizzes/:quiz_id/groups/:id", []ContextParam{{"course_id", KindCourse, 3}}},
		{"url:GET|/api/v1/users/:id", nil},
		{"url:GET|/api/v1/courses", nil},
		{"url:GET|/api/v1/conversations", nil},
		{"url:PUT|/api/v1/users/:id/merge_into/accounts/:destination_account_id/users/:destination_user_id", nil},
		// Not catalogue scopes (allow_unknown_scopes): a context in an
		// optional group or mid-segment is not guessed at.
		{"url:GET|/api/v1/x(/courses/:course_id)", nil},
		{"url:GET|/api/v1/x/by_:course_id", nil},
	}
	for _, c := range cases {
		r, err := ClassifyScope(c.scope)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(r.Params, c.want) {
			t.Errorf("%s: params %v, want %v", c.scope, r.Params, c.want)
		}
		if (c.want == nil) == r.Confinable() {
			t.Errorf("%s: confinable %v, NoContext %q", c.scope, r.Confinable(), r.NoContext)
		}
	}
}
