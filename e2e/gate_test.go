package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// Test tokens. They are labelled test-only and are nowhere else.
const (
	tokA         = "test-only-token-vendor-a"
	tokSub       = "test-only-token-substituted"
	tokIncludes  = "test-only-token-includes-allowed"
	tokUnscoped  = "test-only-token-unscoped"
	tokDisabled  = "test-only-token-disabled-key"
	tokHosted    = "test-only-token-hosted"
	tokExpired   = "test-only-token-expired"
	tokRevoked   = "test-only-token-revoked"
	tokDropped   = "test-only-token-scope-dropped"
	tokNarrow    = "test-only-token-narrow"
	tokMasq      = "test-only-token-masquerade"
	tokReport    = "test-only-token-report-mode"
	upstreamTok  = "test-only-upstream-canvas-token"
	vendorScopes = `"url:GET|/api/v1/courses", "url:GET|/api/v1/courses/:id", "url:GET|/api/v1/courses/:course_id/assignments", "url:POST|/api/v1/courses/:course_id/assignments", "url:GET|/api/v1/users/:user_id/courses"`
)

func gateKeys() string {
	return fmt.Sprintf(`{
  "developer_keys": [
    {"id": "vendor-a", "name": "Vendor A", "scopes": [%[1]s]},
    {"id": "vendor-sub", "name": "Substituted", "scopes": [%[1]s], "upstream_token": "{env.TEST_UPSTREAM_TOKEN}"},
    {"id": "inc", "scopes": [%[1]s], "allow_includes": true},
    {"id": "unscoped", "require_scopes": false},
    {"id": "off", "scopes": [%[1]s], "enabled": false},
    {"id": "hosted", "scopes": [%[1]s], "hosts": ["canvas.example.edu"]},
    {"id": "masq", "scopes": [%[1]s], "allow_masquerade": true},
    {"id": "shadow", "scopes": ["url:GET|/api/v1/courses"], "mode": "report"}
  ],
  "tokens": [
    {"sha256": "%[2]s", "developer_key": "vendor-a", "label": "test"},
    {"sha256": "%[3]s", "developer_key": "vendor-sub"},
    {"sha256": "%[4]s", "developer_key": "inc"},
    {"sha256": "%[5]s", "developer_key": "unscoped"},
    {"sha256": "%[6]s", "developer_key": "off"},
    {"sha256": "%[7]s", "developer_key": "hosted"},
    {"sha256": "%[8]s", "developer_key": "vendor-a", "expires_at": "2020-01-01T00:00:00Z", "revoked": true},
    {"sha256": "%[9]s", "developer_key": "vendor-a", "revoked": true},
    {"sha256": "%[10]s", "developer_key": "vendor-a", "scopes": ["url:GET|/api/v1/accounts"]},
    {"sha256": "%[11]s", "developer_key": "vendor-a", "scopes": ["url:GET|/api/v1/courses"]},
    {"sha256": "%[12]s", "developer_key": "masq"},
    {"sha256": "%[13]s", "developer_key": "shadow"}
  ]
}`, vendorScopes, sha(tokA), sha(tokSub), sha(tokIncludes), sha(tokUnscoped), sha(tokDisabled), sha(tokHosted),
		sha(tokExpired), sha(tokRevoked), sha(tokDropped), sha(tokNarrow), sha(tokMasq), sha(tokReport))
}

func startGate(t *testing.T, extra string) (*instance, *upstream) {
	t.Helper()
	up := newUpstream(t)
	in := startCaddy(t, up, siteConfig{
		KeysJSON: gateKeys(),
		Gate:     "reload_interval 100ms\n" + extra,
		Env:      []string{"TEST_UPSTREAM_TOKEN=" + upstreamTok},
	})
	return in, up
}

type canvasError struct {
	Status string `json:"status"`
	Errors []struct {
		Message   string `json:"message"`
		ExpiredAt string `json:"expired_at"`
	} `json:"errors"`
}

func decodeError(t *testing.T, body []byte) canvasError {
	t.Helper()
	var ce canvasError
	if err := json.Unmarshal(body, &ce); err != nil || len(ce.Errors) != 1 {
		t.Fatalf("not a Canvas error body: %q (%v)", body, err)
	}
	return ce
}

// decisionCases are requests with their Canvas answers; TestExplainAgreesWithGate
// runs them through explain too.
var decisionCases = []struct {
	name, method, target, token string
	status                      int
	message                     string
	challenge                   bool
	forwarded                   bool
}{
	{"allowed list", "GET", "/api/v1/courses", tokA, 200, "", false, true},
	{"allowed dynamic", "GET", "/api/v1/courses/7/assignments", tokA, 200, "", false, true},
	{"allowed format suffix", "GET", "/api/v1/courses.json", tokA, 200, "", false, true},
	{"HEAD checked as GET", "HEAD", "/api/v1/courses/7", tokA, 200, "", false, true},
	{"allowed POST", "POST", "/api/v1/courses/7/assignments", tokA, 200, "", false, true},
	{"PUT not granted", "PUT", "/api/v1/courses/7/assignments", tokA, 401, "Insufficient scopes on access token.", false, false},
	{"path not granted", "GET", "/api/v1/accounts", tokA, 401, "Insufficient scopes on access token.", false, false},
	{"graphql denied for scoped key", "POST", "/api/graphql", tokA, 401, "Insufficient scopes on access token.", false, false},
	{"always-allowed oauth2 token", "DELETE", "/login/oauth2/token", tokA, 200, "", false, true},
	{"unknown token", "GET", "/api/v1/courses", "test-only-not-registered", 401, "Invalid access token.", true, false},
	{"disabled key", "GET", "/api/v1/courses", tokDisabled, 401, "Invalid access token.", true, false},
	{"host not in hosts", "GET", "/api/v1/courses", tokHosted, 401, "Invalid access token.", true, false},
	{"expired wins over revoked", "GET", "/api/v1/courses", tokExpired, 401, "Expired access token.", true, false},
	{"revoked flag", "GET", "/api/v1/courses", tokRevoked, 401, "Revoked access token.", true, false},
	{"scope removed from key revokes token", "GET", "/api/v1/accounts", tokDropped, 401, "Revoked access token.", true, false},
	{"token narrower than key", "GET", "/api/v1/courses/7", tokNarrow, 401, "Insufficient scopes on access token.", false, false},
	{"token narrower than key, allowed part", "GET", "/api/v1/courses", tokNarrow, 200, "", false, true},
	{"unscoped key passes everything", "DELETE", "/api/v1/accounts/1/admins/2", tokUnscoped, 200, "", false, true},
	{"unscoped key and graphql", "POST", "/api/graphql", tokUnscoped, 200, "", false, true},
	{"credential off /api/ is still checked", "GET", "/courses/7", tokA, 401, "Insufficient scopes on access token.", false, false},
	{"no credential on API path", "GET", "/api/v1/courses", "", 401, "user authorization required", true, false},
	{"no credential off API path passes", "GET", "/login", "", 200, "", false, true},
	{"report mode forwards a denial", "GET", "/api/v1/accounts", tokReport, 200, "", false, true},
}

func TestDecisionsAndCanvasResponses(t *testing.T) {
	in, up := startGate(t, "")
	cases := decisionCases
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := in.do(in.request(c.method, c.target, c.token, nil))
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, c.status, body)
			}
			if c.message != "" {
				ce := decodeError(t, body)
				if ce.Errors[0].Message != c.message {
					t.Errorf("message %q, want %q", ce.Errors[0].Message, c.message)
				}
				if got := resp.Header.Get("Content-Type"); got != "application/json; charset=utf-8" {
					t.Errorf("Content-Type %q", got)
				}
				if c.message == "Expired access token." && ce.Errors[0].ExpiredAt != "2020-01-01T00:00:00Z" {
					t.Errorf("expired_at %q", ce.Errors[0].ExpiredAt)
				}
				if c.message == "user authorization required" && ce.Status != "unauthenticated" {
					t.Errorf("status field %q", ce.Status)
				}
			}
			gotChallenge := resp.Header.Get("WWW-Authenticate")
			if c.challenge && gotChallenge != `Bearer realm="canvas-lms"` {
				t.Errorf("WWW-Authenticate %q, want the Canvas challenge", gotChallenge)
			}
			if !c.challenge && gotChallenge != "" {
				t.Errorf("unexpected WWW-Authenticate %q", gotChallenge)
			}
			if c.forwarded {
				got := up.one(t)
				if got.Method != c.method || got.Path != c.target {
					t.Errorf("upstream got %s %s, want %s %s", got.Method, got.Path, c.method, c.target)
				}
			} else {
				up.none(t)
			}
		})
	}
	// Denials are logged with key, token id and reason, never the token.
	logs := in.logText()
	if !strings.Contains(logs, `"token_id":"`+sha(tokA)[:12]+`"`) || !strings.Contains(logs, `"developer_key":"vendor-a"`) {
		t.Errorf("denial log lacks developer_key/token_id:\n%s", logs)
	}
	for _, tok := range []string{tokA, tokDisabled, tokExpired, tokReport, upstreamTok} {
		if strings.Contains(logs, tok) {
			t.Errorf("a token appears in the log")
		}
	}
	if !strings.Contains(logs, `"needed_scope":"url:GET|/api/v1/accounts"`) {
		t.Errorf("report-mode log does not name the needed scope:\n%s", logs)
	}
}

// The upstream receives exactly the canonical path the decision was made on.
func TestCanonicalPathIsForwarded(t *testing.T) {
	in, up := startGate(t, "")
	cases := []struct{ target, want string }{
		{"/api/v1//courses/1%2f2/", "/api/v1/courses/1%2F2"},
		{"//api/v1/courses/", "/api/v1/courses"},
		{"/api/v1/courses/sis_course_id:A.B", "/api/v1/courses/sis_course_id:A.B"},
		{"/api/v1/courses/7/assignments?per_page=10&page=2", "/api/v1/courses/7/assignments?per_page=10&page=2"},
	}
	for _, c := range cases {
		raw := in.rawRequest("GET " + c.target + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tokA + "\r\nConnection: close\r\n\r\n")
		if rawStatus(raw) != "200" {
			t.Fatalf("%s: %s", c.target, raw)
		}
		if got := up.one(t).RequestURI; got != c.want {
			t.Errorf("%s forwarded as %s, want %s", c.target, got, c.want)
		}
	}
	refused := []string{"/api/v1/courses/../accounts", "/api/v1/courses/%2e%2e/accounts", "/api/v1/courses/7/%2E/assignments", "/api/v1/courses%5c7", "/api/v1/courses/7;x", "/api/v1/courses/%00"}
	for _, target := range refused {
		raw := in.rawRequest("GET " + target + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tokA + "\r\nConnection: close\r\n\r\n")
		if rawStatus(raw) != "400" || !strings.Contains(raw, `{"errors":[{"message":"refused path`) {
			t.Errorf("%s: want a 400 Canvas-shaped error, got %q", target, raw)
		}
		up.none(t)
	}
}

func TestIncludeFiltering(t *testing.T) {
	in, up := startGate(t, "")
	// Query: arrays cut down to uuid, scalars removed, everything else byte-identical.
	resp, body := in.do(in.request("GET", "/api/v1/courses?per_page=10&include[]=enrollments&include[]=uuid&includes=term&page=2", tokA, nil))
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if got := up.one(t).RawQuery; got != "per_page=10&include[]=uuid&page=2" {
		t.Errorf("query forwarded as %q", got)
	}
	// A key with allow_includes keeps them.
	in.do(in.request("GET", "/api/v1/courses?include[]=enrollments", tokIncludes, nil))
	if got := up.one(t).RawQuery; got != "include[]=enrollments" {
		t.Errorf("allow_includes key: query %q", got)
	}
	// JSON body.
	req := in.request("POST", "/api/v1/courses/7/assignments", tokA, strings.NewReader(`{"assignment":{"name":"x"}, "include":["all_dates","uuid"], "n":1}`))
	req.Header.Set("Content-Type", "application/json")
	in.do(req)
	got := up.one(t)
	if string(got.Body) != `{"assignment":{"name":"x"}, "include":["uuid"], "n":1}` {
		t.Errorf("JSON body forwarded as %s", got.Body)
	}
	if got.CL != int64(len(got.Body)) || len(got.TE) != 0 {
		t.Errorf("framing: Content-Length %d for %d bytes, TE %v", got.CL, len(got.Body), got.TE)
	}
	// Form body, sent chunked: rewritten with a fixed Content-Length.
	req = in.request("POST", "/api/v1/courses/7/assignments", tokA, strings.NewReader("assignment[name]=x&include=all_dates"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.ContentLength = -1
	in.do(req)
	got = up.one(t)
	if string(got.Body) != "assignment[name]=x" || got.CL != int64(len(got.Body)) || len(got.TE) != 0 {
		t.Errorf("form body forwarded as %q (CL %d, TE %v)", got.Body, got.CL, got.TE)
	}
}

func TestCredentialSubstitution(t *testing.T) {
	in, up := startGate(t, "")
	req := in.request("GET", "/api/v1/courses?page=2", tokSub, nil)
	req.Header.Set("Cookie", "canvas_session=abc; _csrf_token=x")
	resp, body := in.do(req)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	got := up.one(t)
	if a := got.Header.Values("Authorization"); len(a) != 1 || a[0] != "Bearer "+upstreamTok {
		t.Errorf("upstream Authorization %q", a)
	}
	if c := got.Header.Get("Cookie"); c != "" {
		t.Errorf("cookie forwarded: %q", c)
	}
	// The credential in the query is stripped, the rest kept.
	resp, _ = in.do(in.request("GET", "/api/v1/courses?page=2&access_token="+tokSub+"&per_page=5", "", nil))
	if resp.StatusCode != 200 {
		t.Fatalf("query credential: status %d", resp.StatusCode)
	}
	got = up.one(t)
	if got.RawQuery != "page=2&per_page=5" || got.Header.Get("Authorization") != "Bearer "+upstreamTok {
		t.Errorf("query credential: upstream got %q with %q", got.RawQuery, got.Header.Get("Authorization"))
	}
	// Connection: Authorization must not make the proxy drop the injected header.
	req = in.request("GET", "/api/v1/courses", tokSub, nil)
	req.Header.Set("Connection", "Authorization")
	in.do(req)
	if a := up.one(t).Header.Get("Authorization"); a != "Bearer "+upstreamTok {
		t.Errorf("with Connection: Authorization, upstream Authorization %q", a)
	}
	// The upstream token never shows in the config API.
	resp, body = in.do(mustReq(t, "GET", in.admin+"/config/"))
	if resp.StatusCode != 200 || strings.Contains(string(body), upstreamTok) {
		t.Errorf("/config/ exposes the upstream token or failed (%d)", resp.StatusCode)
	}
}

func TestMethodOverrideAndMasquerade(t *testing.T) {
	in, up := startGate(t, "")
	req := in.request("POST", "/api/v1/courses/7/assignments", tokA, strings.NewReader("_method=DELETE"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, body := in.do(req); resp.StatusCode != 400 {
		t.Errorf("_method: status %d %s", resp.StatusCode, body)
	}
	req = in.request("POST", "/api/v1/courses/7/assignments", tokA, nil)
	req.Header.Set("X-HTTP-Method-Override", "DELETE")
	if resp, _ := in.do(req); resp.StatusCode != 400 {
		t.Errorf("X-HTTP-Method-Override: status %d", resp.StatusCode)
	}
	up.none(t)
	resp, body := in.do(in.request("GET", "/api/v1/courses?as_user_id=5", tokA, nil))
	if resp.StatusCode != 401 || decodeError(t, body).Errors[0].Message != "Insufficient scopes on access token." {
		t.Errorf("as_user_id without allow_masquerade: %d %s", resp.StatusCode, body)
	}
	up.none(t)
	if resp, _ := in.do(in.request("GET", "/api/v1/courses?as_user_id=5", tokMasq, nil)); resp.StatusCode != 200 {
		t.Errorf("as_user_id with allow_masquerade: %d", resp.StatusCode)
	}
	if q := up.one(t).RawQuery; q != "as_user_id=5" {
		t.Errorf("masquerade query %q", q)
	}
	// Two different credentials are refused.
	resp, _ = in.do(in.request("GET", "/api/v1/courses?access_token="+tokMasq, tokA, nil))
	if resp.StatusCode != 400 {
		t.Errorf("conflicting credentials: %d", resp.StatusCode)
	}
	up.none(t)
}

func TestHotReload(t *testing.T) {
	in, up := startGate(t, "")
	if resp, _ := in.do(in.request("GET", "/api/v1/accounts", tokA, nil)); resp.StatusCode != 401 {
		t.Fatalf("before reload: %d", resp.StatusCode)
	}
	// Grant the scope: the poller picks it up.
	keys := strings.Replace(gateKeys(), `{"id": "vendor-a", "name": "Vendor A", "scopes": [`, `{"id": "vendor-a", "name": "Vendor A", "scopes": ["url:GET|/api/v1/accounts", `, 1)
	writeFile(t, in.keysPath, keys)
	waitFor(t, func() bool {
		resp, _ := in.do(in.request("GET", "/api/v1/accounts", tokA, nil))
		return resp.StatusCode == 200
	})
	up.take()
	// A broken file keeps the last good store and is logged with file:line.
	writeFile(t, in.keysPath, strings.Replace(keys, `"id": "vendor-a"`, `"id": "vendor-a", "colour": "red"`, 1))
	waitFor(t, func() bool {
		return strings.Contains(in.logText(), "keys.json:3: developer_keys[0].colour: unknown field")
	})
	if resp, _ := in.do(in.request("GET", "/api/v1/accounts", tokA, nil)); resp.StatusCode != 200 {
		t.Errorf("after a bad file the last good store must stay: %d", resp.StatusCode)
	}
	// The admin endpoint forces a reload and reports the error.
	resp, body := in.do(mustReq(t, "POST", in.admin+"/canvas_scopes/reload"))
	if resp.StatusCode != 422 || !strings.Contains(string(body), "unknown field") {
		t.Errorf("admin reload of a bad file: %d %s", resp.StatusCode, body)
	}
	writeFile(t, in.keysPath, gateKeys())
	resp, body = in.do(mustReq(t, "POST", in.admin+"/canvas_scopes/reload"))
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"reloaded":true`) {
		t.Errorf("admin reload: %d %s", resp.StatusCode, body)
	}
	if resp, _ := in.do(in.request("GET", "/api/v1/accounts", tokA, nil)); resp.StatusCode != 401 {
		t.Errorf("after reverting: %d", resp.StatusCode)
	}
	// The key list carries no hashes and no secrets.
	resp, body = in.do(mustReq(t, "GET", in.admin+"/canvas_scopes/keys"))
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"id":"vendor-sub"`) || strings.Contains(string(body), sha(tokA)) || strings.Contains(string(body), upstreamTok) {
		t.Errorf("keys listing: %d %s", resp.StatusCode, body)
	}
}

func TestBadKeysFileRefusesToStart(t *testing.T) {
	dir := t.TempDir()
	keys := dir + "/keys.json"
	writeFile(t, keys, `{"developer_keys":[{"id":"a","scopes":["url:GET|/api/v1/course/:course_id/rubric"]}]}`)
	cfg := dir + "/Caddyfile"
	writeFile(t, cfg, "http://:0 {\n\tcanvas_scopes {\n\t\tkeys_file "+keys+"\n\t}\n\trespond ok\n}\n")
	out, err := runCaddy(t, "validate", "--config", cfg, "--adapter", "caddyfile")
	if err == nil {
		t.Fatalf("validate accepted a bad keys file:\n%s", out)
	}
	if !strings.Contains(out, "keys.json:1: developer_keys[0].scopes[0]") || !strings.Contains(out, "did you mean") || !strings.Contains(out, "url:GET|/api/v1/courses/:course_id/rubrics") {
		t.Errorf("error lacks file:line, field or suggestion:\n%s", out)
	}
}

func mustReq(t *testing.T, method, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func writeFile(t testing.TB, path, data string) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Bodies over max_body_size: 413 where the gate must read them, streamed
// untouched where Canvas would read no credential from them (off /api/, no
// credential in header or query: browser uploads in a transparent front).
func TestOversizedBodies(t *testing.T) {
	in, up := startGate(t, "max_body_size 1KB")
	big := "a=" + strings.Repeat("x", 4000)
	cases := []struct {
		target, token string
		chunked       bool
		status        int
		streamed      bool
	}{
		{"/courses/1/files", "", false, 200, true},
		{"/courses/1/files", "", true, 200, true},
		{"/api/v1/courses/1/files", "", false, 413, false},
		{"/courses/1/files", tokUnscoped, false, 413, false},
		{"/courses/1/files?access_token=" + tokUnscoped, "", true, 413, false},
		{"/courses/1/files?%61ccess_token=" + tokUnscoped, "", false, 413, false},
	}
	for _, c := range cases {
		req := in.request("POST", c.target, c.token, strings.NewReader(big))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if c.chunked {
			req.ContentLength = -1
		}
		resp, body := in.do(req)
		if resp.StatusCode != c.status {
			t.Errorf("%s (token %v, chunked %v): status %d, want %d: %s", c.target, c.token != "", c.chunked, resp.StatusCode, c.status, body)
		}
		if c.streamed {
			if got := up.one(t); string(got.Body) != big {
				t.Errorf("%s: upstream got %d body bytes, want the original %d", c.target, len(got.Body), len(big))
			}
		} else {
			up.none(t)
			if c.status == 413 && !strings.Contains(string(body), "larger than the 1000 bytes") {
				t.Errorf("413 body %s", body)
			}
		}
	}
}

// The compiled store is shared across `caddy reload` (UsagePool): a forced
// config reload does not rebuild it, and an edited keys file is picked up
// by the reload even with polling off.
func TestStoreSurvivesConfigReload(t *testing.T) {
	in, up := startGate(t, "reload_interval 0")
	loadedAt := func() string {
		_, body := in.do(mustReq(t, "GET", in.admin+"/canvas_scopes/keys"))
		var keys []struct {
			LoadedAt string `json:"loaded_at"`
		}
		if err := json.Unmarshal(body, &keys); err != nil || len(keys) == 0 {
			t.Fatalf("keys listing %s: %v", body, err)
		}
		return keys[0].LoadedAt
	}
	cfg := in.dir + "/Caddyfile"
	reload := func() {
		t.Helper()
		out, err := runCaddy(t, "reload", "--config", cfg, "--adapter", "caddyfile", "--address", strings.TrimPrefix(in.admin, "http://"), "--force")
		if err != nil {
			t.Fatalf("caddy reload: %v\n%s", err, out)
		}
	}
	before := loadedAt()
	time.Sleep(1100 * time.Millisecond) // loaded_at has one-second resolution
	reload()
	if after := loadedAt(); after != before {
		t.Errorf("config reload rebuilt the store: loaded_at %s → %s", before, after)
	}
	if resp, _ := in.do(in.request("GET", "/api/v1/courses", tokA, nil)); resp.StatusCode != 200 {
		t.Fatalf("after reload: %d", resp.StatusCode)
	}
	up.take()
	// With polling off, an edited keys file is picked up by a forced reload.
	writeFile(t, in.keysPath, strings.Replace(gateKeys(), `"scopes": ["url:GET|/api/v1/courses"], "mode": "report"`, `"scopes": ["url:GET|/api/v1/courses"]`, 1))
	if resp, _ := in.do(in.request("GET", "/api/v1/accounts", tokReport, nil)); resp.StatusCode != 200 {
		t.Fatalf("report mode before the reload: %d", resp.StatusCode)
	}
	reload()
	if resp, _ := in.do(in.request("GET", "/api/v1/accounts", tokReport, nil)); resp.StatusCode != 401 {
		t.Errorf("edited keys file not picked up by caddy reload --force: %d", resp.StatusCode)
	}
}

// Handler-wide report mode never blocks: denials, requests without a
// credential and requests the gate would refuse are forwarded as received,
// counted and logged as would_deny.
func TestHandlerReportModeForwardsEverything(t *testing.T) {
	in, up := startGate(t, "mode report")
	for _, c := range []struct{ target, token, logMsg string }{
		{"/api/v1/accounts?include[]=x", tokA, "request would be denied (report mode)"},
		{"/api/v1/courses", "", "request would be denied (report mode)"},
		{"/api/v1/courses/7;x", tokA, "request would be refused (report mode)"},
	} {
		raw := "GET " + c.target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
		if c.token != "" {
			raw += "Authorization: Bearer " + c.token + "\r\n"
		}
		if resp := in.rawRequest(raw + "\r\n"); rawStatus(resp) != "200" {
			t.Errorf("%s: %q", c.target, resp)
		}
		if got := up.one(t); got.RequestURI != c.target {
			t.Errorf("%s forwarded as %s", c.target, got.RequestURI)
		}
		if !strings.Contains(in.logText(), c.logMsg) {
			t.Errorf("%s: log lacks %q", c.target, c.logMsg)
		}
	}
	// Allowed requests are not filtered in report mode either.
	in.do(in.request("GET", "/api/v1/courses?include[]=teachers", tokA, nil))
	if q := up.one(t).RawQuery; q != "include[]=teachers" {
		t.Errorf("report mode filtered includes: %q", q)
	}
}

// A broken keys file is reported once, not on every poll tick.
func TestBrokenKeysFileLoggedOnce(t *testing.T) {
	in, _ := startGate(t, "")
	writeFile(t, in.keysPath, `{"developer_keys": [{"id": 1}]}`)
	waitFor(t, func() bool { return strings.Contains(in.logText(), "keys file reload failed") })
	time.Sleep(600 * time.Millisecond) // six more poll ticks at 100ms
	if n := strings.Count(in.logText(), "keys file reload failed"); n != 1 {
		t.Errorf("broken file logged %d times, want once until it changes", n)
	}
}

// The documented placeholders reach later handlers: reverse_proxy's
// header_up sees them on forwarded requests, and a deferred response header
// sees them on the gate's own denials.
func TestPlaceholders(t *testing.T) {
	up := newUpstream(t)
	in := startCaddy(t, up, siteConfig{
		KeysJSON: gateKeys(),
		Site:     "header >X-Gate {http.canvas_scopes.decision}|{http.canvas_scopes.developer_key}|{http.canvas_scopes.token_id}|{http.canvas_scopes.scope}",
		Env:      []string{"TEST_UPSTREAM_TOKEN=" + upstreamTok},
	})
	idA := sha(tokA)[:12]
	cases := []struct {
		name, method, target, token string
		status                      int
		want                        string
	}{
		{"allowed", "GET", "/api/v1/courses/7/assignments", tokA, 200, "allowed|vendor-a|" + idA + "|url:GET|/api/v1/courses/:course_id/assignments"},
		{"insufficient scope", "GET", "/api/v1/accounts", tokA, 401, "insufficient_scope|vendor-a|" + idA + "|"},
		{"unknown token", "GET", "/api/v1/courses", "test-only-not-registered", 401, "invalid_token||" + sha("test-only-not-registered")[:12] + "|"},
		{"no credential", "GET", "/api/v1/courses", "", 401, "no_credential|||"},
		{"no credential off /api/", "GET", "/login", "", 200, "no_credential|||"},
		{"refused path", "GET", "/api/v1/courses/%2e%2e/accounts", tokA, 400, "bad_request|||"},
		{"refused method override", "GET", "/api/v1/courses?_method=DELETE", tokA, 400, "bad_request|||"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := in.do(in.request(c.method, c.target, c.token, nil))
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, body)
			}
			if got := resp.Header.Get("X-Gate"); got != c.want {
				t.Errorf("X-Gate %q, want %q", got, c.want)
			}
			if c.status == 200 {
				up.one(t)
			} else {
				up.none(t)
			}
		})
	}
}
