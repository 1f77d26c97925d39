package caddymodule

import (
	"math/rand/v2"
	"net/http"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/gate"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/matcher"
)

// record is where every verdict is written down: the placeholders, the
// requests_total and include metrics, and the log line. Log lines never
// carry a token, only its short id (a hash prefix).
func (h *Handler) record(r *http.Request, rq *request, v *gate.Verdict) {
	setPlaceholders(r, v)
	if v.Unrecorded || v.Action == gate.AnswerTokenEndpoint {
		// Nothing to count (no credential off /api/, or a body streamed
		// where Canvas reads no token), or the endpoint records its own
		// outcome.
		return
	}
	key := v.Key()
	h.count(key, v.Label, rq.start)
	needed := recordUsage(key, rq, v)
	if n := v.Rewrite.IncludesRemoved; n > 0 {
		includesFiltered.WithLabelValues(h.keyLabel(key)).Add(float64(n))
	}
	level, msg := logLine(v)
	if msg == "" || (v.Label == gate.LabelAllowed && !(h.LogAllowed > 0 && rand.Float64() < h.LogAllowed)) {
		return
	}
	ce := h.logger.Check(level, msg)
	if ce == nil {
		return
	}
	f := &rq.facts
	fields := make([]zap.Field, 0, 10)
	if v.TokenID != "" {
		keyID := unknownKeyLabel
		if key != nil {
			keyID = key.ID
		}
		fields = append(fields, zap.String("developer_key", keyID), zap.String("token_id", v.TokenID))
	}
	fields = append(fields, zap.String("method", f.Method))
	if v.Enforced == gate.LabelBadRequest {
		// A refused path is not logged whole (logFields has an excerpt).
		fields = append(fields, zap.Int("status", v.Status))
	} else {
		fields = append(fields, zap.String("path", f.Path))
	}
	fields = append(fields, zap.Stringer("decision", v.Enforced), zap.String("reason", v.Reason))
	if s := v.Policy.Scope; s != "" {
		fields = append(fields, zap.String("scope", s))
	}
	if v.TokenID != "" && (v.Label == gate.LabelWouldDeny || v.Enforced == gate.LabelInsufficient) {
		// Name the route template (catalogue scope) the request needed.
		if needed == "" {
			needed, _ = matcher.CatalogueSet().Match(f.Method, f.Path)
		}
		if needed != "" {
			fields = append(fields, zap.String("needed_scope", needed))
		}
	}
	if v.Enforced == gate.LabelBadRequest {
		fields = append(fields, rq.logFields...)
	}
	if v.Confinement != nil {
		fields = append(fields, confinementFields(v.Confinement)...)
	}
	ce.Write(fields...)
}

// logLine is the level and message of a verdict's log line ("" for none).
func logLine(v *gate.Verdict) (zapcore.Level, string) {
	switch {
	case v.Label == gate.LabelWouldDeny && v.Enforced == gate.LabelBadRequest:
		return zap.WarnLevel, "request would be refused (report mode)"
	case v.Label == gate.LabelWouldDeny:
		return zap.WarnLevel, "request would be denied (report mode)"
	case v.Confinement != nil:
		return zap.WarnLevel, "request outside the developer key's accounts"
	case v.Action == gate.Refuse:
		return zap.InfoLevel, "request refused"
	case v.Action == gate.Deny:
		return zap.InfoLevel, "request denied"
	case v.Label == gate.LabelAllowed:
		return zap.InfoLevel, "request allowed"
	}
	return zap.InfoLevel, ""
}

// setPlaceholders sets all four placeholders on every request: an unset
// one renders as its own {name} text in headers and logs. Values are
// pre-boxed where they can be: storing a string as an any allocates.
func setPlaceholders(r *http.Request, v *gate.Verdict) {
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return
	}
	d := &v.Policy
	if k := d.Key(); k != nil {
		repl.Set("http.canvas_scopes.developer_key", k.IDValue())
	} else {
		repl.Set("http.canvas_scopes.developer_key", emptyValue)
	}
	switch {
	case d.Token != nil && d.Token.ID == v.TokenID:
		repl.Set("http.canvas_scopes.token_id", d.Token.IDValue())
	case v.TokenID == "":
		repl.Set("http.canvas_scopes.token_id", emptyValue)
	default:
		repl.Set("http.canvas_scopes.token_id", v.TokenID)
	}
	repl.Set("http.canvas_scopes.decision", labelValue(v.Enforced))
	repl.Set("http.canvas_scopes.scope", scopeValue(d.Scope))
}

// setDecisionPlaceholder overrides the decision placeholder, for an
// endpoint that records its own outcome.
func setDecisionPlaceholder(r *http.Request, label gate.Label) {
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Set("http.canvas_scopes.decision", labelValue(label))
	}
}

// emptyValue is "" boxed once.
var emptyValue any = ""

// labelValues are the decision labels' names, boxed once.
var labelValues = func() (v [gate.NumLabels]any) {
	for l := range gate.NumLabels {
		v[l] = l.String()
	}
	return v
}()

func labelValue(label gate.Label) any { return labelValues[label] }

// scopeValues are the catalogue scopes (what Set.Match returns for them),
// boxed once.
var scopeValues = sync.OnceValue(func() map[string]any {
	m := map[string]any{"": "", matcher.AlwaysAllowedPath: matcher.AlwaysAllowedPath}
	for _, s := range matcher.Catalogue() {
		m[s] = s
	}
	return m
})

func scopeValue(scope string) any {
	if v, ok := scopeValues()[scope]; ok {
		return v
	}
	return scope
}
