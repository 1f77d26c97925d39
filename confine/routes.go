// Package confine holds a developer key to Canvas sub-accounts: for a
// request the key's scopes allow, it finds every object in the matched
// route (and in the body parameters that move objects) that names an
// account, a course, a section, a group or a group category, asks Canvas
// which account each belongs to, and answers inside, outside or "could not
// tell". It does no HTTP itself beyond the Lookup it is given and knows
// nothing of Caddy, so the gate and `caddy canvas-scopes explain` share it.
package confine

import (
	"fmt"
	"strings"
)

// Kind is the kind of Canvas object a context parameter names.
type Kind uint8

const (
	KindNone Kind = iota
	// KindAccount: an account id (numeric, sis_account_id:, self, ...);
	// its chain of parent accounts decides.
	KindAccount
	// KindCourse: a course id; its account_id decides.
	KindCourse
	// KindSection: a course section id; its (current, cross-listed)
	// course_id decides.
	KindSection
	// KindGroup: a group id; its course or account decides.
	KindGroup
	// KindGroupCategory: a group category id; its course or account decides.
	KindGroupCategory
)

var kindNames = [...]string{"none", "account", "course", "section", "group", "group_category"}

func (k Kind) String() string { return kindNames[k] }

// ParamKinds is the table of named path parameters that carry a context in
// the Canvas scope catalogue, and what they resolve to. Every occurrence in
// the catalogue follows the literal segment listed with it (checked by
// TestCatalogueClassified), so a name reused for something else in a
// future route fails that test instead of being read wrongly.
var ParamKinds = map[string]struct {
	Kind Kind
	// After lists the literal segments the parameter follows in the
	// catalogue ("accounts" for accounts/:account_id).
	After []string
}{
	"account_id":             {KindAccount, []string{"accounts", "account_calendars"}},
	"destination_account_id": {KindAccount, []string{"accounts"}},
	"current_account_id":     {KindAccount, []string{"accounts"}},
	"course_id":              {KindCourse, []string{"courses", "course_nicknames"}},
	"new_course_id":          {KindCourse, []string{"crosslist"}},
	"section_id":             {KindSection, []string{"sections"}},
	"course_section_id":      {KindSection, []string{"sections"}},
	"group_id":               {KindGroup, []string{"groups"}},
	"group_category_id":      {KindGroupCategory, []string{"group_categories"}},
}

// IDRoutes lists the route prefixes whose final ":id" names a context
// object. ":id" after "groups" is not always a Canvas group (quiz question
// groups: /quizzes/:quiz_id/groups/:id), so the rule is by prefix, not by
// the literal before it; TestCatalogueClassified fails on any ":id" after
// accounts, courses, sections, groups or group_categories that is in
// neither this list nor IDNotContext.
var IDRoutes = map[string]Kind{
	"/api/v1/accounts/:id":                          KindAccount,
	"/api/v1/accounts/:account_id/sub_accounts/:id": KindAccount,
	"/api/v1/courses/:id":                           KindCourse,
	"/api/v1/accounts/:account_id/courses/:id":      KindCourse,
	"/api/v1/users/self/favorites/courses/:id":      KindCourse,
	"/api/v1/sections/:id":                          KindSection,
	"/api/v1/courses/:course_id/sections/:id":       KindSection,
	"/api/v1/groups/:id":                            KindGroup,
	"/api/v1/users/self/favorites/groups/:id":       KindGroup,
	"/api/v1/group_categories/:id":                  KindGroupCategory,
}

// IDNotContext lists route prefixes ending in a context-like collection
// followed by ":id" where the id is not a Canvas context object.
var IDNotContext = map[string]string{
	"/api/v1/courses/:course_id/quizzes/:quiz_id/groups/:id": "a quiz question group, not a Canvas group",
}

// NotConfinable lists catalogue routes that carry a context parameter but
// act on objects outside it, so the context proves nothing: they are
// treated like routes without account context.
var NotConfinable = map[string]string{
	"/api/v1/users/:id/merge_into/accounts/:destination_account_id/users/:destination_user_id": "merges user :id, who may belong to any account, into a user of the destination account",
}

// ContextParam is one context parameter of a route: its name, kind and the
// index of the path segment it fills (segment 0 is "api").
type ContextParam struct {
	Name    string
	Kind    Kind
	Segment int
}

// Route is the confinement plan of one scope's route.
type Route struct {
	Params []ContextParam
	// NoContext explains why the route cannot be confined ("" when it can).
	NoContext string
}

// Confinable reports whether the route has at least one context parameter.
func (r *Route) Confinable() bool { return r.NoContext == "" }

// ClassifyScope finds the context parameters of a URL scope
// ("url:GET|/api/v1/courses/:course_id/users"). Only whole-segment
// parameters before any optional group or glob are used: a context
// parameter anywhere else (none in the catalogue) makes the route
// unconfinable rather than guessed at.
func ClassifyScope(scope string) (Route, error) {
	rest, ok := strings.CutPrefix(scope, "url:")
	bar := strings.IndexByte(rest, '|')
	if !ok || bar < 0 {
		return Route{}, fmt.Errorf("%q is not a URL scope", scope)
	}
	return ClassifyPath(rest[bar+1:]), nil
}

// ClassifyPath is ClassifyScope for a scope's path.
func ClassifyPath(p string) Route {
	var r Route
	if why, ok := NotConfinable[p]; ok {
		r.NoContext = why
		return r
	}
	fixed := p
	if i := strings.IndexAny(p, "(*"); i >= 0 {
		fixed = p[:i]
	}
	segs := strings.Split(strings.TrimPrefix(fixed, "/"), "/")
	for i, seg := range segs {
		if !strings.HasPrefix(seg, ":") {
			continue
		}
		name := seg[1:]
		if k, ok := ParamKinds[name]; ok {
			r.Params = append(r.Params, ContextParam{Name: name, Kind: k.Kind, Segment: i})
			continue
		}
		if name == "id" {
			prefix := "/" + strings.Join(segs[:i+1], "/")
			if k, ok := IDRoutes[prefix]; ok {
				r.Params = append(r.Params, ContextParam{Name: "id", Kind: k, Segment: i})
			}
		}
	}
	// A context parameter hidden in a group or glob, or sharing a
	// segment with text, is not read.
	tail := p[len(fixed):]
	for name := range ParamKinds {
		if strings.Contains(tail, ":"+name) {
			r.Params = nil
			r.NoContext = "a context parameter inside an optional group or after a glob"
			return r
		}
	}
	for _, seg := range segs {
		if i := strings.IndexByte(seg, ':'); i > 0 {
			if _, ok := ParamKinds[seg[i+1:]]; ok {
				r.Params = nil
				r.NoContext = "a context parameter that shares its path segment with text"
				return r
			}
		}
	}
	if len(r.Params) == 0 {
		r.NoContext = noContextReason(p)
	}
	return r
}

// noContextReason says, by the route's shape, why it has no account
// context; the README groups the list of such routes by these reasons.
func noContextReason(p string) string {
	switch {
	case strings.HasPrefix(p, "/api/v1/users/"), p == "/api/v1/users":
		return "a user, who exists outside accounts"
	case strings.HasPrefix(p, "/api/v1/courses"), strings.HasPrefix(p, "/api/v1/accounts"):
		return "a list across the whole institution or the caller's own objects"
	}
	return "an object found by its own id, not through an account, course, section or group"
}
