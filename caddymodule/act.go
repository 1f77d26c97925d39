package caddymodule

import (
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/gate"
)

// act carries out a verdict: answer (deny, refuse, or the gate's own
// answer at Canvas's token endpoint), or hand the request on, rewritten as
// the verdict says.
func (h *Handler) act(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, rq *request, v *gate.Verdict) error {
	switch v.Action {
	case gate.Deny:
		switch v.Enforced {
		case gate.LabelNoCredential:
			writeNoCredential(w)
		case gate.LabelOutsideAccounts:
			writeJSON(w, http.StatusUnauthorized, bodyOutsideAccounts, false)
		case gate.LabelLookupFailed:
			w.Header().Set("Retry-After", lookupRetryAfter)
			writeJSON(w, http.StatusServiceUnavailable, bodyLookupFailed, false)
		default:
			writeDenial(w, v.Policy)
		}
		return nil
	case gate.Refuse:
		writeClientError(w, v.Status, v.Message)
		return nil
	case gate.AnswerTokenEndpoint:
		return h.serveSubstitutedTokenEndpoint(w, r, rq.start, v.Policy, rq.facts.Token)
	}
	if v.CanonicalPath {
		// Decide refused paths that setCanonicalPath would not take.
		if err := setCanonicalPath(r, rq.facts.Path); err != nil {
			writeClientError(w, http.StatusBadRequest, msgRefusedPathBytes)
			return nil
		}
	}
	if v.Action == gate.Pass {
		rq.restoreBody(r)
		return next.ServeHTTP(w, r)
	}
	rw := &v.Rewrite
	if rw.QueryChanged {
		r.URL.RawQuery = rw.RawQuery
		r.RequestURI = r.URL.RequestURI()
	}
	if rw.BodyChanged {
		setBody(r, rw.Body)
	} else {
		rq.restoreBody(r)
	}
	stripHopByHopNames(r.Header)
	// A credentialed request carries exactly one credential upstream:
	// session cookies are unscoped (SECURITY.md §6, Q7), so they never go
	// along.
	delete(r.Header, "Cookie") // canonical key: Header.Del would canonicalise it again
	if v.Upstream != "" {
		r.Header.Set("Authorization", "Bearer "+v.Upstream)
	}
	err := next.ServeHTTP(w, r)
	if v.Moves && h.confiner != nil {
		h.confiner.Moved(v.Policy.Scope, rq.facts.Path)
	}
	return err
}

// restoreBody puts the buffered body back on the request, unchanged.
func (rq *request) restoreBody(r *http.Request) {
	if rq.buffered {
		restoreBody(r, rq.body, rq.kind)
	}
}

// stripHopByHopNames removes headers a client named in Connection: the
// reverse proxy would drop them after we set them (SECURITY.md §6, H3), so a
// client could make it strip the Authorization we inject.
func stripHopByHopNames(h http.Header) {
	// Fast path for the common request without Connection: the key is
	// already canonical, so a map lookup equals h.Values("Connection")
	// without canonicalising the name twice per request.
	if _, ok := h["Connection"]; !ok {
		return
	}
	for _, v := range h.Values("Connection") {
		for name := range strings.SplitSeq(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	h.Del("Connection")
}
