package caddymodule

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/gate"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/matcher"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/policy"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/usage"
)

// keyUsage counts scope use per developer key. Like the metrics it lives
// at package level, so counts survive `caddy reload`.
var keyUsage = usage.NewTable(usage.DefaultLimit)

// recordUsage counts one decided request of a known key: the granted
// scope that allowed it, or the catalogue scope a denial (or report mode's
// would_deny) needed. It returns that needed scope ("" when none was
// looked up), so the log line does not match the catalogue again. The
// condition for a needed scope is the log line's: the two agree, and
// `suggest` can rebuild from logs what the admin API reports.
func recordUsage(k *policy.Key, rq *request, v *gate.Verdict) (needed string) {
	if k == nil || v.TokenID == "" {
		return ""
	}
	now := rq.start.UnixNano()
	if rq.start.IsZero() {
		now = time.Now().UnixNano()
	}
	if s := v.Policy.Scope; s != "" {
		if s != matcher.AlwaysAllowedPath {
			keyUsage.Record(k.ID, s, true, now)
		}
		return ""
	}
	if v.Label != gate.LabelWouldDeny && v.Enforced != gate.LabelInsufficient {
		return ""
	}
	needed, ok := matcher.CatalogueSet().Match(rq.facts.Method, rq.facts.Path)
	if !ok {
		return ""
	}
	if needed != matcher.AlwaysAllowedPath {
		keyUsage.Record(k.ID, needed, false, now)
	}
	return needed
}

// UsageStore is where a shared store (the fleet's database) plugs in:
// each instance hands it its counts in batches (keyUsage.Drain, on a
// timer) and the admin API answers from it, so a report covers the whole
// fleet. Without one (nil), reports are per instance.
type UsageStore interface {
	AddUsage(ctx context.Context, batch []usage.Delta) error
	KeyUsage(ctx context.Context, keyID string) ([]usage.Entry, error)
}

// sharedUsage is the UsageStore in use, if any.
var sharedUsage atomic.Pointer[UsageStore]

// usageEntries are the counts of key id: the shared store's when there is
// one, else this instance's.
func usageEntries(ctx context.Context, id string) ([]usage.Entry, error) {
	if s := sharedUsage.Load(); s != nil {
		return (*s).KeyUsage(ctx, id)
	}
	return keyUsage.Key(id), nil
}

// usagePathPrefix and usagePathSuffix frame the key id in
// GET /canvas_scopes/keys/<id>/usage.
const (
	usagePathPrefix = "/canvas_scopes/keys/"
	usagePathSuffix = "/usage"
)

// handleKeyUsage answers GET /canvas_scopes/keys/<id>/usage with the key's
// usage.Report: scopes used (counts, first and last use), needed but not
// granted, granted but not used since the process started, and the
// suggested scope list.
func handleKeyUsage(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed; use GET", r.Method)}
	}
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), usagePathPrefix)
	escapedID, ok2 := strings.CutSuffix(rest, usagePathSuffix)
	id, err := url.PathUnescape(escapedID)
	if !ok || !ok2 || escapedID == "" || strings.Contains(escapedID, "/") || err != nil {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("not found; use GET /canvas_scopes/keys/<id>/usage")}
	}
	var granted []string
	known := false
	forEachStore(func(ks *keystore) {
		store := ks.current.Load()
		if store == nil {
			return
		}
		if k := store.Key(id); k != nil {
			known = true
			granted = append(granted, k.Scopes...)
		}
	})
	entries, err := usageEntries(r.Context(), id)
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: fmt.Errorf("reading usage from the shared store failed")}
	}
	if !known && len(entries) == 0 {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no developer key with that id in any loaded keys file or database, and no usage recorded for it")}
	}
	if known && granted == nil {
		granted = []string{}
	}
	return writeAdminJSON(w, http.StatusOK, usage.Build(id, entries, granted))
}
