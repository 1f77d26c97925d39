package gate

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/confine"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/params"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/policy"
)

const testKeys = `{
  "developer_keys": [
    {"id": "scoped", "scopes": ["url:GET|/api/v1/courses", "url:GET|/api/v1/courses/:course_id/assignments"]},
    {"id": "includes", "scopes": ["url:GET|/api/v1/courses"], "allow_includes": true},
    {"id": "open", "require_scopes": false},
    {"id": "watch", "scopes": ["url:GET|/api/v1/courses"], "mode": "report"},
    {"id": "subst", "scopes": ["url:GET|/api/v1/courses"], "upstream_token": "upstream-secret"}
  ],
  "tokens": [
    {"sha256": "H(scoped)", "developer_key": "scoped"},
    {"sha256": "H(includes)", "developer_key": "includes"},
    {"sha256": "H(open)", "developer_key": "open"},
    {"sha256": "H(watch)", "developer_key": "watch"},
    {"sha256": "H(subst)", "developer_key": "subst"}
  ]
}`

func testStore(t *testing.T) *policy.Store {
	t.Helper()
	data := testKeys
	for _, n := range []string{"scoped", "includes", "open", "watch", "subst"} {
		h := sha256.Sum256([]byte("tok-" + n))
		data = strings.Replace(data, "H("+n+")", hex.EncodeToString(h[:]), 1)
	}
	s, err := policy.Load("keys.json", []byte(data), policy.ParseOptions{}, policy.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// facts builds the facts the shell would read from method, target and an
// Authorization token.
func facts(t *testing.T, method, target, token string) *Facts {
	t.Helper()
	path, query, _ := strings.Cut(target, "?")
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	insp, err := params.Inspect(params.Request{Method: method, Header: h, RawQuery: query}, params.DefaultLimits())
	if err != nil {
		return &Facts{Method: method, Path: path, Refusal: &Refusal{Status: 400, Message: "malformed request parameters"}}
	}
	t.Cleanup(insp.Release)
	f := &Facts{Method: method, Path: path, Params: insp, Now: time.Unix(1_800_000_000, 0)}
	f.SetCredential(insp.Token)
	return f
}

func TestDecide(t *testing.T) {
	st := State{Store: testStore(t)}
	type want struct {
		action   Action
		label    Label
		enforced Label
		canon    bool
		filter   bool
		upstream string
	}
	cases := []struct {
		name                  string
		cfg                   Config
		method, target, token string
		refusal               *Refusal
		want                  want
	}{
		{"allowed, include filter on", Config{}, "GET", "/api/v1/courses", "tok-scoped", nil,
			want{Forward, LabelAllowed, LabelAllowed, true, true, ""}},
		{"allowed, allow_includes", Config{}, "GET", "/api/v1/courses", "tok-includes", nil,
			want{Forward, LabelAllowed, LabelAllowed, true, false, ""}},
		{"allowed, key without scopes filters nothing", Config{}, "DELETE", "/api/v1/accounts/1", "tok-open", nil,
			want{Forward, LabelAllowed, LabelAllowed, true, false, ""}},
		{"insufficient scope", Config{}, "POST", "/api/v1/courses", "tok-scoped", nil,
			want{Deny, LabelInsufficient, LabelInsufficient, false, false, ""}},
		{"masquerade without allow_masquerade", Config{}, "GET", "/api/v1/courses?as_user_id=5", "tok-scoped", nil,
			want{Deny, LabelInsufficient, LabelInsufficient, false, false, ""}},
		{"unknown token denied", Config{}, "GET", "/api/v1/courses", "nope", nil,
			want{Deny, LabelInvalid, LabelInvalid, false, false, ""}},
		{"unknown token passed", Config{UnknownTokensPass: true}, "GET", "/api/v1/courses", "nope", nil,
			want{Pass, LabelPassthrough, LabelPassthrough, true, false, ""}},
		{"key in report mode forwards unfiltered", Config{}, "POST", "/api/v1/courses", "tok-watch", nil,
			want{Forward, LabelWouldDeny, LabelInsufficient, true, false, ""}},
		{"key in report mode, allowed, not filtered", Config{}, "GET", "/api/v1/courses", "tok-watch", nil,
			want{Forward, LabelAllowed, LabelAllowed, true, false, ""}},
		{"handler report mode forwards a denial", Config{ReportOnly: true}, "POST", "/api/v1/courses", "tok-scoped", nil,
			want{Forward, LabelWouldDeny, LabelInsufficient, true, false, ""}},
		{"substitution on an allowed request", Config{}, "GET", "/api/v1/courses", "tok-subst", nil,
			want{Forward, LabelAllowed, LabelAllowed, true, true, "upstream-secret"}},
		{"no substitution on a denial", Config{}, "POST", "/api/v1/courses", "tok-subst", nil,
			want{Deny, LabelInsufficient, LabelInsufficient, false, false, ""}},
		{"substitution in report mode", Config{ReportOnly: true}, "POST", "/api/v1/courses", "tok-subst", nil,
			want{Forward, LabelWouldDeny, LabelInsufficient, true, false, "upstream-secret"}},
		{"method override refused", Config{}, "GET", "/api/v1/courses?_method=DELETE", "tok-scoped", nil,
			want{Refuse, LabelBadRequest, LabelBadRequest, false, false, ""}},
		{"anonymous on /api/ denied", Config{}, "GET", "/api/v1/courses", "", nil,
			want{Deny, LabelNoCredential, LabelNoCredential, false, false, ""}},
		{"anonymous on /api/ in report mode", Config{ReportOnly: true}, "GET", "/api/v1/courses", "", nil,
			want{Pass, LabelWouldDeny, LabelNoCredential, false, false, ""}},
		{"anonymous pass", Config{AnonymousPass: true}, "GET", "/api/v1/courses", "", nil,
			want{Pass, LabelPassthrough, LabelPassthrough, true, false, ""}},
		{"anonymous off /api/", Config{}, "GET", "/login", "", nil,
			want{Pass, LabelNoCredential, LabelNoCredential, false, false, ""}},
		{"refusal", Config{}, "GET", "/api/v1/courses", "tok-scoped", &Refusal{Status: 413, Message: "too large"},
			want{Refuse, LabelBadRequest, LabelBadRequest, false, false, ""}},
		{"refusal in report mode", Config{ReportOnly: true}, "GET", "/api/v1/courses", "tok-scoped", &Refusal{Status: 400, Message: "bad"},
			want{Pass, LabelWouldDeny, LabelBadRequest, false, false, ""}},
		{"streamable large body", Config{}, "POST", "/files_api", "", &Refusal{Status: 413, Message: "too large", Streamable: true},
			want{Pass, LabelPassthrough, LabelPassthrough, false, false, ""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := facts(t, c.method, c.target, c.token)
			if c.refusal != nil {
				f.Refusal = c.refusal
			}
			v := Decide(f, st, c.cfg)
			got := want{v.Action, v.Label, v.Enforced, v.CanonicalPath, v.FilterIncludes, v.Upstream}
			if got != c.want {
				t.Fatalf("verdict %+v\n got %+v\nwant %+v", v, got, c.want)
			}
			if v.Action == Refuse && (v.Status == 0 || v.Message == "") {
				t.Fatalf("a refusal needs a status and a message: %+v", v)
			}
			if c.token != "" && c.refusal == nil && v.Action != Refuse && (v.TokenID == "" || strings.Contains(v.TokenID, c.token)) {
				t.Fatalf("token id %q: want a hash prefix, never the token", v.TokenID)
			}
		})
	}
}

func TestIsTokenEndpoint(t *testing.T) {
	for path, want := range map[string]bool{
		"/login/oauth2/token":        true,
		"/login/oauth2/token.json":   true,
		"/login/oauth2/token.xml":    true,
		"/LOGIN/OAuth2/Token":        true,
		"/login/oauth2/%74oken":      true,
		"/login%2Foauth2%2Ftoken":    true,
		"/login/oauth2/token%2F":     true,
		"/login/oauth2/tokens":       false,
		"/login/oauth2/token/x":      false,
		"/login/oauth2/auth":         false,
		"/api/v1/login/oauth2/token": false,
		"/login/session_token":       false,
	} {
		if got := IsTokenEndpoint(path); got != want {
			t.Errorf("IsTokenEndpoint(%q) = %v, want %v", path, got, want)
		}
	}
}

// Confine turns the confinement step's answer into the final verdict.
func TestConfine(t *testing.T) {
	st := State{Store: testStore(t)}
	allowed := Decide(facts(t, "GET", "/api/v1/courses", "tok-scoped"), st, Config{})
	for _, c := range []struct {
		name     string
		res      confine.Result
		cfg      Config
		action   Action
		label    Label
		enforced Label
	}{
		{"inside", confine.Result{Outcome: confine.Inside}, Config{}, Forward, LabelAllowed, LabelAllowed},
		{"outside", confine.Result{Outcome: confine.Outside, Reason: "r"}, Config{}, Deny, LabelOutsideAccounts, LabelOutsideAccounts},
		{"look-up failed", confine.Result{Outcome: confine.Failed, Reason: "r"}, Config{}, Deny, LabelLookupFailed, LabelLookupFailed},
		{"outside in report mode", confine.Result{Outcome: confine.Outside, Reason: "r"}, Config{ReportOnly: true}, Forward, LabelWouldDeny, LabelOutsideAccounts},
	} {
		v := Confine(allowed, c.res, c.cfg)
		if v.Action != c.action || v.Label != c.label || v.Enforced != c.enforced || v.Confine {
			t.Errorf("%s: %v %s %s (confine %v)", c.name, v.Action, v.Label, v.Enforced, v.Confine)
		}
		if c.res.Outcome != confine.Inside && (v.Confinement == nil || v.Upstream != "" && v.Action == Deny) {
			t.Errorf("%s: the answer is not kept for the log, or a denial carries the upstream token", c.name)
		}
	}
}

// A stale store refuses credentialed requests with 503 and lets the rest be.
func TestDecideStale(t *testing.T) {
	st := State{Store: testStore(t), Stale: true}
	if v := Decide(facts(t, "GET", "/api/v1/courses", "tok-scoped"), st, Config{}); v.Action != Refuse || v.Status != 503 {
		t.Errorf("credentialed: %v %d", v.Action, v.Status)
	}
	if v := Decide(facts(t, "GET", "/api/v1/courses", "tok-scoped"), st, Config{ReportOnly: true}); v.Action != Pass || v.Label != LabelWouldDeny {
		t.Errorf("report mode: %v %s", v.Action, v.Label)
	}
	if v := Decide(facts(t, "GET", "/login", ""), st, Config{}); v.Action != Pass {
		t.Errorf("anonymous off /api/: %v", v.Action)
	}
}
