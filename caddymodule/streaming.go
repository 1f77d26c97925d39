package caddymodule

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/gate"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/matcher"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/params"
)

// mayStreamUninspected reports whether an over-large body can go upstream
// unread. Canvas reads an access token (from the header, the query or the
// body) only where load_pseudonym_from_access_token runs
// (lib/authentication_methods.rb): api_request? (a path under /api/),
// oauth2_provider#destroy (DELETE /login/oauth2/token), login#session_token
// (GET /login/session_token), and, in recent versions, the actions whose
// controller answers token_auth_allowed?: FilesController's show and
// api_show (app/controllers/files_controller.rb), routed from /files/:id,
// /:context/:context_id/files/:id (courses, groups, users, accounts,
// assignments, assessment_questions, quiz_statistics, quiz_submissions …)
// and their /download, /preview and format-suffixed variants. The routes
// are many and vary by version, so the list is written as what they share,
// and anything in doubt gets 413:
//
//   - no credential in the Authorization header or the query (read by
//     params, so %61ccess_token counts too), and no method override;
//   - not under /api/;
//   - no segment "login" first (any format suffix or spelling of the two
//     login endpoints);
//   - no segment named "files" with another segment after it (see
//     hasFilesSegment);
//   - not a path any catalogue scope names.
func (h *Handler) mayStreamUninspected(r *http.Request, canonical string) bool {
	if gate.IsAPIPath(canonical) || isLoginPath(canonical) || hasFilesSegment(canonical) || len(r.Header.Values("Authorization")) > 0 {
		return false
	}
	if _, named := matcher.CatalogueSet().Match(r.Method, canonical); named {
		return false
	}
	insp, err := params.Inspect(params.Request{Method: r.Method, Header: r.Header, RawQuery: r.URL.RawQuery}, h.limits)
	return err == nil && insp.Token == "" && insp.MethodOverride == ""
}

// isLoginPath reports whether the first segment of the canonical path is
// "login" (decoded, any case, any format suffix).
func isLoginPath(canonical string) bool {
	first, _, _ := strings.Cut(strings.TrimPrefix(canonical, "/"), "/")
	return segmentNamed(first, "login")
}

// hasFilesSegment reports whether a segment of the canonical path other
// than the last is "files": every route to FilesController#show has one,
// followed by the file's id. The segment is compared percent-decoded, in
// any ASCII case and with or without a format suffix ("files.json"); one
// that does not decode counts as a match. Upload targets such as
// /files_api (files#api_create) and POST /courses/:id/files
// (files#create), which Canvas authenticates by a signed policy or the
// session and never by a token, do not match and may still stream.
func hasFilesSegment(canonical string) bool {
	rest := strings.TrimPrefix(canonical, "/")
	for {
		seg, after, more := strings.Cut(rest, "/")
		if !more {
			return false
		}
		if segmentNamed(seg, "files") {
			return true
		}
		rest = after
	}
}

// segmentNamed reports whether a path segment is name once decoded, in
// any ASCII case, with or without a ".format" suffix. A segment that does
// not decode is taken to match: where unsure, the body is not streamed.
func segmentNamed(seg, name string) bool {
	if strings.IndexByte(seg, '%') >= 0 {
		decoded, err := url.PathUnescape(seg)
		if err != nil {
			return true
		}
		seg = decoded
	}
	if len(seg) < len(name) || !strings.EqualFold(seg[:len(name)], name) {
		return false
	}
	return len(seg) == len(name) || seg[len(name)] == '.'
}
