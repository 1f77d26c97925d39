package caddymodule

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI serves the gate's endpoints on Caddy's admin listener, which
// must stay on localhost (it has no authentication of its own):
//
//	POST /canvas_scopes/reload  re-read every keys file now
//	GET  /canvas_scopes/keys    list developer keys (no hashes, no secrets)
//	GET  /canvas_scopes/keys/<id>/usage  scopes the key used and needed (usage.go)
type adminAPI struct{}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.canvas_scopes",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Routes returns the admin routes.
func (adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/canvas_scopes/reload", Handler: caddy.AdminHandlerFunc(handleReload)},
		{Pattern: "/canvas_scopes/keys", Handler: caddy.AdminHandlerFunc(handleKeys)},
		{Pattern: usagePathPrefix, Handler: caddy.AdminHandlerFunc(handleKeyUsage)},
		{Pattern: "/canvas_scopes/lookup_cache/purge", Handler: caddy.AdminHandlerFunc(handleLookupCachePurge)},
	}
}

type reloadResult struct {
	KeysFile string `json:"keys_file"`
	Reloaded bool   `json:"reloaded"`
	Error    string `json:"error,omitempty"`
}

func handleReload(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed; use POST", r.Method)}
	}
	results := []reloadResult{}
	failed := false
	forEachKeystore(func(ks *keystore) {
		res := reloadResult{KeysFile: ks.path}
		if _, err := ks.reload(true); err != nil {
			res.Error = err.Error()
			failed = true
		} else {
			res.Reloaded = true
		}
		results = append(results, res)
	})
	sort.Slice(results, func(i, j int) bool { return results[i].KeysFile < results[j].KeysFile })
	status := http.StatusOK
	if failed {
		status = http.StatusUnprocessableEntity
	}
	return writeAdminJSON(w, status, results)
}

type keyInfo struct {
	KeysFile   string `json:"keys_file"`
	ID         string `json:"id"`
	Name       string `json:"name,omitempty"`
	Mode       string `json:"mode"`
	Enabled    bool   `json:"enabled"`
	Scoped     bool   `json:"require_scopes"`
	Substitute bool   `json:"upstream_token"`
	ScopeCount int    `json:"scope_count"`
	TokenCount int    `json:"token_count"`
	LoadedAt   string `json:"loaded_at"`
	// ScopeSets are the named sets the key's scopes used, expanded.
	ScopeSets map[string][]string `json:"scope_sets,omitempty"`
}

func handleKeys(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed; use GET", r.Method)}
	}
	out := []keyInfo{}
	forEachStore(func(ks *keystore) {
		store := ks.current.Load()
		if store == nil {
			return
		}
		loaded := time.Unix(0, ks.loadedAt.Load()).UTC().Format(time.RFC3339)
		for _, k := range store.Keys() {
			_, sub := k.UpstreamToken()
			out = append(out, keyInfo{
				KeysFile: ks.path, ID: k.ID, Name: k.Name, Mode: k.Mode.String(),
				Enabled: k.Enabled, Scoped: k.RequireScopes, Substitute: sub,
				ScopeCount: len(k.Scopes), TokenCount: k.TokenCount, LoadedAt: loaded, ScopeSets: k.ScopeSets,
			})
		}
	})
	return writeAdminJSON(w, http.StatusOK, out)
}

func writeAdminJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// Interface guard
var _ caddy.AdminRouter = adminAPI{}
