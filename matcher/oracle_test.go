package matcher

import (
	"regexp"
	"strings"
)

// The oracle rebuilds Canvas's per-scope regexes exactly as
// AccessToken#url_scopes_for_method does (docs/canvas-semantics.md#scope-grammar), with
// Go's regexp, and matches them against the canonical path.

var (
	reDyn  = regexp.MustCompile(`:[^/)]+`)
	reGlob = regexp.MustCompile(`\*[^/)]+`)
)

type oracleOpts struct {
	escapeDots bool // our deviation 1: a "." in a scope path is literal
	step4      bool // newer Canvas only: /download -> /(?:download|preview)(?:\.:type)?
}

// canvasRegexSource returns the anchored regex source Canvas builds for a
// scope path.
func canvasRegexSource(path string, o oracleOpts) string {
	if o.escapeDots {
		path = strings.ReplaceAll(path, ".", `\.`)
	}
	path = reDyn.ReplaceAllLiteralString(path, `[^/]+`)
	path = reGlob.ReplaceAllLiteralString(path, `.+`)
	path = strings.ReplaceAll(path, "(", "(?:")
	path = strings.ReplaceAll(path, ")", "|)")
	if o.step4 {
		path = strings.ReplaceAll(path, "/download", `/(?:download|preview)(?:\.:type)?`)
	}
	return "^" + path + `(?:\.[^/]+|)$`
}

type oracleEntry struct {
	scope string
	re    *regexp.Regexp
}

type oracle struct {
	byMethod map[string][]oracleEntry
}

var alwaysAllowedRe = regexp.MustCompile(`^/login/oauth2/token$`)

func newOracle(scopes []string, o oracleOpts) *oracle {
	or := &oracle{byMethod: map[string][]oracleEntry{}}
	for _, v := range verbs {
		prefix := regexp.MustCompile(`^url:` + v + `\|`)
		for _, s := range scopes {
			if !prefix.MatchString(s) {
				continue
			}
			path := s[strings.LastIndexByte(s, '|')+1:]
			or.byMethod[v] = append(or.byMethod[v], oracleEntry{s, regexp.MustCompile(canvasRegexSource(path, o))})
		}
	}
	return or
}

// match returns the first matching scope (or the always-allowed pattern).
func (or *oracle) match(method, path string) (string, bool) {
	if method == "HEAD" {
		method = "GET"
	}
	for _, e := range or.byMethod[method] {
		if e.re.MatchString(path) {
			return e.scope, true
		}
	}
	if alwaysAllowedRe.MatchString(path) {
		return AlwaysAllowedPath, true
	}
	return "", false
}

// matchesScope reports whether one specific scope's regex matches.
func (or *oracle) matchesScope(method, scope, path string) bool {
	if method == "HEAD" {
		method = "GET"
	}
	if scope == AlwaysAllowedPath {
		return alwaysAllowedRe.MatchString(path)
	}
	for _, e := range or.byMethod[method] {
		if e.scope == scope {
			return e.re.MatchString(path)
		}
	}
	return false
}
