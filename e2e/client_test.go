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

// kthResult is what e2e/node/kth-client.mjs saw: the ids of a paginated
// list and how a refused call surfaced through the client's error.
type kthResult struct {
	Items  []int `json:"items"`
	Pages  int   `json:"pages"`
	Denied struct {
		Name, Message, WWWAuthenticate, CanvasStatus string
		Status                                       int
		Error                                        string
	} `json:"denied"`
}

// runKTHClient runs e2e/node/kth-client.mjs against the gate at base with
// token; env adds KTH_LIST, KTH_INCLUDE, KTH_DENIED (see the script).
func runKTHClient(t *testing.T, base, token string, env ...string) kthResult {
	t.Helper()
	node := requireTool(t, "node", "apt-get install nodejs")
	script, _ := filepath.Abs("node/kth-client.mjs")
	if _, err := os.Stat(filepath.Join("node", "node_modules", "@kth", "canvas-api")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("e2e/node/node_modules missing; .ci/run runs npm ci there")
		}
		t.Skip("run `npm ci` in e2e/node first")
	}
	cmd := exec.Command(node, script)
	cmd.Dir = filepath.Dir(script)
	cmd.Env = append(os.Environ(), "CANVAS_BASE="+base+"/api/v1/", "CANVAS_TOKEN="+token)
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node client failed: %v\n%s", err, out)
	}
	var res kthResult
	// The library prints a banner first; the result is the last line.
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("client output %q: %v", out, err)
	}
	return res
}

// twoPages answers any list as Canvas paginates it: items 1 and 2 with
// Link rel="next", then item 3 on page=2. Links are absolute and point back
// at the gate, as Canvas's do.
func twoPages(w http.ResponseWriter, r *http.Request) {
	base := "http://" + r.Header.Get("X-Forwarded-Host") + r.URL.EscapedPath()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if r.URL.Query().Get("page") == "2" {
		w.Header().Set("Link", fmt.Sprintf(`<%s?page=1&per_page=2>; rel="first", <%s?page=2&per_page=2>; rel="last"`, base, base))
		fmt.Fprint(w, `[{"id":3}]`)
		return
	}
	w.Header().Set("Link", fmt.Sprintf(`<%s?page=1&per_page=2>; rel="current", <%s?page=2&per_page=2>; rel="next", <%s?page=2&per_page=2>; rel="last"`, base, base, base))
	fmt.Fprint(w, `[{"id":1},{"id":2}]`)
}

// TestKTHCanvasClient drives npm's @kth/canvas-api through the gate: a
// paginated list call (Link headers intact) and a call outside the scopes
// that surfaces Canvas's 401 through the client's own error.
func TestKTHCanvasClient(t *testing.T) {
	up := newUpstream(t)
	up.respond = twoPages
	in := startCaddy(t, up, siteConfig{
		KeysJSON: gateKeys(),
		Env:      []string{"TEST_UPSTREAM_TOKEN=" + upstreamTok},
	})
	res := runKTHClient(t, in.base, tokSub)
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

// TestKTHCanvasClientConfinedKey drives @kth/canvas-api with a key confined
// to account ENG (e2e/confine_test.go's account tree): a paginated list of
// a course inside works page after page (each page is a new request the
// gate confines), and a course in the sibling account ART surfaces Canvas's
// 401 permission body through the client's error without reaching Canvas.
func TestKTHCanvasClientConfinedKey(t *testing.T) {
	ct := newCanvasTree(t)
	up := newUpstream(t)
	up.respond = twoPages
	in := startConfined(t, ct, up, "5m")
	res := runKTHClient(t, in.base, tokConfined,
		"KTH_LIST=courses/sis_course_id:ENG%20101/enrollments", "KTH_INCLUDE=",
		"KTH_DENIED=courses/11/enrollments")
	if res.Pages != 2 || !slices.Equal(res.Items, []int{1, 2, 3}) {
		t.Errorf("pagination of a course inside: %d pages, items %v", res.Pages, res.Items)
	}
	if res.Denied.Name != "CanvasApiResponseError" || res.Denied.Status != 401 || res.Denied.CanvasStatus != "unauthorized" ||
		res.Denied.Message != "user not authorized to perform that action" || res.Denied.WWWAuthenticate != "" {
		t.Errorf("a course outside surfaced as %+v", res.Denied)
	}
	// Only the two pages of the course inside reached Canvas, with the
	// vendor's own token (this key substitutes nothing).
	got := up.take()
	if len(got) != 2 {
		t.Fatalf("upstream saw %d requests, want the 2 pages inside: %+v", len(got), got)
	}
	for i, g := range got {
		if g.Path != "/api/v1/courses/sis_course_id:ENG%20101/enrollments" || g.Header.Get("Authorization") != "Bearer "+tokConfined {
			t.Errorf("upstream request %d: %s with Authorization %q", i, g.RequestURI, g.Header.Get("Authorization"))
		}
	}
	if !strings.Contains(in.logText(), `"decision":"outside_accounts"`) {
		t.Error("no outside_accounts log line for the course outside")
	}
}
