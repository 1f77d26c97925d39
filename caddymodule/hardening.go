package caddymodule

import (
	"net/http"
	"net/netip"
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
	msgInvalidHost      = "invalid Host: it must be a host name or IP address with an optional numeric port"
	msgForwardedHost    = "a Forwarded host or X-Forwarded-Host that is not exactly the Host is not allowed"
	msgTunnel           = "CONNECT is not allowed: the gate does not open tunnels"
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
//   - Upgrade and HTTP2-Settings are dropped, and the "upgrade" and
//     "http2-settings" tokens removed from Connection: no request opens a
//     tunnel through the gate. Requests the gate forwards without a
//     decision (anonymous ones off /api/, unknown_tokens pass, anonymous
//     pass) would otherwise keep Upgrade, and after a 101 from upstream
//     the bytes in the tunnel (scoped tokens on denied paths included)
//     would reach Canvas unchecked. Caddy's reverse_proxy only tunnels a
//     request that still carries Upgrade (and answers a 101 to one that
//     does not with 502), so the request goes on as plain HTTP.
//
// and refuses (400):
//
//   - CONNECT, including HTTP/2 and HTTP/3 extended CONNECT (:protocol),
//     which reverse_proxy turns into a WebSocket upgrade: a tunnel. This
//     refusal holds in report mode too (see isHardRefusal).
//   - a Host (or :authority) that is not a host name or IP literal with an
//     optional numeric port (see validHost), and a client-supplied
//     X-Forwarded-Host or Forwarded host= that is not exactly the Host (see
//     forwardedHostsMatch): the `hosts` binding is checked on the Host, so
//     the host Rails reads must be that Host;
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
	if r.Method == http.MethodConnect || len(r.Header[":protocol"]) > 0 {
		return scannedHeaders{}, http.StatusBadRequest, msgTunnel
	}
	if !validHost(r.Host) {
		return scannedHeaders{}, http.StatusBadRequest, msgInvalidHost
	}
	// One pass over the header names finds what the rules below need,
	// instead of a map lookup per rule on every request.
	var trailer, contentTypes, contentEncoding, forwardedHost, forwarded []string
	connection := false
	for name, values := range r.Header {
		if hasUnderscoreOrDot(name) {
			delete(r.Header, name)
			continue
		}
		switch name {
		case "Upgrade", "Http2-Settings":
			delete(r.Header, name)
			connection = true // drop their tokens from Connection too
		case "X-Forwarded-Host":
			forwardedHost = values
		case "Forwarded":
			forwarded = values
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
	if (forwardedHost != nil || forwarded != nil) && !forwardedHostsMatch(r.Host, forwardedHost, forwarded) {
		return scannedHeaders{}, http.StatusBadRequest, msgForwardedHost
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

// isHardRefusal reports whether a hardenRequest refusal stands even in
// report mode, which otherwise forwards refused requests as received:
// forwarding a CONNECT would open the tunnel no request may open.
func isHardRefusal(msg string) bool { return msg == msgTunnel }

// validHost reports whether host (r.Host: the Host header, or HTTP/2's
// :authority) is a host name, an IPv4 address or a bracketed IPv6 address,
// with an optional port of 1 to 5 digits, and nothing else.
//
// The `hosts` binding is checked on this text while Canvas reads its host
// elsewhere: Caddy's reverse_proxy copies r.Host into X-Forwarded-Host,
// and ActionDispatch 6.1 takes request.host from the last comma-separated
// entry of X-Forwarded-Host (then strips a trailing :digits), Rack 2.2 from
// the first. A Host such as "allowed.example:,other.example" once passed the
// binding on the text before the colon while Rails saw other.example. With
// only name characters, one colon and digits after it, every reader splits
// it the same way.
func validHost(host string) bool {
	if host == "" || len(host) > 255+6 {
		return false
	}
	name, port := host, ""
	if host[0] == '[' {
		end := strings.IndexByte(host, ']')
		if end < 0 {
			return false
		}
		addr, err := netip.ParseAddr(host[1:end])
		if err != nil || !addr.Is6() || addr.Zone() != "" {
			return false
		}
		name, port = host[:end+1], host[end+1:]
		if port != "" && port[0] != ':' {
			return false
		}
	} else if i := strings.IndexByte(host, ':'); i >= 0 {
		name, port = host[:i], host[i:]
	}
	if port != "" {
		digits := port[1:]
		if len(digits) == 0 || len(digits) > 5 {
			return false
		}
		for i := 0; i < len(digits); i++ {
			if digits[i] < '0' || digits[i] > '9' {
				return false
			}
		}
	}
	if name[0] == '[' {
		return true
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// forwardedHostsMatch reports whether the client-supplied X-Forwarded-Host
// and Forwarded host= values, if any, are exactly host (ASCII case aside).
//
// Where Caddy does not trust the client, reverse_proxy replaces
// X-Forwarded-Host with r.Host; where it does (trusted_proxies, in the
// server or in reverse_proxy, which the gate cannot see), it forwards the
// client's last X-Forwarded-Host line, and Rails takes its host from that.
// Caddy never touches Forwarded, which Rack 3 reads before
// X-Forwarded-Host (its forwarded_priority default; the last host= wins).
// So whatever either header says must be the Host the binding was checked
// on: one X-Forwarded-Host line holding exactly one value, and every
// host= parameter of every Forwarded element, equal to Host including
// the port. Anything else (a list, a different host or port, a value Rack
// would not parse) is refused rather than guessed at.
//
// X-Forwarded-Port, -Proto, -Scheme and -Ssl are left alone: they change
// only the port and scheme Canvas infers when the host has no port, and a
// `hosts` entry with a port matches only a Host with that port, while one
// without a port matches any port.
func forwardedHostsMatch(host string, xForwardedHost, forwarded []string) bool {
	if len(xForwardedHost) > 1 {
		return false
	}
	if len(xForwardedHost) == 1 && !strings.EqualFold(xForwardedHost[0], host) {
		return false
	}
	for _, line := range forwarded {
		// Rack 3 splits on ";" and "," without regard to quotes; so do we.
		for element := range strings.SplitSeq(line, ",") {
			for pair := range strings.SplitSeq(element, ";") {
				key, value, _ := strings.Cut(pair, "=")
				if !strings.EqualFold(strings.TrimSpace(key), "host") {
					continue
				}
				value = strings.TrimSpace(value)
				if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
					value = value[1 : len(value)-1]
				}
				if !strings.EqualFold(value, host) {
					return false
				}
			}
		}
	}
	return true
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
// names and the upgrade tokens (and drops it when nothing is left).
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
			if isProtectedConnectionToken(tok) || strings.EqualFold(tok, "upgrade") || strings.EqualFold(tok, "http2-settings") {
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
