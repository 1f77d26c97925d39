package matcher

import (
	"crypto/sha256"
	"fmt"
	"strings"
)

// FileCatalogue is a scope catalogue read from a file (such as one written
// from a live Canvas's scope list), used to validate scopes in place of the
// embedded catalogue. It validates only: matching is unaffected, since a
// Set matches any well-formed URL scope (see Compile).
type FileCatalogue struct {
	cat    *catalogue
	digest [32]byte
}

// NewFileCatalogue builds a catalogue from URL scopes (any order; repeats
// are dropped).
func NewFileCatalogue(list []string) (*FileCatalogue, error) {
	c, err := indexCatalogue(list)
	if err != nil {
		return nil, err
	}
	return &FileCatalogue{cat: c, digest: sha256.Sum256([]byte(strings.Join(c.scopes, "\n")))}, nil
}

// ID names the catalogue's content (the SHA-256 of its sorted scopes, in
// hex), so that two loads of the same file are recognised as one.
func (c *FileCatalogue) ID() string {
	if c == nil {
		return "embedded"
	}
	return fmt.Sprintf("%x", c.digest[:8])
}

// Len is the number of scopes in the catalogue.
func (c *FileCatalogue) Len() int { return len(c.cat.scopes) }

// CheckScope is the package's CheckScope against this catalogue: a scope
// it lacks is a problem, with this catalogue's closest scopes (a renamed
// route parameter is found this way) as suggestions.
func (c *FileCatalogue) CheckScope(s string, allowUnknown bool) *ScopeProblem {
	ps, err := ParseScope(s)
	if err != nil || ps.Kind != KindURL {
		return CheckScope(s, allowUnknown) // grammar and non-URL scopes: as ever
	}
	if allowUnknown {
		return nil
	}
	if _, ok := c.cat.index[s]; ok {
		return nil
	}
	return &ScopeProblem{Scope: s, Err: ErrNotInCatalogue, Suggestions: suggest(c.cat, s)}
}
