package caddymodule

import (
	"fmt"
	"slices"
	"strings"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/policy"
)

// describeScopeSets names the scope sets a key's scopes came from, with
// their sizes, for explain ("" when none).
func describeScopeSets(k *policy.Key) string {
	if len(k.ScopeSets) == 0 {
		return ""
	}
	names := make([]string, 0, len(k.ScopeSets))
	for name := range k.ScopeSets {
		names = append(names, name)
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, name := range names {
		parts[i] = fmt.Sprintf("%s%s (%d scopes)", policy.ScopeSetPrefix, name, len(k.ScopeSets[name]))
	}
	return strings.Join(parts, ", ")
}

// scopeFromSets says which of a key's sets hold scope: " (from @a, @b)",
// or "".
func scopeFromSets(k *policy.Key, scope string) string {
	var names []string
	for name, list := range k.ScopeSets {
		if slices.Contains(list, scope) {
			names = append(names, policy.ScopeSetPrefix+name)
		}
	}
	if len(names) == 0 {
		return ""
	}
	slices.Sort(names)
	return " (from " + strings.Join(names, ", ") + ")"
}
