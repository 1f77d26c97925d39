package oauth

import (
	"bytes"
	"slices"
)

// AllFound reports whether every reference in refs is in in.
func AllFound(refs, in []ScopeRef) bool {
	for _, r := range refs {
		if !slices.Contains(in, r) {
			return false
		}
	}
	return true
}

// CmpRef orders references (Claims.Scopes is sorted by it).
func CmpRef(a, b ScopeRef) int { return bytes.Compare(a[:], b[:]) }

// Refs returns the references of a scope list, for Claims.Scopes.
func Refs(scopes []string) []ScopeRef {
	return sortRefs(RefsInOrder(scopes))
}

// RefsInOrder returns the references of a scope list in its own order.
func RefsInOrder(scopes []string) []ScopeRef {
	out := make([]ScopeRef, len(scopes))
	for i, s := range scopes {
		out[i] = RefOf(s)
	}
	return out
}
