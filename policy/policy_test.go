package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func hash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

const testKeys = `{
  "developer_keys": [
    {"id": "vendor-a", "name": "Vendor A",
     "scopes": ["url:GET|/api/v1/courses", "url:GET|/api/v1/courses/:course_id/assignments"]},
    {"id": "open", "require_scopes": false},
    {"id": "off", "scopes": ["url:GET|/api/v1/courses"], "enabled": false},
    {"id": "edu", "scopes": ["url:GET|/api/v1/courses"], "hosts": ["canvas.example.edu"]}
  ],
  "tokens": [
    {"sha256": "HASH_A", "developer_key": "vendor-a", "label": "sync"},
    {"sha256": "HASH_NARROW", "developer_key": "vendor-a", "scopes": ["url:GET|/api/v1/courses"]},
    {"sha256": "HASH_DROPPED", "developer_key": "vendor-a", "scopes": ["url:GET|/api/v1/accounts"]},
    {"sha256": "HASH_EXP", "developer_key": "vendor-a", "expires_at": "2027-06-30T00:00:00Z", "revoked": true},
    {"sha256": "HASH_OPEN", "developer_key": "open"},
    {"sha256": "HASH_OFF", "developer_key": "off"},
    {"sha256": "HASH_EDU", "developer_key": "edu"}
  ]
}`

func loadTestStore(t *testing.T) *Store {
	t.Helper()
	data := testKeys
	for _, n := range []string{"A", "NARROW", "DROPPED", "EXP", "OPEN", "OFF", "EDU"} {
		data = strings.Replace(data, "HASH_"+n+`"`, hash("tok-"+n)+`"`, 1)
	}
	s, err := Load("keys.json", []byte(data), ParseOptions{}, CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDecideOrderAndOutcomes(t *testing.T) {
	s := loadTestStore(t)
	before := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	after := time.Date(2027, 7, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		tok, method, path, host string
		now                     time.Time
		masq                    bool
		want                    Outcome
		scope                   string
	}{
		{"A", "GET", "/api/v1/courses", "", before, false, Allowed, "url:GET|/api/v1/courses"},
		{"A", "HEAD", "/api/v1/courses/1/assignments", "", before, false, Allowed, "url:GET|/api/v1/courses/:course_id/assignments"},
		{"A", "POST", "/api/v1/courses", "", before, false, InsufficientScope, ""},
		{"A", "GET", "/api/v1/courses", "", before, true, InsufficientScope, ""},
		{"A", "POST", "/api/graphql", "", before, false, InsufficientScope, ""},
		{"A", "PUT", "/login/oauth2/token", "", before, false, Allowed, ""},
		{"NARROW", "GET", "/api/v1/courses/1/assignments", "", before, false, InsufficientScope, ""},
		{"DROPPED", "GET", "/api/v1/accounts", "", before, false, Revoked, ""},
		// Canvas checks expiry before revocation.
		{"EXP", "GET", "/api/v1/courses", "", after, false, Expired, ""},
		{"EXP", "GET", "/api/v1/courses", "", before, false, Revoked, ""},
		{"OPEN", "DELETE", "/api/v1/accounts/1", "", before, false, Allowed, ""},
		{"OPEN", "POST", "/api/graphql", "", before, false, Allowed, ""},
		{"OFF", "GET", "/api/v1/courses", "", before, false, InvalidToken, ""},
		{"EDU", "GET", "/api/v1/courses", "canvas.example.edu:443", before, false, Allowed, ""},
		{"EDU", "GET", "/api/v1/courses", "Canvas.Example.EDU", before, false, Allowed, ""},
		{"EDU", "GET", "/api/v1/courses", "other.example.edu", before, false, InvalidToken, ""},
		{"NOPE", "GET", "/api/v1/courses", "", before, false, UnknownToken, ""},
	}
	for _, c := range cases {
		d := s.Decide("tok-"+c.tok, Request{Method: c.method, Path: c.path, Host: c.host, Now: c.now, Masquerade: c.masq})
		if d.Outcome != c.want {
			t.Errorf("%s %s %s: outcome %v (%s), want %v", c.tok, c.method, c.path, d.Outcome, d.Reason, c.want)
		}
		if c.scope != "" && d.Scope != c.scope {
			t.Errorf("%s %s %s: scope %q, want %q", c.tok, c.method, c.path, d.Scope, c.scope)
		}
		if d.Outcome != UnknownToken && d.Token.ID != hash("tok-" + c.tok)[:12] {
			t.Errorf("token id %q", d.Token.ID)
		}
	}
}

func TestKeysFileErrorsNameLineAndField(t *testing.T) {
	data := `{
  "developer_keys": [
    {"id": "a", "scopes": ["url:GET|/api/v1/course/:course_id/rubric"]},
    {"id": "a", "scopes": [], "colour": "red"},
    {"id": "b", "scopes": ["url:GET|/api/v1/(courses"], "mode": "loud"}
  ],
  "tokens": [
    {"sha256": "ABC", "developer_key": "vendr-a", "expires_at": "tomorrow"}
  ],
  "extra": 1
}`
	_, err := ParseKeysFile("keys.json", []byte(data), ParseOptions{})
	var errs ConfigErrors
	if !errors.As(err, &errs) {
		t.Fatalf("want ConfigErrors, got %v", err)
	}
	want := []string{
		`keys.json:3: developer_keys[0].scopes[0]: scope "url:GET|/api/v1/course/:course_id/rubric" is not in the Canvas scope catalogue; did you mean "url:GET|/api/v1/courses/:course_id/rubrics"`,
		`keys.json:4: developer_keys[1].colour: unknown field`,
		`keys.json:4: developer_keys[1].id: duplicate developer key id "a" (first defined on line 3)`,
		`keys.json:5: developer_keys[2].scopes[0]:`,
		`keys.json:5: developer_keys[2].mode: must be "enforce" or "report"`,
		`keys.json:8: tokens[0].sha256: must be 64 lower-case hex`,
		`keys.json:8: tokens[0].expires_at: must be an RFC 3339 time`,
		`keys.json:8: tokens[0].developer_key: no developer key has id "vendr-a"`,
		`keys.json:10: extra: unknown field`,
	}
	text := err.Error()
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("missing %q in:\n%s", w, text)
		}
	}
	if len(errs) != len(want) {
		t.Errorf("got %d errors, want %d:\n%s", len(errs), len(want), text)
	}
	// The same file with allow_unknown_scopes still fails on grammar, not the catalogue.
	_, err = ParseKeysFile("keys.json", []byte(data), ParseOptions{AllowUnknownScopes: true})
	if strings.Contains(err.Error(), "not in the Canvas scope catalogue") {
		t.Errorf("allow_unknown_scopes still checks the catalogue:\n%s", err)
	}
}

func TestKeysFileSyntaxAndDuplicates(t *testing.T) {
	for _, c := range []struct{ data, want string }{
		{"{\n  \"developer_keys\": [\n    {\"id\": \"a\",}\n  ]\n}", "keys.json:3: invalid JSON"},
		{"{\"developer_keys\": [], \"developer_keys\": []}", `keys.json:1: invalid JSON: duplicate field "developer_keys"`},
		{"{\"developer_keys\": [{\"id\": \"a\"}]}", "scopes: is required when require_scopes is true"},
		{"{\"developer_keys\": [{\"id\": \"a\", \"scopes\": [], \"upstream_token\": \"\"}]}", "upstream_token: must not be empty"},
	} {
		_, err := ParseKeysFile("keys.json", []byte(c.data), ParseOptions{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.data, err, c.want)
		}
	}
}

// The lists are checked while they are read; a syntax error later in the
// file must still be the only error, and the top-level shape is checked.
func TestKeysFileStreamedListsShape(t *testing.T) {
	for _, c := range []struct {
		data string
		want []string
	}{
		{"{\"tokens\": [{\"label\": 1}],\n \"clients\": [}", []string{"keys.json:2: invalid JSON: invalid character '}' looking for beginning of value"}},
		{`{"tokens": {}, "clients": "x", "developer_keys": null}`, []string{"tokens: must be an array, not object", "clients: must be an array, not string", "developer_keys: must be an array, not null"}},
		{`{"token": []}`, []string{"keys.json:1: token: unknown field (known fields: clients, developer_keys, scope_sets, tokens)"}},
		{`{"tokens": [{"sha256": "x", "developer_key": "k", "scopes": [1]}]}`, []string{"tokens[0].sha256: must be 64 lower-case hex", "tokens[0].scopes[0]: must be a string, not number", `tokens[0].developer_key: no developer key has id "k"`}},
	} {
		_, err := ParseKeysFile("keys.json", []byte(c.data), ParseOptions{})
		var errs ConfigErrors
		if !errors.As(err, &errs) {
			t.Fatalf("%s: got %v, want ConfigErrors", c.data, err)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: missing %q in:\n%s", c.data, w, err)
			}
		}
		if len(errs) != len(c.want) {
			t.Errorf("%s: got %d errors, want %d:\n%s", c.data, len(errs), len(c.want), err)
		}
	}
}

// The parser reads strings as views of the file's bytes; what it returns
// must not share them, or a reused read buffer would rewrite the policy.
func TestKeysFileResultOwnsItsStrings(t *testing.T) {
	data := []byte(`{"developer_keys":[{"id":"k\u0031","name":"Vendor","scopes":["url:GET|/api/v1/courses"],"hosts":["canvas.example.edu"],"upstream_token":"{env.TOK}"}],
	 "tokens":[{"sha256":"` + strings.Repeat("ab", 32) + `","developer_key":"k1","label":"nightly job","scopes":["url:GET|/api/v1/courses"]}],
	 "clients":[{"client_id":"vendor-app","secret_sha256":"` + strings.Repeat("cd", 32) + `","developer_key":"k1"}]}`)
	kf, err := ParseKeysFile("keys.json", data, ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range data {
		data[i] = 'X'
	}
	k, tok, cl := kf.DeveloperKeys[0], kf.Tokens[0], kf.Clients[0]
	got := []string{k.ID, k.Name, k.Scopes[0], k.Hosts[0], k.UpstreamToken, tok.DeveloperKey, tok.Label, tok.Scopes[0], cl.ClientID, cl.DeveloperKey}
	want := []string{"k1", "Vendor", "url:GET|/api/v1/courses", "canvas.example.edu", "{env.TOK}", "k1", "nightly job", "url:GET|/api/v1/courses", "vendor-app", "k1"}
	if !slices.Equal(got, want) {
		t.Errorf("after overwriting the file's bytes:\ngot  %q\nwant %q", got, want)
	}
	if tok.SHA256[0] != 0xab || cl.SecretSHA256[31] != 0xcd {
		t.Errorf("hashes %x %x", tok.SHA256, cl.SecretSHA256)
	}
}

func TestSecretsResolvedAndNeverInErrors(t *testing.T) {
	data := `{"developer_keys":[{"id":"a","scopes":[],"upstream_token":"{env.X}"}]}`
	s, err := Load("k.json", []byte(data), ParseOptions{}, CompileOptions{ResolveSecret: func(v string) (string, error) {
		if v != "{env.X}" {
			t.Errorf("resolver got %q", v)
		}
		return "resolved-secret", nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if tok, ok := s.Key("a").UpstreamToken(); !ok || tok != "resolved-secret" {
		t.Errorf("upstream token %q %v", tok, ok)
	}
	_, err = Load("k.json", []byte(data), ParseOptions{}, CompileOptions{ResolveSecret: func(string) (string, error) { return "", nil }})
	if err == nil || err.Error() != "k.json:1: developer_keys[0].upstream_token: "+msgSecretEmpty {
		t.Errorf("empty secret: %v", err)
	}
}

// A literal upstream_token that happens to contain "{…}" fails to resolve
// as a placeholder; the error names the field and the line, and neither
// the value nor the resolver's message (which quotes it) appears.
func TestUnresolvableSecretIsNotEchoed(t *testing.T) {
	const literal = "7~test-only-literal{token}secret-part"
	data := "{\"developer_keys\":[\n{\"id\":\"a\",\"scopes\":[],\n\"upstream_token\":\"" + literal + "\"}]}"
	_, err := Load("k.json", []byte(data), ParseOptions{}, CompileOptions{ResolveSecret: func(v string) (string, error) {
		return "", fmt.Errorf("cannot resolve %s: unrecognized placeholder {token}", v)
	}})
	if err == nil {
		t.Fatal("an unresolvable upstream_token was accepted")
	}
	msg := err.Error()
	for _, part := range []string{"7~", "test-only-literal", "{token}", "secret-part", "unrecognized"} {
		if strings.Contains(msg, part) {
			t.Errorf("error %q echoes %q of the secret or of the resolver's message", msg, part)
		}
	}
	if want := "k.json:2: developer_keys[0].upstream_token: " + msgSecretUnresolved; msg != want {
		t.Errorf("error %q, want %q", msg, want)
	}
}

// A token pasted into a sha256 field (where its hash belongs) is not
// quoted back, not even one character of it.
func TestSHA256FieldValueIsNotEchoed(t *testing.T) {
	pasted := "test-only-pasted-token-" + strings.Repeat("q", 64-len("test-only-pasted-token-"))
	data := `{"developer_keys":[{"id":"a","scopes":[]}],"tokens":[{"sha256":"` + pasted + `","developer_key":"a"}]}`
	_, err := Load("k.json", []byte(data), ParseOptions{}, CompileOptions{})
	if err == nil {
		t.Fatal("a non-hex sha256 was accepted")
	}
	if msg := err.Error(); strings.Contains(msg, "'t'") || strings.Contains(msg, "U+0074") || strings.Contains(msg, "pasted") {
		t.Errorf("error %q quotes the pasted value", msg)
	}
}

func TestIdenticalScopeSetsAreShared(t *testing.T) {
	data := `{"developer_keys":[
	 {"id":"a","scopes":["url:GET|/api/v1/courses","url:GET|/api/v1/accounts"]},
	 {"id":"b","scopes":["url:GET|/api/v1/accounts","url:GET|/api/v1/courses"]}]}`
	s, err := Load("k.json", []byte(data), ParseOptions{}, CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Key("a").Set() != s.Key("b").Set() {
		t.Error("keys with the same scopes do not share a compiled set")
	}
}

func BenchmarkDecideAllowed(b *testing.B) {
	t := &testing.T{}
	s := loadTestStore(t)
	req := Request{Method: "GET", Path: "/api/v1/courses/12/assignments", Now: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		if d := s.Decide("tok-A", req); d.Outcome != Allowed {
			b.Fatal(d.Reason)
		}
	}
}

// A scope problem carries its suggestions from where it is found
// (matcher.CheckScope) into the keys-file error, for malformed scopes too,
// so validate, explain and Caddy's provisioning print the same line.
func TestScopeErrorsCarrySuggestions(t *testing.T) {
	_, err := Load("k.json", []byte(`{"developer_keys": [{"id": "a", "scopes": ["url:GET /api/v1/courses", "GET|/api/v1/courses", "url:GET|/api/v1/course"]}]}`), ParseOptions{}, CompileOptions{})
	var ces ConfigErrors
	if !errors.As(err, &ces) || len(ces) != 3 {
		t.Fatalf("got %v", err)
	}
	for _, e := range ces {
		if !slices.Contains(e.Suggestions, "url:GET|/api/v1/courses") || !strings.Contains(e.Msg, `did you mean "url:GET|/api/v1/courses"`) {
			t.Errorf("%s: suggestions %q", e.Error(), e.Suggestions)
		}
	}
}
