package confine

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/matcher"
)

// model is a Canvas account tree with courses, sections and groups. Ids
// are looked up by numeric id or by "sis:<name>"-style aliases.
type model struct {
	mu      sync.Mutex
	objects map[cacheKey]Object
	alias   map[cacheKey]string
	calls   atomic.Int64
	fail    error
	delay   time.Duration
}

func newModel() *model {
	m := &model{objects: map[cacheKey]Object{}, alias: map[cacheKey]string{}}
	acct := func(id, parent string) { m.objects[cacheKey{KindAccount, id}] = Object{true, id, KindAccount, parent} }
	// 1 root; 2 ENG (allowed); 3 sibling; 4, 5 grandchildren of 2; 6 child of 3
	acct("1", "")
	acct("2", "1")
	acct("3", "1")
	acct("4", "2")
	acct("5", "4")
	acct("6", "3")
	m.alias[cacheKey{KindAccount, "self"}] = "1"
	m.alias[cacheKey{KindAccount, "sis_account_id:ENG"}] = "2"
	m.alias[cacheKey{KindAccount, "sis_account_id:ART"}] = "3"
	obj := func(k Kind, id string, pk Kind, parent string) {
		m.objects[cacheKey{k, id}] = Object{true, id, pk, parent}
	}
	obj(KindCourse, "10", KindAccount, "5") // inside (great-grandchild)
	obj(KindCourse, "11", KindAccount, "6") // outside
	obj(KindCourse, "12", KindAccount, "2")
	m.alias[cacheKey{KindCourse, "sis_course_id:ENG101"}] = "10"
	m.alias[cacheKey{KindCourse, "sis_course_id:ART101"}] = "11"
	obj(KindSection, "20", KindCourse, "10")
	obj(KindSection, "21", KindCourse, "11")
	obj(KindSection, "22", KindCourse, "10") // cross-listed into 10 from 11
	obj(KindGroup, "30", KindCourse, "10")
	obj(KindGroup, "31", KindAccount, "3")
	obj(KindGroup, "32", KindAccount, "4")
	obj(KindGroupCategory, "40", KindCourse, "11")
	obj(KindGroupCategory, "41", KindAccount, "2")
	return m
}

func (m *model) Lookup(ctx context.Context, kind Kind, id string) (Object, error) {
	m.calls.Add(1)
	if m.delay > 0 {
		time.Sleep(m.delay)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return Object{}, m.fail
	}
	if a, ok := m.alias[cacheKey{kind, id}]; ok {
		id = a
	}
	o, ok := m.objects[cacheKey{kind, id}]
	if !ok {
		return Object{}, ErrNotFound
	}
	return o, nil
}

// inside is the model's own answer: does the object chain reach a root?
func (m *model) inside(kind Kind, id string, roots map[string]bool) bool {
	for range 50 {
		if a, ok := m.alias[cacheKey{kind, id}]; ok {
			id = a
		}
		o, ok := m.objects[cacheKey{kind, id}]
		if !ok {
			return false
		}
		if kind == KindAccount && roots[o.ID] {
			return true
		}
		if kind == KindAccount && o.Parent == "" {
			return false
		}
		kind, id = o.ParentKind, o.Parent
	}
	return false
}

var eng = []string{"sis_account_id:ENG"}

func check(c *Confiner, scope, path string, params map[string]string) Result {
	var p Params
	if params != nil {
		p = mapParams(params)
	}
	return c.Check(context.Background(), &Request{Scope: scope, Path: path, Params: p, Roots: eng, Now: time.Now()})
}

func TestCheckContexts(t *testing.T) {
	c := New(newModel(), 0, 0)
	cases := []struct {
		scope, path string
		params      map[string]string
		want        Outcome
	}{
		{"url:GET|/api/v1/courses/:course_id/enrollments", "/api/v1/courses/10/enrollments", nil, Inside},
		{"url:GET|/api/v1/courses/:course_id/enrollments", "/api/v1/courses/sis_course_id:ENG101/enrollments", nil, Inside},
		{"url:GET|/api/v1/courses/:course_id/enrollments", "/api/v1/courses/11/enrollments", nil, Outside},
		{"url:GET|/api/v1/courses/:course_id/enrollments", "/api/v1/courses/sis_course_id:ART101/enrollments", nil, Outside},
		{"url:GET|/api/v1/courses/:course_id/enrollments", "/api/v1/courses/999/enrollments", nil, Outside},
		{"url:GET|/api/v1/courses/:id", "/api/v1/courses/12", nil, Inside},
		{"url:GET|/api/v1/accounts/:id", "/api/v1/accounts/2", nil, Inside},
		{"url:GET|/api/v1/accounts/:id", "/api/v1/accounts/5", nil, Inside},
		{"url:GET|/api/v1/accounts/:id", "/api/v1/accounts/3", nil, Outside},
		{"url:GET|/api/v1/accounts/:id", "/api/v1/accounts/1", nil, Outside},
		{"url:GET|/api/v1/accounts/:id", "/api/v1/accounts/self", nil, Outside},
		{"url:GET|/api/v1/accounts/:account_id/courses", "/api/v1/accounts/sis_account_id:ENG/courses", nil, Inside},
		{"url:GET|/api/v1/sections/:id", "/api/v1/sections/20", nil, Inside},
		{"url:GET|/api/v1/sections/:id", "/api/v1/sections/21", nil, Outside},
		{"url:GET|/api/v1/sections/:id", "/api/v1/sections/22", nil, Inside},
		{"url:POST|/api/v1/sections/:id/crosslist/:new_course_id", "/api/v1/sections/20/crosslist/11", nil, Outside},
		{"url:POST|/api/v1/sections/:id/crosslist/:new_course_id", "/api/v1/sections/20/crosslist/12", nil, Inside},
		{"url:GET|/api/v1/groups/:group_id/users", "/api/v1/groups/30/users", nil, Inside},
		{"url:GET|/api/v1/groups/:group_id/users", "/api/v1/groups/31/users", nil, Outside},
		{"url:GET|/api/v1/groups/:group_id/users", "/api/v1/groups/32/users", nil, Inside},
		{"url:GET|/api/v1/group_categories/:group_category_id", "/api/v1/group_categories/40", nil, Outside},
		{"url:GET|/api/v1/group_categories/:group_category_id", "/api/v1/group_categories/41", nil, Inside},
		{"url:PUT|/api/v1/courses/:id", "/api/v1/courses/10", map[string]string{"course[account_id]": "3"}, Outside},
		{"url:PUT|/api/v1/courses/:id", "/api/v1/courses/10", map[string]string{"course[account_id]": "4"}, Inside},
		{"url:PUT|/api/v1/courses/:id", "/api/v1/courses/10", map[string]string{"[course]][account_id][]": "3"}, Outside},
		{"url:PUT|/api/v1/courses/:id", "/api/v1/courses/10", map[string]string{"account_id": "sis_account_id:ART"}, Outside},
		{"url:PUT|/api/v1/accounts/:id", "/api/v1/accounts/4", map[string]string{"account[parent_account_id]": "1"}, Outside},
		{"url:POST|/api/v1/courses/:course_id/content_migrations", "/api/v1/courses/10/content_migrations", map[string]string{"settings[source_course_id]": "11"}, Outside},
		{"url:POST|/api/v1/courses/:course_id/course_copy", "/api/v1/courses/10/course_copy", map[string]string{"source_course": "12"}, Inside},
		// A body value is escaped, "." included: "12.json" is not course 12.
		{"url:POST|/api/v1/courses/:course_id/course_copy", "/api/v1/courses/10/course_copy", map[string]string{"source_course": "12.json"}, Outside},
		{"url:GET|/api/v1/users/:id", "/api/v1/users/5", nil, Outside}, // no context, not unconfined
	}
	for pass := range 2 { // the second pass answers from the cache and the memo
		for _, tc := range cases {
			got := check(c, tc.scope, tc.path, tc.params)
			if got.Outcome != tc.want {
				t.Errorf("pass %d: %s %v: %v (%s), want %v", pass, tc.path, tc.params, got.Outcome, got.Reason, tc.want)
			}
		}
	}
	got := c.Check(context.Background(), &Request{Scope: "url:GET|/api/v1/users/:id", Unconfined: true, Path: "/api/v1/users/5", Roots: eng, Now: time.Now()})
	if got.Outcome != Inside {
		t.Errorf("unconfined scope: %v", got.Outcome)
	}
}

func TestCacheSingleFlightTTLPurgeAndFailures(t *testing.T) {
	m := newModel()
	m.delay = 20 * time.Millisecond
	c := New(m, time.Minute, 0)
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := check(c, "url:GET|/api/v1/courses/:id", "/api/v1/courses/12", nil); r.Outcome != Inside {
				t.Error(r.Outcome)
			}
		}()
	}
	wg.Wait()
	// The root alias, the course and its account: one look-up each.
	if n := m.calls.Load(); n != 3 {
		t.Errorf("%d look-ups for 50 concurrent first requests, want 3", n)
	}
	m.delay = 0
	// A course moved out: seen after the TTL, or at once after a purge.
	m.mu.Lock()
	m.objects[cacheKey{KindCourse, "12"}] = Object{true, "12", KindAccount, "3"}
	m.mu.Unlock()
	if r := check(c, "url:GET|/api/v1/courses/:id", "/api/v1/courses/12", nil); r.Outcome != Inside {
		t.Errorf("cached answer not used: %v", r.Outcome)
	}
	later := c.Check(context.Background(), &Request{Scope: "url:GET|/api/v1/courses/:id", Path: "/api/v1/courses/12", Roots: eng, Now: time.Now().Add(2 * time.Minute)})
	if later.Outcome != Outside || later.Account != "3" {
		t.Errorf("after the TTL: %v account %q", later.Outcome, later.Account)
	}
	c.Cache.Purge()
	m.fail = &LookupError{Kind: KindCourse, Status: 503, Msg: "unexpected status"}
	calls := m.calls.Load()
	for range 2 {
		if r := check(c, "url:GET|/api/v1/courses/:id", "/api/v1/courses/12", nil); r.Outcome != Failed {
			t.Errorf("failure: %v", r.Outcome)
		}
	}
	if m.calls.Load() != calls+2 {
		t.Errorf("a failure was cached: %d calls", m.calls.Load()-calls)
	}
	m.fail = nil
	if r := check(c, "url:GET|/api/v1/courses/:id", "/api/v1/courses/12", nil); r.Outcome != Outside {
		t.Errorf("after recovery: %v", r.Outcome)
	}
	// Drop on move.
	m.mu.Lock()
	m.objects[cacheKey{KindCourse, "12"}] = Object{true, "12", KindAccount, "2"}
	m.mu.Unlock()
	c.Moved("url:PUT|/api/v1/courses/:id", "/api/v1/courses/12")
	if r := check(c, "url:GET|/api/v1/courses/:id", "/api/v1/courses/12", nil); r.Outcome != Inside {
		t.Errorf("after Moved: %v", r.Outcome)
	}
}

func TestCacheBounded(t *testing.T) {
	c := NewCache(time.Minute, 100)
	m := newModel()
	now := time.Now()
	for i := range 1000 {
		c.get(context.Background(), m, KindCourse, fmt.Sprint(i), now)
		if i%10 == 0 {
			c.get(context.Background(), m, KindCourse, "0", now) // keep one hot
		}
	}
	if s := c.Stats(); s.Items > 100 {
		t.Errorf("%d items, max 100", s.Items)
	}
	calls := m.calls.Load()
	c.get(context.Background(), m, KindCourse, "0", now)
	if m.calls.Load() != calls {
		t.Error("the most used entry was evicted")
	}
}

// FuzzConfinement: random catalogue routes with random ids against the
// model of the tree: never Inside when the model says an object is outside.
func FuzzConfinement(f *testing.F) {
	f.Add(int64(1), uint16(3))
	f.Add(int64(42), uint16(900))
	cat := matcher.Catalogue()
	ids := []string{"1", "2", "3", "4", "5", "6", "10", "11", "12", "20", "21", "22", "30", "31", "32", "40", "41", "999",
		"self", "sis_account_id:ENG", "sis_account_id:ART", "sis_course_id:ENG101", "sis_course_id:ART101"}
	m := newModel()
	roots := map[string]bool{"2": true}
	f.Fuzz(func(t *testing.T, seed int64, pick uint16) {
		rng := rand.New(rand.NewSource(seed))
		scope := cat[int(pick)%len(cat)]
		_, p, _ := strings.Cut(scope, "|")
		if i := strings.IndexAny(p, "(*"); i >= 0 {
			p = p[:i] + "/x"
		}
		segs := strings.Split(p, "/")
		for i, s := range segs {
			if strings.HasPrefix(s, ":") {
				segs[i] = ids[rng.Intn(len(ids))]
			}
		}
		path := strings.Join(segs, "/")
		var body map[string]string
		if rng.Intn(3) == 0 {
			mp := MoveParams[rng.Intn(len(MoveParams))]
			key := mp.Name[0]
			for _, n := range mp.Name[1:] {
				key += "[" + n + "]"
			}
			body = map[string]string{key: ids[rng.Intn(len(ids))]}
		}
		c := New(m, 0, 0)
		got := check(c, scope, path, body)
		// Asked again: the answer from the cache and the memo must agree.
		if again := check(c, scope, path, body); again.Outcome != got.Outcome {
			t.Fatalf("%s %s %v: %v, then %v", scope, path, body, got.Outcome, again.Outcome)
		}
		route := c.RouteOf(scope)
		want := route.Confinable()
		var refs []Ref
		refs = route.PathRefs(refs, path)
		refs = append(refs, MoveRefs(mapParams(body))...)
		for _, r := range refs {
			if !m.inside(r.Kind, r.ID, roots) {
				want = false
			}
		}
		if got.Outcome == Inside && !want {
			t.Fatalf("%s %s %v: allowed, but the model says outside", scope, path, body)
		}
		if got.Outcome != Inside && want {
			t.Fatalf("%s %s %v: %v (%s), but the model says inside", scope, path, body, got.Outcome, got.Reason)
		}
	})
}

func TestCanvasAPILookup(t *testing.T) {
	var gotAuth, gotAccept, gotPath []string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		gotAuth = append(gotAuth, r.Header.Get("Authorization"))
		gotAccept = append(gotAccept, r.Header.Get("Accept"))
		gotPath = append(gotPath, r.URL.EscapedPath())
		mu.Unlock()
		switch r.URL.EscapedPath() {
		case "/api/v1/courses/sis_course_id:A%2FB":
			fmt.Fprint(w, `{"id":"90071992547409931","account_id":"90071992547409933"}`)
		case "/api/v1/accounts/1":
			fmt.Fprint(w, `{"id":"1","parent_account_id":null}`)
		case "/api/v1/groups/3":
			fmt.Fprint(w, `{"id":"3","context_type":"Account","account_id":"7"}`)
		case "/api/v1/sections/4":
			fmt.Fprint(w, `{"id":4,"course_id":5}`) // numeric ids: not what was asked for
		case "/api/v1/courses/rl":
			w.WriteHeader(403)
			fmt.Fprint(w, "403 Forbidden (Rate Limit Exceeded)")
		case "/api/v1/courses/429":
			w.WriteHeader(429)
		case "/api/v1/courses/401":
			w.WriteHeader(401)
		case "/api/v1/courses/500":
			w.WriteHeader(500)
		case "/api/v1/courses/slow":
			time.Sleep(300 * time.Millisecond)
			fmt.Fprint(w, `{"id":"1","account_id":"1"}`)
		case "/api/v1/courses/redirect":
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		default:
			w.WriteHeader(404)
		}
	}))
	defer srv.Close()
	api := NewCanvasAPI(srv.URL+"/", "lookup-secret", 100*time.Millisecond)
	ctx := context.Background()
	o, err := api.Lookup(ctx, KindCourse, "sis_course_id:A%2FB")
	if err != nil || o.ID != "90071992547409931" || o.Parent != "90071992547409933" || o.ParentKind != KindAccount {
		t.Errorf("course: %+v %v", o, err)
	}
	if o, err := api.Lookup(ctx, KindAccount, "1"); err != nil || o.Parent != "" {
		t.Errorf("root account: %+v %v", o, err)
	}
	if o, err := api.Lookup(ctx, KindGroup, "3"); err != nil || o.ParentKind != KindAccount || o.Parent != "7" {
		t.Errorf("group: %+v %v", o, err)
	}
	if _, err := api.Lookup(ctx, KindCourse, "nope"); err != ErrNotFound {
		t.Errorf("404: %v", err)
	}
	for _, id := range []string{"rl", "429", "401", "500", "slow", "redirect"} {
		_, err := api.Lookup(ctx, KindCourse, id)
		var le *LookupError
		if !errors.As(err, &le) {
			t.Errorf("%s: %v, want a LookupError", id, err)
		} else if strings.Contains(err.Error(), "lookup-secret") {
			t.Errorf("%s: error names the token", id)
		}
	}
	if _, err := api.Lookup(ctx, KindSection, "4"); err == nil {
		t.Error("numeric ids accepted")
	}
	for i := range gotAuth {
		if gotAuth[i] != "Bearer lookup-secret" || gotAccept[i] != "application/json+canvas-string-ids" {
			t.Errorf("%s: Authorization %q Accept %q", gotPath[i], gotAuth[i], gotAccept[i])
		}
	}
}

type mapParams map[string]string

func (m mapParams) MayContain(...string) bool { return true }
func (m mapParams) EachParam(yield func(k, v string) bool) {
	for k, v := range m {
		if !yield(k, v) {
			return
		}
	}
}
