package caddymodule

import (
	"net/http"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/gate"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/matcher"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/params"
)

// read hardens the request (hardening.go), canonicalises its path and
// reads what the decision needs into rq.facts: the host, the body (buffered
// when Rails would parse it) and the parameters. A request that cannot be
// read safely gets a refusal in its facts, which the decision turns into a
// verdict. answered is true when one of the gate's own endpoints (OAuth)
// has answered the request already.
func (h *Handler) read(w http.ResponseWriter, r *http.Request, rq *request) (answered bool, err error) {
	f := &rq.facts
	f.Method, f.Now = r.Method, rq.start // expiry is judged at arrival
	headers, status, msg := hardenRequest(r)
	if status != 0 {
		f.Refusal = &gate.Refusal{Status: status, Message: msg, Always: isHardRefusal(msg)}
		return false, nil
	}
	// hardenRequest checked r.Host (validHost, forwardedHostsMatch): it is
	// the host Rails will read.
	f.Host = r.Host
	escaped := r.URL.EscapedPath()
	canonical, err := matcher.Canonicalize(escaped)
	if err != nil {
		f.Refusal, rq.logFields = pathRefusal(escaped, err)
		return false, nil
	}
	f.Path = canonical
	if escaped != canonical && !canonicalPathForwardable(canonical) {
		f.PathRefusal, rq.logFields = pathRefusal(escaped, errPathEscapes)
	}
	if answered, err := h.serveOAuth(w, r, canonical); answered {
		return true, err
	}

	body, kind, status, err := readInspectableBody(r, headers.contentType, h.MaxBodySize)
	if status == http.StatusRequestEntityTooLarge && h.mayStreamUninspected(r, canonical) {
		f.Refusal = &gate.Refusal{Status: status, Message: err.Error(), Streamable: true}
		return false, nil
	}
	if err != nil {
		f.Refusal = &gate.Refusal{Status: status, Message: err.Error()}
		return false, nil
	}
	rq.body, rq.kind, rq.buffered = body, kind, true
	insp, err := params.Inspect(params.Request{
		Method: r.Method, Header: r.Header, RawQuery: r.URL.RawQuery,
		ContentType: headers.contentType, Body: body,
		CanonicalNames: true, // hardenRequest dropped every name with '_' or '.'
	}, h.limits)
	if err != nil {
		f.Refusal = gate.ParamsRefusal(err)
		return false, nil
	}
	f.Params = insp
	f.SetCredential(insp.Token)
	return false, nil
}
