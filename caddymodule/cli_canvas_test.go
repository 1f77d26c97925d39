package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/matcher"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/policy"
)

const (
	standinToken   = "test-only-canvas-admin-token"
	renamedScope   = "url:GET|/api/v1/courses/:course_id/pages/:url_or_id"
	renamedTo      = "url:GET|/api/v1/courses/:course_id/pages/:page_url"
	addedScope     = "url:GET|/api/v1/courses/:course_id/brand_new_things"
	droppedScope   = "url:DELETE|/api/v1/accounts/:account_id/account_notifications/:id"
	standinSecret  = "SECRET-api-key-never-written"
	standinPerPage = 500
)

// canvasStandIn serves the scopes and developer_keys listings of a Canvas,
// paginated with Link headers, for the admin token only. foreignNext
// makes the scopes listing point its next page at another host.
func canvasStandIn(t *testing.T, foreignNext bool) *httptest.Server {
	t.Helper()
	var scopes []string
	for _, s := range matcher.Catalogue() {
		switch s {
		case renamedScope:
			scopes = append(scopes, renamedTo)
		case droppedScope:
		default:
			scopes = append(scopes, s)
		}
	}
	scopes = append(scopes, addedScope, "lti_service/not_a_url_scope")
	keys := []map[string]any{
		{"id": 10000000000001, "name": "Roster vendor", "scopes": []string{"url:GET|/api/v1/courses"}, "require_scopes": true, "workflow_state": "active", "api_key": standinSecret},
		{"id": 10000000000002, "name": "An LTI tool", "is_lti_key": true, "workflow_state": "active", "api_key": standinSecret},
		{"id": 10000000000003, "name": "Old vendor", "scopes": []string{}, "require_scopes": false, "allow_includes": true, "workflow_state": "inactive", "api_key": standinSecret},
		{"id": 10000000000004, "name": "Gradebook", "scopes": []string{"url:GET|/api/v1/courses/:course_id/assignments"}, "require_scopes": true, "workflow_state": "active", "api_key": standinSecret},
	}
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+standinToken {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		page = max(page, 1)
		var items []any
		perPage := standinPerPage
		switch r.URL.Path {
		case "/api/v1/accounts/self/scopes":
			for _, s := range scopes {
				items = append(items, map[string]string{"resource": "x", "verb": "GET", "scope": s})
			}
		case "/api/v1/accounts/self/developer_keys":
			perPage = 2
			for _, k := range keys {
				items = append(items, k)
			}
		default:
			w.WriteHeader(http.StatusNotFound)
			return
		}
		from, to := (page-1)*perPage, min(page*perPage, len(items))
		if to < len(items) {
			next := fmt.Sprintf("%s%s?page=%d&per_page=%d", srv.URL, r.URL.Path, page+1, perPage)
			if foreignNext {
				next = strings.Replace(next, "127.0.0.1", "localhost", 1)
			}
			w.Header().Add("Link", fmt.Sprintf(`<%s>; rel="current",<%s>; rel="next"`, r.URL.String(), next))
		}
		json.NewEncoder(w).Encode(items[from:to])
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestCatalogueFetchAndDiffAgainstCanvasStandIn(t *testing.T) {
	srv := canvasStandIn(t, false)
	t.Setenv(canvasTokenEnv, "")
	var out, errb bytes.Buffer
	if code := runCatalogueFetch(context.Background(), srv.URL, "self", "", time.Now(), &out, &errb); code != exitUsage || !strings.Contains(errb.String(), canvasTokenEnv) {
		t.Fatalf("without a token: exit %d, %s", code, errb.String())
	}
	t.Setenv(canvasTokenEnv, standinToken)
	path := filepath.Join(t.TempDir(), "catalogue.txt")
	errb.Reset()
	if code := runCatalogueFetch(context.Background(), srv.URL, "self", path, time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), &out, &errb); code != exitOK {
		t.Fatalf("fetch: exit %d: %s", code, errb.String())
	}
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if want := "# Canvas URL scopes of " + srv.URL + ", fetched 2026-05-01 (1311 scopes)"; lines[0] != want {
		t.Errorf("header %q, want %q", lines[0], want)
	}
	body := lines[1:]
	if len(body) != 1311 || !slices.IsSorted(body) || !slices.Contains(body, addedScope) || slices.Contains(body, droppedScope) {
		t.Errorf("catalogue: %d scopes (all pages?), sorted %v", len(body), slices.IsSorted(body))
	}
	if strings.Contains(string(data), "lti_service") || strings.Contains(string(data), standinToken) {
		t.Error("a non-URL scope or the token in the catalogue file")
	}

	out.Reset()
	if code := runCatalogueDiff(path, &out, &errb); code != exitOK {
		t.Fatalf("diff: %d %s", code, errb.String())
	}
	for _, want := range []string{
		"2 added, 2 removed",
		"+ " + addedScope,
		"+ " + renamedTo,
		"- " + renamedScope + "  (closest new: " + renamedTo + ")",
		"- " + droppedScope + "\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("diff lacks %q:\n%s", want, out.String())
		}
	}
}

func TestCanvasListingStaysOnTheCanvasHost(t *testing.T) {
	srv := canvasStandIn(t, true)
	t.Setenv(canvasTokenEnv, standinToken)
	var out, errb bytes.Buffer
	if code := runCatalogueFetch(context.Background(), srv.URL, "self", "", time.Now(), &out, &errb); code != exitUsage || !strings.Contains(errb.String(), "another host") {
		t.Fatalf("a next page on another host: exit %d, %s", code, errb.String())
	}
}

func TestImportDeveloperKeysFromCanvasStandIn(t *testing.T) {
	srv := canvasStandIn(t, false)
	t.Setenv(canvasTokenEnv, standinToken)
	var out, errb bytes.Buffer
	if code := runImport(context.Background(), srv.URL, "self", &out, &errb); code != exitOK {
		t.Fatalf("import: exit %d: %s", code, errb.String())
	}
	if strings.Contains(out.String()+errb.String(), standinSecret) || strings.Contains(out.String(), "api_key") {
		t.Fatal("import wrote a developer key's secret")
	}
	kf, err := policy.ParseKeysFile("imported.json", out.Bytes(), policy.ParseOptions{})
	if err != nil {
		t.Fatalf("the output is not a keys file: %v\n%s", err, out.String())
	}
	var ids []string
	for _, k := range kf.DeveloperKeys {
		ids = append(ids, k.ID)
	}
	if want := []string{"10000000000001", "10000000000003", "10000000000004"}; !slices.Equal(ids, want) {
		t.Errorf("imported %q, want %q (the LTI key skipped, all pages read)", ids, want)
	}
	old := kf.DeveloperKeys[1]
	if old.Enabled || old.RequireScopes || !old.AllowIncludes || old.Name != "Old vendor" {
		t.Errorf("inactive key: %+v", old)
	}
	if !kf.DeveloperKeys[0].Enabled || !slices.Equal(kf.DeveloperKeys[2].Scopes, []string{"url:GET|/api/v1/courses/:course_id/assignments"}) {
		t.Errorf("keys: %+v", kf.DeveloperKeys)
	}
}
