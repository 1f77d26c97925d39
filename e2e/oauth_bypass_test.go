package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
)

// Test-only credentials of the token-endpoint and client-secret cases.
const (
	tbTokSub     = "test-only-token-endpoint-substituted"
	tbTokPlain   = "test-only-token-endpoint-own-canvas-token"
	tbTokShadow  = "test-only-token-endpoint-report-mode"
	tbTokOpen    = "test-only-token-endpoint-unscoped"
	tbJobSecret  = "test-only-client-secret-token-endpoint"
	tbScopesJSON = `"url:GET|/api/v1/courses", "url:GET|/api/v1/courses/:id"`
)

func tokenEndpointKeys() string {
	return fmt.Sprintf(`{
  "developer_keys": [
    {"id": "sub", "scopes": [%[1]s], "upstream_token": "{env.TEST_UPSTREAM_TOKEN}"},
    {"id": "plain", "scopes": [%[1]s]},
    {"id": "shadow", "scopes": [%[1]s], "upstream_token": "{env.TEST_UPSTREAM_TOKEN}", "mode": "report"},
    {"id": "open", "require_scopes": false, "upstream_token": "{env.TEST_UPSTREAM_TOKEN}", "allow_upstream_credential_minting": true}
  ],
  "tokens": [
    {"sha256": "%[2]s", "developer_key": "sub"},
    {"sha256": "%[3]s", "developer_key": "plain"},
    {"sha256": "%[4]s", "developer_key": "shadow"},
    {"sha256": "%[5]s", "developer_key": "open"}
  ],
  "clients": [
    {"client_id": "job", "secret_sha256": "%[6]s", "developer_key": "sub"}
  ]
}`, tbScopesJSON, sha(tbTokSub), sha(tbTokPlain), sha(tbTokShadow), sha(tbTokOpen), sha(tbJobSecret))
}

func startTokenEndpointGate(t *testing.T) (*instance, *upstream) {
	t.Helper()
	up := newUpstream(t)
	in := startCaddy(t, up, siteConfig{
		KeysJSON: tokenEndpointKeys(),
		Gate:     "reload_interval 100ms\n" + oaSigningLine,
		Env:      []string{"TEST_UPSTREAM_TOKEN=" + upstreamTok, "TEST_SIGNING_KEY_OLD=" + oaSigningOld},
	})
	return in, up
}

// Canvas's DELETE /login/oauth2/token makes the presented token delete
// itself. With credential substitution that token would be the key's
// upstream token, shared by every client of the key, so the gate never
// forwards the token endpoint with a substituted credential, in any
// spelling or method, and answers for the client's own credential.
func TestTokenEndpointNeverForwardsASubstitutedCredential(t *testing.T) {
	in, up := startTokenEndpointGate(t)

	// A gateway token logging out is revoked at the gate, in every
	// spelling Rails routes to the endpoint (and the format suffix an
	// unscoped key may use).
	for _, target := range []string{"/login/oauth2/token", "/login/oauth2/token/", "//login//oauth2//token", "/login/oauth2//token//"} {
		tok := oaToken(t, in, "job", tbJobSecret, "", true).AccessToken
		if st, _ := oaCall(t, in, "GET", "/api/v1/courses", tok); st != 200 {
			t.Fatalf("fresh gateway token: %d", st)
		}
		up.one(t)
		resp, body := in.do(in.request("DELETE", target, tok, nil))
		if resp.StatusCode != 200 || string(body) != "{}" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Errorf("DELETE %s with a gateway token: %d %q, want 200 {}", target, resp.StatusCode, body)
		}
		up.none(t)
		if st, msg := oaCall(t, in, "GET", "/api/v1/courses", tok); st != 401 || msg != "Revoked access token." {
			t.Errorf("after DELETE %s the gateway token still works: %d %q", target, st, msg)
		}
		up.none(t)
	}

	// A keys-file token of a substitution key cannot delete itself: the
	// gate says so, in Canvas's logout error shape, and the token (and the
	// upstream token) keep working.
	for _, tc := range []struct{ name, target, token string }{
		{"header", "/login/oauth2/token", tbTokSub},
		{"trailing slash", "/login/oauth2/token/", tbTokSub},
		{"access_token in the query", "/login/oauth2/token?access_token=" + tbTokSub, ""},
		{"expire_sessions", "/login/oauth2/token?expire_sessions=1", tbTokSub},
		{"unscoped key, format suffix", "/login/oauth2/token.json", tbTokOpen},
		{"unscoped key, upper case", "/LOGIN/oauth2/Token", tbTokOpen},
		{"unscoped key, encoded", "/login/oauth2/%74oken", tbTokOpen},
		{"report-mode key", "/login/oauth2/token", tbTokShadow},
	} {
		resp, body := in.do(in.request("DELETE", tc.target, tc.token, nil))
		var got struct {
			Message string `json:"message"`
		}
		if resp.StatusCode != 400 || json.Unmarshal(body, &got) != nil || !strings.Contains(got.Message, "operator") {
			t.Errorf("%s: DELETE %s: %d %s, want 400 with the operator message", tc.name, tc.target, resp.StatusCode, body)
		}
		if strings.Contains(string(body), tbTokSub) || strings.Contains(string(body), upstreamTok) {
			t.Errorf("%s: a credential was echoed: %s", tc.name, body)
		}
		up.none(t)
	}
	if st, _ := oaCall(t, in, "GET", "/api/v1/courses", tbTokSub); st != 200 {
		t.Errorf("the keys-file token stopped working: %d", st)
	}
	if got := up.one(t); got.Header.Get("Authorization") != "Bearer "+upstreamTok {
		t.Errorf("upstream Authorization %q", got.Header.Get("Authorization"))
	}

	// Every other method is answered at the gate too.
	for _, tc := range []struct {
		method, target, ct, body string
		status                   int
	}{
		{"POST", "/login/oauth2/token", "application/x-www-form-urlencoded", "grant_type=refresh_token&client_id=1&client_secret=s&refresh_token=r", 400},
		{"POST", "/login/oauth2/token/", "application/json", `{"grant_type":"authorization_code","code":"c"}`, 400},
		{"GET", "/login/oauth2/token", "", "", 405},
		{"PUT", "//login/oauth2/token", "", "", 405},
		{"PATCH", "/login/oauth2/token", "", "", 405},
		{"HEAD", "/login/oauth2/token", "", "", 405},
		{"OPTIONS", "/login/oauth2/token", "", "", 405},
	} {
		req := in.request(tc.method, tc.target, tbTokSub, strings.NewReader(tc.body))
		if tc.ct != "" {
			req.Header.Set("Content-Type", tc.ct)
		}
		resp, body := in.do(req)
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s: %d %s, want %d", tc.method, tc.target, resp.StatusCode, body, tc.status)
		}
		if tc.method == "POST" && oaError(t, body) != "invalid_request" {
			t.Errorf("POST %s: %s, want invalid_request", tc.target, body)
		}
		up.none(t)
	}

	// The policy still comes first: a scoped substitution key has no scope
	// for the format-suffixed spelling (Canvas: insufficient scopes), also
	// in report mode, where the gate cannot forward it either.
	for _, tok := range []string{tbTokSub, tbTokShadow} {
		if st, msg := oaCall(t, in, "DELETE", "/login/oauth2/token.json", tok); st != 401 || msg != "Insufficient scopes on access token." {
			t.Errorf("DELETE /login/oauth2/token.json: %d %q", st, msg)
		}
		up.none(t)
	}

	// Without substitution the client's own Canvas token deletes itself,
	// as in Canvas.
	if st, _ := oaCall(t, in, "DELETE", "/login/oauth2/token", tbTokPlain); st != 200 {
		t.Errorf("DELETE with a key's own Canvas token: %d", st)
	}
	if got := up.one(t); got.Method != http.MethodDelete || got.Header.Get("Authorization") != "Bearer "+tbTokPlain {
		t.Errorf("upstream got %s with Authorization %q", got.Method, got.Header.Get("Authorization"))
	}
	if strings.Contains(in.logText(), upstreamTok) || strings.Contains(in.logText(), tbTokSub) {
		t.Error("a credential reached the log")
	}
}

// A token request that names a client registered with the gate is answered
// by the gate, whatever its shape, so that client's secret never reaches
// Canvas: before, a grant type only in the query, a body over the gate's
// 16 KiB token-request limit, or the id in an odd place sent the request,
// secret and all, on to Canvas.
func TestRegisteredClientSecretNeverReachesCanvas(t *testing.T) {
	in, up := startTokenEndpointGate(t)
	pad := "&pad=" + strings.Repeat("x", 20<<10)
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	_ = mw.WriteField("grant_type", "client_credentials")
	_ = mw.WriteField("client_id", "job")
	_ = mw.WriteField("client_secret", tbJobSecret)
	_ = mw.Close()
	for _, tc := range []struct {
		name, method, target, ct, body string
		basic                          bool
		status                         int
		code                           string
	}{
		{"grant type only in the query", "POST", "/login/oauth2/token?grant_type=client_credentials", "application/x-www-form-urlencoded", "client_id=job&client_secret=" + tbJobSecret, false, 400, "invalid_request"},
		{"grant type only in the query, Basic", "POST", "/login/oauth2/token?grant_type=client_credentials", "application/x-www-form-urlencoded", "", true, 400, "invalid_request"},
		{"body over the limit", "POST", "/login/oauth2/token", "application/x-www-form-urlencoded", "grant_type=client_credentials&client_id=job&client_secret=" + tbJobSecret + pad, false, 413, "invalid_request"},
		{"body over the limit, Basic", "POST", "/login/oauth2/token", "application/x-www-form-urlencoded", "grant_type=client_credentials" + pad, true, 413, "invalid_request"},
		{"client_id in the query", "POST", "/login/oauth2/token?client_id=job", "application/x-www-form-urlencoded", "grant_type=client_credentials&client_secret=" + tbJobSecret, false, 400, "invalid_request"},
		{"another grant type", "POST", "/login/oauth2/token", "application/x-www-form-urlencoded", "grant_type=refresh_token&refresh_token=r&client_id=job&client_secret=" + tbJobSecret, false, 400, "unsupported_grant_type"},
		{"bracketed client_id", "POST", "/login/oauth2/token", "application/x-www-form-urlencoded", "grant_type=client_credentials&client_id[]=job&client_secret=" + tbJobSecret, false, 400, "invalid_request"},
		{"leading bracket, as Rack reads it", "POST", "/login/oauth2/token", "application/x-www-form-urlencoded", "grant_type=client_credentials&%5Bclient_id%5D=job&client_secret=" + tbJobSecret, false, 400, "invalid_request"},
		{"JSON body", "POST", "/login/oauth2/token", "application/json", `{"grant_type":"client_credentials","client_id":"job","client_secret":"` + tbJobSecret + `"}`, false, 400, "invalid_request"},
		{"multipart body", "POST", "/login/oauth2/token", mw.FormDataContentType(), mp.String(), false, 400, "invalid_request"},
		{"GET with the secret in the query", "GET", "/login/oauth2/token?grant_type=client_credentials&client_id=job&client_secret=" + tbJobSecret, "", "", false, 405, "invalid_request"},
		{"trailing slash", "POST", "/login/oauth2/token/?grant_type=client_credentials", "application/x-www-form-urlencoded", "client_id=job&client_secret=" + tbJobSecret, false, 400, "invalid_request"},
	} {
		req := in.request(tc.method, tc.target, "", strings.NewReader(tc.body))
		if tc.ct != "" {
			req.Header.Set("Content-Type", tc.ct)
		}
		if tc.basic {
			req.SetBasicAuth("job", tbJobSecret)
		}
		resp, body := in.do(req)
		if resp.StatusCode != tc.status || oaError(t, body) != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, resp.StatusCode, body, tc.status, tc.code)
		}
		if strings.Contains(string(body), tbJobSecret) {
			t.Errorf("%s: the secret was echoed: %s", tc.name, body)
		}
		up.none(t)
	}
	if strings.Contains(in.logText(), tbJobSecret) {
		t.Error("the client secret reached the log")
	}

	// Requests naming no registered client are Canvas's, as before.
	req := in.request("POST", "/login/oauth2/token?grant_type=client_credentials", "", strings.NewReader("client_id=10000000000042&client_secret=canvas-secret"+pad))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, body := in.do(req); resp.StatusCode != 200 || string(body) != `{"ok":true}` {
		t.Errorf("unregistered client: %d %s, want the upstream's answer", resp.StatusCode, body)
	}
	if got := up.one(t); !strings.HasPrefix(string(got.Body), "client_id=10000000000042&") {
		t.Errorf("upstream got %q", got.Body[:min(len(got.Body), 64)])
	}
	// And the registered client still gets its token.
	oaToken(t, in, "job", tbJobSecret, "", false)
	up.none(t)
}
