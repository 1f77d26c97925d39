package matcher

import (
	"errors"
	"fmt"
	"strings"
)

// ScopeProblem is what is wrong with one scope, with the suggestions an
// operator needs to fix it. It is found here, once, and carried as it is
// by the keys-file reader, the CLI and Caddy's provisioning errors.
type ScopeProblem struct {
	Scope string
	// Err is a *ScopeError (malformed) or ErrNotInCatalogue.
	Err error
	// Suggestions are similar valid scopes, best first (at most 3).
	Suggestions []string
}

// ErrNotInCatalogue is the ScopeProblem.Err of a well-formed scope that is
// not in the catalogue.
var ErrNotInCatalogue = errors.New("not in the Canvas scope catalogue")

// Message renders the problem with its suggestions.
func (p *ScopeProblem) Message() string {
	var b strings.Builder
	if errors.Is(p.Err, ErrNotInCatalogue) {
		fmt.Fprintf(&b, "scope %q is not in the Canvas scope catalogue", p.Scope)
	} else {
		b.WriteString(p.Err.Error())
	}
	if len(p.Suggestions) > 0 {
		b.WriteString("; did you mean ")
		for i, s := range p.Suggestions {
			if i > 0 {
				b.WriteString(" or ")
			}
			fmt.Fprintf(&b, "%q", s)
		}
		b.WriteString("?")
	}
	return b.String()
}

// CheckScope validates one scope: a malformed scope is always a problem; a
// well-formed scope missing from the catalogue is one unless allowUnknown.
// It returns nil for a good scope.
func CheckScope(s string, allowUnknown bool) *ScopeProblem {
	ps, err := ParseScope(s)
	if err != nil {
		p := &ScopeProblem{Scope: s, Err: err}
		_, p.Suggestions = CheckCatalogue(s)
		if len(p.Suggestions) == 0 && !strings.HasPrefix(s, "url:") && strings.Contains(s, "|") {
			// "GET|/api/v1/courses": the common slip is the missing prefix.
			if fixed := CheckScope("url:"+s, allowUnknown); fixed == nil {
				p.Suggestions = []string{"url:" + s}
			} else if errors.Is(fixed.Err, ErrNotInCatalogue) {
				p.Suggestions = fixed.Suggestions
			}
		}
		return p
	}
	if ps.Kind != KindURL || allowUnknown {
		return nil
	}
	if ok, sug := CheckCatalogue(s); !ok {
		return &ScopeProblem{Scope: s, Err: ErrNotInCatalogue, Suggestions: sug}
	}
	return nil
}
