package caddymodule

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/usage"
)

const suggestLog = `{"level":"info","ts":1000,"logger":"http.log.access","msg":"handled request","developer_key":"vendor-a"}
not json at all
{"level":"info","ts":1000,"logger":"http.handlers.canvas_scopes","msg":"request allowed","developer_key":"vendor-a","token_id":"abc","method":"GET","path":"/api/v1/courses","decision":"allowed","scope":"url:GET|/api/v1/courses"}
{"level":"warn","ts":2000,"logger":"http.handlers.canvas_scopes","msg":"request would be denied (report mode)","developer_key":"vendor-a","token_id":"abc","method":"GET","path":"/api/v1/users/1","decision":"would_deny","needed_scope":"url:GET|/api/v1/users/:id"}
{"level":"info","ts":3000,"logger":"http.handlers.canvas_scopes","msg":"request denied","developer_key":"vendor-b","token_id":"def","method":"POST","path":"/api/v1/courses","decision":"insufficient_scope","needed_scope":"url:POST|/api/v1/accounts/:account_id/courses"}
{"level":"info","ts":3000,"logger":"http.handlers.canvas_scopes","msg":"request denied","developer_key":"unknown","token_id":"fff","decision":"invalid_token"}
`

func suggestReports(t *testing.T, o suggestOptions, stdin string) []usage.Report {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := runSuggest(o, strings.NewReader(stdin), &out, &errOut); code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var reps []usage.Report
	dec := json.NewDecoder(&out)
	for dec.More() {
		var r usage.Report
		if err := dec.Decode(&r); err != nil {
			t.Fatal(err)
		}
		reps = append(reps, r)
	}
	return reps
}

func TestSuggestFromPlainGzipAndStdin(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "a.log")
	os.WriteFile(plain, []byte(suggestLog), 0o600)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(suggestLog))
	zw.Close()
	zipped := filepath.Join(dir, "a.log.1") // gzip is found by content, not name
	os.WriteFile(zipped, gz.Bytes(), 0o600)
	keys := filepath.Join(dir, "keys.json")
	os.WriteFile(keys, []byte(`{"developer_keys":[{"id":"vendor-a","scopes":["url:GET|/api/v1/courses","url:GET|/api/v1/courses/:id"]},{"id":"idle","scopes":["url:GET|/api/v1/courses"]}]}`), 0o600)

	for _, o := range []suggestOptions{{files: []string{plain}}, {files: []string{zipped}}, {files: []string{"-"}}} {
		reps := suggestReports(t, o, suggestLog)
		if len(reps) != 2 || reps[0].DeveloperKey != "vendor-a" || reps[1].DeveloperKey != "vendor-b" {
			t.Fatalf("%v: reports %+v", o.files, reps)
		}
		if want := []string{"url:GET|/api/v1/courses", "url:GET|/api/v1/users/:id"}; !slices.Equal(reps[0].SuggestedScopes, want) {
			t.Errorf("%v: suggested %q", o.files, reps[0].SuggestedScopes)
		}
		if reps[0].GrantedNotUsed != nil {
			t.Errorf("granted_not_used without --keys: %q", reps[0].GrantedNotUsed)
		}
	}
	reps := suggestReports(t, suggestOptions{files: []string{plain}, keysFile: keys}, "")
	if len(reps) != 3 || reps[0].DeveloperKey != "idle" || !slices.Equal(reps[0].GrantedNotUsed, []string{"url:GET|/api/v1/courses"}) {
		t.Fatalf("with --keys: %+v", reps)
	}
	if reps[2].GrantedNotUsed != nil {
		t.Errorf("vendor-b is not in the keys file: granted_not_used %q", reps[2].GrantedNotUsed)
	}
	if reps = reps[1:]; !slices.Equal(reps[0].GrantedNotUsed, []string{"url:GET|/api/v1/courses/:id"}) || !slices.Equal(reps[0].NeededNotGranted, []string{"url:GET|/api/v1/users/:id"}) {
		t.Errorf("vendor-a with --keys: %+v", reps[0])
	}
	reps = suggestReports(t, suggestOptions{files: []string{plain}, key: "vendor-a", since: 1500 * time.Second, now: time.Unix(3000, 0)}, "")
	if len(reps) != 1 || !slices.Equal(reps[0].SuggestedScopes, []string{"url:GET|/api/v1/users/:id"}) {
		t.Fatalf("--key vendor-a --since: %+v", reps)
	}
	var table, errOut bytes.Buffer
	if runSuggest(suggestOptions{files: []string{plain}, format: "table"}, nil, &table, &errOut) != exitOK ||
		!strings.Contains(table.String(), "needed, not granted") {
		t.Errorf("table: %s %s", table.String(), errOut.String())
	}
}
