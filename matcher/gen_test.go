package matcher

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// Test-data generators shared by tests, fuzz targets and benchmarks.

var dynFillers = []string{
	"1", "42", "self", "sis_course_id:A.B", "1%2F2", "x.json", "%C3%A9",
	"12345678901234567890", "a", ".", "..json", "x.", "download", "preview",
	"sis_user_id:foo%2Fbar", "lti_context_id:abc", "default", "current",
	"x.json.xml", "by_foo", "a-b_c~d", "%2E", "ab%20cd", "999999999",
}

var globFillers = []string{
	"a", "a/b", "a/b/c", "x.json", "dir/file.txt", "a/", "%2F", "deep/er/path.json.xml",
	"1", "a.b/c.d",
}

var suffixes = []string{"", "", "", ".json", ".json.xml", ".", "./x", ".csv", "/", ".a/b"}

// pathFor generates a path from a parsed URL scope: it walks the scope's
// grammar, filling dynamics and globs, sometimes skipping optionals,
// sometimes changing literal dots, and sometimes adding a suffix.
func pathFor(r *rand.Rand, sc *Scope) string {
	alt := sc.alts[r.IntN(len(sc.alts))]
	var b strings.Builder
	for _, t := range alt {
		switch t.kind {
		case tokLit:
			lit := t.text
			if strings.Contains(lit, ".") && r.IntN(4) == 0 {
				lit = strings.Replace(lit, ".", "X", 1)
			}
			b.WriteString(lit)
		case tokDyn:
			b.WriteString(dynFillers[r.IntN(len(dynFillers))])
		case tokGlob:
			b.WriteString(globFillers[r.IntN(len(globFillers))])
		}
	}
	if r.IntN(3) == 0 {
		b.WriteString(suffixes[r.IntN(len(suffixes))])
	}
	return b.String()
}

// mutate applies a few random byte-level edits.
func mutate(r *rand.Rand, p string) string {
	const alphabet = "/.%a1:_-2FeE"
	b := []byte(p)
	for n := r.IntN(3); n > 0; n-- {
		switch r.IntN(4) {
		case 0:
			if len(b) > 0 {
				i := r.IntN(len(b))
				b = append(b[:i], b[i+1:]...)
			}
		case 1:
			i := r.IntN(len(b) + 1)
			b = append(b[:i], append([]byte{alphabet[r.IntN(len(alphabet))]}, b[i:]...)...)
		case 2:
			if len(b) > 0 {
				b[r.IntN(len(b))] = alphabet[r.IntN(len(alphabet))]
			}
		case 3:
			if len(b) > 0 {
				i := r.IntN(len(b))
				j := i + r.IntN(len(b)-i)
				b = append(b[:j], append(append([]byte{}, b[i:j]...), b[j:]...)...)
			}
		}
	}
	return string(b)
}

var synthLits = []string{"a", "b", "ab", "x.y", "by_", "download", "v1", "c.csv", "-", "~"}

// synthScope builds a random scope string using every grammar feature.
func synthScope(r *rand.Rand) string {
	var b strings.Builder
	b.WriteString("url:")
	b.WriteString(verbs[r.IntN(3)])
	b.WriteString("|")
	globs := 0
	var piece func(depth int, atStart bool)
	piece = func(depth int, atStart bool) {
		n := 1 + r.IntN(4)
		for i := 0; i < n; i++ {
			switch k := r.IntN(10); {
			case k < 4 || (atStart && i == 0):
				b.WriteString("/")
				b.WriteString(synthLits[r.IntN(len(synthLits))])
			case k < 6:
				if r.IntN(3) == 0 {
					b.WriteString(synthLits[r.IntN(len(synthLits))])
				} else {
					b.WriteString("/")
				}
				b.WriteString(":id")
				if r.IntN(3) == 0 {
					b.WriteString(".json")
				}
			case k < 7:
				if globs < 2 {
					globs++
					b.WriteString("/*g")
				}
			case k < 9:
				if depth < 3 {
					b.WriteString("(")
					piece(depth+1, false)
					b.WriteString(")")
				}
			default:
				b.WriteString(synthLits[r.IntN(len(synthLits))])
			}
		}
	}
	piece(0, true)
	return b.String()
}

// The synthetic generator must produce valid scopes often enough, and use
// every grammar feature.
func TestSynthScopes(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	valid := 0
	feats := map[string]int{}
	for i := 0; i < 2000; i++ {
		s := synthScope(r)
		if _, err := ParseScope(s); err != nil {
			continue
		}
		valid++
		path := s[strings.IndexByte(s, '|')+1:]
		for name, sub := range map[string]string{"dyn": ":", "glob": "*", "group": "(", "dot": "."} {
			if strings.Contains(path, sub) {
				feats[name]++
			}
		}
		for i := 1; i < len(path); i++ {
			if path[i] == ':' && path[i-1] != '/' && path[i-1] != '(' {
				feats["mid-segment dyn"]++
				break
			}
		}
		if strings.Contains(s, "((") || strings.Contains(s, "(/a(") || strings.Count(s, "(") > 1 {
			feats["nested-or-multi"]++
		}
	}
	t.Logf("%d/2000 valid, features %v", valid, feats)
	if valid < 600 || len(feats) < 6 {
		t.Errorf("generator too weak: %d valid, %v", valid, feats)
	}
}
