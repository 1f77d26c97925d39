package policy

import (
	"net"
	"strings"
	"time"
)

// Outcome is what the gate decided for one credentialed request.
type Outcome uint8

const (
	// Allowed: forward the request (after include filtering).
	Allowed Outcome = iota
	// InsufficientScope: 401 "Insufficient scopes on access token.".
	InsufficientScope
	// InvalidToken: 401 "Invalid access token." (key disabled, wrong host).
	InvalidToken
	// Expired: 401 "Expired access token.".
	Expired
	// Revoked: 401 "Revoked access token.".
	Revoked
	// UnknownToken: the token is not registered; the handler applies
	// unknown_tokens deny|pass.
	UnknownToken
)

var outcomeNames = [...]string{"allowed", "insufficient_scope", "invalid_token", "expired", "revoked", "unknown_token"}

func (o Outcome) String() string { return outcomeNames[o] }

// Request is what the policy needs to know about one request.
type Request struct {
	Method string // as received; HEAD is checked as GET by the matcher
	Path   string // canonical (matcher.Canonicalize) escaped path
	Host   string // the Host header, possibly with a port
	// Masquerade is true when the request carries as_user_id.
	Masquerade bool
	Now        time.Time
}

// Decision is the policy's answer, with what logs and metrics need.
type Decision struct {
	Outcome Outcome
	Reason  string
	Token   *TokenEntry // nil for UnknownToken
	Scope   string      // the scope that allowed the request
}

// Key returns the decision's developer key, or nil.
func (d Decision) Key() *Key {
	if d.Token == nil {
		return nil
	}
	return d.Token.Key
}

// Decide looks the token up and evaluates the request against it.
func (s *Store) Decide(token string, req Request) Decision {
	return s.DecideHash(HashToken(token), req)
}

// DecideHash is Decide for a token known by its SHA-256.
func (s *Store) DecideHash(h [32]byte, req Request) Decision {
	e := s.LookupHash(h)
	if e == nil {
		return Decision{Outcome: UnknownToken, Reason: "token is not registered"}
	}
	return Evaluate(e, req)
}

// Evaluate applies Canvas's checks in Canvas's order (docs/canvas-semantics.md,
// #where-canvas-checks): expired, revoked, unusable key, account (host) binding, then scopes.
func Evaluate(e *TokenEntry, req Request) Decision {
	d := Decision{Token: e}
	k := e.Key
	switch {
	case !e.ExpiresAt.IsZero() && !req.Now.Before(e.ExpiresAt):
		d.Outcome, d.Reason = Expired, "token expired"
	case e.Revoked:
		d.Outcome, d.Reason = Revoked, e.RevokedReason
	case !k.Enabled:
		d.Outcome, d.Reason = InvalidToken, "developer key is disabled"
	case !hostAllowed(k.Hosts, req.Host):
		d.Outcome, d.Reason = InvalidToken, "host is not in the developer key's hosts"
	case !k.RequireScopes:
		d.Outcome, d.Reason = Allowed, "developer key does not require scopes"
	case isGraphQL(req.Path):
		// No catalogue scope covers GraphQL; Canvas answers scoped tokens
		// with 401 even if a scope somehow names it.
		d.Outcome, d.Reason = InsufficientScope, "GraphQL is not available to scoped developer keys"
	default:
		scope, ok := e.Set().Match(req.Method, req.Path)
		if !ok {
			d.Outcome, d.Reason = InsufficientScope, "no scope on the token matches the request"
			return d
		}
		d.Outcome, d.Scope = Allowed, scope
	}
	if d.Outcome == Allowed && req.Masquerade && !k.AllowMasquerade {
		d.Outcome, d.Reason, d.Scope = InsufficientScope, "as_user_id is not allowed for this developer key", ""
	}
	return d
}

func isGraphQL(path string) bool {
	rest, ok := strings.CutPrefix(path, "/api/graphql")
	return ok && (rest == "" || rest[0] == '.')
}

// hostAllowed compares the request's Host with a key's hosts. An entry
// without a port matches the host on any port.
func hostAllowed(hosts []string, host string) bool {
	if len(hosts) == 0 {
		return true
	}
	host = strings.ToLower(host)
	name := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		name = h
	}
	for _, h := range hosts {
		if h == host || h == name {
			return true
		}
	}
	return false
}
