package oauth

import (
	"crypto/subtle"
	"fmt"
)

// ClientView is what verification needs to know, as of now, about the
// client a token names and the client's developer key. The caller builds it
// from the current key store, so a keys file edit takes effect on the next
// request.
type ClientView struct {
	ClientID     string
	SecretSHA256 [32]byte
	KeyID        string
	// KeyRequireScopes, KeyScopes: the developer key's current settings.
	KeyRequireScopes bool
	KeyScopes        []string
	// ClientScopes is the client's own list; nil means the key's scopes.
	ClientScopes []string
}

// Scopes returns the client's effective scopes: its own list or the key's.
func (v *ClientView) Scopes() []string {
	if v.ClientScopes != nil {
		return v.ClientScopes
	}
	return v.KeyScopes
}

// Check decides whether verified claims still stand against the client's
// current state. It returns the token's scopes as text and, when the token
// no longer stands, the reason (for logs; the client only learns "Revoked
// access token."). client is nil when the client id is no longer in the
// keys file; revoked says whether the token id is in the revocation set.
//
// Order: the client must still exist, be bound to the same developer key
// and hold the same secret; then the revocation set; then Canvas's rule
// that a token holding a scope its key no longer has is revoked; then the
// same rule against the client's own (possibly narrower) scopes.
func Check(c *Claims, client *ClientView, revoked bool) (scopes []string, reason string) {
	switch {
	case client == nil:
		return nil, fmt.Sprintf("OAuth client %q no longer exists", c.ClientID)
	case client.ClientID != c.ClientID:
		return nil, "token names a different client"
	case client.KeyID != c.KeyID:
		return nil, fmt.Sprintf("OAuth client %q is now bound to developer key %q, not %q", c.ClientID, client.KeyID, c.KeyID)
	case subtle.ConstantTimeCompare(client.SecretSHA256[:8], c.SecretGen[:]) != 1:
		return nil, fmt.Sprintf("the secret of OAuth client %q was rotated after the token was issued", c.ClientID)
	case revoked:
		return nil, "token was revoked"
	}
	byKey := refIndex(client.KeyScopes)
	want := make(map[ScopeRef]bool, len(c.Scopes))
	for _, r := range c.Scopes {
		if client.KeyRequireScopes {
			if _, ok := byKey[r]; !ok {
				return nil, fmt.Sprintf("a scope of the token is no longer on developer key %q", c.KeyID)
			}
		}
		want[r] = true
	}
	// In the client's order, as the token response listed them.
	scopes = make([]string, 0, len(c.Scopes))
	for _, s := range client.Scopes() {
		if r := RefOf(s); want[r] {
			scopes = append(scopes, s)
			delete(want, r)
		}
	}
	if len(want) > 0 && client.KeyRequireScopes {
		return nil, fmt.Sprintf("a scope of the token is no longer granted to OAuth client %q", c.ClientID)
	}
	// An unscoped key: Canvas never looks at the scopes, so scopes the
	// client lost are dropped rather than revoking the token.
	return scopes, ""
}

func refIndex(scopes []string) map[ScopeRef]string {
	m := make(map[ScopeRef]string, len(scopes))
	for _, s := range scopes {
		m[RefOf(s)] = s
	}
	return m
}

// Refs returns the references of a scope list, for Claims.Scopes.
func Refs(scopes []string) []ScopeRef {
	out := make([]ScopeRef, len(scopes))
	for i, s := range scopes {
		out[i] = RefOf(s)
	}
	return sortRefs(out)
}
