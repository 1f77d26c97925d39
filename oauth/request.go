package oauth

import (
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Paths the gate answers. TokenPath is Canvas's own token endpoint: the
// gate answers only client_credentials requests from its registered
// clients there and passes everything else on.
const (
	TokenPath      = "/login/oauth2/token"
	IntrospectPath = "/canvas_scopes/oauth2/introspect"
	RevokePath     = "/canvas_scopes/oauth2/revoke"
)

// IsFormRequest reports whether a request has a form-urlencoded body.
func IsFormRequest(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/x-www-form-urlencoded"
}

// TokenRequest is a client_credentials request the gate answers.
type TokenRequest struct {
	Cred     Credentials
	Scopes   []string // requested scopes; nil when scope was absent or empty
	HasScope bool
}

// ClassifyTokenRequest decides whether a POST to TokenPath with a
// form-urlencoded body is the gate's to answer, and parses it if so.
//
// The gate answers when, and only when, the form asks for
// grant_type=client_credentials and the client id it presents (HTTP Basic
// or client_id) is registered with the gate. Every other request, including
// other grant types and client_credentials from client ids the gate does
// not know (Canvas's own clients, LTI client_assertion requests), is not
// ours: ours is false and the caller forwards the request untouched.
//
// When ours is true, err reports an invalid request (RFC 6749 §5.2): a
// repeated parameter, parameters in the query string, two authentication
// methods, a client assertion, or a missing secret (invalid_client).
func ClassifyTokenRequest(header http.Header, rawQuery string, form url.Values, registered func(id string) bool) (tr *TokenRequest, ours bool, err *Error) {
	if !slices.Contains(form["grant_type"], "client_credentials") {
		return nil, false, nil
	}
	for _, id := range presentedIDs(header["Authorization"], form) {
		if registered(id) {
			ours = true
			break
		}
	}
	if !ours {
		return nil, false, nil
	}
	for _, name := range []string{"grant_type", "scope"} {
		if len(form[name]) > 1 {
			return nil, true, invalidRequest(name + " must not be repeated")
		}
	}
	if rawQuery != "" {
		// Rails merges the query over the body; refusing query
		// parameters keeps us and Canvas reading the same request, and
		// keeps secrets out of URLs (RFC 6749 §3.2).
		return nil, true, invalidRequest("token request parameters must be sent in the request body, not the query string")
	}
	if _, ok := form["client_assertion"]; ok {
		return nil, true, invalidRequest("client_assertion cannot be combined with client secret authentication")
	}
	if _, ok := form["client_assertion_type"]; ok {
		return nil, true, invalidRequest("client_assertion cannot be combined with client secret authentication")
	}
	cred, err := ExtractCredentials(header["Authorization"], form)
	if err != nil {
		return nil, true, err
	}
	tr = &TokenRequest{Cred: cred}
	if s := form["scope"]; len(s) == 1 {
		if f := strings.Fields(s[0]); len(f) > 0 {
			tr.Scopes, tr.HasScope = f, true
		}
	}
	return tr, true, nil
}

// GrantScopes resolves a token request's scopes against the client's
// effective scopes: all of them by default, or the requested ones, which
// must be a subset (else invalid_scope). The result keeps the client's
// order and holds no duplicates.
func GrantScopes(requested []string, hasScope bool, clientScopes []string) ([]string, *Error) {
	if !hasScope {
		return slices.Clone(clientScopes), nil
	}
	for _, s := range requested {
		if !slices.Contains(clientScopes, s) {
			return nil, &Error{Status: http.StatusBadRequest, Code: "invalid_scope", Description: "a requested scope is not granted to this client"}
		}
	}
	out := make([]string, 0, len(requested))
	for _, s := range clientScopes {
		if slices.Contains(requested, s) {
			out = append(out, s)
		}
	}
	return out, nil
}
