package policy

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/matcher"
)

func parseSets(t *testing.T, src string) (*KeysFile, ConfigErrors) {
	t.Helper()
	kf, err := ParseKeysFile("keys.json", []byte(src), ParseOptions{})
	if err == nil {
		return kf, nil
	}
	var ces ConfigErrors
	if !errors.As(err, &ces) {
		t.Fatalf("error %T %v", err, err)
	}
	return nil, ces
}

func TestScopeSetsExpandNested(t *testing.T) {
	kf, errs := parseSets(t, `{
  "developer_keys": [
    {"id": "k", "scopes": ["@sync", "url:GET|/api/v1/courses"]}
  ],
  "tokens": [
    {"sha256": "`+strings.Repeat("a", 64)+`", "developer_key": "k", "scopes": ["@roster"]}
  ],
  "scope_sets": {
    "sync": ["@roster", "url:PUT|/api/v1/courses/:course_id/assignments/:assignment_id/submissions/:user_id"],
    "roster": ["url:GET|/api/v1/courses", "url:GET|/api/v1/courses/:course_id/users"]
  }
}`)
	if errs != nil {
		t.Fatal(errs)
	}
	k := kf.DeveloperKeys[0]
	want := []string{"url:GET|/api/v1/courses", "url:GET|/api/v1/courses/:course_id/users",
		"url:PUT|/api/v1/courses/:course_id/assignments/:assignment_id/submissions/:user_id"}
	got := slices.Sorted(slices.Values(k.Scopes))
	if !slices.Equal(got, want) {
		t.Errorf("key scopes %q, want %q (each once)", k.Scopes, want)
	}
	if len(k.ScopeSets) != 1 || len(k.ScopeSets["sync"]) != 3 {
		t.Errorf("key's sets %v", k.ScopeSets)
	}
	if tok := kf.Tokens[0].Scopes; len(tok) != 2 {
		t.Errorf("token scopes %q", tok)
	}
	if _, err := Compile("keys.json", kf, CompileOptions{}); err != nil {
		t.Errorf("compile: %v (the token's set is within the key's)", err)
	}
}

func TestScopeSetErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		src  string
		want []string
	}{
		"cycle": {`{"developer_keys": [{"id": "k", "scopes": ["@a"]}],
"scope_sets": {"a": ["@b"], "b": ["@c"], "c": ["@a"]}}`,
			[]string{"keys.json:2: scope_sets.a: scope sets form a cycle: @a → @b → @c → @a"}},
		"self cycle": {`{"scope_sets": {"a": ["url:GET|/api/v1/courses", "@a"]}, "developer_keys": []}`,
			[]string{"scope sets form a cycle: @a → @a"}},
		"unknown name": {`{"developer_keys": [
 {"id": "k", "scopes": ["@roster-raed"]}],
"scope_sets": {"roster-read": ["url:GET|/api/v1/courses"]}}`,
			[]string{`keys.json:2: developer_keys[0].scopes[0]: no scope set named "roster-raed"; did you mean "@roster-read"?`}},
		"no sets at all": {`{"developer_keys": [{"id": "k", "scopes": ["@x"]}]}`,
			[]string{`no scope set named "x" (the file has no "scope_sets")`}},
		"bad scope in set, reported once": {`{"developer_keys": [{"id": "k", "scopes": ["@s"]}, {"id": "j", "scopes": ["@s"]}],
"scope_sets": {
  "s": ["url:GET|/api/v1/course"]}}`,
			[]string{`keys.json:3: scope_sets.s[0]: scope "url:GET|/api/v1/course" is not in the Canvas scope catalogue`, `did you mean "url:GET|/api/v1/courses"`}},
		"minting through a set": {`{"developer_keys": [
 {"id": "k", "upstream_token": "x", "scopes": ["@m"]}],
"scope_sets": {"m": ["url:POST|/api/v1/users/:user_id/tokens"]}}`,
			[]string{"keys.json:2: developer_keys[0].scopes[0]", "mints a credential"}},
		"bad name":      {`{"scope_sets": {"a b": []}}`, []string{"scope set's name"}},
		"not an object": {`{"scope_sets": []}`, []string{"scope_sets: must be an object"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, errs := parseSets(t, tc.src)
			text := errs.Error()
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("errors\n%s\nlack %q", text, w)
				}
			}
			if name == "bad scope in set, reported once" && len(errs) != 1 {
				t.Errorf("%d errors, want 1: %s", len(errs), text)
			}
			if name == "unknown name" && !slices.Equal(errs[0].Suggestions, []string{"@roster-read"}) {
				t.Errorf("suggestions %q", errs[0].Suggestions)
			}
		})
	}
}

// The scope sets shipped in examples/ load, and every scope in them is a
// catalogue scope (strict validation, no allow_unknown_scopes).
func TestExampleScopeSetsAreInTheCatalogue(t *testing.T) {
	data, err := os.ReadFile("../examples/scope-sets.json")
	if err != nil {
		t.Fatal(err)
	}
	kf, err := ParseKeysFile("examples/scope-sets.json", data, ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Compile("examples/scope-sets.json", kf, CompileOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"courses-read", "roster-read", "course-content-read", "gradebook-read", "gradebook-sync"} {
		set := kf.ScopeSets[name]
		if len(set) == 0 {
			t.Errorf("set %q is empty or missing", name)
		}
		for _, s := range set {
			if prob := matcher.CheckScope(s, false); prob != nil {
				t.Errorf("set %q: %s", name, prob.Message())
			}
			if !strings.HasPrefix(s, "url:GET|") && strings.HasSuffix(name, "-read") {
				t.Errorf("read-only set %q holds %q", name, s)
			}
		}
	}
}
