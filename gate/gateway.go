package gate

import (
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/matcher"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/oauth"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/policy"
)

// Gateway tokens (machine-to-machine access): issuing a self-contained,
// signed token to a registered OAuth client, verifying one, and binding it
// to the developer key of the current store, so that a keys file edit
// (a scope removed, a client moved or its secret rotated) takes effect on
// the next request.

// Gateway issues and verifies gateway tokens.
type Gateway struct {
	Signer *oauth.Signer
	// Revocations is the set of revoked token ids (shared by every config
	// of the process, so a reload forgets none).
	Revocations *oauth.Revocations
}

// Issue grants a client_credentials token to an authenticated client for
// the requested scopes (all of the client's when hasScope is false).
func (g *Gateway) Issue(client *policy.ClientEntry, requested []string, hasScope bool, now time.Time) (token string, c oauth.Claims, scopes []string, oerr *oauth.Error) {
	key := client.Key
	if _, ok := key.UpstreamToken(); !ok {
		// A gateway token is not a Canvas token: without the key's
		// upstream_token there is nothing to forward.
		return "", c, nil, &oauth.Error{Status: http.StatusBadRequest, Code: "unauthorized_client",
			Description: "this client's developer key has no upstream_token, so the gate cannot issue tokens for it"}
	}
	if !key.Enabled {
		return "", c, nil, &oauth.Error{Status: http.StatusBadRequest, Code: "unauthorized_client",
			Description: "this client's developer key is disabled"}
	}
	scopes, oerr = oauth.GrantScopes(requested, hasScope, client.EffectiveScopes())
	if oerr != nil {
		return "", c, nil, oerr
	}
	ttl := max(client.TokenTTL.Round(time.Second), time.Second)
	now = now.Truncate(time.Second)
	c = oauth.Claims{
		KeyID: key.ID, ClientID: client.ClientID, Scopes: oauth.Refs(scopes),
		IssuedAt: now, ExpiresAt: now.Add(ttl), SecretGen: oauth.GenOf(client.SecretSHA256),
	}
	if _, err := rand.Read(c.ID[:]); err != nil {
		return "", c, nil, &oauth.Error{Status: http.StatusInternalServerError, Code: "server_error", Description: "no randomness"}
	}
	token, err := g.Signer.Issue(c)
	if err != nil {
		return "", c, nil, &oauth.Error{Status: http.StatusInternalServerError, Code: "server_error", Description: "the token could not be issued"}
	}
	return token, c, scopes, nil
}

// DecideGatewayToken decides a request carrying a gateway-format token.
// ok is false when the token is not one: the caller then looks the token
// up in the keys file as usual. Otherwise the token is verified, turned
// into a TokenEntry and evaluated by policy.Evaluate exactly as a file
// token, held to the token's own scopes.
func (g *Gateway) DecideGatewayToken(store *policy.Store, token string, req policy.Request) (d policy.Decision, ok bool) {
	if !oauth.IsGatewayToken(token) {
		return policy.Decision{}, false
	}
	_, e, tokenSet, err := g.Verify(store, token, req.Now)
	if err != nil {
		return policy.Decision{Outcome: policy.InvalidToken, Reason: err.Error()}, true
	}
	if tokenSet != nil {
		e.HoldTo(tokenSet)
	}
	return policy.Evaluate(e, req), true
}

// Verify checks a gateway token's signature and binds it to the current
// store. err means "Invalid access token." (bad form or signature,
// developer key gone, or a key without upstream_token); a token that
// verified but no longer stands comes back with entry.Revoked set.
func (g *Gateway) Verify(store *policy.Store, token string, now time.Time) (oauth.Claims, *policy.TokenEntry, *matcher.Set, error) {
	if !oauth.IsGatewayToken(token) {
		return oauth.Claims{}, nil, nil, oauth.ErrMalformed
	}
	c, err := g.Signer.Verify(token)
	if err != nil {
		return oauth.Claims{}, nil, nil, err
	}
	key := store.Key(c.KeyID)
	if key == nil {
		return oauth.Claims{}, nil, nil, fmt.Errorf("developer key %q no longer exists", c.KeyID)
	}
	if _, ok := key.UpstreamToken(); !ok {
		return oauth.Claims{}, nil, nil, fmt.Errorf("developer key %q has no upstream_token", c.KeyID)
	}
	client := store.Client(c.ClientID)
	scopes, reason := Bind(&c, client, key, g.Revocations.Has(c.ID))
	e := &policy.TokenEntry{
		ID: c.ShortID(), Key: key, Label: "oauth client " + c.ClientID,
		Scopes: scopes, ExpiresAt: c.ExpiresAt,
		Revoked: reason != "", RevokedReason: reason,
	}
	if e.Revoked {
		return c, e, nil, nil
	}
	set, err := client.ScopeSet(c.Scopes, scopes)
	if err != nil {
		return oauth.Claims{}, nil, nil, fmt.Errorf("token scopes do not compile: %v", err)
	}
	return c, e, set, nil
}

// Bind decides whether verified claims still stand against the client's
// and the key's current state. It returns the token's scopes as text and,
// when the token no longer stands, the reason (for logs; the client only
// learns "Revoked access token."). client is nil when the client id is no
// longer in the keys file; key is the developer key the claims name;
// revoked says whether the token id is in the revocation set.
//
// Order: the client must still exist, be bound to the same developer key
// and hold the same secret; then the revocation set; then Canvas's rule
// that a token holding a scope its key no longer has is revoked; then the
// same rule against the client's own (possibly narrower) scopes.
func Bind(c *oauth.Claims, client *policy.ClientEntry, key *policy.Key, revoked bool) (scopes []string, reason string) {
	switch {
	case client == nil:
		return nil, fmt.Sprintf("OAuth client %q no longer exists", c.ClientID)
	case client.ClientID != c.ClientID:
		return nil, "token names a different client"
	case client.Key != key:
		return nil, fmt.Sprintf("OAuth client %q is now bound to developer key %q, not %q", c.ClientID, client.Key.ID, c.KeyID)
	case subtle.ConstantTimeCompare(client.SecretSHA256[:8], c.SecretGen[:]) != 1:
		return nil, fmt.Sprintf("the secret of OAuth client %q was rotated after the token was issued", c.ClientID)
	case revoked:
		return nil, "token was revoked"
	}
	if key.RequireScopes {
		for _, r := range c.Scopes {
			if !key.HoldsScopeRef(r) {
				return nil, fmt.Sprintf("a scope of the token is no longer on developer key %q", c.KeyID)
			}
		}
	}
	// In the client's order, as the token response listed them. Token
	// references are sorted and unique (the signer checks).
	refs, names := client.ScopeRefs(), client.EffectiveScopes()
	scopes = make([]string, 0, len(c.Scopes))
	for i, r := range refs {
		if _, found := slices.BinarySearchFunc(c.Scopes, r, oauth.CmpRef); found {
			scopes = append(scopes, names[i])
		}
	}
	if len(scopes) < len(c.Scopes) && key.RequireScopes && !oauth.AllFound(c.Scopes, refs) {
		return nil, fmt.Sprintf("a scope of the token is no longer granted to OAuth client %q", c.ClientID)
	}
	// An unscoped key: Canvas never looks at the scopes, so scopes the
	// client lost are dropped rather than revoking the token.
	return scopes, ""
}
