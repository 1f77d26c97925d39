package policy

import (
	"strings"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/matcher"
)

// With credential substitution (upstream_token) every allowed request acts
// as the upstream token's Canvas user. Some endpoints hand out, or let the
// caller set, a credential of that user: with such a scope the vendor could
// leave the gate behind and hold the upstream user's whole power. A key
// with upstream_token may hold them only when it says so explicitly
// (allow_upstream_credential_minting).
//
// The test is: a successful call returns a secret that authenticates to
// Canvas (or to a service that trusts Canvas's word for who the user is) as
// the upstream user, or sets a password, login or identity provider by
// which someone can sign in as a user. Endpoints considered and left out,
// with the reason:
//
//   - GET .../tokens/:id, GET .../user_generated_tokens: show only a token
//     hint; DELETE .../tokens/:id destroys rather than mints.
//   - developer_keys and lti_registrations (create, update,
//     regenerate_secret, bindings): the secrets they return authenticate
//     an OAuth client or LTI tool, whose tokens act as the tool, or as a
//     user only after that user authorises it in a browser session (which
//     session_token would provide, and is listed).
//   - POST .../communication_channels, PUT /api/v1/users/:id (user[email]):
//     add an address, not a credential; a password reset sent there still
//     has to be requested and confirmed outside the API. See SECURITY.md.
//   - accounts/:id/admins, temporary_enrollment_pairings,
//     observer_pairing_codes: grant roles or observation to another
//     account, which the scope names explicitly; no credential of the
//     upstream user changes hands.
//   - canvadoc_session, services/kaltura_session, discovery_pages/token:
//     sessions for one document, a media upload or a login-page preview,
//     not for acting as the user.
//   - authentication_providers/force_password_reset, DELETE logins: take
//     access away, they do not grant it.
var mintingRoutes = []struct{ scope, why string }{
	{"url:GET|/api/v1/login/session_token", "it returns a one-time login URL that opens a web session as the upstream user"},
	{"url:GET|/login/session_token", "it returns a one-time login URL that opens a web session as the upstream user"},
	{"url:POST|/api/v1/users/:user_id/tokens", "it creates a Canvas access token"},
	{"url:PUT|/api/v1/users/:user_id/tokens/:id", "with token[regenerate] it returns a new token string for an existing access token"},
	{"url:POST|/api/v1/inst_access_tokens", "it returns an InstAccess token, which Canvas accepts without any scope check"},
	{"url:POST|/api/v1/jwts", "it returns a services JWT, which Canvas accepts without any scope check"},
	{"url:POST|/api/v1/jwts/refresh", "it returns a fresh services JWT, which Canvas accepts without any scope check"},
	{"url:POST|/api/v1/users/self/pandata_events_token", "it returns a token that identifies the upstream user to the usage-events service"},
	{"url:GET|/api/v1/accounts/:account_id/external_tools/sessionless_launch", "it returns a launch URL that signs the upstream user into an LTI tool"},
	{"url:GET|/api/v1/courses/:course_id/external_tools/sessionless_launch", "it returns a launch URL that signs the upstream user into an LTI tool"},
	{"url:POST|/api/v1/accounts/:account_id/logins", "it creates a login, with a password, for an existing user"},
	{"url:PUT|/api/v1/accounts/:account_id/logins/:id", "it changes a login's password or login id"},
	{"url:POST|/api/v1/accounts/:account_id/authentication_providers", "an identity provider the caller controls can sign anyone in, the upstream user included"},
	{"url:PUT|/api/v1/accounts/:account_id/authentication_providers/:id", "an identity provider the caller controls can sign anyone in, the upstream user included"},
	{"url:PUT|/api/v1/accounts/:account_id/authentication_providers/:id/restore", "it brings back a deleted identity provider, which can sign users in"},
	{"url:PUT|/api/v1/users/:id/merge_into/:destination_user_id", "it moves one user's logins onto another user"},
	{"url:PUT|/api/v1/users/:id/merge_into/accounts/:destination_account_id/users/:destination_user_id", "it moves one user's logins onto another user"},
}

// AllowMintingField is the developer key field that acknowledges minting
// scopes on a key with upstream_token.
const AllowMintingField = "allow_upstream_credential_minting"

// mintingRoute reports the credential-minting route a scope grants (or
// could match a request of), and why that route mints. A scope outside the
// catalogue (allow_unknown_scopes) counts when some path matches both it
// and the route, as with "url:POST|/api/v1/users/*rest".
func mintingRoute(scope string) (route, why string, ok bool) {
	sc, err := matcher.ParseScope(scope)
	if err != nil || sc.Kind != matcher.KindURL {
		return "", "", false
	}
	for _, m := range mintingRoutes {
		mv, mp, _ := strings.Cut(strings.TrimPrefix(m.scope, "url:"), "|")
		if mv != sc.Verb {
			continue
		}
		if scope == m.scope || pathsOverlap(sc.Path, mp) {
			return m.scope, m.why, true
		}
	}
	return "", "", false
}

// A scope path as Canvas compiles it is a regular expression: literal
// bytes, ":name" = [^/]+, "*name" = .+, "(…)" optional, and the implicit
// format suffix (\.[^/]+)?. pathsOverlap decides whether two such paths
// match a common string, on the product of their automata. The paths have
// passed matcher.ParseScope, so they hold no other syntax.

type edgeKind uint8

const (
	edgeEps      edgeKind = iota
	edgeLiteral           // one byte
	edgeNotSlash          // [^/]
	edgeAny               // .
)

type edge struct {
	kind edgeKind
	b    byte
	to   int
}

type automaton struct {
	edges  [][]edge
	accept int
}

func (a *automaton) state() int {
	a.edges = append(a.edges, nil)
	return len(a.edges) - 1
}

func (a *automaton) link(from int, kind edgeKind, b byte, to int) {
	a.edges[from] = append(a.edges[from], edge{kind: kind, b: b, to: to})
}

// seq adds the automaton of p[i:] up to an unmatched ")" (or the end) from
// state cur, and returns its end state and the index after the ")".
func (a *automaton) seq(p string, i, cur int) (int, int) {
	for i < len(p) {
		switch c := p[i]; c {
		case '(':
			end, next := a.seq(p, i+1, cur)
			after := a.state()
			a.link(end, edgeEps, 0, after)
			a.link(cur, edgeEps, 0, after)
			cur, i = after, next
		case ')':
			return cur, i + 1
		case ':', '*':
			kind := edgeNotSlash
			if c == '*' {
				kind = edgeAny
			}
			i++
			for i < len(p) && p[i] != '/' && p[i] != ')' {
				i++
			}
			s := a.state()
			a.link(cur, kind, 0, s)
			a.link(s, kind, 0, s)
			cur = s
		default:
			s := a.state()
			a.link(cur, edgeLiteral, c, s)
			cur, i = s, i+1
		}
	}
	return cur, i
}

func compilePath(p string) *automaton {
	a := &automaton{}
	start := a.state()
	end, _ := a.seq(p, 0, start)
	// The format suffix (\.[^/]+)?
	dot, ext := a.state(), a.state()
	a.accept = a.state()
	a.link(end, edgeEps, 0, a.accept)
	a.link(end, edgeLiteral, '.', dot)
	a.link(dot, edgeNotSlash, 0, ext)
	a.link(ext, edgeNotSlash, 0, ext)
	a.link(ext, edgeEps, 0, a.accept)
	return a
}

// intersects reports whether some byte satisfies both edges.
func intersects(x, y edge) bool {
	switch {
	case x.kind == edgeLiteral && y.kind == edgeLiteral:
		return x.b == y.b
	case x.kind == edgeLiteral && y.kind == edgeNotSlash:
		return x.b != '/'
	case x.kind == edgeNotSlash && y.kind == edgeLiteral:
		return y.b != '/'
	}
	return true // [^/] or . against [^/] or .: a letter satisfies both
}

func pathsOverlap(p, q string) bool {
	a, b := compilePath(p), compilePath(q)
	type pair struct{ x, y int }
	seen := map[pair]bool{{0, 0}: true}
	stack := []pair{{0, 0}}
	push := func(x, y int) {
		if pr := (pair{x, y}); !seen[pr] {
			seen[pr] = true
			stack = append(stack, pr)
		}
	}
	for len(stack) > 0 {
		cur := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if cur.x == a.accept && cur.y == b.accept {
			return true
		}
		for _, e := range a.edges[cur.x] {
			if e.kind == edgeEps {
				push(e.to, cur.y)
			}
		}
		for _, f := range b.edges[cur.y] {
			if f.kind == edgeEps {
				push(cur.x, f.to)
			}
		}
		for _, e := range a.edges[cur.x] {
			if e.kind == edgeEps {
				continue
			}
			for _, f := range b.edges[cur.y] {
				if f.kind != edgeEps && intersects(e, f) {
					push(e.to, f.to)
				}
			}
		}
	}
	return false
}
