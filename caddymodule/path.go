package caddymodule

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"go.uber.org/zap"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/gate"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/matcher"
)

// Refused-path answers are constants (one per matcher.Reason), so neither
// the response nor the log's reason carries request bytes; the log gets a
// bounded, escaped excerpt of the path instead.
const (
	msgRefusedPathPrefix = "refused path: "
	msgRefusedPath       = msgRefusedPathPrefix + "Canvas's stack could read it differently from the gate"
	msgRefusedPathBytes  = msgRefusedPathPrefix + "it contains characters that must be percent-encoded"
	maxLoggedExcerpt     = 64
)

var refusedPathMessages = func() map[matcher.Reason]string {
	m := map[matcher.Reason]string{}
	for reason := matcher.NotAbsolute; reason <= matcher.DoubleEncoding; reason++ {
		m[reason] = msgRefusedPathPrefix + reason.String()
	}
	return m
}()

// pathRefusal is the refusal for a path Canonicalize or setCanonicalPath
// would not accept, with log fields that carry the reason, the offset and
// at most maxLoggedExcerpt bytes of the path, escaped.
func pathRefusal(path string, err error) (*gate.Refusal, []zap.Field) {
	msg := msgRefusedPath
	extra := []zap.Field{zap.Int("path_length", len(path)), zap.String("path_excerpt", logExcerpt(path))}
	var pe *matcher.PathError
	if errors.As(err, &pe) {
		if m, ok := refusedPathMessages[pe.Reason]; ok {
			msg = m
		}
		extra = append(extra, zap.Int("path_offset", pe.Offset))
	} else if errors.Is(err, errPathEscapes) {
		msg = msgRefusedPathBytes
	}
	return &gate.Refusal{Status: http.StatusBadRequest, Message: msg}, extra
}

// logExcerpt returns at most maxLoggedExcerpt bytes of request data for a
// log line (a refused path, a confinement parameter or id), with every
// byte outside printable ASCII, and '"' and '\', percent-escaped.
func logExcerpt(p string) string {
	if len(p) > maxLoggedExcerpt {
		p = p[:maxLoggedExcerpt]
	}
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// setCanonicalPath makes every view of the path (Path, RawPath, RequestURI)
// the canonical form the decision was made on, and verifies that Go will
// forward exactly those bytes.
func setCanonicalPath(r *http.Request, canonical string) error {
	if r.URL.EscapedPath() == canonical {
		// Go may have re-encoded bytes the client sent raw (a '"' or a
		// byte >= 0x80): keep RequestURI, which placeholders and logs
		// read, on the bytes that are matched and forwarded.
		if uri := r.RequestURI; len(uri) < len(canonical) || uri[:len(canonical)] != canonical || (len(uri) > len(canonical) && uri[len(canonical)] != '?') {
			r.RequestURI = r.URL.RequestURI()
		}
		return nil
	}
	decoded, err := url.PathUnescape(canonical)
	if err != nil {
		return errPathEscapes
	}
	r.URL.Path = decoded
	r.URL.RawPath = canonical
	if r.URL.EscapedPath() != canonical {
		return errPathEscapes
	}
	r.RequestURI = r.URL.RequestURI()
	return nil
}

// canonicalPathForwardable reports whether setCanonicalPath will accept
// canonical for a request whose escaped path differs from it, without
// changing the request.
func canonicalPathForwardable(canonical string) bool {
	decoded, err := url.PathUnescape(canonical)
	if err != nil {
		return false
	}
	u := url.URL{Path: decoded, RawPath: canonical}
	return u.EscapedPath() == canonical
}
