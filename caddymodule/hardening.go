package caddymodule

import (
	"net/http"
	"strings"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/params"
)

// Request hygiene that runs before the gate reads anything, on every request
// (credentialed or not). Each rule closes a way for the bytes Canvas's stack
// (Puma, Rack, Rails) acts on to differ from the bytes the gate decided on.
// See SECURITY.md for the case families; the messages are constant strings
// and never echo request data (SECURITY.md §6, H5).
const (
	msgTrailers         = "request trailers are not allowed"
	msgDuplicateCT      = "duplicate Content-Type header"
	msgEncodedParamBody = "a Content-Encoding on a form, multipart or JSON body is not allowed"
)

// protectedConnectionTokens are header names a client may not make
// hop-by-hop by listing them in Connection. Each is one the gate decided on
// (Authorization: the credential; Content-Type: how the body is parsed) or
// one that frames the body. If the client could have them removed after the
// decision, Canvas would read the request differently: e.g. an opaque
// text/plain body the gate did not inspect would become a form body (a POST
// without Content-Type is form data in Rack) carrying _method, as_user_id,
// include or access_token to the upstream credential (SECURITY.md §6, H3).
var protectedConnectionTokens = [...]string{
	"authorization", "content-type", "content-length", "content-encoding",
	"transfer-encoding", "host",
}

// hardenRequest applies the request-wide rules. A non-zero status means
// refuse with msg; otherwise r may have been changed in place:
//
//   - header names containing '_' or '.' are dropped (SECURITY.md §6, H1 and S3):
//     Rack servers map '-' and '_' to the same env key (and some front
//     ends map '.'), so X_HTTP_Method_Override, Content_Length or
//     Remote_User could be read by Canvas's stack as the dashed header.
//     Dropping them makes the forwarded request the one that was decided.
//   - protected names are removed from Connection, so neither this
//     handler's stripHopByHopNames nor reverse_proxy deletes them.
//
// and refuses (400):
//
//   - request trailers (Caddy's reverse_proxy forwards them; a server
//     that merged them into headers would see headers the gate never saw);
//   - more than one Content-Type header (the gate reads the first; a
//     front end may join or pick another);
//   - a Content-Encoding other than identity on a body the gate inspects
//     (form, multipart, JSON): the gate cannot read compressed parameters,
//     and a decompressing component upstream would expose them.
//
// It also returns what the parameter inspection needs from the header
// names, found on the same pass over them.
func hardenRequest(r *http.Request) (sh scannedHeaders, status int, msg string) {
	// One pass over the header names finds what the rules below need,
	// instead of a map lookup per rule on every request.
	var trailer, contentTypes, contentEncoding []string
	connection := false
	for name, values := range r.Header {
		if hasUnderscoreOrDot(name) {
			delete(r.Header, name)
			continue
		}
		switch name {
		case "Trailer":
			trailer = values
		case "Content-Type":
			contentTypes = values
		case "Content-Encoding":
			contentEncoding = values
		case "Connection":
			connection = true
		default:
			if rank := params.OverrideHeaderRank(name); rank >= 0 {
				sh.overrideHeaders |= 1 << rank
			}
		}
	}
	if len(r.Trailer) > 0 || len(trailer) > 0 {
		return scannedHeaders{}, http.StatusBadRequest, msgTrailers
	}
	if len(contentTypes) > 1 {
		return scannedHeaders{}, http.StatusBadRequest, msgDuplicateCT
	}
	if len(contentTypes) == 1 {
		sh.contentType = contentTypes[0]
	}
	if len(contentEncoding) > 0 && !identityOnly(contentEncoding) {
		switch kind, _ := params.BodyKindOf(r.Method, sh.contentType, hasBody(r)); kind {
		case params.BodyForm, params.BodyMultipart, params.BodyJSON:
			return scannedHeaders{}, http.StatusBadRequest, msgEncodedParamBody
		}
	}
	if connection {
		protectConnection(r.Header)
	}
	return sh, 0, ""
}

// scannedHeaders is what hardenRequest's pass over the header names found
// for the rest of the gate.
type scannedHeaders struct {
	contentType     string // the Content-Type (at most one is accepted)
	overrideHeaders uint8  // bit 1<<params.OverrideHeaderRank of each present
}

func hasBody(r *http.Request) bool {
	return r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
}

// hasUnderscoreOrDot is strings.ContainsAny(name, "_.") without building
// a byte set per header on every request.
func hasUnderscoreOrDot(name string) bool {
	for i := 0; i < len(name); i++ {
		if name[i] == '_' || name[i] == '.' {
			return true
		}
	}
	return false
}

func identityOnly(values []string) bool {
	for _, v := range values {
		for tok := range strings.SplitSeq(v, ",") {
			if tok = strings.TrimSpace(tok); tok != "" && !strings.EqualFold(tok, "identity") {
				return false
			}
		}
	}
	return true
}

// protectConnection rewrites the Connection header without the protected
// names (and drops it when nothing is left).
func protectConnection(h http.Header) {
	vals, ok := h["Connection"]
	if !ok {
		return
	}
	changed := false
	var keep []string
	for _, v := range vals {
		for tok := range strings.SplitSeq(v, ",") {
			tok = strings.TrimSpace(tok)
			if tok == "" {
				changed = true
				continue
			}
			if isProtectedConnectionToken(tok) {
				changed = true
				continue
			}
			keep = append(keep, tok)
		}
	}
	if !changed && len(vals) == 1 {
		return
	}
	if len(keep) == 0 {
		delete(h, "Connection")
		return
	}
	h["Connection"] = []string{strings.Join(keep, ", ")}
}

func isProtectedConnectionToken(tok string) bool {
	for _, p := range protectedConnectionTokens {
		if strings.EqualFold(tok, p) {
			return true
		}
	}
	return false
}
