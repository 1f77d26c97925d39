package e2e

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The least-privilege workflow end to end: a vendor's traffic runs through
// a real Caddy in report mode with a JSON log file; `suggest` reads that
// log (plain, gzip'd, and on stdin); its scope list goes into the keys
// file; in enforce mode the same traffic then meets no denial. The admin
// API's usage report suggests the same list.
func TestSuggestFromReportModeLogThenEnforce(t *testing.T) {
	const token = "test-only-suggest-vendor-token"
	traffic := []struct{ method, target string }{
		{"GET", "/api/v1/courses?per_page=50"},
		{"GET", "/api/v1/courses/101"},
		{"GET", "/api/v1/courses/101/assignments?include[]=submission"},
		{"GET", "/api/v1/courses/101/users?enrollment_type[]=student"},
		{"POST", "/api/v1/courses/101/assignments/7/submissions/42/comments/files"},
		{"PUT", "/api/v1/courses/101/assignments/7/submissions/42"},
		{"GET", "/api/v1/users/self/profile"},
		{"GET", "/api/v1/courses/sis_course_id:ENG-101/sections"},
	}
	keys := func(mode string, scopes []string) string {
		b, _ := json.Marshal(map[string]any{
			"developer_keys": []any{map[string]any{"id": "vendor-observed", "mode": mode, "scopes": scopes}},
			"tokens":         []any{map[string]any{"sha256": sha(token), "developer_key": "vendor-observed"}},
		})
		return string(b)
	}
	logPath := filepath.Join(t.TempDir(), "caddy.log")
	up := newUpstream(t)
	in := startCaddy(t, up, siteConfig{
		// The process's default log, as JSON into a file: the gate's
		// decision lines among Caddy's own.
		Global: fmt.Sprintf("log {\n\t\toutput file %s\n\t\tformat json\n\t}", logPath),
		// Report mode with no scopes: every request is logged with
		// the scope it needed.
		KeysJSON: keys("report", []string{}),
	})
	replay := func() (denied int) {
		for _, r := range traffic {
			resp, body := in.do(in.request(r.method, r.target, token, nil))
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s %s: %d %s", r.method, r.target, resp.StatusCode, body)
				denied++
			}
		}
		if got := len(up.take()); got != len(traffic) {
			t.Errorf("upstream received %d of %d requests", got, len(traffic))
		}
		return denied
	}
	replay()
	var logData []byte
	waitFor(t, func() bool {
		logData, _ = os.ReadFile(logPath)
		return bytes.Count(logData, []byte("would be denied")) == len(traffic)
	})

	suggested := func(args []string, stdin string) []string {
		t.Helper()
		out, errOut, code := runCLI(t, stdin, append([]string{"suggest", "--keys", in.keysPath}, args...)...)
		if code != 0 {
			t.Fatalf("suggest %v: exit %d: %s", args, code, errOut)
		}
		var rep struct {
			Key              string   `json:"developer_key"`
			Suggested        []string `json:"suggested_scopes"`
			NeededNotGranted []string `json:"needed_not_granted"`
			GrantedNotUsed   []string `json:"granted_not_used"`
		}
		if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Key != "vendor-observed" {
			t.Fatalf("suggest %v: %v: %s", args, err, out)
		}
		if !slices.Equal(rep.NeededNotGranted, rep.Suggested) || rep.GrantedNotUsed == nil || len(rep.GrantedNotUsed) != 0 {
			t.Errorf("suggest %v: %s", args, out)
		}
		return rep.Suggested
	}
	scopes := suggested([]string{logPath}, "")
	// One scope per request here, each a distinct route; the SIS id and
	// "self" are matched as the route's parameters.
	if len(scopes) != len(traffic) {
		t.Fatalf("suggested %q for %d distinct routes", scopes, len(traffic))
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(logData)
	zw.Close()
	gzPath := filepath.Join(t.TempDir(), "caddy.log.gz")
	if err := os.WriteFile(gzPath, gz.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := suggested([]string{gzPath}, ""); !slices.Equal(got, scopes) {
		t.Errorf("gzip'd log suggests %q, plain %q", got, scopes)
	}
	if got := suggested([]string{"-"}, string(logData)); !slices.Equal(got, scopes) {
		t.Errorf("stdin suggests %q, plain %q", got, scopes)
	}

	// The admin API, counting in the gate, suggests the same list.
	resp, body := in.do(mustReq(t, "GET", in.admin+"/canvas_scopes/keys/vendor-observed/usage"))
	var rep struct {
		Suggested []string `json:"suggested_scopes"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(body, &rep) != nil {
		t.Fatalf("usage: %d %s", resp.StatusCode, body)
	}
	if !slices.Equal(rep.Suggested, scopes) {
		t.Errorf("admin usage suggests %q, the log %q", rep.Suggested, scopes)
	}

	// Grant what was suggested, enforce, replay: nothing is denied.
	if err := os.WriteFile(in.keysPath, []byte(keys("enforce", scopes)), 0o600); err != nil {
		t.Fatal(err)
	}
	if resp, body := in.do(mustReq(t, "POST", in.admin+"/canvas_scopes/reload")); resp.StatusCode != 200 {
		t.Fatalf("reload: %d %s", resp.StatusCode, body)
	}
	if n := replay(); n != 0 {
		t.Fatalf("%d denials in enforce mode with the suggested scopes", n)
	}
	// And enforce mode does deny what was not observed.
	resp, _ = in.do(in.request("DELETE", "/api/v1/courses/101", token, nil))
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("an unobserved DELETE: %d, want 401", resp.StatusCode)
	}
	if strings.Contains(string(logData), token) {
		t.Error("the log holds the token")
	}
}
