package caddymodule

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/usage"
)

// provisionUsageHandler provisions a handler on a keys file with one key
// (id) holding scopes, and one token for it.
func provisionUsageHandler(t *testing.T, dir, id, mode string, scopes []string, token string) *Handler {
	t.Helper()
	keys := map[string]any{
		"developer_keys": []any{map[string]any{"id": id, "mode": mode, "scopes": scopes}},
		"tokens":         []any{map[string]any{"sha256": benchSHA(token), "developer_key": id}},
	}
	data, _ := json.Marshal(keys)
	path := filepath.Join(dir, "keys.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	off := caddy.Duration(0)
	h := &Handler{KeysFile: path, ReloadInterval: &off}
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Cleanup(); cancel() })
	return h
}

func serveUsage(t *testing.T, h *Handler, method, target, token string) {
	r := httptest.NewRequest(method, target, nil)
	r.Header.Set("Authorization", "Bearer "+token)
	r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), httptest.NewRecorder(), nil)
	if err := h.ServeHTTP(httptest.NewRecorder(), r, &statusNext{}); err != nil {
		t.Error(err)
	}
}

func adminUsage(t *testing.T, id string) (int, usage.Report) {
	t.Helper()
	rec := httptest.NewRecorder()
	err := handleKeyUsage(rec, httptest.NewRequest("GET", "/canvas_scopes/keys/"+id+"/usage", nil))
	var rep usage.Report
	if err != nil {
		if ae, ok := err.(caddy.APIError); ok {
			return ae.HTTPStatus, rep
		}
		t.Fatal(err)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	return rec.Code, rep
}

// Usage is counted per key and scope, exactly under concurrent requests,
// and survives a reload (a new handler provisioned, as `caddy reload`
// does); the admin API reports it.
func TestUsageCountsAcrossReloadAndAdminAPI(t *testing.T) {
	const id, token = "usage-test-vendor", "usage-test-token"
	granted := []string{"url:GET|/api/v1/courses", "url:GET|/api/v1/courses/:id"}
	h := provisionUsageHandler(t, t.TempDir(), id, "enforce", granted, token)
	const workers, each = 4, 50
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				serveUsage(t, h, "GET", "/api/v1/courses?per_page=10", token)
				serveUsage(t, h, "GET", "/api/v1/users/7/profile", token) // denied
			}
		}()
	}
	wg.Wait()
	serveUsage(t, h, "GET", "/api/v1/courses", "not-registered") // no key: not counted

	// caddy reload: a fresh handler, in report mode now.
	h2 := provisionUsageHandler(t, t.TempDir(), id, "report", granted, token)
	_ = h.Cleanup()
	serveUsage(t, h2, "GET", "/api/v1/courses", token)
	serveUsage(t, h2, "POST", "/api/v1/courses/5/assignments", token) // would_deny

	got := keyUsage.Key(id)
	want := map[string][2]uint64{
		"url:GET|/api/v1/courses":                         {workers*each + 1, 0},
		"url:GET|/api/v1/users/:user_id/profile":          {0, workers * each},
		"url:POST|/api/v1/courses/:course_id/assignments": {0, 1},
	}
	if len(got) != len(want) {
		t.Fatalf("entries %+v, want %v", got, want)
	}
	for _, e := range got {
		if w, ok := want[e.Scope]; !ok || e.Allowed != w[0] || e.Denied != w[1] {
			t.Errorf("%s: allowed %d denied %d, want %v", e.Scope, e.Allowed, e.Denied, w)
		}
	}

	code, rep := adminUsage(t, id)
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	wantSuggested := []string{"url:GET|/api/v1/courses", "url:GET|/api/v1/users/:user_id/profile", "url:POST|/api/v1/courses/:course_id/assignments"}
	if !slices.Equal(rep.SuggestedScopes, wantSuggested) {
		t.Errorf("suggested %q", rep.SuggestedScopes)
	}
	if !slices.Equal(rep.NeededNotGranted, wantSuggested[1:]) {
		t.Errorf("needed_not_granted %q", rep.NeededNotGranted)
	}
	if !slices.Equal(rep.GrantedNotUsed, []string{"url:GET|/api/v1/courses/:id"}) {
		t.Errorf("granted_not_used %q", rep.GrantedNotUsed)
	}
	if code, _ := adminUsage(t, "no-such-key"); code != http.StatusNotFound {
		t.Errorf("unknown key: status %d, want 404", code)
	}
}
