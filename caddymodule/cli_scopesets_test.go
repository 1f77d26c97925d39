package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/fleet"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/policy"
)

// explain and GET /canvas_scopes/keys name the scope sets a key's scopes
// came from, with their expansion.
func TestScopeSetsShownByExplainAndAdminKeys(t *testing.T) {
	const path = "../examples/scope-sets.json"
	var out, errb bytes.Buffer
	runExplain(explainOptions{keysFile: path, tokenSHA256: "cccbb6245f7b2ad4b7924d510ea4aa79a524f7a6f55c4407c83251d0730b7687",
		method: "GET", target: "/api/v1/courses/5/users", now: time.Now()}, &out, &errb)
	for _, want := range []string{"scope sets:      @gradebook-sync (20 scopes)", "matched scope:   url:GET|/api/v1/courses/:course_id/users (from @gradebook-sync)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("explain lacks %q:\n%s%s", want, out.String(), errb.String())
		}
	}

	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	off := caddy.Duration(0)
	h := &Handler{KeysFile: path, ReloadInterval: &off}
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer h.Cleanup()
	rec := httptest.NewRecorder()
	if err := handleKeys(rec, httptest.NewRequest("GET", "/canvas_scopes/keys", nil)); err != nil {
		t.Fatal(err)
	}
	var keys []keyInfo
	if err := json.Unmarshal(rec.Body.Bytes(), &keys); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, k := range keys {
		if strings.HasSuffix(k.KeysFile, "examples/scope-sets.json") && k.ID == "roster-vendor" {
			found = true
			if len(k.ScopeSets["roster-read"]) != 8 || k.ScopeCount != 8 {
				t.Errorf("roster-vendor: %+v", k)
			}
		}
	}
	if !found {
		t.Errorf("roster-vendor not listed: %s", rec.Body.String())
	}
}

// `token create --keys-file` rewrites the file keeping its scope sets and
// "@name" references (it used to write every list expanded and drop
// "scope_sets").
func TestTokenCreateInFileKeepsScopeSets(t *testing.T) {
	data, err := os.ReadFile("../examples/scope-sets.json")
	if err != nil {
		t.Fatal(err)
	}
	before, err := policy.ParseKeysFile("before", data, policy.ParseOptions{})
	if err != nil || before.Written == nil || len(before.Written.Sets) == 0 {
		t.Fatalf("the example has no scope sets: %v", err)
	}
	path := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	key := before.DeveloperKeys[0]
	if _, _, err := createTokenInFile(path, fleet.TokenOptions{Key: key.ID}); err != nil {
		t.Fatal(err)
	}
	rewritten, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	after, err := policy.ParseKeysFile("after", rewritten, policy.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(after.Written, before.Written) {
		t.Errorf("scope sets as written changed:\n%+v\n%+v\n%s", before.Written, after.Written, rewritten)
	}
	if !reflect.DeepEqual(after.DeveloperKeys[0].Scopes, key.Scopes) || len(after.Tokens) != len(before.Tokens)+1 {
		t.Errorf("keys or tokens changed:\n%s", rewritten)
	}
}
