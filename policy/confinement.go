package policy

import (
	"slices"
	"strings"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/confine"
)

// confinement validates a developer key's accounts and unconfined_scopes
// (the members, when present, locate the errors): a confined key must
// require scopes, and every URL scope it holds must either have an account
// context in its route or be listed in unconfined_scopes.
func (p *parser) confinement(k *DeveloperKey, at path, scopes, accounts, unconfined *member) {
	if accounts != nil && accounts.value.kind == kindArray {
		f := at.dot("accounts")
		for i, a := range k.Accounts {
			if accounts.value.array[i].kind != kindString {
				continue
			}
			if a == "" || strings.ContainsAny(a, "/?#") || strings.TrimSpace(a) != a || a == "." || a == ".." {
				p.errorf(accounts.value.array[i].offset, f.index(i), "must be an account id as Canvas accepts it in a path (\"42\", \"sis_account_id:ENG\", \"self\"), got %q", a)
			}
			if slices.Index(k.Accounts, a) < i {
				p.errorf(accounts.value.array[i].offset, f.index(i), "duplicate account %q", a)
			}
		}
	}
	if unconfined != nil {
		f := at.dot("unconfined_scopes")
		if len(k.Accounts) == 0 {
			p.errorf(unconfined.offset, f, "has no effect without accounts; remove it or confine the key")
		}
		if unconfined.value.kind == kindArray {
			for i, s := range k.UnconfinedScopes {
				if unconfined.value.array[i].kind == kindString && !slices.Contains(k.Scopes, s) {
					p.errorf(unconfined.value.array[i].offset, f.index(i), "scope %q is not one of the key's scopes", s)
				}
			}
		}
	}
	if len(k.Accounts) == 0 {
		return
	}
	if !k.RequireScopes {
		p.errorf(accounts.offset, at.dot("accounts"), "needs require_scopes true: confinement reads the account from the route of the scope that allowed the request")
		return
	}
	if scopes == nil || scopes.value.kind != kindArray {
		return
	}
	f := at.dot("scopes")
	for i, s := range k.Scopes {
		if !strings.HasPrefix(s, "url:") || slices.Contains(k.UnconfinedScopes, s) {
			continue // non-URL scopes grant no path
		}
		r, err := confine.ClassifyScope(s)
		if err != nil || r.Confinable() {
			continue
		}
		p.errorf(scopes.value.array[i].offset, f.index(i), "scope %q has no account context (%s), so the key's accounts cannot confine it; list it in unconfined_scopes to let it through unconfined, or remove it", s, r.NoContext)
	}
}

// Confined reports whether the key is confined to account subtrees.
func (k *Key) Confined() bool { return len(k.Accounts) > 0 }

// Unconfined reports whether scope is one the key lets through without
// confinement.
func (k *Key) Unconfined(scope string) bool {
	for _, s := range k.UnconfinedScopes {
		if s == scope {
			return true
		}
	}
	return false
}
