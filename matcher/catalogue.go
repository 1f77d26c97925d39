package matcher

import (
	_ "embed"
	"fmt"
	"slices"
	"strings"
	"sync"
)

//go:embed catalogue/scopes.txt
var scopesTxt string

//go:embed catalogue/non_url_scopes.txt
var nonURLTxt string

// catalogueWords is the size of a Set's bitset: enough bits for every
// catalogue URL scope (1,311 today). loadCatalogue panics if the embedded
// list outgrows it.
const catalogueWords = 21

var (
	nonURLList  = lines(nonURLTxt)
	nonURLIndex = func() map[string]struct{} {
		m := make(map[string]struct{}, len(nonURLList))
		for _, s := range nonURLList {
			m[s] = struct{}{}
		}
		return m
	}()
)

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

type catalogue struct {
	scopes []string // sorted, leaf id = index
	parsed []Scope
	index  map[string]int32
	trie   *trie
	all    *Set
}

var (
	catalogueOnce sync.Once
	catalogueData *catalogue
)

func loadCatalogue() *catalogue {
	catalogueOnce.Do(func() {
		c, err := buildCatalogue(lines(scopesTxt))
		if err != nil {
			panic("matcher: embedded catalogue: " + err.Error())
		}
		catalogueData = c
	})
	return catalogueData
}

func buildCatalogue(list []string) (*catalogue, error) {
	c, err := indexCatalogue(list)
	if err != nil {
		return nil, err
	}
	if len(c.scopes) > catalogueWords*64 {
		return nil, fmt.Errorf("%d scopes do not fit in %d words", len(c.scopes), catalogueWords)
	}
	c.trie = newTrie()
	for i := range c.parsed {
		c.trie.add(&c.parsed[i], int32(i))
	}
	c.trie.finish()
	all := &Set{bits: new([catalogueWords]uint64)}
	for i := range c.scopes {
		all.bits[i>>6] |= 1 << (uint(i) & 63)
	}
	c.all = all
	return c, nil
}

// indexCatalogue sorts a list of URL scopes, drops repeats, and parses and
// indexes each: the part of a catalogue that validation needs.
func indexCatalogue(list []string) (*catalogue, error) {
	list = slices.Clone(list)
	slices.Sort(list)
	list = slices.Compact(list)
	c := &catalogue{scopes: list, parsed: make([]Scope, len(list)), index: make(map[string]int32, len(list))}
	for i, s := range list {
		ps, err := ParseScope(s)
		if err != nil {
			return nil, err
		}
		if ps.Kind != KindURL {
			return nil, fmt.Errorf("%q is not a URL scope", s)
		}
		c.parsed[i] = ps
		c.index[s] = int32(i)
	}
	return c, nil
}

// Catalogue returns the known Canvas URL scopes, sorted (a fresh copy).
func Catalogue() []string { return slices.Clone(loadCatalogue().scopes) }

// NonURLScopes returns the known non-URL scopes (a fresh copy).
func NonURLScopes() []string { return slices.Clone(nonURLList) }

// CatalogueSet returns a Set of every catalogue URL scope, built once. Its
// Match names the catalogue scope a request would need.
func CatalogueSet() *Set { return loadCatalogue().all }

// CheckCatalogue reports whether scope is a catalogue URL scope or a known
// non-URL scope. If not, it returns up to 3 similar catalogue scopes.
func CheckCatalogue(scope string) (ok bool, suggestions []string) {
	cat := loadCatalogue()
	if _, ok := cat.index[scope]; ok {
		return true, nil
	}
	if _, ok := nonURLIndex[scope]; ok {
		return true, nil
	}
	if !strings.HasPrefix(scope, "url:") {
		return false, suggestNonURL(scope)
	}
	return false, suggest(cat, scope)
}

// suggestNonURL proposes known non-URL scopes within a small edit distance.
func suggestNonURL(scope string) []string {
	var best []scored
	for _, s := range nonURLList {
		if d := EditDistance(scope, s); d <= 3 {
			best = append(best, scored{float64(d), s})
		}
	}
	slices.SortStableFunc(best, func(a, b scored) int { return int(a.d - b.d) })
	var out []string
	for i := 0; i < len(best) && i < 3; i++ {
		out = append(out, best[i].s)
	}
	return out
}

type scored struct {
	d float64
	s string
}

// suggest ranks catalogue scopes by a segment-wise edit distance.
func suggest(cat *catalogue, scope string) []string {
	verb, path := splitScope(scope)
	segs := splitSegs(path)
	var best []scored
	for i, c := range cat.scopes {
		p := &cat.parsed[i]
		d := segDistance(segs, splitSegs(p.Path))
		if p.Verb != verb {
			d += 0.75
		}
		limit := 0.4*float64(len(segs)) + 0.5
		if limit < 1.5 {
			limit = 1.5
		}
		if d > limit {
			continue
		}
		best = append(best, scored{d, c})
	}
	slices.SortStableFunc(best, func(a, b scored) int {
		switch {
		case a.d < b.d:
			return -1
		case a.d > b.d:
			return 1
		}
		return 0
	})
	var out []string
	for i := 0; i < len(best) && i < 3; i++ {
		out = append(out, best[i].s)
	}
	return out
}

func splitScope(s string) (verb, path string) {
	s = strings.TrimPrefix(s, "url:")
	if i := strings.IndexByte(s, '|'); i >= 0 {
		return strings.ToUpper(s[:i]), s[i+1:]
	}
	return "", s
}

func splitSegs(p string) []string {
	return strings.FieldsFunc(p, func(r rune) bool { return r == '/' })
}

// segDistance is an edit distance over segments; substituting one segment
// for another costs their normalised character edit distance (0..1), and
// two dynamic segments (":a", ":b") cost 0.1 if their names differ.
func segDistance(a, b []string) float64 {
	prev := make([]float64, len(b)+1)
	cur := make([]float64, len(b)+1)
	for j := range prev {
		prev[j] = float64(j)
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = float64(i)
		for j := 1; j <= len(b); j++ {
			sub := prev[j-1] + segCost(a[i-1], b[j-1])
			del := prev[j] + 1
			ins := cur[j-1] + 1
			cur[j] = min(sub, del, ins)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func segCost(a, b string) float64 {
	if a == b {
		return 0
	}
	if strings.HasPrefix(a, ":") && strings.HasPrefix(b, ":") {
		return 0.1
	}
	n := max(len(a), len(b))
	return float64(EditDistance(a, b)) / float64(n)
}

// EditDistance is the Levenshtein distance between a and b, in bytes: the
// one edit distance behind every did-you-mean suggestion.
func EditDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j-1]+c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
