package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
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
