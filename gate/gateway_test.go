package gate

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/oauth"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/policy"
)

// bindStore compiles a keys file with one client, job-1, of key vendor-a
// (or of the key named by clientKey), with the given key scopes, client
// scopes (nil: the key's) and secret.
func bindStore(t *testing.T, keyScopes, clientScopes []string, requireScopes bool, clientKey, secret string) *policy.Store {
	t.Helper()
	q := func(ss []string) string {
		if len(ss) == 0 {
			return "[]"
		}
		return `["` + strings.Join(ss, `","`) + `"]`
	}
	sum := sha256.Sum256([]byte(secret))
	clientScopeField := ""
	if clientScopes != nil {
		clientScopeField = `, "scopes": ` + q(clientScopes)
	}
	keys := `{"developer_keys": [
	  {"id": "vendor-a", "scopes": ` + q(keyScopes) + `, "require_scopes": ` + map[bool]string{true: "true", false: "false"}[requireScopes] + `, "upstream_token": "u", "allow_upstream_credential_minting": true},
	  {"id": "vendor-b", "scopes": ["url:GET|/api/v1/courses"], "upstream_token": "u"}],
	 "clients": [{"client_id": "job-1", "secret_sha256": "` + hex.EncodeToString(sum[:]) + `", "developer_key": "` + clientKey + `"` + clientScopeField + `}]}`
	s, err := policy.Load("keys.json", []byte(keys), policy.ParseOptions{}, policy.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBind(t *testing.T) {
	all := []string{"url:GET|/api/v1/courses", "url:GET|/api/v1/courses/:id", "url:GET|/api/v1/accounts"}
	t0 := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	c := oauth.Claims{
		ID: [16]byte{1, 2, 3}, KeyID: "vendor-a", ClientID: "job-1",
		Scopes:   oauth.Refs([]string{"url:GET|/api/v1/courses", "url:GET|/api/v1/courses/:id"}),
		IssuedAt: t0, ExpiresAt: t0.Add(time.Hour),
		SecretGen: oauth.GenOf(sha256.Sum256([]byte("secret"))),
	}
	bind := func(s *policy.Store, revoked bool) ([]string, string) {
		return Bind(&c, s.Client("job-1"), s.Key("vendor-a"), revoked)
	}
	valid := bindStore(t, all, nil, true, "vendor-a", "secret")
	if scopes, reason := bind(valid, false); reason != "" || !slices.Equal(scopes, []string{"url:GET|/api/v1/courses", "url:GET|/api/v1/courses/:id"}) {
		t.Fatalf("valid: %v %q", scopes, reason)
	}
	for name, tc := range map[string]struct {
		s       *policy.Store
		revoked bool
		want    string
	}{
		"secret rotated":      {bindStore(t, all, nil, true, "vendor-a", "new secret"), false, "rotated"},
		"revoked":             {valid, true, "revoked"},
		"scope left the key":  {bindStore(t, []string{"url:GET|/api/v1/courses"}, nil, true, "vendor-a", "secret"), false, "no longer on developer key"},
		"client narrowed":     {bindStore(t, all, []string{"url:GET|/api/v1/courses"}, true, "vendor-a", "secret"), false, "no longer granted"},
		"client moved to key": {bindStore(t, all, nil, true, "vendor-b", "secret"), false, "now bound"},
	} {
		if _, reason := bind(tc.s, tc.revoked); !strings.Contains(reason, tc.want) {
			t.Errorf("%s: reason %q, want it to mention %q", name, reason, tc.want)
		}
	}
	if _, reason := Bind(&c, nil, valid.Key("vendor-a"), false); !strings.Contains(reason, "no longer exists") {
		t.Errorf("client removed: reason %q", reason)
	}
	// An unscoped key: unknown refs are dropped, not fatal.
	if _, reason := bind(bindStore(t, []string{}, nil, false, "vendor-a", "secret"), false); reason != "" {
		t.Fatalf("unscoped key: %q", reason)
	}
}
