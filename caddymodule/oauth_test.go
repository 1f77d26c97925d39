package caddymodule

import (
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/oauth"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/policy"
)

func TestCaddyfileTokenSigningKeys(t *testing.T) {
	var h Handler
	d := caddyfile.NewTestDispenser(`canvas_scopes {
		keys_file keys.json
		token_signing_keys {env.NEW_KEY} {file./run/secrets/old_key}
	}`)
	if err := h.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	if len(h.TokenSigningKeys) != 2 || h.TokenSigningKeys[0] != "{env.NEW_KEY}" || h.TokenSigningKeys[1] != "{file./run/secrets/old_key}" {
		t.Fatalf("keys %q: placeholders must be kept for Provision", h.TokenSigningKeys)
	}
	d = caddyfile.NewTestDispenser("canvas_scopes {\n keys_file k\n token_signing_keys\n}")
	if err := (&Handler{}).UnmarshalCaddyfile(d); err == nil {
		t.Fatal("token_signing_keys without a key must be an error")
	}
}

func TestProvisionOAuthKeys(t *testing.T) {
	const long = "test-only-signing-key-0123456789abcdefgh"
	const short = "test-only-short"
	t.Setenv("TEST_OAUTH_LONG", long)
	t.Setenv("TEST_OAUTH_SHORT", short)
	t.Setenv("TEST_OAUTH_EMPTY", "")
	ok := &Handler{TokenSigningKeys: []string{"{env.TEST_OAUTH_LONG}", long + "-literal"}}
	if err := ok.provisionOAuth(caddy.Context{}); err != nil || ok.oauth == nil {
		t.Fatalf("valid keys: %v", err)
	}
	off := &Handler{}
	if err := off.provisionOAuth(caddy.Context{}); err != nil || off.oauth != nil {
		t.Fatalf("no keys must leave OAuth off: %v", err)
	}
	for _, tc := range []struct{ key, want string }{
		{"{env.TEST_OAUTH_SHORT}", "at least 32"},
		{short, "at least 32"},
		{"{env.TEST_OAUTH_EMPTY}", "{env.TEST_OAUTH_EMPTY} is unknown or empty"},
		{"{env.TEST_OAUTH_NOT_SET_ANYWHERE}", "cannot be resolved"},
		{"{file./nonexistent/test-only-key}", "cannot be resolved"},
	} {
		h := &Handler{TokenSigningKeys: []string{"{env.TEST_OAUTH_LONG}", tc.key}}
		err := h.provisionOAuth(caddy.Context{})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "key 2") {
			t.Errorf("%s: %v, want %q about key 2", tc.key, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), short) || strings.Contains(err.Error(), long) {
			t.Errorf("%s: the error prints a key: %v", tc.key, err)
		}
	}
}

// BenchmarkGatewayTokenDecision is the per-request cost of a gateway token:
// signature, binding to the store, Evaluate, narrowing.
func BenchmarkGatewayTokenDecision(b *testing.B) {
	keys := `{"developer_keys": [{"id": "m2m", "scopes": ["url:GET|/api/v1/courses", "url:GET|/api/v1/courses/:id", "url:GET|/api/v1/users/:user_id/courses"], "upstream_token": "test-only-upstream"}],
	  "clients": [{"client_id": "job-1", "secret_sha256": "` + strings.Repeat("ab", 32) + `", "developer_key": "m2m"}]}`
	store, err := policy.Load("keys.json", []byte(keys), policy.ParseOptions{}, policy.CompileOptions{})
	if err != nil {
		b.Fatal(err)
	}
	h := &Handler{TokenSigningKeys: []string{"test-only-signing-key-0123456789abcdefgh"}}
	if err := h.provisionOAuth(caddy.Context{}); err != nil {
		b.Fatal(err)
	}
	cl := store.Client("job-1")
	now := time.Now()
	tok, err := h.oauth.Signer.Issue(oauth.Claims{
		ID: [16]byte{1}, KeyID: "m2m", ClientID: "job-1",
		Scopes:   oauth.Refs([]string{"url:GET|/api/v1/courses", "url:GET|/api/v1/courses/:id"}),
		IssuedAt: now, ExpiresAt: now.Add(time.Hour), SecretGen: oauth.GenOf(cl.SecretSHA256),
	})
	if err != nil {
		b.Fatal(err)
	}
	req := policy.Request{Method: "GET", Path: "/api/v1/courses/7", Now: now}
	d, ok := h.oauth.DecideGatewayToken(store, tok, req)
	if !ok || d.Outcome != policy.Allowed || d.Scope != "url:GET|/api/v1/courses/:id" {
		b.Fatalf("decision %+v", d)
	}
	denied := policy.Request{Method: "GET", Path: "/api/v1/users/1/courses", Now: now}
	if d, _ := h.oauth.DecideGatewayToken(store, tok, denied); d.Outcome != policy.InsufficientScope {
		b.Fatalf("a key scope the token does not hold: %+v", d)
	}
	b.ReportAllocs()
	for b.Loop() {
		h.oauth.DecideGatewayToken(store, tok, req)
	}
}
