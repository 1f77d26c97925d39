package oauth

import (
	"bytes"
	"crypto/subtle"
	"fmt"
	"slices"
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

	prepared   bool
	keyRefs    map[ScopeRef]struct{}
	clientRefs []ScopeRef // parallel to Scopes()
}

// Prepare precomputes the scope references, so that a view cached by the
// caller makes Check allocation-light. The view must not change after.
func (v *ClientView) Prepare() *ClientView {
	v.keyRefs = make(map[ScopeRef]struct{}, len(v.KeyScopes))
	for _, s := range v.KeyScopes {
		v.keyRefs[RefOf(s)] = struct{}{}
	}
	sc := v.Scopes()
	v.clientRefs = make([]ScopeRef, len(sc))
	for i, s := range sc {
		v.clientRefs[i] = RefOf(s)
	}
	v.prepared = true
	return v
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
	if !client.prepared {
		v := *client
		client = v.Prepare()
	}
	for _, r := range c.Scopes {
		if client.KeyRequireScopes {
			if _, ok := client.keyRefs[r]; !ok {
				return nil, fmt.Sprintf("a scope of the token is no longer on developer key %q", c.KeyID)
			}
		}
	}
	// In the client's order, as the token response listed them. Token
	// references are sorted and unique (decodePayload checks).
	scopes = make([]string, 0, len(c.Scopes))
	for i, r := range client.clientRefs {
		if _, found := slices.BinarySearchFunc(c.Scopes, r, cmpRef); found {
			scopes = append(scopes, client.Scopes()[i])
		}
	}
	if len(scopes) < len(c.Scopes) && client.KeyRequireScopes && !allFound(c.Scopes, client.clientRefs) {
		return nil, fmt.Sprintf("a scope of the token is no longer granted to OAuth client %q", c.ClientID)
	}
	// An unscoped key: Canvas never looks at the scopes, so scopes the
	// client lost are dropped rather than revoking the token.
	return scopes, ""
}

func allFound(refs, in []ScopeRef) bool {
	for _, r := range refs {
		if !slices.Contains(in, r) {
			return false
		}
	}
	return true
}

func cmpRef(a, b ScopeRef) int { return bytes.Compare(a[:], b[:]) }

// Refs returns the references of a scope list, for Claims.Scopes.
func Refs(scopes []string) []ScopeRef {
	out := make([]ScopeRef, len(scopes))
	for i, s := range scopes {
		out[i] = RefOf(s)
	}
	return sortRefs(out)
}
