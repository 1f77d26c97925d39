package e2e

// Operations: metrics in Caddy's registry across reloads, promtool, the
// Grafana dashboard and alert rules evaluated by a real Prometheus, shadow
// mode, the decision log, access-log redaction and the admin endpoints.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/matcher"
)

// opsTool returns the path of an external tool. Locally a missing tool
// skips the test; in CI (CI=true) it fails it, so CI cannot go green by
// skipping.
func opsTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not on PATH and CI=true: install Debian's prometheus package (apt-get install prometheus)", name)
		}
		t.Skipf("%s is not on PATH (apt-get install prometheus); skipping", name)
	}
	return p
}

// ---- metrics exposition -------------------------------------------------

type sample struct {
	name   string
	labels map[string]string
	value  float64
}

func scrape(t testing.TB, in *instance) string {
	t.Helper()
	resp, err := http.Get(in.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d\n%s", resp.StatusCode, body)
	}
	return string(body)
}

// parseExposition reads the text format well enough for our series: name,
// label set (with \" and \\ escapes) and value.
func parseExposition(t testing.TB, text string) []sample {
	t.Helper()
	var out []sample
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s := sample{labels: map[string]string{}}
		rest := line
		if i := strings.IndexAny(line, "{ "); i >= 0 && line[i] == '{' {
			s.name = line[:i]
			rest = line[i+1:]
			for !strings.HasPrefix(rest, "}") {
				eq := strings.Index(rest, "=\"")
				if eq < 0 {
					t.Fatalf("bad exposition line %q", line)
				}
				name := strings.TrimPrefix(rest[:eq], ",")
				rest = rest[eq+2:]
				var val strings.Builder
				for i := 0; ; i++ {
					if i >= len(rest) {
						t.Fatalf("bad exposition line %q", line)
					}
					if rest[i] == '\\' && i+1 < len(rest) {
						i++
						if rest[i] == 'n' {
							val.WriteByte('\n')
						} else {
							val.WriteByte(rest[i])
						}
						continue
					}
					if rest[i] == '"' {
						rest = rest[i+1:]
						break
					}
					val.WriteByte(rest[i])
				}
				s.labels[name] = val.String()
				rest = strings.TrimPrefix(rest, ",")
			}
			rest = strings.TrimSpace(rest[1:])
		} else {
			s.name, rest, _ = strings.Cut(line, " ")
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			t.Fatalf("bad exposition line %q", line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			t.Fatalf("bad value in %q: %v", line, err)
		}
		s.value = v
		out = append(out, s)
	}
	return out
}

// value finds the series with exactly these labels.
func value(ss []sample, name string, labels map[string]string) (float64, bool) {
	for _, s := range ss {
		if s.name != name || len(s.labels) != len(labels) {
			continue
		}
		match := true
		for k, v := range labels {
			if s.labels[k] != v {
				match = false
				break
			}
		}
		if match {
			return s.value, true
		}
	}
	return 0, false
}

func ours(ss []sample) []sample {
	var out []sample
	for _, s := range ss {
		if strings.HasPrefix(s.name, "caddy_canvas_scopes_") {
			out = append(out, s)
		}
	}
	return out
}

func mustValue(t testing.TB, ss []sample, name string, labels map[string]string) float64 {
	t.Helper()
	v, ok := value(ss, name, labels)
	if !ok {
		var have []string
		for _, s := range ours(ss) {
			if s.name == name {
				have = append(have, fmt.Sprint(s.labels))
			}
		}
		t.Fatalf("no series %s%v; have %v", name, labels, have)
	}
	return v
}

const reqTotal = "caddy_canvas_scopes_requests_total"

func reqLabels(key, decision string) map[string]string {
	return map[string]string{"developer_key": key, "decision": decision}
}

// ---- reload -------------------------------------------------------------

// Counters live in package-level collectors re-registered into each config's
// registry: `caddy reload --force` and POST /load (with two gate handlers in
// the new config) keep counts, and the scrape stays valid.
func TestMetricsSurviveReload(t *testing.T) {
	in, up := startGate(t, "")
	for range 3 {
		if resp, _ := in.do(in.request("GET", "/api/v1/courses", tokA, nil)); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	in.do(in.request("GET", "/api/v1/accounts", tokA, nil))
	up.take()
	ss := parseExposition(t, scrape(t, in))
	if got := mustValue(t, ss, reqTotal, reqLabels("vendor-a", "allowed")); got != 3 {
		t.Fatalf("allowed = %v before reload, want 3", got)
	}
	hist := mustValue(t, ss, "caddy_canvas_scopes_decision_duration_seconds_count", map[string]string{})
	if hist != 4 {
		t.Fatalf("decision histogram count %v, want 4", hist)
	}

	// 1. caddy reload --force with the same Caddyfile.
	cfg := filepath.Join(in.dir, "Caddyfile")
	out, err := runCaddy(t, "reload", "--config", cfg, "--adapter", "caddyfile", "--address", fmt.Sprintf("127.0.0.1:%d", in.adminPort), "--force")
	if err != nil {
		t.Fatalf("caddy reload: %v\n%s", err, out)
	}
	ss = parseExposition(t, scrape(t, in))
	if got := mustValue(t, ss, reqTotal, reqLabels("vendor-a", "allowed")); got != 3 {
		t.Fatalf("allowed = %v after caddy reload --force, want 3 (counts must survive)", got)
	}
	if got := mustValue(t, ss, reqTotal, reqLabels("vendor-a", "insufficient_scope")); got != 1 {
		t.Fatalf("insufficient_scope = %v after reload, want 1", got)
	}
	in.do(in.request("GET", "/api/v1/courses", tokA, nil))
	up.take()
	ss = parseExposition(t, scrape(t, in))
	if got := mustValue(t, ss, reqTotal, reqLabels("vendor-a", "allowed")); got != 4 {
		t.Fatalf("allowed = %v after one more request, want 4", got)
	}

	// 2. POST /load of a config with a second site using the gate: two
	// handlers register into one registry.
	port2 := freePort(t)
	src, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg2 := filepath.Join(in.dir, "Caddyfile.two")
	two := string(src) + fmt.Sprintf("\nhttp://:%d {\n\tcanvas_scopes {\n\t\tkeys_file %s\n\t\treload_interval 100ms\n\t}\n\treverse_proxy %s\n}\n", port2, in.keysPath, strings.TrimPrefix(up.URL, "http://"))
	writeFile(t, cfg2, two)
	adapted, err := exec.Command(caddyBin, "adapt", "--config", cfg2, "--adapter", "caddyfile").Output()
	if err != nil {
		t.Fatalf("caddy adapt: %v", err)
	}
	resp, err := http.Post(in.admin+"/load", "application/json", strings.NewReader(string(adapted)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST /load: %d %s", resp.StatusCode, body)
	}
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/api/v1/courses", port2), nil)
	req.Header.Set("Authorization", "Bearer "+tokA)
	waitFor(t, func() bool {
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == 200
	})
	in.do(in.request("GET", "/api/v1/courses", tokA, nil))
	up.take()
	text := scrape(t, in)
	ss = parseExposition(t, text)
	if got := mustValue(t, ss, reqTotal, reqLabels("vendor-a", "allowed")); got != 6 {
		t.Fatalf("allowed = %v after POST /load and one request on each site, want 6", got)
	}
	// Each series exactly once, HELP/TYPE once per family.
	seen := map[string]bool{}
	for _, s := range ours(ss) {
		k := s.name + fmt.Sprint(s.labels)
		if seen[k] {
			t.Errorf("series %s exposed twice", k)
		}
		seen[k] = true
	}
	if n := strings.Count(text, "# TYPE "+reqTotal+" counter"); n != 1 {
		t.Errorf("TYPE line for %s appears %d times", reqTotal, n)
	}
	if strings.Contains(in.logText(), "panic") {
		t.Errorf("caddy log mentions a panic:\n%s", in.logText())
	}
}

// Label values are bounded: developer_key holds only ids from the keys file
// or "unknown"; no label carries a request path or a token.
func TestMetricLabelsAreBounded(t *testing.T) {
	in, up := startGate(t, "")
	for _, target := range []string{"/api/v1/courses/12345", "/api/v1/users/99/courses", "/api/v1/accounts/777", "/api/v1/courses/..%2f/x", "/api/v1/courses/1/x?_method=PUT", "/api/v1/x/../../etc", "/some/page"} {
		for _, tok := range []string{tokA, tokReport, tokExpired, "test-only-unregistered-" + target, ""} {
			in.do(in.request("GET", target, tok, nil))
		}
	}
	up.take()
	keyIDs := []string{"vendor-a", "vendor-sub", "inc", "unscoped", "off", "hosted", "masq", "shadow", "unknown"}
	decisions := []string{"allowed", "insufficient_scope", "invalid_token", "expired", "revoked", "no_credential", "bad_request", "would_deny", "passthrough"}
	ss := ours(parseExposition(t, scrape(t, in)))
	if len(ss) == 0 {
		t.Fatal("no caddy_canvas_scopes_ series")
	}
	for _, s := range ss {
		for name, v := range s.labels {
			switch name {
			case "developer_key":
				if !slices.Contains(keyIDs, v) {
					t.Errorf("%s has developer_key %q, not a key id", s.name, v)
				}
			case "decision":
				if !slices.Contains(decisions, v) {
					t.Errorf("%s has decision %q", s.name, v)
				}
			case "result":
				if v != "success" && v != "error" {
					t.Errorf("%s has result %q", s.name, v)
				}
			case "keys_file":
				if v != in.keysPath {
					t.Errorf("%s has keys_file %q", s.name, v)
				}
			case "le":
			default:
				t.Errorf("%s has unexpected label %s=%q", s.name, name, v)
			}
			if name != "keys_file" && strings.Contains(v, "/") {
				t.Errorf("%s label %s=%q holds a path", s.name, name, v)
			}
		}
	}
	for _, want := range [][2]string{{"vendor-a", "insufficient_scope"}, {"unknown", "invalid_token"}, {"unknown", "no_credential"}, {"unknown", "bad_request"}, {"shadow", "would_deny"}, {"vendor-a", "expired"}} {
		if _, ok := value(ss, reqTotal, reqLabels(want[0], want[1])); !ok {
			t.Errorf("missing %s{developer_key=%q,decision=%q}", reqTotal, want[0], want[1])
		}
	}
}

// metrics { per_key off } removes the developer_key label from the
// exposition (not developer_key="").
func TestMetricsPerKeyOff(t *testing.T) {
	in, up := startGate(t, "metrics {\n\t\t\tper_key off\n\t\t}")
	in.do(in.request("GET", "/api/v1/courses?include[]=teachers&include[]=term", tokA, nil))
	in.do(in.request("GET", "/api/v1/accounts", tokA, nil))
	in.do(in.request("GET", "/api/v1/courses", "test-only-unregistered", nil))
	up.take()
	text := scrape(t, in)
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "caddy_canvas_scopes_") && strings.Contains(line, "developer_key=") {
			t.Errorf("per_key off, yet the exposition has %q", line)
		}
	}
	ss := parseExposition(t, text)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{reqTotal, map[string]string{"decision": "allowed"}, 1},
		{reqTotal, map[string]string{"decision": "insufficient_scope"}, 1},
		{reqTotal, map[string]string{"decision": "invalid_token"}, 1},
		{"caddy_canvas_scopes_include_params_filtered_total", map[string]string{}, 2},
	} {
		if got := mustValue(t, ss, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// And with per_key on (the default) the same traffic is labelled.
	in2, up2 := startGate(t, "")
	in2.do(in2.request("GET", "/api/v1/courses?include[]=teachers", tokA, nil))
	up2.take()
	ss2 := parseExposition(t, scrape(t, in2))
	mustValue(t, ss2, reqTotal, reqLabels("vendor-a", "allowed"))
	mustValue(t, ss2, "caddy_canvas_scopes_include_params_filtered_total", map[string]string{"developer_key": "vendor-a"})
}

// driveAllDecisions sends at least one request of every decision kind
// through a gate started with startGate and the passthrough site of
// opsSite, and returns the decisions it expects to have been counted.
func driveAllDecisions(t *testing.T, in *instance, up *upstream, n int) {
	t.Helper()
	type rq struct {
		method, target, token string
		status                int
	}
	reqs := []rq{
		{"GET", "/api/v1/courses?include[]=teachers", tokA, 200},                 // allowed (+ include filtered)
		{"GET", "/api/v1/accounts", tokA, 401},                                   // insufficient_scope
		{"GET", "/api/v1/courses", "test-only-unregistered", 401},                // invalid_token
		{"GET", "/api/v1/courses", tokExpired, 401},                              // expired
		{"GET", "/api/v1/courses", tokRevoked, 401},                              // revoked
		{"GET", "/api/v1/courses", "", 401},                                      // no_credential
		{"GET", "/api/v1/courses?_method=DELETE", tokA, 400},                     // bad_request
		{"GET", "/api/v1/accounts", tokReport, 200},                              // would_deny
		{"GET", "/passthrough/api/v1/courses", "", 200},                          // passthrough (inner gate, anonymous pass)
		{"GET", "/api/v1/courses/1/assignments?include[]=submission", tokA, 200}, // allowed (+ include filtered)
	}
	for range n {
		for _, r := range reqs {
			resp, body := in.do(in.request(r.method, r.target, r.token, nil))
			if resp.StatusCode != r.status {
				t.Fatalf("%s %s: status %d, want %d: %s", r.method, r.target, resp.StatusCode, r.status, body)
			}
		}
	}
	up.take()
}

var allDecisions = []string{"allowed", "insufficient_scope", "invalid_token", "expired", "revoked", "no_credential", "bad_request", "would_deny", "passthrough"}

// opsSite adds a second gate on /passthrough/* with anonymous pass: the
// outer gate forwards the non-API path uncounted, handle_path strips the
// prefix and the inner gate counts a passthrough.
const opsSite = `handle_path /passthrough/* {
		canvas_scopes {
			keys_file {KEYS}
			anonymous pass
		}
		reverse_proxy {UPSTREAM}
	}`

func startOpsGate(t *testing.T, gate string) (*instance, *upstream) {
	t.Helper()
	up := newUpstream(t)
	// The inner gate reads its own copy of the keys (a second keys file,
	// so the store gauges have two keys_file series).
	inner := filepath.Join(t.TempDir(), "inner-keys.json")
	writeFile(t, inner, gateKeys())
	site := strings.NewReplacer("{UPSTREAM}", strings.TrimPrefix(up.URL, "http://"), "{KEYS}", inner).Replace(opsSite)
	in := startCaddy(t, up, siteConfig{
		KeysJSON: gateKeys(),
		Gate:     "reload_interval 100ms\n" + gate,
		Site:     site,
		Env:      []string{"TEST_UPSTREAM_TOKEN=" + upstreamTok},
	})
	return in, up
}

// ---- promtool -----------------------------------------------------------

func TestPromtoolCheckMetrics(t *testing.T) {
	promtool := opsTool(t, "promtool")
	in, up := startOpsGate(t, "")
	driveAllDecisions(t, in, up, 1)
	text := scrape(t, in)
	ss := parseExposition(t, text)
	for _, d := range allDecisions {
		found := false
		for _, s := range ss {
			if s.name == reqTotal && s.labels["decision"] == d {
				found = true
			}
		}
		if !found {
			t.Errorf("the scrape has no %s series for decision %q", reqTotal, d)
		}
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
	t.Logf("promtool check metrics: ok on a %d-byte scrape (%d caddy_canvas_scopes_ samples)", len(text), len(ours(ss)))
}

// ---- Prometheus: dashboard and alerts -----------------------------------

type promResult struct {
	Metric map[string]string `json:"metric"`
	Value  []any             `json:"value"`
}

func promQuery(t *testing.T, base, expr string) []promResult {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string       `json:"resultType"`
			Result     []promResult `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("query %s: %v", expr, err)
	}
	if r.Status != "success" {
		t.Fatalf("query %s: %s", expr, r.Error)
	}
	if r.Data.ResultType != "vector" {
		t.Fatalf("query %s: result type %s, want vector", expr, r.Data.ResultType)
	}
	return r.Data.Result
}

type promRule struct {
	Name   string `json:"name"`
	Query  string `json:"query"`
	Health string `json:"health"`
	State  string `json:"state"`
	Type   string `json:"type"`
	Alerts []struct {
		Labels map[string]string `json:"labels"`
		State  string            `json:"state"`
	} `json:"alerts"`
}

func promRules(t *testing.T, base string) []promRule {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/rules")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Groups []struct {
				Rules []promRule `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	var out []promRule
	for _, g := range r.Data.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

// dashboardExprs reads every target expression of every panel (including
// panels nested in rows) from the dashboard JSON.
func dashboardExprs(t *testing.T, path string) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Title   string `json:"title"`
		Type    string `json:"type"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var dash struct {
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	out := map[string][]string{}
	var walk func([]json.RawMessage)
	walk = func(ps []json.RawMessage) {
		for _, raw := range ps {
			var p panel
			if err := json.Unmarshal(raw, &p); err != nil {
				t.Fatal(err)
			}
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				out[p.Title] = append(out[p.Title], tg.Expr)
			}
		}
	}
	walk(dash.Panels)
	return out
}

// grafanaVars replaces Grafana's interval variables the way Grafana would
// for a short dashboard range.
var grafanaVars = strings.NewReplacer("$__rate_interval", "1m", "${__rate_interval}", "1m", "$__interval", "15s", "$__range", "5m")

func TestPrometheusDashboardAndAlerts(t *testing.T) {
	prometheus := opsTool(t, "prometheus")
	promtool := opsTool(t, "promtool")
	start := time.Now()
	repo, _ := filepath.Abs("..")
	dashPath := filepath.Join(repo, "examples/grafana/canvas-scopes.json")
	alertsPath := filepath.Join(repo, "examples/prometheus/alerts.yml")

	if out, err := exec.Command(promtool, "check", "rules", alertsPath).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	} else {
		t.Logf("promtool check rules: %s", strings.TrimSpace(string(out)))
	}
	if out, err := exec.Command(promtool, "check", "config", filepath.Join(repo, "examples/prometheus/prometheus.yml")).CombinedOutput(); err != nil {
		t.Fatalf("promtool check config examples/prometheus/prometheus.yml: %v\n%s", err, out)
	}
	alertSrc, err := os.ReadFile(alertsPath)
	if err != nil {
		t.Fatal(err)
	}
	wantAlerts := strings.Count(string(alertSrc), "- alert:")
	panels := dashboardExprs(t, dashPath)
	if len(panels) < 6 {
		t.Fatalf("dashboard has %d panels with queries", len(panels))
	}

	in, up := startOpsGate(t, "")
	// A fleet gate that cannot reach its database and serves an hour-old
	// snapshot: the database sync panel and alert have a real subject.
	stale := startStaleFleetGate(t, up)

	base := startPrometheus(t, prometheus, alertsPath, in.adminPort, stale.adminPort)

	// Phase 1: one request of every kind, so every series exists, and at
	// least two scrapes of that state (rate() needs two samples).
	driveAllDecisions(t, in, up, 1)
	waitScrapes := func(n int) {
		t.Helper()
		var first float64 = -1
		waitFor(t, func() bool {
			res := promQuery(t, base, `count_over_time(up{job="caddy"}[10m])`)
			for _, r := range res {
				if r.Metric["job"] == "caddy" {
					v, _ := strconv.ParseFloat(r.Value[1].(string), 64)
					if first < 0 {
						first = v
					}
					return v >= first+float64(n)
				}
			}
			return false
		})
	}
	waitScrapes(2)

	// Phase 2: traffic, and a denial burst for one key (vendor-a).
	driveAllDecisions(t, in, up, 5)
	for range 120 {
		in.do(in.request("GET", "/api/v1/accounts", tokA, nil))
	}
	waitScrapes(2)

	// Phase 3: trouble, for real. A broken keys file: the load fails (counted
	// once until the file changes again) and the gate keeps the last good
	// store.
	writeFile(t, in.keysPath, `{"developer_keys": [{"id": "x", "scopes": ["url:GET|/api/v1/nope"]}]`)
	waitFor(t, func() bool {
		v, ok := value(parseExposition(t, scrape(t, in)), "caddy_canvas_scopes_reloads_total", map[string]string{"result": "error"})
		return ok && v >= 1
	})
	if resp, _ := in.do(in.request("GET", "/api/v1/courses", tokA, nil)); resp.StatusCode != 200 {
		t.Fatalf("the last good store should still serve: %d", resp.StatusCode)
	}
	up.take()
	waitScrapes(2)
	// Then a keys file that loads but is empty.
	writeFile(t, in.keysPath, `{"developer_keys": [], "tokens": []}`)
	waitFor(t, func() bool {
		return len(promQuery(t, base, `caddy_canvas_scopes_store_developer_keys == 0`)) > 0
	})

	// Every dashboard panel expression returns data.
	titles := make([]string, 0, len(panels))
	for title := range panels {
		titles = append(titles, title)
	}
	sort.Strings(titles)
	nExprs := 0
	for _, title := range titles {
		for _, raw := range panels[title] {
			expr := grafanaVars.Replace(raw)
			if strings.Contains(expr, "$") {
				t.Errorf("panel %q: unknown Grafana variable left in %s", title, expr)
				continue
			}
			res := promQuery(t, base, expr)
			nExprs++
			if len(res) == 0 {
				t.Errorf("panel %q: %s returned no data", title, expr)
				continue
			}
			t.Logf("panel %q: %d series from %s", title, len(res), expr)
		}
	}
	// The decision panel shows every decision kind we drove.
	res := promQuery(t, base, grafanaVars.Replace(panels["Requests by decision"][0]))
	got := map[string]bool{}
	for _, r := range res {
		got[r.Metric["decision"]] = true
	}
	for _, d := range allDecisions {
		if !got[d] {
			t.Errorf("Requests by decision has no %q series", d)
		}
	}

	// Every alert rule from alerts.yml, as loaded by Prometheus: healthy,
	// its expression (thresholds intact) non-empty because the trouble was
	// caused for real, and the alert pending or firing.
	var rules []promRule
	waitFor(t, func() bool {
		rules = promRules(t, base)
		for _, r := range rules {
			if r.Type == "alerting" && r.State == "inactive" {
				return false
			}
		}
		return len(rules) > 0
	})
	nAlerts := 0
	for _, r := range rules {
		if r.Type != "alerting" {
			continue
		}
		nAlerts++
		if r.Health != "ok" {
			t.Errorf("alert %s: health %s", r.Name, r.Health)
		}
		res := promQuery(t, base, r.Query)
		if len(res) == 0 {
			t.Errorf("alert %s: %s returned no data", r.Name, r.Query)
		}
		var who []string
		for _, a := range r.Alerts {
			who = append(who, a.State+" "+fmt.Sprint(a.Labels))
		}
		t.Logf("alert %s: state %s, %d series: %v", r.Name, r.State, len(res), who)
		if r.Name == "CanvasScopesDenialSpike" {
			keys := map[string]bool{}
			for _, x := range res {
				keys[x.Metric["developer_key"]] = true
			}
			if !keys["vendor-a"] {
				t.Errorf("CanvasScopesDenialSpike does not name vendor-a: %v", res)
			}
		}
	}
	if nAlerts != wantAlerts {
		t.Errorf("Prometheus loaded %d alerting rules, alerts.yml has %d", nAlerts, wantAlerts)
	}
	t.Logf("%d panels / %d expressions and %d alerts evaluated in %s", len(panels), nExprs, nAlerts, time.Since(start).Round(time.Millisecond))
}

// startPrometheus runs a real Prometheus that scrapes the admin /metrics
// of each Caddy and evaluates the alert rules every second; it returns its
// base URL once it is ready.
func startPrometheus(t *testing.T, prometheus, alertsPath string, adminPorts ...int) string {
	t.Helper()
	targets := make([]string, len(adminPorts))
	for i, port := range adminPorts {
		targets[i] = fmt.Sprintf("%q", fmt.Sprintf("127.0.0.1:%d", port))
	}
	dir := t.TempDir()
	promPort := freePort(t)
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - %s
scrape_configs:
  - job_name: caddy
    metrics_path: /metrics
    static_configs:
      - targets: [%s]
`, alertsPath, strings.Join(targets, ", "))
	writeFile(t, filepath.Join(dir, "prometheus.yml"), cfg)
	var promOut strings.Builder
	pcmd := exec.Command(prometheus,
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", promPort),
		"--log.level=warn")
	pcmd.Stdout, pcmd.Stderr = &syncWriter{w: &promOut}, &syncWriter{w: &promOut}
	if err := pcmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = pcmd.Process.Kill()
		_, _ = pcmd.Process.Wait()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", promOut.String())
		}
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", promPort)
	waitFor(t, func() bool {
		r, err := http.Get(base + "/-/ready")
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == 200
	})
	return base
}

// syncWriter serialises writes from a child process's stdout and stderr.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// ---- shadow mode --------------------------------------------------------

// logLines returns the JSON log lines of the gate's logger with msg.
func logLines(t *testing.T, in *instance, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(in.logText()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		if p, _ := m["path"].(string); strings.Contains(p, "/log-sync-") {
			continue
		}
		if m["logger"] == "http.handlers.canvas_scopes" && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// syncedLogLines first sends a marker request (no credential on an API
// path: denied and logged, never forwarded) and waits for its log line, so
// every earlier line has been copied out of Caddy's stderr.
func syncedLogLines(t *testing.T, in *instance, msg string) []map[string]any {
	t.Helper()
	marker := fmt.Sprintf("/api/v1/log-sync-%d", time.Now().UnixNano())
	in.do(in.request("GET", marker, "", nil))
	waitFor(t, func() bool { return strings.Contains(in.logText(), marker) })
	return logLines(t, in, msg)
}

func TestShadowModeHandler(t *testing.T) {
	in, up := startGate(t, "mode report")
	needed, ok := matcher.CatalogueSet().Match("GET", "/api/v1/accounts/1/users")
	if !ok {
		t.Fatal("catalogue has no scope for GET /api/v1/accounts/1/users")
	}
	// A denial in enforce mode: forwarded unchanged, include params too.
	target := "/api/v1/accounts/1/users?include[]=email&per_page=5"
	resp, body := in.do(in.request("GET", target, tokA, nil))
	if resp.StatusCode != 200 {
		t.Fatalf("report mode answered %d: %s", resp.StatusCode, body)
	}
	got := up.one(t)
	if got.RequestURI != target || got.Header.Get("Authorization") != "Bearer "+tokA {
		t.Errorf("forwarded as %s (Authorization changed: %v), want %s unchanged", got.RequestURI, got.Header.Get("Authorization") != "Bearer "+tokA, target)
	}
	// An allowed request in report mode is not include-filtered either.
	in.do(in.request("GET", "/api/v1/courses?include[]=teachers", tokA, nil))
	if q := up.one(t).RawQuery; q != "include[]=teachers" {
		t.Errorf("report mode filtered includes: %q", q)
	}
	// Token problems are reported too.
	in.do(in.request("GET", "/api/v1/courses", tokRevoked, nil))
	up.one(t)

	ss := parseExposition(t, scrape(t, in))
	if v := mustValue(t, ss, reqTotal, reqLabels("vendor-a", "would_deny")); v != 2 {
		t.Errorf("would_deny = %v, want 2", v)
	}
	if _, ok := value(ss, reqTotal, reqLabels("vendor-a", "insufficient_scope")); ok {
		t.Errorf("report mode counted an enforced insufficient_scope")
	}
	lines := syncedLogLines(t, in, "request would be denied (report mode)")
	if len(lines) != 2 {
		t.Fatalf("%d report-mode log lines, want 2:\n%s", len(lines), in.logText())
	}
	l := lines[0]
	for k, want := range map[string]string{
		"developer_key": "vendor-a", "token_id": sha(tokA)[:12], "method": "GET",
		"path": "/api/v1/accounts/1/users", "decision": "insufficient_scope", "needed_scope": needed,
	} {
		if l[k] != want {
			t.Errorf("report log %s = %v, want %q", k, l[k], want)
		}
	}
	if lines[1]["decision"] != "revoked" {
		t.Errorf("second report line decision %v, want revoked", lines[1]["decision"])
	}
	if strings.Contains(in.logText(), tokA) || strings.Contains(in.logText(), tokRevoked) {
		t.Error("a token appears in the log")
	}
}

// A key in report mode inside an enforcing handler: only that key is
// shadowed.
func TestShadowModeKey(t *testing.T) {
	in, up := startGate(t, "")
	target := "/api/v1/courses/9/assignments?include[]=submission"
	resp, _ := in.do(in.request("GET", target, tokReport, nil))
	if resp.StatusCode != 200 {
		t.Fatalf("report-mode key answered %d", resp.StatusCode)
	}
	if got := up.one(t); got.RequestURI != target {
		t.Errorf("forwarded as %s, want %s unchanged", got.RequestURI, target)
	}
	resp, _ = in.do(in.request("GET", target[:len("/api/v1/courses/9/assignments")], "test-only-token-vendor-a", nil))
	if resp.StatusCode != 200 {
		t.Fatalf("vendor-a allowed request: %d", resp.StatusCode)
	}
	up.take()
	in.do(in.request("GET", "/api/v1/accounts", tokA, nil))
	up.none(t) // the enforcing key is still enforced
	ss := parseExposition(t, scrape(t, in))
	if v := mustValue(t, ss, reqTotal, reqLabels("shadow", "would_deny")); v != 1 {
		t.Errorf("shadow would_deny = %v, want 1", v)
	}
	if v := mustValue(t, ss, reqTotal, reqLabels("vendor-a", "insufficient_scope")); v != 1 {
		t.Errorf("vendor-a insufficient_scope = %v, want 1", v)
	}
	lines := syncedLogLines(t, in, "request would be denied (report mode)")
	if len(lines) != 1 || lines[0]["needed_scope"] != "url:GET|/api/v1/courses/:course_id/assignments" || lines[0]["developer_key"] != "shadow" {
		t.Errorf("report log lines: %v", lines)
	}
}

// ---- decision log -------------------------------------------------------

func TestDecisionLog(t *testing.T) {
	// Default log_allowed 0: denials only.
	in, up := startGate(t, "")
	in.do(in.request("GET", "/api/v1//courses/", tokA, nil))
	in.do(in.request("DELETE", "/api/v1/courses/5", tokA, nil))
	in.do(in.request("GET", "/api/v1/courses", tokExpired, nil))
	up.take()
	if n := len(syncedLogLines(t, in, "request allowed")); n != 0 {
		t.Errorf("log_allowed 0 logged %d allowed requests", n)
	}
	denied := syncedLogLines(t, in, "request denied")
	if len(denied) != 2 {
		t.Fatalf("%d denial lines, want 2:\n%s", len(denied), in.logText())
	}
	for k, want := range map[string]string{"developer_key": "vendor-a", "token_id": sha(tokA)[:12], "method": "DELETE", "path": "/api/v1/courses/5", "decision": "insufficient_scope", "reason": "no scope on the token matches the request", "needed_scope": "url:DELETE|/api/v1/courses/:id"} {
		if denied[0][k] != want {
			t.Errorf("denial %s = %v, want %q", k, denied[0][k], want)
		}
	}
	if denied[1]["decision"] != "expired" || denied[1]["reason"] != "token expired" || denied[1]["token_id"] != sha(tokExpired)[:12] {
		t.Errorf("expired denial line: %v", denied[1])
	}

	// log_allowed 1: every allowed request, with the matched scope and the
	// canonical path.
	in1, up1 := startGate(t, "log_allowed 1")
	in1.do(in1.request("GET", "/api/v1//courses/7/", tokA, nil))
	up1.take()
	allowed := syncedLogLines(t, in1, "request allowed")
	if len(allowed) != 1 {
		t.Fatalf("%d allowed lines with log_allowed 1", len(allowed))
	}
	for k, want := range map[string]string{"developer_key": "vendor-a", "token_id": sha(tokA)[:12], "method": "GET", "path": "/api/v1/courses/7", "decision": "allowed", "scope": "url:GET|/api/v1/courses/:id"} {
		if allowed[0][k] != want {
			t.Errorf("allowed %s = %v, want %q", k, allowed[0][k], want)
		}
	}
	if _, ok := allowed[0]["reason"]; !ok {
		t.Errorf("allowed line has no reason field: %v", allowed[0])
	}

	// log_allowed 0.5: sampled (200 requests: 100 expected, sd 7).
	in5, up5 := startGate(t, "log_allowed 0.5")
	for range 200 {
		in5.do(in5.request("GET", "/api/v1/courses", tokA, nil))
	}
	up5.take()
	if n := len(syncedLogLines(t, in5, "request allowed")); n < 50 || n > 150 {
		t.Errorf("log_allowed 0.5 logged %d of 200 allowed requests", n)
	}
	for _, i := range []*instance{in, in1, in5} {
		if strings.Contains(i.logText(), tokA) || strings.Contains(i.logText(), tokExpired) {
			t.Error("a token appears in the decision log")
		}
	}
}

// ---- access log ---------------------------------------------------------

// The documented access-log filter removes access_token from logged query
// strings; without it Caddy logs the token (the control proves the check
// can fail).
func TestAccessLogRedactsAccessToken(t *testing.T) {
	run := func(filter bool) string {
		dir := t.TempDir()
		logPath := filepath.Join(dir, "access.log")
		format := ""
		if filter {
			format = "format filter {\n\t\t\trequest>uri query {\n\t\t\t\tdelete access_token\n\t\t\t}\n\t\t}"
		}
		up := newUpstream(t)
		in := startCaddy(t, up, siteConfig{
			KeysJSON: gateKeys(),
			Site:     fmt.Sprintf("log {\n\t\toutput file %s\n\t\t%s\n\t}", logPath, format),
			Env:      []string{"TEST_UPSTREAM_TOKEN=" + upstreamTok},
		})
		resp, body := in.do(in.request("GET", "/api/v1/courses?per_page=5&access_token="+tokA, "", nil))
		if resp.StatusCode != 200 {
			t.Fatalf("access_token in the query: %d %s", resp.StatusCode, body)
		}
		if q := up.one(t).RawQuery; !strings.Contains(q, "per_page=5") {
			t.Fatalf("upstream query %q", q)
		}
		var data []byte
		waitFor(t, func() bool {
			data, _ = os.ReadFile(logPath)
			return strings.Contains(string(data), "per_page=5")
		})
		return string(data)
	}
	filtered := run(true)
	if strings.Contains(filtered, tokA) {
		t.Errorf("the access log with the filter contains the token:\n%s", filtered)
	}
	if !strings.Contains(filtered, `/api/v1/courses?per_page=5`) {
		t.Errorf("the filtered access log lost the rest of the URI:\n%s", filtered)
	}
	if unfiltered := run(false); !strings.Contains(unfiltered, tokA) {
		t.Errorf("control: without the filter the token should be logged (else this test proves nothing):\n%s", unfiltered)
	}
}

// ---- admin API ----------------------------------------------------------

func TestAdminKeysAndReload(t *testing.T) {
	in, _ := startGate(t, "")
	resp, err := http.Get(in.admin + "/canvas_scopes/keys")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /canvas_scopes/keys: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var keys []struct {
		KeysFile   string `json:"keys_file"`
		ID         string `json:"id"`
		Name       string `json:"name"`
		Mode       string `json:"mode"`
		Enabled    bool   `json:"enabled"`
		ScopeCount int    `json:"scope_count"`
		TokenCount int    `json:"token_count"`
		Upstream   bool   `json:"upstream_token"`
	}
	if err := json.Unmarshal(raw, &keys); err != nil {
		t.Fatal(err)
	}
	byID := map[string]int{}
	for i, k := range keys {
		byID[k.ID] = i
		if k.KeysFile != in.keysPath {
			t.Errorf("key %s keys_file %q", k.ID, k.KeysFile)
		}
	}
	if len(keys) != 8 {
		t.Fatalf("%d keys listed, want 8: %s", len(keys), raw)
	}
	va := keys[byID["vendor-a"]]
	if va.Name != "Vendor A" || va.Mode != "enforce" || !va.Enabled || va.ScopeCount != 5 || va.TokenCount != 5 {
		t.Errorf("vendor-a: %+v", va)
	}
	if s := keys[byID["shadow"]]; s.Mode != "report" || s.ScopeCount != 1 || s.TokenCount != 1 {
		t.Errorf("shadow: %+v", s)
	}
	if o := keys[byID["off"]]; o.Enabled {
		t.Errorf("off: %+v", o)
	}
	if s := keys[byID["vendor-sub"]]; !s.Upstream {
		t.Errorf("vendor-sub should show upstream_token true: %+v", s)
	}
	body := string(raw)
	for _, secret := range []string{upstreamTok, "TEST_UPSTREAM_TOKEN", sha(tokA), sha(tokA)[:12], sha(tokSub)} {
		if strings.Contains(body, secret) {
			t.Errorf("the keys listing contains a secret or hash (%d chars)", len(secret))
		}
	}
	if strings.Contains(body, "sha256") {
		t.Errorf("the keys listing names hashes: %s", body)
	}
	// Wrong method.
	resp, _ = http.Post(in.admin+"/canvas_scopes/keys", "application/json", nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /canvas_scopes/keys: %d", resp.StatusCode)
	}
	resp, _ = http.Get(in.admin + "/canvas_scopes/reload")
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /canvas_scopes/reload: %d", resp.StatusCode)
	}

	// POST /canvas_scopes/reload: success, then a broken file (422, counted,
	// last good store kept).
	before := parseExposition(t, scrape(t, in))
	okBefore := mustValue(t, before, "caddy_canvas_scopes_reloads_total", map[string]string{"result": "success"})
	errBefore := mustValue(t, before, "caddy_canvas_scopes_reloads_total", map[string]string{"result": "error"})
	resp, _ = http.Post(in.admin+"/canvas_scopes/reload", "application/json", nil)
	raw, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(raw), `"reloaded":true`) {
		t.Fatalf("reload: %d %s", resp.StatusCode, raw)
	}
	after := parseExposition(t, scrape(t, in))
	if v := mustValue(t, after, "caddy_canvas_scopes_reloads_total", map[string]string{"result": "success"}); v < okBefore+1 {
		t.Errorf("reloads_total{success} %v, want >= %v", v, okBefore+1)
	}
	if ts := mustValue(t, after, "caddy_canvas_scopes_last_reload_success_timestamp_seconds", map[string]string{"keys_file": in.keysPath}); time.Since(time.Unix(int64(ts), 0)) > time.Minute {
		t.Errorf("last_reload_success_timestamp_seconds %v is not recent", ts)
	}
	if v := mustValue(t, after, "caddy_canvas_scopes_store_developer_keys", map[string]string{"keys_file": in.keysPath}); v != 8 {
		t.Errorf("store_developer_keys %v, want 8", v)
	}
	if v := mustValue(t, after, "caddy_canvas_scopes_store_tokens", map[string]string{"keys_file": in.keysPath}); v != 12 {
		t.Errorf("store_tokens %v, want 12", v)
	}
	writeFile(t, in.keysPath, `{"developer_keys": [`)
	resp, _ = http.Post(in.admin+"/canvas_scopes/reload", "application/json", nil)
	raw, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(raw), "keys.json:1") {
		t.Errorf("reload of a broken file: %d %s", resp.StatusCode, raw)
	}
	if v := mustValue(t, parseExposition(t, scrape(t, in)), "caddy_canvas_scopes_reloads_total", map[string]string{"result": "error"}); v <= errBefore {
		t.Errorf("reloads_total{error} %v, want > %v", v, errBefore)
	}
	if resp, _ := in.do(in.request("GET", "/api/v1/courses", tokA, nil)); resp.StatusCode != 200 {
		t.Errorf("after a failed reload the last good store must serve: %d", resp.StatusCode)
	}
}
