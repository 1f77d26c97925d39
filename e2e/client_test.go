package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// requireTool finds a program the test needs. Locally a missing tool skips
// the test; in CI (CI=true, where .ci/run installs it) it fails.
func requireTool(t *testing.T, name, hint string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found; .ci/run should have installed it (%s)", name, hint)
	}
	t.Skipf("%s not found (%s)", name, hint)
	return ""
}

// TestKTHCanvasClient drives npm's @kth/canvas-api through the gate: a
// paginated list call (Link headers intact) and a call outside the scopes
// that surfaces Canvas's 401 through the client's own error.
func TestKTHCanvasClient(t *testing.T) {
	node := requireTool(t, "node", "apt-get install nodejs")
	script, _ := filepath.Abs("node/kth-client.mjs")
	if _, err := os.Stat(filepath.Join("node", "node_modules", "@kth", "canvas-api")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("e2e/node/node_modules missing; .ci/run runs npm ci there")
		}
		t.Skip("run `npm ci` in e2e/node first")
	}
	up := newUpstream(t)
	var seenQueries []string
	up.respond = func(w http.ResponseWriter, r *http.Request) {
		// Links are absolute and point back at the gate, as Canvas's do.
		base := "http://" + r.Header.Get("X-Forwarded-Host") + "/api/v1/courses"
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		seenQueries = append(seenQueries, r.URL.RawQuery)
		if r.URL.Query().Get("page") == "2" {
			w.Header().Set("Link", fmt.Sprintf(`<%s?page=1&per_page=2>; rel="first", <%s?page=2&per_page=2>; rel="last"`, base, base))
			fmt.Fprint(w, `[{"id":3}]`)
			return
		}
		w.Header().Set("Link", fmt.Sprintf(`<%s?page=1&per_page=2>; rel="current", <%s?page=2&per_page=2>; rel="next", <%s?page=2&per_page=2>; rel="last"`, base, base, base))
		fmt.Fprint(w, `[{"id":1},{"id":2}]`)
	}
	in := startCaddy(t, up, siteConfig{
		KeysJSON: gateKeys(),
		Env:      []string{"TEST_UPSTREAM_TOKEN=" + upstreamTok},
	})
	cmd := exec.Command(node, script)
	cmd.Dir = filepath.Dir(script)
	cmd.Env = append(os.Environ(), "CANVAS_BASE="+in.base+"/api/v1/", "CANVAS_TOKEN="+tokSub)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node client failed: %v\n%s", err, out)
	}
	var res struct {
		Items  []int `json:"items"`
		Pages  int   `json:"pages"`
		Denied struct {
			Name, Message, WWWAuthenticate string
			Status                         int
			Error                          string
		} `json:"denied"`
	}
	// The library prints a banner first; the result is the last line.
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("client output %q: %v", out, err)
	}
	if res.Pages != 2 || !slices.Equal(res.Items, []int{1, 2, 3}) {
		t.Errorf("pagination through the gate: %d pages, items %v", res.Pages, res.Items)
	}
	if res.Denied.Name != "CanvasApiResponseError" || res.Denied.Status != 401 || res.Denied.Message != "Insufficient scopes on access token." || res.Denied.WWWAuthenticate != "" {
		t.Errorf("denied call surfaced as %+v", res.Denied)
	}
	// The first page's include[]=teachers was filtered; the upstream saw the
	// substituted credential on every page, never the gateway token.
	got := up.take()
	if len(got) != 2 {
		t.Fatalf("upstream saw %d requests, want 2 pages", len(got))
	}
	if got[0].RawQuery != "per_page=2" {
		t.Errorf("first page query %q, want include filtered out", got[0].RawQuery)
	}
	for _, g := range got {
		if g.Header.Get("Authorization") != "Bearer "+upstreamTok {
			t.Errorf("upstream Authorization %q", g.Header.Get("Authorization"))
		}
	}
}
