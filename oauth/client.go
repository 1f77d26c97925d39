package oauth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
)

// Error is an OAuth2 error response (RFC 6749 §5.2, RFC 7009 §2.2.1).
type Error struct {
	Status      int
	Code        string // invalid_request, invalid_client, invalid_scope, ...
	Description string
}

func (e *Error) Error() string { return e.Code + ": " + e.Description }

// Challenge says whether the response must carry WWW-Authenticate: every
// 401 does (RFC 7235 §3.1).
func (e *Error) Challenge() bool { return e.Status == http.StatusUnauthorized }

func invalidRequest(desc string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "invalid_request", Description: desc}
}

// InvalidClient is the answer to any failed client authentication. It
// never says whether the id or the secret was wrong.
func InvalidClient() *Error {
	return &Error{Status: http.StatusUnauthorized, Code: "invalid_client", Description: "client authentication failed"}
}

// Credentials are a client's presented id and secret. Secret must never be
// logged.
type Credentials struct {
	ClientID  string
	Secret    string
	HasSecret bool
	Basic     bool // came from Authorization: Basic
}

// ParseBasic decodes an Authorization: Basic value per RFC 6749 §2.3.1:
// base64 of id ":" secret, where each was form-urlencoded first. ok is
// false for any other scheme; err is set for a malformed Basic value.
func ParseBasic(values []string) (c Credentials, ok bool, err *Error) {
	if len(values) == 0 {
		return Credentials{}, false, nil
	}
	if len(values) > 1 {
		return Credentials{}, false, invalidRequest("more than one Authorization header")
	}
	scheme, rest, _ := strings.Cut(strings.TrimSpace(values[0]), " ")
	if !strings.EqualFold(scheme, "Basic") {
		return Credentials{}, false, nil
	}
	raw, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(rest))
	if derr != nil {
		return Credentials{}, true, invalidRequest("malformed Basic credentials")
	}
	id, secret, found := strings.Cut(string(raw), ":")
	if !found {
		return Credentials{}, true, invalidRequest("malformed Basic credentials")
	}
	uid, e1 := url.QueryUnescape(id)
	usec, e2 := url.QueryUnescape(secret)
	if e1 != nil || e2 != nil || uid == "" {
		return Credentials{}, true, invalidRequest("malformed Basic credentials")
	}
	return Credentials{ClientID: uid, Secret: usec, HasSecret: true, Basic: true}, true, nil
}

// ExtractCredentials finds the client's credentials in the Authorization
// header (Basic) and the form (client_id, client_secret). Using both
// methods, repeating a parameter, or naming two different ids is
// invalid_request (RFC 6749 §2.3: one method per request).
func ExtractCredentials(authorization []string, form url.Values) (Credentials, *Error) {
	basic, isBasic, err := ParseBasic(authorization)
	if err != nil {
		return Credentials{}, err
	}
	ids, secrets := form["client_id"], form["client_secret"]
	if len(ids) > 1 || len(secrets) > 1 {
		return Credentials{}, invalidRequest("client_id and client_secret must not be repeated")
	}
	if isBasic {
		if len(secrets) > 0 {
			return Credentials{}, invalidRequest("the client authenticated with both HTTP Basic and client_secret; use one method")
		}
		if len(ids) > 0 && ids[0] != basic.ClientID {
			return Credentials{}, invalidRequest("client_id does not match the HTTP Basic credentials")
		}
		return basic, nil
	}
	var c Credentials
	if len(ids) > 0 {
		c.ClientID = ids[0]
	}
	if len(secrets) > 0 {
		c.Secret, c.HasSecret = secrets[0], true
	}
	return c, nil
}

// presentedIDs lists the client ids a request names (Basic, form), without
// validating the request. Used to decide whether a token request is the
// gate's to answer.
func presentedIDs(authorization []string, form url.Values) []string {
	var ids []string
	if c, ok, err := ParseBasic(authorization); ok && err == nil {
		ids = append(ids, c.ClientID)
	}
	return append(ids, form["client_id"]...)
}

// dummySecret is compared against when the client id is unknown, so that
// the time taken does not say whether an id exists.
var dummySecret = sha256.Sum256([]byte("canvas-scopes: no such client"))

// SecretMatches compares the SHA-256 of the presented secret with the
// registered secret_sha256 in constant time. want nil runs a dummy
// comparison and returns false.
func SecretMatches(presented string, want *[32]byte) bool {
	got := sha256.Sum256([]byte(presented))
	ref := &dummySecret
	if want != nil {
		ref = want
	}
	eq := subtle.ConstantTimeCompare(got[:], ref[:]) == 1
	return eq && want != nil
}
