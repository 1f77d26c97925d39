package e2e

// `caddy canvas-scopes …` run from the built binary: output and exit codes.

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/matcher"
)

// runCLI runs the binary with stdin and returns stdout, stderr and the exit
// code.
func runCLI(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	return runCLIEnv(t, nil, stdin, args...)
}

// runCLIEnv is runCLI with extra environment variables.
func runCLIEnv(t *testing.T, env []string, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(caddyBin, append([]string{"canvas-scopes"}, args...)...)
	cmd.Env = append(append(os.Environ(), "HOME="+t.TempDir()), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatal(err)
		}
		code = ee.ExitCode()
	}
	return stdout.String(), stderr.String(), code
}

func cliKeys(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "keys.json")
	writeFile(t, p, content)
	return p
}

func TestCLIHashToken(t *testing.T) {
	for _, in := range []string{tokA, tokA + "\n", tokA + "\r\n"} {
		out, errOut, code := runCLI(t, in, "hash-token")
		if code != 0 || out != sha(tokA)+"\n" {
			t.Errorf("hash-token %q: code %d, stdout %q, stderr %q", in, code, out, errOut)
		}
		if strings.Contains(out+errOut, tokA) {
			t.Error("hash-token echoed the token")
		}
	}
	for _, bad := range []string{"", "\n", "a\nb\n", " " + tokA + "\n"} {
		out, errOut, code := runCLI(t, bad, "hash-token")
		if code != 2 || out != "" || errOut == "" {
			t.Errorf("hash-token %q: code %d, stdout %q, stderr %q; want exit 2 and a message", bad, code, out, errOut)
		}
		if strings.Contains(errOut, tokA) {
			t.Error("hash-token echoed the token in an error")
		}
	}
	// The printed value is what the keys file needs: a file built from it
	// validates and explain finds the token.
	out, _, _ := runCLI(t, "test-only-cli-token\n", "hash-token")
	hash := strings.TrimSpace(out)
	keys := cliKeys(t, `{"developer_keys": [{"id": "k", "scopes": ["url:GET|/api/v1/courses"]}], "tokens": [{"sha256": "`+hash+`", "developer_key": "k"}]}`)
	if out, errOut, code := runCLI(t, "", "validate", keys); code != 0 || !strings.Contains(out, "ok: 1 developer key(s), 1 token(s), 0 client(s)") {
		t.Fatalf("validate: %d %s %s", code, out, errOut)
	}
	if out, errOut, code := runCLI(t, "", "explain", "--keys", keys, "--token-sha256", hash, "GET", "/api/v1/courses"); code != 0 || !strings.Contains(out, "decision:        allowed") {
		t.Fatalf("explain with the hashed token: %d %s %s", code, out, errOut)
	}
}

func TestCLIValidate(t *testing.T) {
	good := cliKeys(t, gateKeys())
	out, errOut, code := runCLIEnv(t, []string{"TEST_UPSTREAM_TOKEN=" + upstreamTok}, "", "validate", good)
	if code != 0 || out != good+": ok: 8 developer key(s), 12 token(s), 0 client(s); secrets resolved\n" {
		t.Fatalf("valid file: code %d, stdout %q, stderr %q", code, out, errOut)
	}

	bad := cliKeys(t, `{
  "developer_keys": [
    {"id": "a", "scopes": ["url:GET|/api/v1/course", "url:GET /api/v1/courses"]},
    {"id": "a", "scopes": []}
  ],
  "tokens": [
    {"sha256": "abc", "developer_key": "b"}
  ]
}`)
	out, errOut, code = runCLI(t, "", "validate", bad)
	if code != 1 || out != "" {
		t.Fatalf("bad file: code %d, stdout %q", code, out)
	}
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	want := []struct{ prefix, has string }{
		{bad + `:3: developer_keys[0].scopes[0]: scope "url:GET|/api/v1/course" is not in the Canvas scope catalogue`, `did you mean "url:GET|/api/v1/courses"`},
		{bad + `:3: developer_keys[0].scopes[1]: scope "url:GET /api/v1/courses"`, `did you mean "url:GET|/api/v1/courses"?`},
		{bad + `:4: developer_keys[1].id: duplicate developer key id "a"`, "line 3"},
		{bad + `:7: tokens[0].sha256: must be 64 lower-case hex`, "hash-token"},
		{bad + `:7: tokens[0].developer_key: no developer key has id "b"`, `did you mean "a"`},
		{bad + ": 5 problem(s)", ""},
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), errOut)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w.prefix) || !strings.Contains(lines[i], w.has) {
			t.Errorf("line %d:\n got %s\nwant %s … %s", i+1, lines[i], w.prefix, w.has)
		}
	}

	// --allow-unknown-scopes accepts a well-formed scope missing from the
	// catalogue, but not a malformed one.
	unknown := cliKeys(t, `{"developer_keys": [{"id": "p", "scopes": ["url:GET|/api/v1/plugin_thing"]}], "tokens": []}`)
	if _, errOut, code := runCLI(t, "", "validate", unknown); code != 1 || !strings.Contains(errOut, ":1: developer_keys[0].scopes[0]") {
		t.Errorf("unknown scope without the flag: code %d %s", code, errOut)
	}
	if out, errOut, code := runCLI(t, "", "validate", "--allow-unknown-scopes", unknown); code != 0 || !strings.Contains(out, "ok: 1 developer key(s), 0 token(s)") {
		t.Errorf("unknown scope with the flag: code %d %s %s", code, out, errOut)
	}
	if _, _, code := runCLI(t, "", "validate", "--allow-unknown-scopes", bad); code != 1 {
		t.Errorf("malformed file with the flag: code %d", code)
	}
	if _, errOut, code := runCLI(t, "", "validate", filepath.Join(t.TempDir(), "missing.json")); code != 2 || !strings.Contains(errOut, "missing.json") {
		t.Errorf("missing file: code %d %s", code, errOut)
	}
}

// explainLines parses "name: value" lines.
func explainLines(out string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

func TestCLIExplain(t *testing.T) {
	keys := cliKeys(t, gateKeys())
	cases := []struct {
		name, tok, method, url string
		code                   int
		want                   map[string]string
	}{
		{"allowed, includes filtered", tokA, "GET", "/api/v1//courses/7/?include[]=teachers&include[]=uuid&per_page=5", 0, map[string]string{
			"canonical path": "/api/v1/courses/7", "developer key": "vendor-a (Vendor A), mode enforce", "token": sha(tokA)[:12] + " (test)",
			"decision": "allowed", "matched scope": "url:GET|/api/v1/courses/:id", "include filter": "removes 1 include value(s)",
			"forwarded as": "GET /api/v1/courses/7?include[]=uuid&per_page=5"}},
		{"insufficient scope names the catalogue scope", tokA, "DELETE", "/api/v1/courses/7", 1, map[string]string{
			"decision": "insufficient_scope", "reason": "no scope on the token matches the request", "needed scope": "url:DELETE|/api/v1/courses/:id"}},
		{"allow_includes key", tokIncludes, "GET", "/api/v1/courses?include[]=teachers", 0, map[string]string{
			"decision": "allowed", "include filter": "not applied (the key has allow_includes)", "forwarded as": "GET /api/v1/courses?include[]=teachers"}},
		{"substitution", tokSub, "GET", "/api/v1/courses", 0, map[string]string{
			"decision": "allowed", "credential": "replaced by the developer key's upstream_token"}},
		{"report-mode key", tokReport, "GET", "/api/v1/accounts", 0, map[string]string{
			"decision": "would_deny (report mode: enforce would answer insufficient_scope)", "needed scope": "url:GET|/api/v1/accounts",
			"include filter": "not applied (report mode forwards the request unchanged)"}},
		{"expired", tokExpired, "GET", "/api/v1/courses", 1, map[string]string{"decision": "expired", "reason": "token expired"}},
		{"host binding from an absolute URL", tokHosted, "GET", "https://other.example.edu/api/v1/courses", 1, map[string]string{
			"decision": "invalid_token", "reason": "host is not in the developer key's hosts"}},
		{"host binding satisfied", tokHosted, "GET", "https://canvas.example.edu/api/v1/courses", 0, map[string]string{"decision": "allowed"}},
		{"unknown token", "test-only-not-registered", "GET", "/api/v1/courses", 1, map[string]string{"decision": "invalid_token"}},
		{"refused path", tokA, "GET", "/api/v1/courses/../accounts", 1, map[string]string{"decision": "bad_request"}},
		{"method override", tokA, "GET", "/api/v1/courses?_method=DELETE", 1, map[string]string{"decision": "bad_request"}},
		{"masquerade not allowed", tokA, "GET", "/api/v1/courses?as_user_id=5", 1, map[string]string{"decision": "insufficient_scope", "reason": "as_user_id is not allowed for this developer key"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, errOut, code := runCLI(t, "", "explain", "--keys", keys, "--token-sha256", sha(c.tok), c.method, c.url)
			if code != c.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, c.code, out, errOut)
			}
			got := explainLines(out)
			for k, v := range c.want {
				if got[k] != v {
					t.Errorf("%s: %q, want %q\n%s", k, got[k], v, out)
				}
			}
		})
	}
	// A credential in the URL is never printed.
	out, _, _ := runCLI(t, "", "explain", "--keys", keys, "--token-sha256", sha(tokA), "GET", "/api/v1/courses?access_token="+tokA)
	if strings.Contains(out, tokA) || !strings.Contains(out, "access_token=REDACTED") {
		t.Errorf("explain printed the access_token:\n%s", out)
	}
	// Usage errors.
	for _, args := range [][]string{
		{"explain", "--token-sha256", sha(tokA), "GET", "/api/v1/courses"},
		{"explain", "--keys", keys, "--token-sha256", "xyz", "GET", "/api/v1/courses"},
		{"explain", "--keys", keys, "--token-sha256", sha(tokA), "GET", "api/v1/courses"},
	} {
		if _, errOut, code := runCLI(t, "", args...); code != 2 || errOut == "" {
			t.Errorf("%v: exit %d, stderr %q; want 2 and a message", args, code, errOut)
		}
	}
}

func TestCLIScopes(t *testing.T) {
	out, _, code := runCLI(t, "", "scopes")
	all := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(all) != len(matcher.Catalogue()) {
		t.Fatalf("scopes: exit %d, %d lines, catalogue has %d", code, len(all), len(matcher.Catalogue()))
	}
	out, _, code = runCLI(t, "", "scopes", "--grep", "Courses ASSIGNMENT_groups")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := 0
	for _, s := range matcher.Catalogue() {
		if strings.Contains(s, "courses") && strings.Contains(s, "assignment_groups") {
			want++
		}
	}
	if code != 0 || want == 0 || len(lines) != want {
		t.Fatalf("--grep: exit %d, %d lines, want %d:\n%s", code, len(lines), want, out)
	}
	for _, l := range lines {
		if !strings.Contains(l, "courses") || !strings.Contains(l, "assignment_groups") {
			t.Errorf("--grep kept %q", l)
		}
	}
	if out, errOut, code := runCLI(t, "", "scopes", "--grep", "no-such-scope-word"); code != 1 || out != "" || !strings.Contains(errOut, "no scope matches") {
		t.Errorf("no match: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	out, _, _ = runCLI(t, "", "scopes", "--non-url")
	if n := len(strings.Split(strings.TrimSpace(out), "\n")); n != len(matcher.Catalogue())+len(matcher.NonURLScopes()) {
		t.Errorf("--non-url: %d lines", n)
	}
}
