package caddymodule

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/matcher"
)

// catalogue_file makes the gate validate against that file: a scope only
// the file has loads (and its route is allowed), a scope it no longer has
// is an error suggesting its replacement.
func TestCatalogueFileUsedByTheGate(t *testing.T) {
	dir := t.TempDir()
	list := slices.DeleteFunc(matcher.Catalogue(), func(s string) bool { return s == renamedScope })
	list = append(list, renamedTo)
	catPath := filepath.Join(dir, "catalogue.txt")
	os.WriteFile(catPath, []byte("# Canvas URL scopes of a test Canvas\n"+strings.Join(list, "\n")+"\n"), 0o600)

	d := caddyfile.NewTestDispenser("canvas_scopes {\n keys_file " + filepath.Join(dir, "keys.json") + "\n catalogue_file " + catPath + "\n}")
	var parsed Handler
	if err := parsed.UnmarshalCaddyfile(d); err != nil || parsed.CatalogueFile != catPath {
		t.Fatalf("Caddyfile: %v, %q", err, parsed.CatalogueFile)
	}

	provision := func(scope string) (*Handler, error) {
		keys := `{"developer_keys": [{"id": "catfile-vendor", "scopes": ["` + scope + `"]}],
"tokens": [{"sha256": "` + benchSHA("catfile-token") + `", "developer_key": "catfile-vendor"}]}`
		os.WriteFile(filepath.Join(dir, "keys.json"), []byte(keys), 0o600)
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		t.Cleanup(cancel)
		off := caddy.Duration(0)
		h := &Handler{KeysFile: filepath.Join(dir, "keys.json"), ReloadInterval: &off, CatalogueFile: catPath}
		err := h.Provision(ctx)
		if err == nil {
			t.Cleanup(func() { _ = h.Cleanup() })
		}
		return h, err
	}
	if _, err := provision(renamedScope); err == nil || !strings.Contains(err.Error(), `did you mean "`+renamedTo+`"`) {
		t.Fatalf("a scope the catalogue file lacks: %v", err)
	}
	h, err := provision(renamedTo)
	if err != nil {
		t.Fatalf("a scope only the catalogue file has: %v", err)
	}
	r := httptest.NewRequest("GET", "/api/v1/courses/3/pages/syllabus-notes", nil)
	r.Header.Set("Authorization", "Bearer catfile-token")
	r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), httptest.NewRecorder(), nil)
	next := &statusNext{}
	if err := h.ServeHTTP(httptest.NewRecorder(), r, next); err != nil || next.called != 1 {
		t.Fatalf("the route of the file's scope: err %v, forwarded %d", err, next.called)
	}
}
