package caddymodule

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestExplainConfinedKey(t *testing.T) {
	keys := `{"developer_keys": [{"id": "eng", "accounts": ["sis_account_id:ENG"],
  "scopes": ["url:PUT|/api/v1/courses/:id", "url:GET|/api/v1/users/:id"], "unconfined_scopes": ["url:GET|/api/v1/users/:id"]}],
 "tokens": [{"sha256": "` + benchSHA("t") + `", "developer_key": "eng"}]}`
	path := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(path, []byte(keys), 0o600); err != nil {
		t.Fatal(err)
	}
	for target, want := range map[string]string{
		"/api/v1/courses/10?course[account_id]=3": `accounts:        confined to sis_account_id:ENG; at request time Canvas is asked about course "10" ("id"), account "3" ("course[account_id]")`,
		"/api/v1/users/5":                         "the scope is in unconfined_scopes; nothing to look up",
	} {
		method := "PUT"
		if strings.HasPrefix(target, "/api/v1/users") {
			method = "GET"
		}
		var out, errb bytes.Buffer
		runExplain(explainOptions{keysFile: path, tokenSHA256: benchSHA("t"), method: method, target: target, now: time.Now()}, &out, &errb)
		if !strings.Contains(out.String(), want) {
			t.Errorf("%s: explain said\n%s%s\nwant %q", target, out.String(), errb.String(), want)
		}
	}
	var errb bytes.Buffer
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"developer_keys": [{"id": "eng", "accounts": ["2"], "scopes": ["url:GET|/api/v1/users/:id"]}]}`), 0o600)
	if code := runValidate(bad, validateOptions{}, &bytes.Buffer{}, &errb); code == 0 || !strings.Contains(errb.String(), "has no account context") {
		t.Errorf("validate: %d %s", code, errb.String())
	}
}
