// Package caddymodule is the Caddy shell around the gate's core: the
// http.handlers.canvas_scopes handler, its Caddyfile directive, the
// hot-reloaded key store, metrics, admin endpoints and the CLI.
package caddymodule

import (
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/gate"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/params"
)

// ServeHTTP runs one request through the gate: harden, canonicalise and
// read it (read.go), decide (gate.Decide, the same call `explain` makes,
// and for a key confined to accounts the look-ups of confine.go), record
// the decision (record.go), then act on it (act.go).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	rq := request{start: time.Now()}
	if answered, err := h.read(w, r, &rq); answered {
		return err // one of the gate's own endpoints answered
	}
	defer rq.release()
	v := gate.Decide(&rq.facts, h.state(rq.start), h.decision)
	if v.Confine {
		v = gate.Confine(v, h.lookUpAccounts(r.Context(), &rq.facts, &v), h.decision)
	}
	h.record(r, &rq, &v)
	return h.act(w, r, next, &rq, &v)
}

// request is what the gate read from one request, and what acting on the
// verdict needs of it.
type request struct {
	start time.Time
	facts gate.Facts
	// body is the buffered body of kind (form, multipart, JSON), when
	// buffered is set; act puts it back on the request.
	body     []byte
	kind     params.BodyKind
	buffered bool
	// logFields add to the refusal's log line what its constant message
	// cannot say (a bounded, escaped excerpt of a refused path).
	logFields []zap.Field
}

func (rq *request) release() {
	if rq.facts.Params != nil {
		rq.facts.Params.Release()
	}
}

// state is the current state a decision reads.
func (h *Handler) state(now time.Time) gate.State {
	var st gate.State
	if h.keystore != nil { // nil only in tests of the read step
		st.Store = h.keystore.current.Load()
	}
	st.Stale = h.stale(now) // a database source past max_staleness (fleet.go)
	if h.oauth != nil {
		st.Gateway = &h.oauth.Gateway
	}
	return st
}
