package policy

import (
	"strings"
	"testing"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/matcher"
)

// A key with upstream_token that holds a scope minting credentials of the
// upstream user is refused at load, naming the file, line, field, the
// reason and the way to acknowledge it; the acknowledgement, or no
// upstream_token, loads.
func TestMintingScopesNeedAcknowledgementWithUpstreamToken(t *testing.T) {
	const secret = "test-only-literal-upstream-secret"
	cases := []struct {
		name, key string
		unknown   bool
		field     string // "" when the file must load
		line      int
		contains  []string
	}{
		{"session token", `{"id": "v", "upstream_token": "` + secret + `",
     "scopes": ["url:GET|/api/v1/courses",
                "url:GET|/api/v1/login/session_token"]}`, false,
			"developer_keys[0].scopes[1]", 5, []string{`"url:GET|/api/v1/login/session_token"`, "one-time login URL", `"allow_upstream_credential_minting": true`}},
		{"user tokens", `{"id": "v", "upstream_token": "{env.X}", "scopes": ["url:POST|/api/v1/users/:user_id/tokens"]}`, false,
			"developer_keys[0].scopes[0]", 3, []string{"creates a Canvas access token"}},
		{"inst access tokens", `{"id": "v", "upstream_token": "{env.X}", "scopes": ["url:POST|/api/v1/inst_access_tokens"]}`, false,
			"developer_keys[0].scopes[0]", 3, []string{"InstAccess"}},
		{"a catalogue scope whose pattern matches a minting route", `{"id": "v", "upstream_token": "{env.X}", "scopes": ["url:GET|/api/v1/courses/:course_id/external_tools/:external_tool_id"]}`, false,
			"developer_keys[0].scopes[0]", 3, []string{`also matches "url:GET|/api/v1/courses/:course_id/external_tools/sessionless_launch"`}},
		{"an unknown glob scope", `{"id": "v", "upstream_token": "{env.X}", "scopes": ["url:POST|/api/v1/users/*rest"]}`, true,
			"developer_keys[0].scopes[0]", 3, []string{`also matches "url:POST|/api/v1/users/:user_id/tokens"`}},
		{"an unknown literal scope", `{"id": "v", "upstream_token": "{env.X}", "scopes": ["url:POST|/api/v1/users/self/tokens"]}`, true,
			"developer_keys[0].scopes[0]", 3, []string{`also matches "url:POST|/api/v1/users/:user_id/tokens"`}},
		{"non-API session token", `{"id": "v", "upstream_token": "{env.X}", "scopes": ["url:GET|/login/session_token"]}`, true,
			"developer_keys[0].scopes[0]", 3, []string{"web session"}},
		{"unscoped key", `{"id": "v", "upstream_token": "{env.X}",
     "require_scopes": false}`, false,
			"developer_keys[0].require_scopes", 4, []string{"every Canvas endpoint", "allow_upstream_credential_minting"}},
		{"acknowledged", `{"id": "v", "upstream_token": "{env.X}", "allow_upstream_credential_minting": true, "scopes": ["url:GET|/api/v1/login/session_token", "url:POST|/api/v1/users/:user_id/tokens"]}`, false,
			"", 0, nil},
		{"acknowledged unscoped", `{"id": "v", "upstream_token": "{env.X}", "allow_upstream_credential_minting": true, "require_scopes": false}`, false,
			"", 0, nil},
		{"explicitly not acknowledged", `{"id": "v", "upstream_token": "{env.X}", "allow_upstream_credential_minting": false, "scopes": ["url:POST|/api/v1/jwts"]}`, false,
			"developer_keys[0].scopes[0]", 3, []string{"services JWT"}},
		{"no upstream token: the client's own token", `{"id": "v", "scopes": ["url:GET|/api/v1/login/session_token", "url:POST|/api/v1/users/:user_id/tokens"]}`, false,
			"", 0, nil},
		{"ordinary scopes", `{"id": "v", "upstream_token": "{env.X}", "scopes": ["url:GET|/api/v1/courses", "url:GET|/api/v1/users/:user_id/tokens/:id", "url:DELETE|/api/v1/users/:user_id/tokens/:id", "url:GET|/api/v1/courses/:course_id/external_tools"]}`, false,
			"", 0, nil},
		{"the acknowledgement without upstream_token", `{"id": "v", "scopes": ["url:GET|/api/v1/courses"],
     "allow_upstream_credential_minting": true}`, false,
			"developer_keys[0].allow_upstream_credential_minting", 4, []string{"no effect without upstream_token"}},
	}
	for _, tc := range cases {
		data := "{\n  \"developer_keys\": [\n    " + tc.key + "\n  ]\n}"
		_, err := ParseKeysFile("keys.json", []byte(data), ParseOptions{AllowUnknownScopes: tc.unknown})
		if tc.field == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		errs, ok := err.(ConfigErrors)
		if !ok || len(errs) != 1 {
			t.Errorf("%s: got %v, want one error", tc.name, err)
			continue
		}
		e := errs[0]
		if e.Field != tc.field || e.Line != tc.line {
			t.Errorf("%s: error at line %d field %s, want line %d field %s: %v", tc.name, e.Line, e.Field, tc.line, tc.field, e)
		}
		for _, want := range tc.contains {
			if !strings.Contains(e.Error(), want) {
				t.Errorf("%s: %q does not say %q", tc.name, e.Error(), want)
			}
		}
		if !strings.HasPrefix(e.Error(), "keys.json:") || strings.Contains(e.Error(), secret) {
			t.Errorf("%s: %q", tc.name, e.Error())
		}
	}
}

// Every listed route is a well-formed scope, in the catalogue unless it is
// a non-API Canvas route.
func TestMintingRoutesAreScopes(t *testing.T) {
	for _, m := range mintingRoutes {
		if _, err := matcher.ParseScope(m.scope); err != nil {
			t.Errorf("%s: %v", m.scope, err)
		}
		if ok, _ := matcher.CheckCatalogue(m.scope); !ok && strings.HasPrefix(m.scope[strings.IndexByte(m.scope, '|')+1:], "/api/") {
			t.Errorf("%s is not in the catalogue", m.scope)
		}
	}
}

func TestPathsOverlap(t *testing.T) {
	for _, tc := range []struct {
		p, q string
		want bool
	}{
		{"/api/v1/users/:user_id/tokens", "/api/v1/users/:user_id/tokens", true},
		{"/api/v1/users/self/tokens", "/api/v1/users/:user_id/tokens", true},
		{"/api/v1/users/*rest", "/api/v1/users/:user_id/tokens", true},
		{"/api/v1/*rest", "/api/v1/login/session_token", true},
		{"/api/v1/users/:id", "/api/v1/users/:user_id/tokens", false},
		{"/api/v1/users/:user_id/tokens/:id", "/api/v1/users/:user_id/tokens", false},
		{"/api/v1/users/:user_id/tokens.json", "/api/v1/users/:user_id/tokens", true}, // format suffix
		{"/api/v1/users/:user_id/tokens(/:x)", "/api/v1/users/:user_id/tokens/:id", true},
		{"/api/v1/users/:user_id(/tokens)", "/api/v1/users/:user_id/tokens", true},
		{"/api/v1/courses", "/api/v1/login/session_token", false},
		{"/api/v1/login/:x", "/api/v1/login/session_token", true},
		{"/api/v1/login/:x/more", "/api/v1/login/session_token", false},
		{"/login/session_token", "/api/v1/login/session_token", false},
		{"/api/v1/jwts", "/api/v1/jwts/refresh", false},
		{"/api/v1/jwts/:x", "/api/v1/jwts/refresh", true},
	} {
		if got := pathsOverlap(tc.p, tc.q); got != tc.want {
			t.Errorf("pathsOverlap(%q, %q) = %v, want %v", tc.p, tc.q, got, tc.want)
		}
		if got := pathsOverlap(tc.q, tc.p); got != tc.want {
			t.Errorf("pathsOverlap(%q, %q) = %v, want %v", tc.q, tc.p, got, tc.want)
		}
	}
}
