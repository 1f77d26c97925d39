// Package params reads a request's parameters the way Canvas LMS (Rails on
// Rack) would read them, so that a proxy in front of Canvas can decide on
// exactly what Canvas will see.
//
// It extracts the credential Canvas would use, detects method-override and
// masquerade signals, and rewrites the query string and buffered body to
// apply Canvas's include/includes filter and to strip access_token
// parameters. Every byte it does not have to change is preserved.
//
// Where Go and Rack could read the same bytes differently the package does
// not guess: it refuses the request with a *Error (400). The package uses
// only the standard library.
package params

import (
	"net/http"
	"strings"
)

// Limits bound what Inspect will parse; exceeding one is a *Error with
// Status 400. A zero or negative field means "use the default".
type Limits struct {
	MaxParams    int // max key=value pairs in query + body together; default 1000
	MaxKeyBytes  int // max bytes of one decoded key; default 1024
	MaxJSONDepth int // default 64
}

// DefaultLimits returns the default limits.
func DefaultLimits() Limits {
	return Limits{MaxParams: 1000, MaxKeyBytes: 1024, MaxJSONDepth: 64}
}

func (l Limits) norm() Limits {
	d := DefaultLimits()
	if l.MaxParams <= 0 {
		l.MaxParams = d.MaxParams
	}
	if l.MaxKeyBytes <= 0 {
		l.MaxKeyBytes = d.MaxKeyBytes
	}
	if l.MaxJSONDepth <= 0 {
		l.MaxJSONDepth = d.MaxJSONDepth
	}
	return l
}

// Error is a client error; the handler turns it into a Canvas-shaped JSON
// response with Status. Message is safe to show a client: it is always one
// of a fixed set of constant strings and never contains request data.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return e.Message }

// The fixed set of client error messages.
const (
	MsgDuplicateAuthorization = "duplicate Authorization header"
	MsgConflictingCredentials = "conflicting credentials"
	MsgAmbiguousAccessToken   = "ambiguous access_token parameter"
	MsgSemicolon              = "semicolon in query string or form body is not allowed"
	MsgSpaceAfterAmpersand    = "space after & in query string or form body is not allowed"
	MsgBadEscape              = "malformed percent-encoding in parameters"
	MsgBadQueryByte           = "invalid byte in query string or form body"
	MsgTooManyParams          = "too many parameters"
	MsgKeyTooLong             = "parameter name too long"
	MsgIncludeTypeConflict    = "conflicting scalar and array forms of include/includes"
	MsgInvalidJSON            = "invalid JSON body"
	MsgJSONTooDeep            = "JSON body nested too deeply"
	MsgDuplicateJSONMember    = "duplicate member in JSON body"
	MsgInvalidMultipart       = "malformed multipart body"
)

// ErrorMessages lists every Message an *Error from this package can carry.
var ErrorMessages = []string{
	MsgDuplicateAuthorization, MsgConflictingCredentials, MsgAmbiguousAccessToken,
	MsgSemicolon, MsgSpaceAfterAmpersand, MsgBadEscape, MsgBadQueryByte, MsgTooManyParams, MsgKeyTooLong,
	MsgIncludeTypeConflict, MsgInvalidJSON, MsgJSONTooDeep, MsgDuplicateJSONMember,
	MsgInvalidMultipart,
}

func badRequest(msg string) *Error { return &Error{Status: http.StatusBadRequest, Message: msg} }

// BodyKind says how Rails would parse a request body.
type BodyKind int

const (
	BodyNone BodyKind = iota
	BodyForm
	BodyMultipart
	BodyJSON
	BodyOpaque
)

func (k BodyKind) String() string {
	switch k {
	case BodyNone:
		return "none"
	case BodyForm:
		return "form"
	case BodyMultipart:
		return "multipart"
	case BodyJSON:
		return "json"
	case BodyOpaque:
		return "opaque"
	}
	return "unknown"
}

// BodyKindOf says how Rails would parse a body with this method and
// Content-Type, so the handler knows whether it must buffer the body
// (Form/Multipart/JSON) or may stream it (Opaque/None).
//
// The media type is what Rails and Rack derive: the text before the first
// ';' or ',', trimmed and lower-cased. A POST with no (or an empty)
// Content-Type is form data, as in Rack. multipart/form-data, and also
// multipart/mixed and multipart/related (which Rack parses the same way), are
// Multipart; the returned boundary is "" when it is missing or cannot be read
// unambiguously (Inspect then fails with 400). application/json,
// text/x-json, application/jsonrequest and any */json or */*+json are JSON.
func BodyKindOf(method, contentType string, hasBody bool) (kind BodyKind, boundary string) {
	if !hasBody {
		return BodyNone, ""
	}
	media := mediaType(contentType)
	switch media {
	case "":
		if strings.TrimSpace(contentType) == "" {
			if strings.EqualFold(method, http.MethodPost) {
				return BodyForm, ""
			}
			return BodyOpaque, ""
		}
		// e.g. ";charset=utf-8": Rack would not parse it, but reading it
		// as a form is the safe superset.
		return BodyForm, ""
	case "application/x-www-form-urlencoded":
		return BodyForm, ""
	case "multipart/form-data", "multipart/mixed", "multipart/related":
		return BodyMultipart, multipartBoundary(contentType)
	case "application/json", "text/x-json", "application/jsonrequest":
		return BodyJSON, ""
	}
	if strings.HasSuffix(media, "/json") || (strings.HasSuffix(media, "+json") && strings.IndexByte(media, '/') >= 0) {
		return BodyJSON, ""
	}
	return BodyOpaque, ""
}

// mediaType mirrors ActionDispatch's content_mime_type: /^([^,;]*)/ then
// strip and downcase.
func mediaType(ct string) string {
	if i := strings.IndexAny(ct, ";,"); i >= 0 {
		ct = ct[:i]
	}
	return strings.ToLower(strings.TrimSpace(ct))
}

// multipartBoundary reads the boundary the way Rack does
// (%r|\Amultipart/.*boundary=\"?([^\";,]+)\"?|ni) and also strictly; it
// returns "" unless both readings agree and the boundary is well formed.
func multipartBoundary(ct string) string {
	const pfx = "multipart/"
	if len(ct) < len(pfx) || !strings.EqualFold(ct[:len(pfx)], pfx) {
		return "" // Rack would parse such a body as urlencoded
	}
	const key = "boundary="
	at := -1
	for i := 0; i+len(key) <= len(ct); i++ {
		if strings.EqualFold(ct[i:i+len(key)], key) {
			if at >= 0 {
				return "" // more than one: Rack takes the last, Go errors
			}
			at = i
		}
	}
	if at < 0 {
		return ""
	}
	// The parameter name must start a parameter: preceded by ';' and
	// optional whitespace.
	j := at - 1
	for j >= 0 && (ct[j] == ' ' || ct[j] == '\t') {
		j--
	}
	if j < 0 || ct[j] != ';' {
		return ""
	}
	v := ct[at+len(key):]
	// Rack's reading.
	rv := strings.TrimPrefix(v, `"`)
	if i := strings.IndexAny(rv, "\";,"); i >= 0 {
		rv = rv[:i]
	}
	// Strict reading.
	var sv, rest string
	if strings.HasPrefix(v, `"`) {
		end := strings.IndexByte(v[1:], '"')
		if end < 0 {
			return ""
		}
		sv, rest = v[1:1+end], v[2+end:]
	} else {
		end := strings.IndexAny(v, "; \t")
		if end < 0 {
			end = len(v)
		}
		sv, rest = v[:end], v[end:]
	}
	rest = strings.TrimLeft(rest, " \t")
	if rest != "" && rest[0] != ';' {
		return ""
	}
	if sv != rv || !validBoundary(sv) {
		return ""
	}
	return sv
}

// validBoundary applies RFC 2046's bchars rule.
func validBoundary(b string) bool {
	if len(b) == 0 || len(b) > 70 || b[len(b)-1] == ' ' {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("'()+_,-./:=? ", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// Source says where the credential came from.
type Source int

const (
	SourceNone Source = iota
	SourceHeader
	SourceQuery
	SourceBody
)

func (s Source) String() string {
	switch s {
	case SourceNone:
		return "none"
	case SourceHeader:
		return "header"
	case SourceQuery:
		return "query"
	case SourceBody:
		return "body"
	}
	return "unknown"
}

// Request is what Inspect reads.
type Request struct {
	Method      string
	Header      http.Header // Authorization and the override headers are read from here
	RawQuery    string      // r.URL.RawQuery as received
	ContentType string
	Body        []byte // the buffered body when BodyKindOf says Form/Multipart/JSON; nil otherwise
	// CanonicalNames promises that every name in Header is in Go's
	// canonical form and none has '_' or '.' (net/http's server
	// canonicalises names, and the gate's hardening drops the others), so
	// the override headers can be found by key (override_keys.go). Leave
	// it false when unsure: Inspect then looks at every name.
	CanonicalNames bool
}
