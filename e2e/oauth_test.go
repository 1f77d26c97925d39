package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Test-only OAuth material. The signing keys are at least 32 bytes.
const (
	oaSecret1     = "test-only-client-secret-job-1"
	oaSecret1New  = "test-only-client-secret-job-1-rotated"
	oaSecretNar   = "test-only-client-secret-narrow"
	oaSecretShort = "test-only-client-secret-short"
	oaSecretNoUp  = "test-only-client-secret-no-upstream"
	oaSecretOther = "test-only-client-secret-other"
	oaSigningOld  = "test-only-signing-key-old-0123456789abcdef"
	oaSigningNew  = "test-only-signing-key-new-0123456789abcdef"
	oaTokenPath   = "/login/oauth2/token"
	oaIntrospect  = "/canvas_scopes/oauth2/introspect"
	oaRevoke      = "/canvas_scopes/oauth2/revoke"
)

func oauthKeys(job1Secret string) string {
	return fmt.Sprintf(`{
  "developer_keys": [
    {"id": "m2m", "scopes": [%[1]s], "upstream_token": "{env.TEST_UPSTREAM_TOKEN}"},
    {"id": "no-upstream", "scopes": [%[1]s]}
  ],
  "clients": [
    {"client_id": "job-1", "secret_sha256": "%[2]s", "developer_key": "m2m", "token_ttl": "1h"},
    {"client_id": "job-narrow", "secret_sha256": "%[3]s", "developer_key": "m2m", "scopes": ["url:GET|/api/v1/courses"]},
    {"client_id": "job-short", "secret_sha256": "%[4]s", "developer_key": "m2m", "token_ttl": "2s"},
    {"client_id": "job-noup", "secret_sha256": "%[5]s", "developer_key": "no-upstream"},
    {"client_id": "job-other", "secret_sha256": "%[6]s", "developer_key": "m2m"}
  ]
}`, vendorScopes, sha(job1Secret), sha(oaSecretNar), sha(oaSecretShort), sha(oaSecretNoUp), sha(oaSecretOther))
}

// startOAuthGate starts the gate with the OAuth keys file; signing is the
// token_signing_keys line (both keys are in the environment).
func startOAuthGate(t *testing.T, signing string) (*instance, *upstream) {
	t.Helper()
	up := newUpstream(t)
	in := startCaddy(t, up, siteConfig{
		KeysJSON: oauthKeys(oaSecret1),
		Gate:     "reload_interval 100ms\n" + signing,
		Env: []string{
			"TEST_UPSTREAM_TOKEN=" + upstreamTok,
			"TEST_SIGNING_KEY_OLD=" + oaSigningOld,
			"TEST_SIGNING_KEY_NEW=" + oaSigningNew,
		},
	})
	return in, up
}

const oaSigningLine = "token_signing_keys {env.TEST_SIGNING_KEY_OLD}"

// oaPost posts a form to the gate, with Basic credentials when id != "".
func oaPost(in *instance, path string, form url.Values, basicID, basicSecret string) (*http.Response, []byte) {
	in.t.Helper()
	req := in.request("POST", path, "", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicID != "" {
		req.SetBasicAuth(url.QueryEscape(basicID), url.QueryEscape(basicSecret))
	}
	return in.do(req)
}

type oaTokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope"`
	Error       string `json:"error"`
}

// oaToken obtains a token and fails the test unless it gets one.
func oaToken(t *testing.T, in *instance, id, secret, scope string, basic bool) oaTokenResponse {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}}
	if scope != "" {
		form.Set("scope", scope)
	}
	var resp *http.Response
	var body []byte
	if basic {
		resp, body = oaPost(in, oaTokenPath, form, id, secret)
	} else {
		form.Set("client_id", id)
		form.Set("client_secret", secret)
		resp, body = oaPost(in, oaTokenPath, form, "", "")
	}
	if resp.StatusCode != 200 {
		t.Fatalf("token for %s: %d %s", id, resp.StatusCode, body)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("token response Cache-Control %q, want no-store", cc)
	}
	var tr oaTokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		t.Fatalf("token response %s: %v", body, err)
	}
	if !strings.HasPrefix(tr.AccessToken, "cgw1.") || tr.TokenType != "Bearer" {
		t.Fatalf("token response %s", body)
	}
	return tr
}

// oaCall calls the API through the gate with a bearer token and returns
// the status and Canvas error message ("" on success).
func oaCall(t *testing.T, in *instance, method, target, token string) (int, string) {
	t.Helper()
	resp, body := in.do(in.request(method, target, token, nil))
	if resp.StatusCode == 200 {
		return 200, ""
	}
	return resp.StatusCode, decodeError(t, body).Errors[0].Message
}

// oaForwarded asserts the upstream received one request, carrying the
// key's upstream token and nothing of the gateway token.
func oaForwarded(t *testing.T, up *upstream, gatewayToken string) recorded {
	t.Helper()
	got := up.one(t)
	if a := got.Header.Get("Authorization"); a != "Bearer "+upstreamTok {
		t.Errorf("upstream Authorization %q, want the key's upstream_token", a)
	}
	dump := fmt.Sprintf("%s %v %s", got.RequestURI, got.Header, got.Body)
	if strings.Contains(dump, gatewayToken) || strings.Contains(dump, "cgw1.") {
		t.Errorf("the gateway token reached the upstream: %s", dump)
	}
	return got
}

func oaError(t *testing.T, body []byte) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
		Desc  string `json:"error_description"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
		t.Fatalf("not an OAuth error body: %s", body)
	}
	return e.Error
}

func TestOAuthClientCredentials(t *testing.T) {
	in, up := startOAuthGate(t, oaSigningLine)

	for _, basic := range []bool{true, false} {
		tr := oaToken(t, in, "job-1", oaSecret1, "", basic)
		up.none(t) // the gate answered the token request itself
		if tr.ExpiresIn != 3600 || tr.Scope != strings.ReplaceAll(strings.ReplaceAll(vendorScopes, `"`, ""), ", ", " ") {
			t.Errorf("basic=%v: expires_in %d scope %q", basic, tr.ExpiresIn, tr.Scope)
		}
		if st, msg := oaCall(t, in, "GET", "/api/v1/courses/7", tr.AccessToken); st != 200 {
			t.Fatalf("basic=%v: allowed endpoint: %d %s", basic, st, msg)
		}
		oaForwarded(t, up, tr.AccessToken)
		if st, msg := oaCall(t, in, "GET", "/api/v1/accounts", tr.AccessToken); st != 401 || msg != "Insufficient scopes on access token." {
			t.Errorf("basic=%v: disallowed endpoint: %d %q", basic, st, msg)
		}
		up.none(t)
	}
	// The token as access_token form parameter works too, and is stripped.
	tr := oaToken(t, in, "job-1", oaSecret1, "", true)
	req := in.request("POST", "/api/v1/courses/7/assignments", "", strings.NewReader("access_token="+url.QueryEscape(tr.AccessToken)+"&assignment[name]=x"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, body := in.do(req); resp.StatusCode != 200 {
		t.Fatalf("access_token param: %d %s", resp.StatusCode, body)
	}
	if got := oaForwarded(t, up, tr.AccessToken); strings.Contains(string(got.Body), "access_token") {
		t.Errorf("access_token param forwarded: %s", got.Body)
	}

	// A scope parameter narrows the token; the key would allow more.
	narrow := oaToken(t, in, "job-1", oaSecret1, "url:GET|/api/v1/courses", true)
	if narrow.Scope != "url:GET|/api/v1/courses" {
		t.Errorf("narrowed scope %q", narrow.Scope)
	}
	if st, _ := oaCall(t, in, "GET", "/api/v1/courses", narrow.AccessToken); st != 200 {
		t.Errorf("narrowed token, its scope: %d", st)
	}
	up.take()
	if st, msg := oaCall(t, in, "GET", "/api/v1/courses/7", narrow.AccessToken); st != 401 || msg != "Insufficient scopes on access token." {
		t.Errorf("narrowed token, a key scope it does not hold: %d %q", st, msg)
	}
	// A client with a scope subset gets only those scopes by default.
	nc := oaToken(t, in, "job-narrow", oaSecretNar, "", false)
	if nc.Scope != "url:GET|/api/v1/courses" {
		t.Errorf("client scopes: %q", nc.Scope)
	}
	if st, _ := oaCall(t, in, "GET", "/api/v1/courses/7", nc.AccessToken); st != 401 {
		t.Errorf("client scope subset not enforced: %d", st)
	}
	up.none(t)

	// Errors (RFC 6749 §5.2).
	cc := url.Values{"grant_type": {"client_credentials"}}
	withCreds := func(id, secret string, extra ...string) url.Values {
		f := url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}}
		for i := 0; i+1 < len(extra); i += 2 {
			f.Add(extra[i], extra[i+1])
		}
		return f
	}
	for _, tc := range []struct {
		name             string
		form             url.Values
		basicID, basicPW string
		status           int
		code             string
	}{
		{"wrong secret, basic", cc, "job-1", "wrong", 401, "invalid_client"},
		{"wrong secret, form", withCreds("job-1", "wrong"), "", "", 401, "invalid_client"},
		{"missing secret", url.Values{"grant_type": {"client_credentials"}, "client_id": {"job-1"}}, "", "", 401, "invalid_client"},
		{"scope outside the client", withCreds("job-narrow", oaSecretNar, "scope", "url:GET|/api/v1/courses/:id"), "", "", 400, "invalid_scope"},
		{"two auth methods", withCreds("job-1", oaSecret1), "job-1", oaSecret1, 400, "invalid_request"},
		{"repeated grant_type", withCreds("job-1", oaSecret1, "grant_type", "client_credentials"), "", "", 400, "invalid_request"},
		{"key without upstream_token", withCreds("job-noup", oaSecretNoUp), "", "", 400, "unauthorized_client"},
	} {
		resp, body := oaPost(in, oaTokenPath, tc.form, tc.basicID, tc.basicPW)
		if resp.StatusCode != tc.status || oaError(t, body) != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, resp.StatusCode, body, tc.status, tc.code)
		}
		if tc.status == 401 && resp.Header.Get("WWW-Authenticate") != `Basic realm="canvas-scopes"` {
			t.Errorf("%s: WWW-Authenticate %q", tc.name, resp.Header.Get("WWW-Authenticate"))
		}
		if strings.Contains(string(body), oaSecret1) || strings.Contains(string(body), "wrong") {
			t.Errorf("%s: the secret is echoed: %s", tc.name, body)
		}
	}
	up.none(t)

	// Failures are counted per registered client id; secrets never logged.
	if n := oaMetric(t, in, `caddy_canvas_scopes_oauth_client_auth_failures_total{client_id="job-1"}`); n != 3 {
		t.Errorf("job-1 auth failures = %v, want 3", n)
	}
	if n := oaMetric(t, in, `caddy_canvas_scopes_oauth_tokens_issued_total{client_id="job-1"}`); n != 4 {
		t.Errorf("job-1 tokens issued = %v, want 4", n)
	}
	// An unregistered id at a gate endpoint counts as "unknown".
	before := oaMetric(t, in, `caddy_canvas_scopes_oauth_client_auth_failures_total{client_id="unknown"}`)
	if resp, _ := oaPost(in, oaIntrospect, url.Values{"token": {"x"}}, "nobody", "x"); resp.StatusCode != 401 {
		t.Errorf("unknown client at introspection: %d", resp.StatusCode)
	}
	if after := oaMetric(t, in, `caddy_canvas_scopes_oauth_client_auth_failures_total{client_id="unknown"}`); after != before+1 {
		t.Errorf("unknown failures %v -> %v", before, after)
	}
	logs := in.logText()
	for _, secret := range []string{oaSecret1, oaSecretNar, oaSigningOld, tr.AccessToken, upstreamTok, "cgw1."} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains a secret or token (%.12s…)", secret)
		}
	}
	if !strings.Contains(logs, "oauth token issued") || !strings.Contains(logs, "oauth client authentication failed") {
		t.Errorf("expected OAuth log lines:\n%s", logs)
	}
}

// Every request the gate does not answer reaches Canvas untouched: other
// grant types (even from a registered client id), client_credentials from
// client ids the gate does not know, LTI client assertions.
func TestOAuthPassThrough(t *testing.T) {
	in, up := startOAuthGate(t, oaSigningLine)
	basicOther := "Basic " + base64.StdEncoding.EncodeToString([]byte("10000000000042:canvas-secret"))
	for _, tc := range []struct {
		name, body, authorization string
	}{
		{"unknown client id, form", "grant_type=client_credentials&client_id=10000000000042&client_secret=canvas-secret&scope=x", ""},
		{"unknown client id, basic", "grant_type=client_credentials", basicOther},
		{"LTI client assertion", "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=eyJ.e30.sig&scope=https%3A%2F%2Fpurl.imsglobal.org%2Fspec%2Flti-ags%2Fscope%2Flineitem", ""},
		{"authorization_code from an unregistered id", "grant_type=authorization_code&client_id=170000000000002&client_secret=x&code=abc&redirect_uri=urn%3Aietf%3Awg%3Aoauth%3A2.0%3Aoob", ""},
		{"refresh_token", "grant_type=refresh_token&client_id=170000000000001&client_secret=s&refresh_token=r", ""},
	} {
		req := in.request("POST", oaTokenPath, "", strings.NewReader(tc.body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if tc.authorization != "" {
			req.Header.Set("Authorization", tc.authorization)
		}
		resp, body := in.do(req)
		if resp.StatusCode != 200 || string(body) != `{"ok":true}` {
			t.Errorf("%s: %d %s, want the upstream's answer", tc.name, resp.StatusCode, body)
			continue
		}
		got := up.one(t)
		if string(got.Body) != tc.body || got.Method != "POST" || got.RequestURI != oaTokenPath ||
			got.Header.Get("Authorization") != tc.authorization || got.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			t.Errorf("%s: upstream got %s %s auth=%q body=%q", tc.name, got.Method, got.RequestURI, got.Header.Get("Authorization"), got.Body)
		}
	}
	// JSON token requests are Canvas's (the gate answers forms only).
	req := in.request("POST", oaTokenPath, "", strings.NewReader(`{"grant_type":"authorization_code","code":"x"}`))
	req.Header.Set("Content-Type", "application/json")
	if resp, _ := in.do(req); resp.StatusCode != 200 {
		t.Errorf("JSON token request: %d", resp.StatusCode)
	}
	up.one(t)
	// Logout (DELETE) is untouched by the OAuth code.
	if st, _ := oaCall(t, in, "DELETE", oaTokenPath, ""); st != 200 {
		t.Errorf("DELETE %s: %d", oaTokenPath, st)
	}
	up.one(t)

	// A registered client's request is the gate's even with another grant
	// type: its secret is not passed on (TestRegisteredClientSecretNeverReachesCanvas).
	resp, body := oaPost(in, oaTokenPath, url.Values{"grant_type": {"authorization_code"}, "code": {"abc"}}, "job-1", oaSecret1)
	if resp.StatusCode != 400 || oaError(t, body) != "unsupported_grant_type" {
		t.Errorf("authorization_code from a registered id: %d %s", resp.StatusCode, body)
	}
	up.none(t)

	// Without token_signing_keys the gate issues nothing, and still keeps
	// a registered client's secret from Canvas.
	in2, up2 := startOAuthGate(t, "")
	resp, body = oaPost(in2, oaTokenPath, url.Values{"grant_type": {"client_credentials"}}, "job-1", oaSecret1)
	if resp.StatusCode != 400 || oaError(t, body) != "unauthorized_client" {
		t.Errorf("OAuth off: %d %s", resp.StatusCode, body)
	}
	up2.none(t)
	resp, body = oaPost(in2, oaTokenPath, url.Values{"grant_type": {"client_credentials"}}, "10000000000042", "canvas-secret")
	if resp.StatusCode != 200 || string(body) != `{"ok":true}` {
		t.Errorf("OAuth off, unregistered id: %d %s", resp.StatusCode, body)
	}
	up2.one(t)
}

func TestOAuthForgedAndTruncatedTokens(t *testing.T) {
	in, up := startOAuthGate(t, oaSigningLine)
	tr := oaToken(t, in, "job-1", oaSecret1, "", true)
	head, sig, _ := strings.Cut(strings.TrimPrefix(tr.AccessToken, "cgw1."), ".")
	flip := func(s string) string {
		b := []byte(s)
		if b[3] == 'A' {
			b[3] = 'B'
		} else {
			b[3] = 'A'
		}
		return string(b)
	}
	for name, tok := range map[string]string{
		"truncated":          tr.AccessToken[:len(tr.AccessToken)-4],
		"signature missing":  "cgw1." + head,
		"payload changed":    "cgw1." + flip(head) + "." + sig,
		"signature changed":  "cgw1." + head + "." + flip(sig),
		"prefix only":        "cgw1.",
		"other signing key":  oaForge(t, tr.AccessToken),
		"token of other key": "cgw1." + head + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 32)),
	} {
		st, msg := oaCall(t, in, "GET", "/api/v1/courses", tok)
		if st != 401 || msg != "Invalid access token." {
			t.Errorf("%s: %d %q", name, st, msg)
		}
	}
	up.none(t)
	if st, _ := oaCall(t, in, "GET", "/api/v1/courses", tr.AccessToken); st != 200 {
		t.Fatalf("the genuine token: %d", st)
	}
	up.one(t)
}

// oaForge re-signs a genuine payload with a key the gate does not have but
// keeps the genuine signing key id, as an attacker who knows the format
// would.
func oaForge(t *testing.T, genuine string) string {
	t.Helper()
	head, _, _ := strings.Cut(strings.TrimPrefix(genuine, "cgw1."), ".")
	return "cgw1." + head + "." + base64.RawURLEncoding.EncodeToString([]byte("test-only-attacker-mac-0123456789ab")[:32])
}

func TestOAuthIntrospectionAndRevocation(t *testing.T) {
	in, up := startOAuthGate(t, oaSigningLine)
	tr := oaToken(t, in, "job-1", oaSecret1, "", true)
	other := oaToken(t, in, "job-other", oaSecretOther, "", false)

	introspect := func(token, id, secret string) map[string]any {
		t.Helper()
		resp, body := oaPost(in, oaIntrospect, url.Values{"token": {token}}, id, secret)
		if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("introspect: %d %s", resp.StatusCode, body)
		}
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	m := introspect(tr.AccessToken, "job-1", oaSecret1)
	if m["active"] != true || m["client_id"] != "job-1" || m["token_type"] != "Bearer" || m["scope"] != tr.Scope ||
		m["sub"] != "job-1" || len(fmt.Sprint(m["jti"])) != 32 {
		t.Errorf("introspection of an active token: %v", m)
	}
	exp, iat := m["exp"].(float64), m["iat"].(float64)
	if exp-iat != 3600 || time.Since(time.Unix(int64(iat), 0)) > time.Minute {
		t.Errorf("exp %v iat %v", exp, iat)
	}
	// Another client does not see it; garbage is inactive.
	for name, m := range map[string]map[string]any{
		"another client": introspect(tr.AccessToken, "job-other", oaSecretOther),
		"garbage":        introspect("not-a-token", "job-1", oaSecret1),
		"forged":         introspect(oaForge(t, tr.AccessToken), "job-1", oaSecret1),
	} {
		if len(m) != 1 || m["active"] != false {
			t.Errorf("%s: %v, want exactly {\"active\":false}", name, m)
		}
	}
	// Both endpoints require client authentication.
	for _, p := range []string{oaIntrospect, oaRevoke} {
		resp, body := oaPost(in, p, url.Values{"token": {tr.AccessToken}}, "", "")
		if resp.StatusCode != 401 || oaError(t, body) != "invalid_client" {
			t.Errorf("%s without client auth: %d %s", p, resp.StatusCode, body)
		}
		resp, body = oaPost(in, p, url.Values{"token": {tr.AccessToken}}, "job-1", "wrong")
		if resp.StatusCode != 401 || oaError(t, body) != "invalid_client" {
			t.Errorf("%s with a wrong secret: %d %s", p, resp.StatusCode, body)
		}
		resp, _ = in.do(in.request("GET", p, "", nil))
		if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" {
			t.Errorf("GET %s: %d", p, resp.StatusCode)
		}
	}

	// Revocation: another client cannot revoke it (200, nothing happens).
	revoke := func(token, id, secret string) {
		t.Helper()
		resp, body := oaPost(in, oaRevoke, url.Values{"token": {token}, "token_type_hint": {"access_token"}}, id, secret)
		if resp.StatusCode != 200 || len(body) != 0 {
			t.Fatalf("revoke: %d %s", resp.StatusCode, body)
		}
	}
	revoke(tr.AccessToken, "job-other", oaSecretOther)
	revoke("garbage", "job-1", oaSecret1)
	if st, _ := oaCall(t, in, "GET", "/api/v1/courses", tr.AccessToken); st != 200 {
		t.Fatalf("another client revoked the token: %d", st)
	}
	up.one(t)
	revoke(tr.AccessToken, "job-1", oaSecret1)
	if st, msg := oaCall(t, in, "GET", "/api/v1/courses", tr.AccessToken); st != 401 || msg != "Revoked access token." {
		t.Errorf("revoked token: %d %q", st, msg)
	}
	up.none(t)
	if m := introspect(tr.AccessToken, "job-1", oaSecret1); m["active"] != false {
		t.Errorf("introspection of a revoked token: %v", m)
	}
	// Revoking one token leaves the client's others alone.
	if st, _ := oaCall(t, in, "GET", "/api/v1/courses", other.AccessToken); st != 200 {
		t.Errorf("an unrelated token after revocation: %d", st)
	}
	up.one(t)

	// Revocations survive a config reload.
	cfg := in.dir + "/Caddyfile"
	out, err := runCaddy(t, "reload", "--config", cfg, "--adapter", "caddyfile", "--address", strings.TrimPrefix(in.admin, "http://"), "--force")
	if err != nil {
		t.Fatalf("caddy reload: %v\n%s", err, out)
	}
	if st, msg := oaCall(t, in, "GET", "/api/v1/courses", tr.AccessToken); st != 401 || msg != "Revoked access token." {
		t.Errorf("revoked token after config reload: %d %q", st, msg)
	}
	up.none(t)
}

// Expiry with the real clock: token_ttl 2s is the shortest the keys file
// allows, so the test waits instead of adding a clock override to the
// production binary.
func TestOAuthExpiry(t *testing.T) {
	in, up := startOAuthGate(t, oaSigningLine)
	tr := oaToken(t, in, "job-short", oaSecretShort, "", true)
	if tr.ExpiresIn != 2 {
		t.Fatalf("expires_in %d", tr.ExpiresIn)
	}
	if st, msg := oaCall(t, in, "GET", "/api/v1/courses", tr.AccessToken); st != 200 {
		t.Fatalf("fresh token: %d %s", st, msg)
	}
	up.one(t)
	time.Sleep(2100 * time.Millisecond)
	resp, body := in.do(in.request("GET", "/api/v1/courses", tr.AccessToken, nil))
	ce := decodeError(t, body)
	if resp.StatusCode != 401 || ce.Errors[0].Message != "Expired access token." || ce.Errors[0].ExpiredAt == "" {
		t.Errorf("expired token: %d %s", resp.StatusCode, body)
	}
	up.none(t)
}

// Rotating a client's secret in the keys file revokes its tokens.
func TestOAuthSecretRotation(t *testing.T) {
	in, up := startOAuthGate(t, oaSigningLine)
	old := oaToken(t, in, "job-1", oaSecret1, "", true)
	if st, _ := oaCall(t, in, "GET", "/api/v1/courses", old.AccessToken); st != 200 {
		t.Fatalf("before rotation: %d", st)
	}
	up.one(t)
	writeFile(t, in.keysPath, oauthKeys(oaSecret1New))
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, msg := oaCall(t, in, "GET", "/api/v1/courses", old.AccessToken)
		if st == 401 && msg == "Revoked access token." {
			break
		}
		if st != 200 || time.Now().After(deadline) {
			t.Fatalf("after rotation: %d %q", st, msg)
		}
		up.take()
		time.Sleep(50 * time.Millisecond)
	}
	up.none(t)
	resp, body := oaPost(in, oaTokenPath, url.Values{"grant_type": {"client_credentials"}}, "job-1", oaSecret1)
	if resp.StatusCode != 401 || oaError(t, body) != "invalid_client" {
		t.Errorf("old secret after rotation: %d %s", resp.StatusCode, body)
	}
	fresh := oaToken(t, in, "job-1", oaSecret1New, "", true)
	if st, _ := oaCall(t, in, "GET", "/api/v1/courses", fresh.AccessToken); st != 200 {
		t.Errorf("token from the new secret: %d", st)
	}
	up.one(t)
}

// Signing keys rotate without downtime: [new, old] verifies both, [new]
// only the new key's tokens.
func TestOAuthSigningKeyRotation(t *testing.T) {
	in, up := startOAuthGate(t, oaSigningLine)
	oldTok := oaToken(t, in, "job-1", oaSecret1, "", true).AccessToken
	cfg := in.dir + "/Caddyfile"
	reloadWith := func(line string) {
		t.Helper()
		data, err := os.ReadFile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		sc := bufio.NewScanner(strings.NewReader(string(data)))
		for sc.Scan() {
			l := sc.Text()
			if strings.Contains(l, "token_signing_keys") {
				l = "\t\t" + line
			}
			out = append(out, l)
		}
		writeFile(t, cfg, strings.Join(out, "\n")+"\n")
		if o, err := runCaddy(t, "reload", "--config", cfg, "--adapter", "caddyfile", "--address", strings.TrimPrefix(in.admin, "http://"), "--force"); err != nil {
			t.Fatalf("caddy reload: %v\n%s", err, o)
		}
	}
	works := func(tok string) (int, string) {
		t.Helper()
		st, msg := oaCall(t, in, "GET", "/api/v1/courses", tok)
		up.take()
		return st, msg
	}
	reloadWith("token_signing_keys {env.TEST_SIGNING_KEY_NEW} {env.TEST_SIGNING_KEY_OLD}")
	if st, msg := works(oldTok); st != 200 {
		t.Errorf("old token under [new, old]: %d %q", st, msg)
	}
	newTok := oaToken(t, in, "job-1", oaSecret1, "", true).AccessToken
	if newTok[:20] == oldTok[:20] {
		// The payload starts with the signing key id.
		t.Errorf("new tokens are not signed by the first key")
	}
	reloadWith("token_signing_keys {env.TEST_SIGNING_KEY_NEW}")
	if st, msg := works(oldTok); st != 401 || msg != "Invalid access token." {
		t.Errorf("old token under [new]: %d %q", st, msg)
	}
	if st, msg := works(newTok); st != 200 {
		t.Errorf("new token under [new]: %d %q", st, msg)
	}
	// A short key refuses to load, and the error does not print it.
	short := "token_signing_keys test-only-too-short-key"
	data, _ := os.ReadFile(cfg)
	bad := strings.Replace(string(data), "token_signing_keys {env.TEST_SIGNING_KEY_NEW}", short, 1)
	writeFile(t, cfg, bad)
	o, err := runCaddy(t, "reload", "--config", cfg, "--adapter", "caddyfile", "--address", strings.TrimPrefix(in.admin, "http://"), "--force")
	if err == nil || !strings.Contains(o, "at least 32") || strings.Contains(o, "test-only-too-short-key") {
		t.Errorf("short key: err=%v\n%s", err, o)
	}
	if strings.Contains(in.logText(), "test-only-too-short-key") {
		t.Errorf("the server log prints the short key")
	}
	// The running config is unchanged.
	if st, _ := works(newTok); st != 200 {
		t.Errorf("after a refused reload: %d", st)
	}
}

// Failed client authentications are slowed and limited per source address
// and client id: after the burst the gate answers 429 with Retry-After to
// that client id from that address, even with the right secret, while
// another client at the same address still authenticates.
func TestOAuthFailureLimit(t *testing.T) {
	in, _ := startOAuthGate(t, oaSigningLine)
	form := url.Values{"grant_type": {"client_credentials"}}
	start := time.Now()
	for i := 0; i < 10; i++ {
		resp, body := oaPost(in, oaTokenPath, form, "job-1", "wrong")
		if resp.StatusCode != 401 {
			t.Fatalf("failure %d: %d %s", i, resp.StatusCode, body)
		}
	}
	if el := time.Since(start); el < 10*200*time.Millisecond {
		t.Errorf("10 failures took %v: failures are not slowed", el)
	}
	resp, body := oaPost(in, oaTokenPath, form, "job-1", oaSecret1)
	ra, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	if resp.StatusCode != 429 || ra < 1 || ra > 60 {
		t.Errorf("after the burst: %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if n := oaMetric(t, in, `caddy_canvas_scopes_oauth_client_auth_failures_total{client_id="job-1"}`); n != 10 {
		t.Errorf("failures counted %v, want 10", n)
	}
	// One client cannot lock out another behind the same address.
	oaToken(t, in, "job-other", oaSecretOther, "", true)
	// Unknown ids that reach the gate's endpoints count as "unknown", in
	// their own budget: job-1's exhausted one does not refuse them.
	before := oaMetric(t, in, `caddy_canvas_scopes_oauth_client_auth_failures_total{client_id="unknown"}`)
	if resp, body := oaPost(in, oaIntrospect, url.Values{"token": {"x"}}, "nobody", "x"); resp.StatusCode != 401 {
		t.Errorf("unregistered id after job-1's burst: %d %s, want 401", resp.StatusCode, body)
	}
	if after := oaMetric(t, in, `caddy_canvas_scopes_oauth_client_auth_failures_total{client_id="unknown"}`); after != before+1 {
		t.Errorf("unknown failures %v -> %v, want one more", before, after)
	}
	if strings.Contains(oaScrape(t, in), `client_id="nobody"`) {
		t.Error("an unregistered client id became a label")
	}
}

// The same flow with golang.org/x/oauth2/clientcredentials as the client.
func TestOAuthGoClientCredentials(t *testing.T) {
	in, up := startOAuthGate(t, oaSigningLine)
	for _, style := range []oauth2.AuthStyle{oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams} {
		cfg := clientcredentials.Config{
			ClientID: "job-1", ClientSecret: oaSecret1,
			TokenURL:  in.base + oaTokenPath,
			Scopes:    []string{"url:GET|/api/v1/courses", "url:GET|/api/v1/courses/:id"},
			AuthStyle: style,
		}
		ctx := context.Background()
		tok, err := cfg.Token(ctx)
		if err != nil {
			t.Fatalf("style %v: token: %v", style, err)
		}
		if tok.TokenType != "Bearer" || time.Until(tok.Expiry) < 59*time.Minute || tok.Extra("scope") != "url:GET|/api/v1/courses url:GET|/api/v1/courses/:id" {
			t.Errorf("style %v: token %+v scope %v", style, tok, tok.Extra("scope"))
		}
		up.none(t)
		client := cfg.Client(ctx)
		resp, err := client.Get(in.base + "/api/v1/courses/7")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != `{"ok":true}` {
			t.Errorf("style %v: API call %d %s", style, resp.StatusCode, body)
		}
		oaForwarded(t, up, tok.AccessToken)
		// Outside the requested scopes.
		resp, err = client.Get(in.base + "/api/v1/courses/7/assignments")
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 401 || !strings.Contains(string(body), "Insufficient scopes on access token.") {
			t.Errorf("style %v: outside the scopes: %d %s", style, resp.StatusCode, body)
		}
		up.none(t)
	}
	// A wrong secret surfaces as the library's RetrieveError.
	bad := clientcredentials.Config{ClientID: "job-1", ClientSecret: "wrong", TokenURL: in.base + oaTokenPath, AuthStyle: oauth2.AuthStyleInHeader}
	_, err := bad.Token(context.Background())
	re, ok := err.(*oauth2.RetrieveError)
	if !ok || re.ErrorCode != "invalid_client" || re.Response.StatusCode != 401 {
		t.Errorf("wrong secret: %v", err)
	}
}

func oaScrape(t *testing.T, in *instance) string {
	t.Helper()
	resp, err := http.Get(in.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// oaMetric returns one sample's value (0 when absent).
func oaMetric(t *testing.T, in *instance, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(oaScrape(t, in), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric %s: %q", series, v)
			}
			return f
		}
	}
	return 0
}
