package usage

import (
	"slices"
	"strings"
	"time"
)

// ScopeUse is one scope's counts in a Report.
type ScopeUse struct {
	Scope     string    `json:"scope"`
	Allowed   uint64    `json:"allowed"`
	Denied    uint64    `json:"denied"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
}

// Report is the answer for one key: what it used, what it needed and was
// not granted, what it was granted and did not use, and the scope list to
// grant (used ∪ needed, in catalogue order, which is sorted order).
type Report struct {
	DeveloperKey string `json:"developer_key"`
	// SuggestedScopes is ready to paste into the key's "scopes".
	SuggestedScopes []string `json:"suggested_scopes"`
	// NeededNotGranted: scopes of denied (or would-be denied) requests
	// that the key does not hold.
	NeededNotGranted []string `json:"needed_not_granted"`
	// GrantedNotUsed: the key's URL scopes no request was allowed by.
	// Non-URL scopes (LTI and the like) are not listed: the gate never
	// sees them used. Omitted when the key's scopes are not known.
	GrantedNotUsed []string `json:"granted_not_used"`
	// Used: every scope seen, with its counts.
	Used []ScopeUse `json:"used,omitempty"`
}

// Build makes the Report of key from its entries. granted are the key's
// scopes, nil when unknown (then GrantedNotUsed is nil and every needed
// scope counts as not granted).
func Build(key string, entries []Entry, granted []string) Report {
	r := Report{DeveloperKey: key, SuggestedScopes: []string{}, NeededNotGranted: []string{}}
	allowedBy := map[string]bool{}
	for _, e := range entries {
		if e.Allowed+e.Denied == 0 {
			continue
		}
		r.Used = append(r.Used, ScopeUse{Scope: e.Scope, Allowed: e.Allowed, Denied: e.Denied, FirstSeen: e.First, LastSeen: e.Last})
		r.SuggestedScopes = append(r.SuggestedScopes, e.Scope)
		if e.Allowed > 0 {
			allowedBy[e.Scope] = true
		}
		if e.Denied > 0 && !slices.Contains(granted, e.Scope) {
			r.NeededNotGranted = append(r.NeededNotGranted, e.Scope)
		}
	}
	if granted != nil {
		r.GrantedNotUsed = []string{}
		for _, s := range granted {
			if strings.HasPrefix(s, "url:") && !allowedBy[s] {
				r.GrantedNotUsed = append(r.GrantedNotUsed, s)
			}
		}
		slices.Sort(r.GrantedNotUsed)
	}
	slices.Sort(r.SuggestedScopes)
	r.SuggestedScopes = slices.Compact(r.SuggestedScopes)
	slices.Sort(r.NeededNotGranted)
	r.NeededNotGranted = slices.Compact(r.NeededNotGranted)
	slices.SortFunc(r.Used, func(a, b ScopeUse) int { return strings.Compare(a.Scope, b.Scope) })
	return r
}
