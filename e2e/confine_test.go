package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	tokConfined     = "test-only-token-confined-eng"
	tokConfinedSub  = "test-only-token-confined-substituted"
	lookupTok       = "test-only-lookup-token"
	outsideAccounts = `{"status":"unauthorized","errors":[{"message":"user not authorized to perform that action"}]}`
)

// canvasTree is the Canvas stand-in the gate's look-ups go to: root 1,
// ENG 2 (sis ENG) with child 4 and grandchild 5, sibling ART 3 with child 6;
// courses, sections (22 cross-listed from an ART course into an ENG
// course), groups in courses and accounts, group categories.
type canvasTree struct {
	*httptest.Server
	mu      sync.Mutex
	objects map[string]string // "courses/10" -> JSON
	calls   atomic.Int64
	auth    []string
	seen    []string // every look-up: request line and headers
	status  int      // when set, every look-up answers it
	delay   time.Duration
}

func newCanvasTree(t *testing.T) *canvasTree {
	ct := &canvasTree{objects: map[string]string{}}
	acct := func(id, parent string) {
		p := "null"
		if parent != "" {
			p = `"` + parent + `"`
		}
		ct.objects["accounts/"+id] = fmt.Sprintf(`{"id":"%s","parent_account_id":%s}`, id, p)
	}
	acct("1", "")
	acct("2", "1")
	acct("3", "1")
	acct("4", "2")
	acct("5", "4")
	acct("6", "3")
	ct.objects["accounts/self"] = ct.objects["accounts/1"]
	ct.objects["accounts/sis_account_id:ENG"] = ct.objects["accounts/2"]
	ct.objects["accounts/sis_account_id:ART"] = ct.objects["accounts/3"]
	course := func(id, account string) {
		ct.objects["courses/"+id] = fmt.Sprintf(`{"id":"%s","account_id":"%s"}`, id, account)
	}
	course("10", "5")
	course("11", "6")
	course("12", "2")
	course("90071992547409931", "4") // above 2^53: the id must stay exact
	ct.objects["courses/sis_course_id:ENG%20101"] = ct.objects["courses/10"]
	ct.objects["courses/sis_course_id:ART101"] = ct.objects["courses/11"]
	ct.objects["sections/20"] = `{"id":"20","course_id":"10"}`
	ct.objects["sections/21"] = `{"id":"21","course_id":"11"}`
	ct.objects["sections/22"] = `{"id":"22","course_id":"10","nonxlist_course_id":"11"}`
	ct.objects["groups/30"] = `{"id":"30","context_type":"Course","course_id":"10"}`
	ct.objects["groups/31"] = `{"id":"31","context_type":"Account","account_id":"3"}`
	ct.objects["groups/32"] = `{"id":"32","context_type":"Account","account_id":"4"}`
	ct.objects["group_categories/40"] = `{"id":"40","context_type":"Course","course_id":"11"}`
	ct.objects["group_categories/41"] = `{"id":"41","context_type":"Account","account_id":"2"}`
	ct.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ct.calls.Add(1)
		ct.mu.Lock()
		ct.auth = append(ct.auth, r.Header.Get("Authorization"))
		ct.seen = append(ct.seen, fmt.Sprintf("%s %s %v", r.Method, r.RequestURI, r.Header))
		status, delay := ct.status, ct.delay
		obj, ok := ct.objects[strings.TrimPrefix(r.URL.EscapedPath(), "/api/v1/")]
		ct.mu.Unlock()
		time.Sleep(delay)
		if r.Header.Get("Authorization") != "Bearer "+lookupTok || r.Header.Get("Accept") != "application/json+canvas-string-ids" {
			w.WriteHeader(401)
			return
		}
		switch {
		case status == 403:
			w.WriteHeader(403)
			fmt.Fprint(w, "403 Forbidden (Rate Limit Exceeded)")
		case status != 0:
			w.WriteHeader(status)
		case !ok:
			w.WriteHeader(404)
			fmt.Fprint(w, `{"errors":[{"message":"The specified resource does not exist."}]}`)
		default:
			fmt.Fprint(w, obj)
		}
	}))
	t.Cleanup(ct.Close)
	return ct
}

func (ct *canvasTree) set(path, json string, status int) {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if path != "" {
		ct.objects[path] = json
	}
	ct.status = status
}

const confinedScopes = `"url:GET|/api/v1/courses/:course_id/enrollments", "url:GET|/api/v1/courses/:id", "url:PUT|/api/v1/courses/:id",
 "url:GET|/api/v1/accounts/:id", "url:GET|/api/v1/accounts/:account_id/courses", "url:GET|/api/v1/sections/:id",
 "url:GET|/api/v1/groups/:group_id/users", "url:GET|/api/v1/group_categories/:group_category_id",
 "url:POST|/api/v1/courses/:course_id/content_migrations", "url:GET|/api/v1/users/:id"`

func confinedKeys() string {
	return fmt.Sprintf(`{
  "developer_keys": [
    {"id": "eng", "scopes": [%[1]s], "accounts": ["sis_account_id:ENG"], "unconfined_scopes": ["url:GET|/api/v1/users/:id"]},
    {"id": "eng-sub", "scopes": [%[1]s], "accounts": ["2"], "unconfined_scopes": ["url:GET|/api/v1/users/:id"],
     "upstream_token": "{env.TEST_UPSTREAM_TOKEN}"},
    {"id": "open", "scopes": [%[1]s]}
  ],
  "tokens": [
    {"sha256": "%[2]s", "developer_key": "eng"},
    {"sha256": "%[3]s", "developer_key": "eng-sub"},
    {"sha256": "%[4]s", "developer_key": "open"}
  ]
}`, confinedScopes, sha(tokConfined), sha(tokConfinedSub), sha(tokA))
}

func startConfined(t *testing.T, ct *canvasTree, up *upstream, ttl string) *instance {
	return startCaddy(t, up, siteConfig{
		KeysJSON: confinedKeys(),
		Gate:     fmt.Sprintf("canvas_api %s {\n\t\t\ttoken {env.TEST_LOOKUP_TOKEN}\n\t\t\tcache_ttl %s\n\t\t\ttimeout 500ms\n\t\t}", ct.URL, ttl),
		Env:      []string{"TEST_LOOKUP_TOKEN=" + lookupTok, "TEST_UPSTREAM_TOKEN=" + upstreamTok},
	})
}

func TestConfinedKeyContexts(t *testing.T) {
	ct := newCanvasTree(t)
	up := newUpstream(t)
	in := startConfined(t, ct, up, "5m")
	cases := []struct {
		method, target, ctype, body string
		inside                      bool
	}{
		{"GET", "/api/v1/courses/10/enrollments", "", "", true},
		{"GET", "/api/v1/courses/sis_course_id:ENG%20101/enrollments", "", "", true},
		{"GET", "/api/v1/courses/11/enrollments", "", "", false},
		{"GET", "/api/v1/courses/sis_course_id:ART101/enrollments", "", "", false},
		{"GET", "/api/v1/courses/404/enrollments", "", "", false},
		{"GET", "/api/v1/courses/90071992547409931", "", "", true},
		{"GET", "/api/v1/courses/90071992547409932", "", "", false},
		{"GET", "/api/v1/accounts/5", "", "", true},
		{"GET", "/api/v1/accounts/sis_account_id:ENG/courses", "", "", true},
		{"GET", "/api/v1/accounts/3", "", "", false},
		{"GET", "/api/v1/accounts/self", "", "", false},
		{"GET", "/api/v1/accounts/6", "", "", false},
		{"GET", "/api/v1/sections/20", "", "", true},
		{"GET", "/api/v1/sections/21", "", "", false},
		{"GET", "/api/v1/sections/22", "", "", true}, // cross-listed into an ENG course
		{"GET", "/api/v1/groups/30/users", "", "", true},
		{"GET", "/api/v1/groups/31/users", "", "", false},
		{"GET", "/api/v1/groups/32/users", "", "", true},
		{"GET", "/api/v1/group_categories/40", "", "", false},
		{"GET", "/api/v1/group_categories/41", "", "", true},
		{"GET", "/api/v1/users/7", "", "", true}, // unconfined_scopes
		{"PUT", "/api/v1/courses/12", "application/x-www-form-urlencoded", "course[account_id]=3", false},
		{"PUT", "/api/v1/courses/12", "application/x-www-form-urlencoded", "course%5Baccount_id%5D=4", true},
		{"PUT", "/api/v1/courses/12", "application/json", `{"course":{"account_id":"sis_account_id:ART"}}`, false},
		{"PUT", "/api/v1/courses/12", "application/json", `{"course":{"name":"x","account_id":"5"}}`, true},
		{"POST", "/api/v1/courses/10/content_migrations", "application/json", `{"migration_type":"course_copy_importer","settings":{"source_course_id":"11"}}`, false},
		{"POST", "/api/v1/courses/10/content_migrations?settings[source_course_id]=11", "", "", false},
	}
	for _, c := range cases {
		var body *strings.Reader
		if c.body != "" {
			body = strings.NewReader(c.body)
		}
		req := in.request(c.method, c.target, tokConfined, nil)
		if body != nil {
			req = in.request(c.method, c.target, tokConfined, body)
			req.Header.Set("Content-Type", c.ctype)
		}
		resp, got := in.do(req)
		if c.inside {
			if resp.StatusCode != 200 {
				t.Errorf("%s %s %s: %d %s, want forwarded", c.method, c.target, c.body, resp.StatusCode, got)
				up.take()
				continue
			}
			up.one(t)
			continue
		}
		if resp.StatusCode != 401 || string(got) != outsideAccounts {
			t.Errorf("%s %s %s: %d %s, want 401 outside", c.method, c.target, c.body, resp.StatusCode, got)
		}
		up.none(t)
	}
	if !strings.Contains(in.logText(), `"decision":"outside_accounts"`) {
		t.Error("no outside_accounts log line")
	}
	// The unconfined key reaches everything.
	resp, _ := in.do(in.request("GET", "/api/v1/courses/11/enrollments", tokA, nil))
	if resp.StatusCode != 200 {
		t.Errorf("unconfined key: %d", resp.StatusCode)
	}
	up.one(t)
}

// TestConfinedKeyIncludeFilterAndSubstitution: confinement adds a step to
// an allowed request and takes nothing away. A confined key's request
// inside its accounts still has include[] cut down to uuid (query and JSON
// body) and still goes with the substituted credential; the look-up token
// never rides along to Canvas on the vendor's request, and neither the
// vendor's token nor the upstream token goes with a look-up.
func TestConfinedKeyIncludeFilterAndSubstitution(t *testing.T) {
	ct := newCanvasTree(t)
	up := newUpstream(t)
	in := startConfined(t, ct, up, "5m")
	req := in.request("GET", "/api/v1/courses/10/enrollments?include[]=avatar_url&include[]=uuid&per_page=5", tokConfinedSub, nil)
	if resp, body := in.do(req); resp.StatusCode != 200 {
		t.Fatalf("inside GET: %d %s", resp.StatusCode, body)
	}
	get := up.one(t)
	if get.RawQuery != "include[]=uuid&per_page=5" {
		t.Errorf("forwarded query %q, want include[] cut down to uuid", get.RawQuery)
	}
	req = in.request("PUT", "/api/v1/courses/12", tokConfinedSub,
		strings.NewReader(`{"course":{"name":"x","account_id":"4"},"include":["sections","uuid"]}`))
	req.Header.Set("Content-Type", "application/json")
	if resp, body := in.do(req); resp.StatusCode != 200 {
		t.Fatalf("inside PUT moving the course within ENG: %d %s", resp.StatusCode, body)
	}
	put := up.one(t)
	if string(put.Body) != `{"course":{"name":"x","account_id":"4"},"include":["uuid"]}` {
		t.Errorf("forwarded body %s, want include cut down to uuid", put.Body)
	}
	for _, g := range []recorded{get, put} {
		if got := g.Header.Get("Authorization"); got != "Bearer "+upstreamTok {
			t.Errorf("%s forwarded with Authorization %q, want the substituted upstream token", g.Method, got)
		}
		all := fmt.Sprintf("%s %v %s", g.RequestURI, g.Header, g.Body)
		if strings.Contains(all, lookupTok) || strings.Contains(all, tokConfinedSub) {
			t.Errorf("%s %s forwarded carrying the look-up token or the vendor's token", g.Method, g.RequestURI)
		}
	}
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if len(ct.seen) < 3 { // at least the key's account 2, courses 10 and 12
		t.Fatalf("%d look-ups, want the key's account and the objects named", len(ct.seen))
	}
	for i, seen := range ct.seen {
		if ct.auth[i] != "Bearer "+lookupTok || strings.Contains(seen, tokConfinedSub) || strings.Contains(seen, upstreamTok) {
			method, target, _ := strings.Cut(seen, " ")
			target, _, _ = strings.Cut(target, " ")
			t.Errorf("look-up %s %s: not the look-up token alone", method, target)
		}
	}
}

func TestConfinedLookupFailures(t *testing.T) {
	ct := newCanvasTree(t)
	up := newUpstream(t)
	in := startConfined(t, ct, up, "5m")
	for _, status := range []int{500, 503, 403, 429, 401} {
		ct.set("", "", status)
		resp, body := in.do(in.request("GET", "/api/v1/courses/10/enrollments", tokConfined, nil))
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.HasPrefix(string(body), `{"errors":[{"message":`) {
			t.Errorf("look-up answered %d: gate answered %d %q Retry-After %q", status, resp.StatusCode, body, resp.Header.Get("Retry-After"))
		}
		up.none(t)
	}
	// A timeout, then recovery: failures are not cached.
	ct.set("", "", 0)
	ct.mu.Lock()
	ct.delay = time.Second
	ct.mu.Unlock()
	resp, _ := in.do(in.request("GET", "/api/v1/courses/10/enrollments", tokConfined, nil))
	if resp.StatusCode != 503 {
		t.Errorf("timeout: %d", resp.StatusCode)
	}
	up.none(t)
	ct.mu.Lock()
	ct.delay = 0
	ct.mu.Unlock()
	resp, _ = in.do(in.request("GET", "/api/v1/courses/10/enrollments", tokConfined, nil))
	if resp.StatusCode != 200 {
		t.Errorf("after recovery: %d", resp.StatusCode)
	}
	up.one(t)
	if !strings.Contains(in.logText(), `"decision":"lookup_failed"`) {
		t.Error("no lookup_failed log line")
	}
	if strings.Contains(in.logText(), lookupTok) {
		t.Error("the look-up token is in the log")
	}
}

func TestConfinedCacheSingleFlightMovePurgeAndTokens(t *testing.T) {
	ct := newCanvasTree(t)
	up := newUpstream(t)
	in := startConfined(t, ct, up, "1s")
	ct.mu.Lock()
	ct.delay = 100 * time.Millisecond
	ct.mu.Unlock()
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, _ := in.do(in.request("GET", "/api/v1/courses/12", tokConfinedSub, nil))
			if resp.StatusCode != 200 {
				t.Errorf("concurrent: %d", resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	// One look-up each for the root "2", course 12 and account 2's answer
	// is shared: root and the course's account are the same object.
	if n := ct.calls.Load(); n != 2 {
		t.Errorf("%d look-ups for 50 concurrent first requests, want 2 (the key's account and the course)", n)
	}
	for _, r := range up.take() {
		if got := r.Header.Get("Authorization"); got != "Bearer "+upstreamTok {
			t.Errorf("forwarded with Authorization %q, want the substituted upstream token", got)
		}
	}
	ct.mu.Lock()
	for _, a := range ct.auth {
		if a != "Bearer "+lookupTok {
			t.Errorf("a look-up carried Authorization %q", a)
		}
	}
	ct.delay = 0
	ct.mu.Unlock()

	// A course moved out of ENG in Canvas: seen after cache_ttl.
	ct.set("courses/12", `{"id":"12","account_id":"3"}`, 0)
	resp, _ := in.do(in.request("GET", "/api/v1/courses/12", tokConfined, nil))
	if resp.StatusCode != 200 {
		t.Errorf("within cache_ttl: %d, want the cached answer", resp.StatusCode)
	}
	up.one(t)
	time.Sleep(1100 * time.Millisecond)
	resp, _ = in.do(in.request("GET", "/api/v1/courses/12", tokConfined, nil))
	if resp.StatusCode != 401 {
		t.Errorf("after cache_ttl: %d, want 401", resp.StatusCode)
	}
	up.none(t)
	// Moved back: at once after a purge.
	ct.set("courses/12", `{"id":"12","account_id":"2"}`, 0)
	pr, err := http.Post(in.admin+"/canvas_scopes/lookup_cache/purge", "application/json", nil)
	if err != nil || pr.StatusCode != 200 {
		t.Fatalf("purge: %v %v", pr, err)
	}
	resp, _ = in.do(in.request("GET", "/api/v1/courses/12", tokConfined, nil))
	if resp.StatusCode != 200 {
		t.Errorf("after purge: %d", resp.StatusCode)
	}
	fwd := up.one(t)
	if fwd.Header.Get("Authorization") != "Bearer "+tokConfined {
		t.Error("the vendor's own token was not forwarded")
	}
	// The look-up token is in no config the admin API shows.
	cfg, _ := http.Get(in.admin + "/config/")
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := cfg.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	cfg.Body.Close()
	if strings.Contains(b.String(), lookupTok) || !strings.Contains(b.String(), "{env.TEST_LOOKUP_TOKEN}") {
		t.Errorf("/config/ shows the look-up token or lost its placeholder")
	}
}

func TestConfinedKeyNeedsCanvasAPI(t *testing.T) {
	dir := t.TempDir()
	keys := dir + "/keys.json"
	writeFile(t, keys, fmt.Sprintf(`{"developer_keys": [{"id": "eng", "scopes": [%s], "accounts": ["2"],
  "unconfined_scopes": ["url:GET|/api/v1/users/:id"]}]}`, confinedScopes))
	cf := dir + "/Caddyfile"
	writeFile(t, cf, fmt.Sprintf("{\n\tadmin off\n}\nhttp://:%d {\n\tcanvas_scopes {\n\t\tkeys_file %s\n\t}\n\trespond ok\n}\n", freePort(t), keys))
	out, err := runCaddy(t, "validate", "--config", cf, "--adapter", "caddyfile")
	if err == nil || !strings.Contains(out, "needs a canvas_api block") {
		t.Errorf("validate passed or said something else: %v\n%s", err, out)
	}
}

// TestConfinedKeyReloadedWithoutCanvasAPI: Caddy refuses a config that
// confines a key without canvas_api, but the keys file can gain a confined
// key later, by a reload. The gate cannot then tell where the key's objects
// are, so it fails closed: 503 lookup_failed, nothing forwarded.
func TestConfinedKeyReloadedWithoutCanvasAPI(t *testing.T) {
	up := newUpstream(t)
	open := fmt.Sprintf(`{"developer_keys": [{"id": "eng", "scopes": [%s]}],
  "tokens": [{"sha256": "%s", "developer_key": "eng"}]}`, confinedScopes, sha(tokConfined))
	in := startCaddy(t, up, siteConfig{KeysJSON: open, Gate: "reload_interval 100ms", Env: []string{"TEST_UPSTREAM_TOKEN=" + upstreamTok}})
	if resp, _ := in.do(in.request("GET", "/api/v1/courses/11/enrollments", tokConfined, nil)); resp.StatusCode != 200 {
		t.Fatalf("before the reload, unconfined: %d", resp.StatusCode)
	}
	up.one(t)
	writeFile(t, in.keysPath, confinedKeys())
	var resp *http.Response
	var body []byte
	waitFor(t, func() bool {
		resp, body = in.do(in.request("GET", "/api/v1/courses/11/enrollments", tokConfined, nil))
		return resp.StatusCode != 200
	})
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.HasPrefix(string(body), `{"errors":[{"message":`) {
		t.Errorf("confined key without canvas_api: %d %q Retry-After %q", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	// Requests before the reload took effect were forwarded; none after.
	up.take()
	if resp, _ := in.do(in.request("GET", "/api/v1/courses/10/enrollments", tokConfined, nil)); resp.StatusCode != 503 {
		t.Errorf("second request: %d, want 503", resp.StatusCode)
	}
	up.none(t)
	if !strings.Contains(in.logText(), `"decision":"lookup_failed"`) {
		t.Error("no lookup_failed log line")
	}
}
